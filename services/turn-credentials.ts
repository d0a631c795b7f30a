import { createHmac } from 'node:crypto';

/** TURN REST credentials as coturn's `use-auth-secret` expects them. */
export interface TurnCredentials {
  username: string;
  password: string;
  /** Lifetime in seconds (the API spec's `turn_credentials.ttl`). */
  ttl: number;
}

/**
 * Issues short-lived TURN credentials (the coturn REST scheme): `username = <expiry>:<sessionId>`,
 * `password = base64(HMAC-SHA1(secret, username))`. The expiry is tied to the call's TTL, so a
 * credential never outlives the call it was issued for.
 */
export function issueTurnCredentials(opts: {
  secret: string;
  sessionId: string;
  ttlSeconds: number;
  nowMs?: number;
}): TurnCredentials {
  if (!opts.secret) throw new Error('TURN shared secret is empty');
  if (!Number.isInteger(opts.ttlSeconds) || opts.ttlSeconds <= 0)
    throw new Error('ttlSeconds must be a positive integer');
  if (/[:\s]/.test(opts.sessionId)) throw new Error('sessionId must not contain ":" or spaces');
  const expiry = Math.floor((opts.nowMs ?? Date.now()) / 1000) + opts.ttlSeconds;
  const username = `${expiry}:${opts.sessionId}`;
  const password = createHmac('sha1', opts.secret).update(username).digest('base64');
  return { username, password, ttl: opts.ttlSeconds };
}

/** Whether `username`/`password` are valid for `secret` at `nowMs` (what coturn checks). */
export function verifyTurnCredentials(
  secret: string,
  username: string,
  password: string,
  nowMs = Date.now(),
): boolean {
  const expiry = Number.parseInt(username.split(':')[0] ?? '', 10);
  if (!Number.isFinite(expiry) || expiry * 1000 <= nowMs) return false;
  const expected = createHmac('sha1', secret).update(username).digest('base64');
  return expected.length === password.length && timingSafeEqualStr(expected, password);
}

function timingSafeEqualStr(a: string, b: string): boolean {
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}
