/**
 * What an operator writes in the admin room to answer an approval request:
 *
 *   approve <request id> [ttl] [uses]     e.g. "approve 3f9a1c2b7d10 30m 5"
 *   deny <request id> [reason…]           e.g. "deny 3f9a1c2b7d10 not during the freeze"
 *
 * `ttl` is a duration ("90s", "30m", "1h30m"), `uses` a positive integer; either may be left out
 * (the capability's defaults apply) and they may come in either order. Anything else is not an
 * answer and is ignored, so ordinary conversation in the room never resolves a request.
 */
import { parseDuration } from '../formats/duration';

export type ApprovalReply =
  | { decision: 'approve'; requestId: string; grantTtlMs?: number; grantUses?: number }
  | { decision: 'deny'; requestId: string; reason?: string };

/** Request ids as the bridge makes them (12 lower-case hex digits). */
export const REQUEST_ID_PATTERN = /^[0-9a-f]{12}$/;

const MAX_REASON_CHARS = 500;

/** The answer `body` holds, or undefined when it is not one (or is malformed). */
export function parseApprovalReply(body: string): ApprovalReply | undefined {
  const words = body.trim().split(/\s+/);
  const verb = words[0]?.toLowerCase();
  const requestId = words[1]?.toLowerCase();
  if ((verb !== 'approve' && verb !== 'deny') || !requestId) return undefined;
  if (!REQUEST_ID_PATTERN.test(requestId)) return undefined;
  if (verb === 'deny') {
    const reason = words.slice(2).join(' ').slice(0, MAX_REASON_CHARS);
    return { decision: 'deny', requestId, ...(reason ? { reason } : {}) };
  }
  const reply: ApprovalReply = { decision: 'approve', requestId };
  for (const word of words.slice(2)) {
    if (/^\d+$/.test(word) && reply.grantUses === undefined) {
      const uses = Number(word);
      if (!Number.isSafeInteger(uses) || uses < 1) return undefined;
      reply.grantUses = uses;
      continue;
    }
    const ms = parseDuration(word);
    if (ms === null || reply.grantTtlMs !== undefined) return undefined;
    reply.grantTtlMs = ms;
  }
  return reply;
}
