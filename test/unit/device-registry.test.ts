/**
 * The device registry (services/device-registry.ts) and the device scopes table
 * (formats/device-scopes.ts): pairing and its refusals, the lockout and its lifting, what is on
 * disk, revocation and rotation across reopening, and which scope allows which operation.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  DEFAULT_DEVICE_SCOPE,
  DEVICE_OPERATIONS,
  DEVICE_SCOPES,
  NEVER_FROM_DEVICES,
  operationsAllowed,
  scopeAllows,
  type DeviceOperationClass,
} from '../../formats/device-scopes';
import {
  DEVICE_TOKEN_PREFIX,
  DeviceRegistry,
  DeviceRegistryError,
  deviceRegistryPath,
  hashDeviceToken,
  type DeviceRegistryEvent,
  type DeviceRegistryOptions,
} from '../../services/device-registry';

const MINUTE_MS = 60_000;
const T0 = new Date('2026-02-26T11:50:00.000Z');
const at = (ms: number) => new Date(T0.getTime() + ms);
const DEVICE = { name: 'My-PC', os: 'windows', bridgeVersion: '0.1.0' };
const PUBKEY = Buffer.alloc(32, 7).toString('base64');

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'device-registry-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function openRegistry(options: DeviceRegistryOptions = {}) {
  const events: DeviceRegistryEvent[] = [];
  const file = deviceRegistryPath(dir);
  const registry = DeviceRegistry.open(file, {
    onEvent: (e) => events.push(e),
    now: () => T0,
    ...options,
  });
  return { registry, events, file };
}

/** The error code `fn` throws, or 'ok'. */
function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof DeviceRegistryError) return err.code;
    throw err;
  }
  return 'ok';
}

function complete(
  registry: DeviceRegistry,
  pairCode: string,
  address = '203.0.113.5',
  now: Date = T0,
) {
  return registry.completePairing({ pairCode, device: DEVICE, pubKey: PUBKEY, address, now });
}

