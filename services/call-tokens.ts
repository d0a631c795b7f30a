import { createHmac, timingSafeEqual } from 'node:crypto';

/** What a call session token grants: one session, in one room, until it expires. */
export interface CallTokenClaims {
  session_id: string;
  room_id: string;
  /** Unix seconds. */
  expires_at: number;
}

export type TokenVerdict =
  | { valid: true; claims: CallTokenClaims }
  | { valid: false; reason: 'malformed' | 'bad_signature' | 'expired' | 'wrong_session' };

const HEADER = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url');

/**
 * Signs a short-lived call session token (a compact HS256 JWT). It is required by the signaling
 * server and is never a Matrix token; the signing key stays in the bridge (never in history).
 */
export function signCallToken(key: Buffer, claims: CallTokenClaims): string {
  const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
  const signature = createHmac('sha256', key).update(`${HEADER}.${payload}`).digest('base64url');
  return `${HEADER}.${payload}.${signature}`;
}

/** Checks signature, expiry and (if given) that the token is for `sessionId`. */
export function verifyCallToken(
  key: Buffer,
  token: string,
  opts: { sessionId?: string; nowMs?: number } = {},
): TokenVerdict {
  const parts = token.split('.');
  if (parts.length !== 3 || parts[0] !== HEADER) return { valid: false, reason: 'malformed' };
  const expected = createHmac('sha256', key).update(`${parts[0]}.${parts[1]}`).digest();
  let given: Buffer;
  try {
    given = Buffer.from(parts[2]!, 'base64url');
  } catch {
    return { valid: false, reason: 'malformed' };
  }
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    return { valid: false, reason: 'bad_signature' };
  }
  let claims: CallTokenClaims;
  try {
    claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as CallTokenClaims;
  } catch {
    return { valid: false, reason: 'malformed' };
  }
  if (
    typeof claims.session_id !== 'string' ||
    typeof claims.room_id !== 'string' ||
    !Number.isInteger(claims.expires_at)
  ) {
    return { valid: false, reason: 'malformed' };
  }
  if (claims.expires_at * 1000 <= (opts.nowMs ?? Date.now()))
    return { valid: false, reason: 'expired' };
  if (opts.sessionId !== undefined && claims.session_id !== opts.sessionId)
    return { valid: false, reason: 'wrong_session' };
  return { valid: true, claims };
}
