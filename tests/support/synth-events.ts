// Collects a session client's synthesis events (validated against the contract) and waits for one.
import { parseEvent, type AppEvent, type SynthEventT } from '../../contract/messages.js';

export function collector() {
  const events: SynthEventT[] = [];
  const waiters: { pred: (e: SynthEventT) => boolean; resolve: (e: SynthEventT) => void }[] = [];
  return {
    events,
    client: (id: string) => ({
      id,
      emit: (e: AppEvent) => {
        const parsed = parseEvent(e);
        if (!parsed.ok) throw new Error(`event does not match the contract: ${parsed.error}`);
        if (e.type !== 'synth') return;
        events.push(e);
        for (const w of [...waiters]) if (w.pred(e)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(e);
        }
      },
    }),
    until: (pred: (e: SynthEventT) => boolean) =>
      new Promise<SynthEventT>((resolve) => {
        const hit = events.find(pred);
        if (hit) resolve(hit);
        else waiters.push({ pred, resolve });
      }),
  };
}