describe('pairing', () => {
  test('a code pairs a device with the default scope and a token shown once', () => {
    const { registry, events } = openRegistry();
    const { pairCode, expiresAt } = registry.startPairing({ now: T0 });
    expect(pairCode).toMatch(/^VC-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$/);
    expect(expiresAt).toBe(at(10 * MINUTE_MS).toISOString());

    const paired = complete(registry, pairCode, '203.0.113.5', at(MINUTE_MS));
    expect(paired.bridgeId).toMatch(/^br_[0-9a-f]{16}$/);
    expect(paired.wsToken.startsWith(DEVICE_TOKEN_PREFIX)).toBe(true);
    expect(Buffer.from(paired.wsToken.slice(DEVICE_TOKEN_PREFIX.length), 'base64url')).toHaveLength(
      32,
    );
    expect(paired.scope).toBe(DEFAULT_DEVICE_SCOPE);
    expect(DEFAULT_DEVICE_SCOPE).toBe('tools_safe');

    const verified = registry.verifyDeviceToken(paired.wsToken);
    expect(verified).toEqual({
      ok: true,
      device: {
        bridgeId: paired.bridgeId,
        ...DEVICE,
        pubKey: PUBKEY,
        scope: 'tools_safe',
        pairedAt: at(MINUTE_MS).toISOString(),
        rotatedAt: null,
        revokedAt: null,
      },
    });
    expect(registry.list().map((d) => d.bridgeId)).toEqual([paired.bridgeId]);
    expect(events.map((e) => e.type)).toEqual(['pair_started', 'pair_completed']);
    expect(events[1]).toMatchObject({
      type: 'pair_completed',
      bridgeId: paired.bridgeId,
      address: '203.0.113.5',
      scope: 'tools_safe',
      codeId: (events[0] as { codeId: string }).codeId,
    });
  });

  test('the code is read as typed: lower case, no dashes, O for 0, I for 1', () => {
    const { registry } = openRegistry();
    const { pairCode } = registry.startPairing();
    const typed = pairCode
      .slice(3)
      .replace('-', ' ')
      .toLowerCase()
      .replace(/0/g, 'o')
      .replace(/1/g, 'i');
    expect(complete(registry, typed).scope).toBe('tools_safe');
  });

  test('a pairing started with a scope gives the device that scope', () => {
    const { registry } = openRegistry();
    const { pairCode } = registry.startPairing({ scope: 'chat_only' });
    const { wsToken, scope } = complete(registry, pairCode);
    expect(scope).toBe('chat_only');
    expect(registry.verifyDeviceToken(wsToken)).toMatchObject({ device: { scope: 'chat_only' } });
  });

  test('an expired code is refused as expired, one just in time works', () => {
    const { registry, events } = openRegistry();
    const { pairCode } = registry.startPairing({ now: T0 });
    expect(codeOf(() => complete(registry, pairCode, 'a', at(10 * MINUTE_MS)))).toBe('expired');
    expect(events.at(-1)).toMatchObject({ type: 'pair_failed', reason: 'expired', address: 'a' });

    const fresh = registry.startPairing({ now: T0 });
    expect(complete(registry, fresh.pairCode, 'a', at(10 * MINUTE_MS - 1)).scope).toBe(
      'tools_safe',
    );
  });

  test('a code pairs once; again it is refused as used, even after reopening', () => {
    const { registry, file } = openRegistry();
    const { pairCode } = registry.startPairing();
    complete(registry, pairCode);
    expect(codeOf(() => complete(registry, pairCode))).toBe('used');
    const reopened = DeviceRegistry.open(file, { now: () => T0 });
    expect(codeOf(() => complete(reopened, pairCode, '198.51.100.1'))).toBe('used');
    expect(reopened.list()).toHaveLength(1);
  });

  test('one live code at a time: a newer code makes the older one expired', () => {
    const { registry } = openRegistry();
    const first = registry.startPairing();
    const second = registry.startPairing();
    expect(codeOf(() => complete(registry, first.pairCode))).toBe('expired');
    expect(complete(registry, second.pairCode).scope).toBe('tools_safe');
  });

  test('a pending code survives reopening', () => {
    const { registry, file } = openRegistry();
    const { pairCode } = registry.startPairing();
    const reopened = DeviceRegistry.open(file, { now: () => T0 });
    expect(complete(reopened, pairCode).scope).toBe('tools_safe');
  });

  test('a wrong or malformed code is invalid_code', () => {
    const { registry, events } = openRegistry();
    const { pairCode } = registry.startPairing();
    const wrong = pairCode.endsWith('Z')
      ? pairCode.slice(0, -1) + 'Y'
      : pairCode.slice(0, -1) + 'Z';
    expect(codeOf(() => complete(registry, wrong))).toBe('invalid_code');
    expect(codeOf(() => complete(registry, 'VC-!!!!-!!!!'))).toBe('invalid_code');
    expect(
      codeOf(() =>
        registry.completePairing({ pairCode: 42, device: DEVICE, pubKey: PUBKEY, address: 'a' }),
      ),
    ).toBe('invalid_code');
    expect(events.filter((e) => e.type === 'pair_failed').map((e) => e.type)).toHaveLength(3);
    // Nothing consumed the real code.
    expect(complete(registry, pairCode, 'b').scope).toBe('tools_safe');
  });

  test('bad metadata is invalid_request, never counted, and leaves the code alone', () => {
    const { registry } = openRegistry();
    const { pairCode } = registry.startPairing();
    const bad: Array<[unknown, unknown]> = [
      [null, PUBKEY],
      [{ ...DEVICE, name: '' }, PUBKEY],
      [{ ...DEVICE, name: 'x'.repeat(65) }, PUBKEY],
      [{ ...DEVICE, name: 'evil\nlog line' }, PUBKEY],
      [{ ...DEVICE, os: 'w'.repeat(33) }, PUBKEY],
      [{ ...DEVICE, bridgeVersion: 42 }, PUBKEY],
      [DEVICE, 'not base64!'],
      [DEVICE, 'A'.repeat(2000)],
      [DEVICE, undefined],
    ];
    for (const [device, pubKey] of bad) {
      expect(
        codeOf(() => registry.completePairing({ pairCode, device, pubKey, address: 'a', now: T0 })),
      ).toBe('invalid_request');
    }
    // More than five bad requests from one address, and it is not locked out.
    expect(complete(registry, pairCode, 'a').scope).toBe('tools_safe');
  });

  test('an auditor that throws does not lose an issued token', () => {
    const { registry } = openRegistry({
      onEvent: () => {
        throw new Error('audit down');
      },
    });
    const { pairCode } = registry.startPairing();
    const { wsToken } = complete(registry, pairCode);
    expect(registry.verifyDeviceToken(wsToken).ok).toBe(true);
  });
});

