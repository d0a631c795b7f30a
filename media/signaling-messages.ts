/**
 * Parsing and per-socket limits of the signaling protocol (media/signaling-types.ts): what a
 * client frame must look like before anything reaches the call media, and the token bucket
 * that keeps one socket from flooding it.
 */
import { z } from 'zod';
import type { ClientMessage } from './signaling-types';

/** Error codes sent in `error` messages (docs/signaling.md lists them). */
export const SignalingErrorCode = {
  /** Bad, forged or other-session token, or a first message that is not `hello`. */
  Unauthorized: 'unauthorized',
  TokenExpired: 'token_expired',
  /** The token is good but the session is not live on this bridge (ended, or another host). */
  SessionNotFound: 'session_not_found',
  HelloTimeout: 'hello_timeout',
  /** Not JSON, unknown type, wrong payload shape, or a second `hello`. */
  BadMessage: 'bad_message',
  /** A message's `session_id` is not the socket's session. */
  WrongSession: 'wrong_session',
  RateLimited: 'rate_limited',
  /** The call media refused an offer, answer or candidate. */
  NegotiationFailed: 'negotiation_failed',
  /** Another socket authenticated for the same session; this one is closed. */
  Replaced: 'replaced',
} as const;
export type SignalingErrorCode = (typeof SignalingErrorCode)[keyof typeof SignalingErrorCode];

/** WebSocket close codes the server uses besides the standard ones (1000, 1008, 1009). */
export const SignalingCloseCode = {
  Normal: 1000,
  PolicyViolation: 1008,
  MessageTooBig: 1009,
  Unauthorized: 4401,
  NotFound: 4404,
  HelloTimeout: 4408,
  Replaced: 4409,
} as const;

// Bounds well above any real value, so a client cannot make the bridge carry junk around.
const sessionId = z.string().min(1).max(200);
const sdp = z.string().min(1);
const candidate = z.object({
  candidate: z.string().max(2048).optional(),
  sdpMid: z.string().max(64).nullable().optional(),
  sdpMLineIndex: z.number().int().min(0).max(1024).nullable().optional(),
  usernameFragment: z.string().max(256).nullable().optional(),
});

const clientMessage = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('hello'),
    session_id: sessionId,
    payload: z.object({ token: z.string().min(1).max(4096) }),
  }),
  z.object({ type: z.literal('offer'), session_id: sessionId, payload: z.object({ sdp }) }),
  z.object({ type: z.literal('answer'), session_id: sessionId, payload: z.object({ sdp }) }),
  z.object({ type: z.literal('ice'), session_id: sessionId, payload: candidate.nullable() }),
  z.object({
    type: z.literal('bye'),
    session_id: sessionId,
    // A bare `{type:'bye'}` from a hurried client still hangs up.
    payload: z
      .object({ reason: z.string().max(200).optional() })
      .optional()
      .transform((p) => p ?? {}),
  }),
]);

export type ParseResult = { ok: true; message: ClientMessage } | { ok: false; problem: string };

/** Parses one text frame; the problem says what was wrong without echoing the input. */
export function parseClientMessage(text: string): ParseResult {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { ok: false, problem: 'message is not JSON' };
  }
  const result = clientMessage.safeParse(json);
  if (result.success) return { ok: true, message: result.data as ClientMessage };
  const issue = result.error.issues[0];
  const where = issue && issue.path.length > 0 ? issue.path.join('.') : 'message';
  return { ok: false, problem: `${where} is invalid or missing` };
}

/** True for the ICE payloads that only mean "no more candidates" (null, `{}`, empty candidate). */
export function isEndOfCandidates(payload: ClientMessage & { type: 'ice' }): boolean {
  return payload.payload === null || !payload.payload.candidate;
}

/**
 * A token bucket (`ratePerSecond` per second, burst = `ratePerSecond`) that also counts refusals
 * in a one-second window, so a socket that keeps sending far past its limit can be cut off.
 */
export class MessageRateLimiter {
  private tokens: number;
  private last: number;
  private windowStart = 0;
  private refusedInWindow = 0;

  constructor(
    private readonly ratePerSecond: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = ratePerSecond;
    this.last = now();
  }

  /** `ok`: take the message; `limited`: drop it; `flood`: the socket refused 3× its rate in a second. */
  take(): 'ok' | 'limited' | 'flood' {
    const now = this.now();
    this.tokens = Math.min(
      this.ratePerSecond,
      this.tokens + ((now - this.last) / 1000) * this.ratePerSecond,
    );
    this.last = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 'ok';
    }
    if (now - this.windowStart >= 1000) {
      this.windowStart = now;
      this.refusedInWindow = 0;
    }
    this.refusedInWindow++;
    return this.refusedInWindow >= 3 * this.ratePerSecond ? 'flood' : 'limited';
  }
}
