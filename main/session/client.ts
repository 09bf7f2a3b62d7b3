// Who sent a request to the engine host, and how to push events (synthesis and indexing progress,
// notices) back to them. Every part of the session that answers a client names it by this.
import type { AppEvent } from '../../contract/messages.js';

export interface SessionClient {
  id: string;
  emit(event: AppEvent): void;
}