describe('lockout', () => {
  test('five failures lock one address out for ten minutes, unchecked; others are not', () => {
    const { registry, events } = openRegistry();
    const { pairCode } = registry.startPairing({ now: T0 });
    for (let i = 0; i < 5; i++) {
      expect(codeOf(() => complete(registry, 'VC-0000-0000', 'attacker', at(i * 1000)))).toBe(
        'invalid_code',
      );
    }
    // Locked out: even the right code is not looked at (and so not spent).
    let error: DeviceRegistryError | undefined;
    try {
      complete(registry, pairCode, 'attacker', at(5000));
    } catch (err) {
      error = err as DeviceRegistryError;
    }
    expect(error?.code).toBe('locked_out');
    // The first failure (at 0) ages out just after 10 minutes.
    expect(error?.retryAfterMs).toBe(10 * MINUTE_MS - 5000 + 1);
    expect(error?.message).toMatch(/try again in \d+ s/);
    expect(events.at(-1)).toEqual({
      type: 'pair_failed',
      reason: 'locked_out',
      address: 'attacker',
      lockout: 'address',
    });

    // Another address still pairs with the untouched code.
    expect(complete(registry, pairCode, 'owner', at(6000)).scope).toBe('tools_safe');
  });

  test('the address lockout lifts once its failures are older than the window', () => {
    const { registry } = openRegistry();
    for (let i = 0; i < 5; i++) {
      codeOf(() => complete(registry, 'VC-0000-0000', 'a', at(0)));
    }
    // Attempts while locked out do not extend it.
    for (let i = 1; i <= 9; i++) {
      expect(codeOf(() => complete(registry, 'VC-0000-0000', 'a', at(i * MINUTE_MS)))).toBe(
        'locked_out',
      );
    }
    expect(codeOf(() => complete(registry, 'VC-0000-0000', 'a', at(10 * MINUTE_MS)))).toBe(
      'locked_out',
    );
    const later = at(10 * MINUTE_MS + 1);
    const { pairCode } = registry.startPairing({ now: later });
    expect(complete(registry, pairCode, 'a', later).scope).toBe('tools_safe');
  });

  test('twenty failures across addresses lock everyone out, then lift', () => {
    const { registry, events } = openRegistry();
    for (let i = 0; i < 20; i++) {
      expect(codeOf(() => complete(registry, 'VC-0000-0000', `10.0.0.${i}`, at(i)))).toBe(
        'invalid_code',
      );
    }
    const { pairCode } = registry.startPairing({ now: at(100) });
    expect(codeOf(() => complete(registry, pairCode, 'owner', at(200)))).toBe('locked_out');
    expect(events.at(-1)).toMatchObject({ reason: 'locked_out', lockout: 'global' });

    // The oldest failure (at 0) ages out first: one more checked attempt, then locked again.
    const afterOldest = at(10 * MINUTE_MS + 1);
    expect(codeOf(() => complete(registry, 'VC-0000-0000', 'x', afterOldest))).toBe('invalid_code');
    expect(codeOf(() => complete(registry, pairCode, 'owner', afterOldest))).toBe('locked_out');

    const afterAll = at(10 * MINUTE_MS + 100);
    const fresh = registry.startPairing({ now: afterAll });
    expect(complete(registry, fresh.pairCode, 'owner', afterAll).scope).toBe('tools_safe');
  });

  test('limits and window are options', () => {
    const { registry } = openRegistry({ maxPerAddress: 2, maxGlobal: 3, windowMs: 1000 });
    codeOf(() => complete(registry, 'VC-0000-0000', 'a', at(0)));
    codeOf(() => complete(registry, 'VC-0000-0000', 'a', at(0)));
    expect(codeOf(() => complete(registry, 'VC-0000-0000', 'a', at(0)))).toBe('locked_out');
    expect(codeOf(() => complete(registry, 'VC-0000-0000', 'b', at(0)))).toBe('invalid_code');
    expect(codeOf(() => complete(registry, 'VC-0000-0000', 'c', at(0)))).toBe('locked_out');
    expect(codeOf(() => complete(registry, 'VC-0000-0000', 'c', at(1001)))).toBe('invalid_code');
    expect(() => openRegistry({ maxGlobal: 0 })).toThrow(RangeError);
  });
});

