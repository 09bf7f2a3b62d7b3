// Every reply the engine host sends must match the contract; tests check it on the way in.
import { parseReply, type Reply } from '../../contract/messages.js';

export function validReply(r: Reply): Reply {
  const p = parseReply(r);
  if (!p.ok) throw new Error(`reply does not match the contract: ${p.error}`);
  return r;
}
