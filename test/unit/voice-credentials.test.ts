import { createHmac, randomBytes } from 'node:crypto';
import { signCallToken, verifyCallToken } from '../../services/call-tokens';
import { issueTurnCredentials, verifyTurnCredentials } from '../../services/turn-credentials';

describe('TURN REST credentials', () => {
  const now = 1_795_000_000_000;
  test('username is <expiry>:<session>, password the coturn HMAC-SHA1', () => {
    const c = issueTurnCredentials({
      secret: 's3cret',
      sessionId: 'session-abc',
      ttlSeconds: 600,
      nowMs: now,
    });
    expect(c.username).toBe(`${now / 1000 + 600}:session-abc`);
    expect(c.password).toBe(createHmac('sha1', 's3cret').update(c.username).digest('base64'));
    expect(c.ttl).toBe(600);
  });
  test('verify: valid until expiry, not after, not with another secret', () => {
    const c = issueTurnCredentials({ secret: 's', sessionId: 'x', ttlSeconds: 60, nowMs: now });
    expect(verifyTurnCredentials('s', c.username, c.password, now + 59_000)).toBe(true);
    expect(verifyTurnCredentials('s', c.username, c.password, now + 60_000)).toBe(false);
    expect(verifyTurnCredentials('t', c.username, c.password, now)).toBe(false);
    expect(verifyTurnCredentials('s', c.username.replace('x', 'y'), c.password, now)).toBe(false);
  });
  test('refuses bad input', () => {
    expect(() => issueTurnCredentials({ secret: '', sessionId: 'x', ttlSeconds: 1 })).toThrow();
    expect(() => issueTurnCredentials({ secret: 's', sessionId: 'a:b', ttlSeconds: 1 })).toThrow();
    expect(() => issueTurnCredentials({ secret: 's', sessionId: 'x', ttlSeconds: 0 })).toThrow();
  });
});

describe('call session tokens', () => {
  const key = randomBytes(32);
  const claims = { session_id: 'session-1', room_id: '!r:x', expires_at: 2_000_000_000 };
  test('round trip, scoped to the session', () => {
    const t = signCallToken(key, claims);
    expect(verifyCallToken(key, t, { nowMs: 1_900_000_000_000 })).toEqual({ valid: true, claims });
    expect(verifyCallToken(key, t, { sessionId: 'session-2', nowMs: 1_900_000_000_000 })).toEqual({
      valid: false,
      reason: 'wrong_session',
    });
  });
  test('expired, tampered, wrong key, malformed', () => {
    const t = signCallToken(key, claims);
    expect(verifyCallToken(key, t, { nowMs: 2_000_000_000_000 })).toMatchObject({
      reason: 'expired',
    });
    const [h, , s] = t.split('.');
    const forged = `${h}.${Buffer.from(JSON.stringify({ ...claims, room_id: '!other:x' })).toString('base64url')}.${s}`;
    expect(verifyCallToken(key, forged, { nowMs: 0 })).toMatchObject({ reason: 'bad_signature' });
    expect(verifyCallToken(randomBytes(32), t, { nowMs: 0 })).toMatchObject({
      reason: 'bad_signature',
    });
    expect(verifyCallToken(key, 'a.b', { nowMs: 0 })).toMatchObject({ reason: 'malformed' });
    expect(verifyCallToken(key, 'x.y.z', { nowMs: 0 })).toMatchObject({ reason: 'malformed' });
  });
});