describe('at rest', () => {
  test('the file is 0600 and holds no code, no token, only hashes', () => {
    const { registry, file, events } = openRegistry();
    const first = registry.startPairing();
    const { wsToken, bridgeId } = complete(registry, first.pairCode);
    const pending = registry.startPairing();
    const rotated = registry.rotate(bridgeId).wsToken;

    expect(statSync(file).mode & 0o777).toBe(0o600);
    const text = readFileSync(file, 'utf8');
    const secrets = [first.pairCode, pending.pairCode, wsToken, rotated];
    for (const secret of secrets) {
      expect(text).not.toContain(secret);
      expect(text).not.toContain(secret.replace(/^VC-|-/g, '')); // a code's body
      expect(text).not.toContain(secret.slice(DEVICE_TOKEN_PREFIX.length)); // a token's body
      expect(JSON.stringify(events)).not.toContain(secret.slice(3));
    }
    expect(text).toContain(hashDeviceToken(rotated));
    // The events carry no hash either: neither of a token nor a plain SHA-256 of a code.
    expect(JSON.stringify(events)).not.toContain(hashDeviceToken(rotated));
    expect(JSON.stringify(events)).not.toContain(hashDeviceToken(wsToken));
  });

  test('a corrupt file is refused by name', () => {
    const file = deviceRegistryPath(dir);
    writeFileSync(file, JSON.stringify({ version: 1, codes: [], devices: [] }));
    expect(() => DeviceRegistry.open(file)).toThrow(file);
    writeFileSync(
      file,
      JSON.stringify({ version: 1, code_salt: 'ab'.repeat(32), codes: [], devices: [{}] }),
    );
    expect(() => DeviceRegistry.open(file)).toThrow(/devices\[0\]/);
  });
});

describe('devices', () => {
  function paired(options: DeviceRegistryOptions = {}) {
    const opened = openRegistry(options);
    const { pairCode } = opened.registry.startPairing();
    return { ...opened, ...complete(opened.registry, pairCode) };
  }

  test('revocation is instant, idempotent and survives reopening', () => {
    const { registry, file, events, bridgeId, wsToken } = paired();
    const revoked = registry.revoke(bridgeId, { now: at(MINUTE_MS) });
    expect(revoked.revokedAt).toBe(at(MINUTE_MS).toISOString());
    expect(registry.verifyDeviceToken(wsToken)).toEqual({ ok: false, reason: 'revoked', bridgeId });
    expect(events.at(-1)).toEqual({ type: 'device_revoked', bridgeId });

    // Again: the same record, no new event, the first time kept.
    const count = events.length;
    expect(registry.revoke(bridgeId, { now: at(2 * MINUTE_MS) }).revokedAt).toBe(
      at(MINUTE_MS).toISOString(),
    );
    expect(events).toHaveLength(count);

    const reopened = DeviceRegistry.open(file);
    expect(reopened.verifyDeviceToken(wsToken)).toEqual({ ok: false, reason: 'revoked', bridgeId });
    expect(reopened.list()[0]?.revokedAt).toBe(at(MINUTE_MS).toISOString());
    // Revoked for good: no new token, no new scope.
    expect(codeOf(() => reopened.rotate(bridgeId))).toBe('revoked');
    expect(codeOf(() => reopened.setScope(bridgeId, 'full'))).toBe('revoked');
  });

  test('rotation refuses the old token at once, and after reopening', () => {
    const { registry, file, events, bridgeId, wsToken } = paired();
    const next = registry.rotate(bridgeId, { now: at(MINUTE_MS) });
    expect(next.bridgeId).toBe(bridgeId);
    expect(next.wsToken).not.toBe(wsToken);
    expect(registry.verifyDeviceToken(wsToken)).toEqual({ ok: false, reason: 'unknown' });
    expect(registry.verifyDeviceToken(next.wsToken)).toMatchObject({
      ok: true,
      device: { bridgeId, rotatedAt: at(MINUTE_MS).toISOString() },
    });
    expect(events.at(-1)).toEqual({ type: 'device_rotated', bridgeId });

    const reopened = DeviceRegistry.open(file);
    expect(reopened.verifyDeviceToken(wsToken).ok).toBe(false);
    expect(reopened.verifyDeviceToken(next.wsToken).ok).toBe(true);
  });

  test('setScope changes the scope the token verifies with', () => {
    const { registry, events, bridgeId, wsToken } = paired();
    expect(registry.setScope(bridgeId, 'full').scope).toBe('full');
    expect(registry.verifyDeviceToken(wsToken)).toMatchObject({ device: { scope: 'full' } });
    expect(events.at(-1)).toEqual({
      type: 'device_scope_changed',
      bridgeId,
      from: 'tools_safe',
      to: 'full',
    });
    expect(codeOf(() => registry.setScope(bridgeId, 'root' as never))).toBe('invalid_request');
  });

  test('unknown devices and tokens', () => {
    const { registry } = paired();
    expect(codeOf(() => registry.revoke('br_0000000000000000'))).toBe('not_found');
    expect(codeOf(() => registry.rotate('nope'))).toBe('invalid_request');
    for (const token of [
      '',
      'acdv_x',
      `${DEVICE_TOKEN_PREFIX}${'A'.repeat(43)}`,
      'x'.repeat(10_000),
      7,
    ]) {
      expect(registry.verifyDeviceToken(token)).toEqual({ ok: false, reason: 'unknown' });
    }
  });
});

describe('device scopes', () => {
  const SHELL_FS_ADMIN: DeviceOperationClass[] = ['fs_destructive', 'shell', 'admin'];

  test('each scope allows exactly its operations', () => {
    expect(operationsAllowed('chat_only')).toEqual([
      'status',
      'health',
      'chatCompletions',
      'chat.send',
    ]);
    expect(operationsAllowed('tools_safe')).toEqual([
      'status',
      'health',
      'chatCompletions',
      'chat.send',
      'agent.run',
      'agent.wait',
      'workspace.status',
      'workspace.semantic_search',
      'advisor.explain_function',
      'fs.read',
      'fs.list',
    ]);
    expect(operationsAllowed('full')).toEqual(Object.keys(DEVICE_OPERATIONS));
  });

  test('tools_safe refuses destructive filesystem, shell and admin operations', () => {
    for (const [op, row] of Object.entries(DEVICE_OPERATIONS)) {
      const blocked = SHELL_FS_ADMIN.includes(row.class);
      expect([op, scopeAllows('tools_safe', op)]).toEqual([op, !blocked]);
      expect([op, scopeAllows('chat_only', op)]).toEqual([
        op,
        row.class === 'chat' || row.class === 'read',
      ]);
    }
    for (const op of ['shell.exec', 'fs.delete', 'fs.write', 'fs.move', 'cron.add', 'start']) {
      expect(scopeAllows('tools_safe', op)).toBe(false);
      expect(scopeAllows('full', op)).toBe(true);
    }
  });

  test('scopes nest: chat_only ⊂ tools_safe ⊂ full', () => {
    for (const op of Object.keys(DEVICE_OPERATIONS)) {
      if (scopeAllows('chat_only', op)) expect(scopeAllows('tools_safe', op)).toBe(true);
      if (scopeAllows('tools_safe', op)) expect(scopeAllows('full', op)).toBe(true);
    }
  });

  test('docs/devices.md shows the table as it is, row for row', () => {
    const doc = readFileSync(path.join(__dirname, '../../docs/devices.md'), 'utf8');
    const table = doc
      .split('<!-- scopes-table:start -->')[1]!
      .split('<!-- scopes-table:end -->')[0]!;
    const rows = table
      .split('\n')
      .filter((l) => l.startsWith('| `'))
      .map((l) =>
        l
          .split('|')
          .slice(1, -1)
          .map((c) => c.trim().replace(/`/g, '')),
      );
    expect(rows).toEqual(
      Object.entries(DEVICE_OPERATIONS).map(([op, row]) => [
        op,
        row.class,
        ...DEVICE_SCOPES.map((scope) => (scopeAllows(scope, op) ? 'yes' : '—')),
      ]),
    );
    for (const op of NEVER_FROM_DEVICES) expect(doc).toContain(`\`${op}\``);
  });

  test('no scope reaches device management, keys, approvals or an unlisted operation', () => {
    for (const scope of DEVICE_SCOPES) {
      for (const op of [...NEVER_FROM_DEVICES, 'toString', '__proto__', 'constructor', 'nope']) {
        expect([scope, op, scopeAllows(scope, op)]).toEqual([scope, op, false]);
      }
    }
    expect(scopeAllows('root', 'status')).toBe(false);
    expect(scopeAllows('__proto__', 'status')).toBe(false);
  });
});
