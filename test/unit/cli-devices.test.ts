// `armorclaw pair` and `armorclaw devices …`, run in-process against a fake bridge.
import { ExitCode } from '../../cli/args';
import { runCli } from '../../cli/cli';
import type { CliContext } from '../../cli/command';
import { formatTime } from '../../cli/format';
import { renderQrText } from '../../cli/qr';

interface Fake {
  ctx: CliContext;
  out: () => string;
  err: () => string;
  calls: Array<{ socket: string; method: string; params: unknown }>;
}

/** A context whose bridge answers from `answer` and records every call. */
function fake(answer: (method: string, params: unknown) => unknown): Fake {
  let out = '';
  let err = '';
  const calls: Fake['calls'] = [];
  const ctx: CliContext = {
    write: (t) => void (out += t),
    warn: (t) => void (err += t),
    env: { ARMORCLAW_SOCKET: '/env/bridge.sock' },
    now: () => Date.parse('2026-02-11T12:00:00Z'),
    bridge: (socket) => async (method, params) => {
      calls.push({ socket, method, params });
      return answer(method, params);
    },
  };
  return { ctx, out: () => out, err: () => err, calls };
}

const ID = 'br_0123456789abcdef';
const PAIR_URL = 'http://127.0.0.1:8787/pair#VC-7M2K-91Q4';
const STARTED = {
  pairCode: 'VC-7M2K-91Q4',
  expiresAt: '2026-02-11T12:10:00.000Z',
  scope: 'tools_safe',
  pairUrl: PAIR_URL,
};
const DEVICE = {
  bridgeId: ID,
  name: 'Pixel 9',
  os: 'android',
  bridgeVersion: '1.2.0',
  pubKey: 'pk',
  scope: 'tools_safe',
  pairedAt: '2026-02-10T09:30:00.000Z',
  rotatedAt: null,
  revokedAt: null,
  connections: 2,
};
const QR_CHARS = /[█▀▄]/;

describe('pair', () => {
  test('prints the code, its expiry, the scope, the link and the QR code of the link', async () => {
    const f = fake(() => STARTED);
    expect(await runCli(['pair', '--scope', 'tools_safe'], f.ctx)).toBe(ExitCode.Ok);
    expect(f.calls).toEqual([
      { socket: '/env/bridge.sock', method: 'pair.start', params: { scope: 'tools_safe' } },
    ]);
    const out = f.out();
    expect(out).toMatch(/pairing code: +VC-7M2K-91Q4\n/);
    expect(out).toContain(`expires  ${formatTime(STARTED.expiresAt)} (in 10 minutes)\n`);
    expect(out).toMatch(/scope +tools_safe\n/);
    expect(out).toMatch(/link +http:\/\/127\.0\.0\.1:8787\/pair#VC-7M2K-91Q4\n/);
    expect(out).toContain(renderQrText(PAIR_URL));
    expect(out).toMatch(/shown only this once and works once/);
    expect(f.err()).toBe('');
  });

  test('without --scope no scope is sent (the bridge picks its default)', async () => {
    const f = fake(() => STARTED);
    expect(await runCli(['pair'], f.ctx)).toBe(ExitCode.Ok);
    expect(f.calls.map((c) => c.params)).toEqual([{}]);
  });

  test('--no-qr prints everything but the QR code', async () => {
    const f = fake(() => STARTED);
    expect(await runCli(['pair', '--no-qr'], f.ctx)).toBe(ExitCode.Ok);
    expect(f.out()).toContain('VC-7M2K-91Q4');
    expect(f.out()).toContain(PAIR_URL);
    expect(f.out()).not.toMatch(QR_CHARS);
  });

  test('without a pairing link there is no QR code, and the output says why', async () => {
    const { pairUrl: _omitted, ...noUrl } = STARTED;
    const f = fake(() => noUrl);
    expect(await runCli(['pair'], f.ctx)).toBe(ExitCode.Ok);
    expect(f.out()).toContain('VC-7M2K-91Q4');
    expect(f.out()).toMatch(/link +- \(the bridge serves no device endpoints/);
    expect(f.out()).not.toMatch(QR_CHARS);
  });

  test('--json prints the raw result only', async () => {
    const f = fake(() => STARTED);
    expect(await runCli(['pair', '--json', '--scope', 'full', '--socket', '/s'], f.ctx)).toBe(0);
    expect(f.calls).toEqual([{ socket: '/s', method: 'pair.start', params: { scope: 'full' } }]);
    expect(JSON.parse(f.out())).toEqual(STARTED);
    expect(f.out()).not.toMatch(QR_CHARS);
  });
});

describe('devices', () => {
  test('list renders one row per device with its state', async () => {
    const f = fake(() => ({
      devices: [
        DEVICE,
        { ...DEVICE, bridgeId: 'br_00000000000000ff', name: 'Laptop', os: 'linux', connections: 0 },
        {
          ...DEVICE,
          bridgeId: 'br_aaaaaaaaaaaaaaaa',
          name: 'Old phone',
          os: 'ios',
          scope: 'chat_only',
          revokedAt: '2026-02-11T08:00:00.000Z',
          connections: 0,
        },
      ],
    }));
    expect(await runCli(['devices', 'list'], f.ctx)).toBe(ExitCode.Ok);
    expect(f.calls).toEqual([{ socket: '/env/bridge.sock', method: 'devices.list', params: {} }]);
    const lines = f.out().split('\n');
    expect(lines[0]).toMatch(/^ID\s+NAME\s+OS\s+SCOPE\s+PAIRED\s+STATE$/);
    const paired = formatTime(DEVICE.pairedAt);
    expect(lines[1]).toMatch(
      new RegExp(`^${ID}\\s+Pixel 9\\s+android\\s+tools_safe\\s+${paired}\\s+connected\\(2\\)$`),
    );
    expect(lines[2]).toMatch(/^br_00000000000000ff\s+Laptop\s+linux\s+tools_safe\s+.*\s+offline$/);
    expect(lines[3]).toMatch(/^br_aaaaaaaaaaaaaaaa\s+Old phone\s+ios\s+chat_only\s+.*\s+revoked$/);
    expect(lines).toHaveLength(5);
  });

  test('list of none says so; --json prints the result', async () => {
    const f = fake(() => ({ devices: [] }));
    expect(await runCli(['devices', 'list'], f.ctx)).toBe(ExitCode.Ok);
    expect(f.out()).toMatch(/^no paired devices/);
    const g = fake(() => ({ devices: [DEVICE] }));
    expect(await runCli(['devices', 'list', '--json'], g.ctx)).toBe(ExitCode.Ok);
    expect(JSON.parse(g.out())).toEqual({ devices: [DEVICE] });
  });

  test('revoke prints what was revoked', async () => {
    const revokedAt = '2026-02-11T12:00:00.000Z';
    const f = fake(() => ({ device: { ...DEVICE, revokedAt, connections: 0 } }));
    expect(await runCli(['devices', 'revoke', ID], f.ctx)).toBe(ExitCode.Ok);
    expect(f.calls.map((c) => [c.method, c.params])).toEqual([
      ['devices.revoke', { bridgeId: ID }],
    ]);
    expect(f.out()).toBe(
      `revoked device ${ID} (Pixel 9, android) at ${formatTime(revokedAt)}: ` +
        'its token is refused from now on\n',
    );
  });

  test('rotate prints only the new token on stdout, the warning on stderr', async () => {
    const wsToken = 'acdv_' + 'x'.repeat(43);
    const f = fake(() => ({ bridgeId: ID, wsToken }));
    expect(await runCli(['devices', 'rotate', ID], f.ctx)).toBe(ExitCode.Ok);
    expect(f.calls.map((c) => [c.method, c.params])).toEqual([
      ['devices.rotate', { bridgeId: ID }],
    ]);
    expect(f.out()).toBe(`${wsToken}\n`);
    expect(f.err()).toMatch(/shown only this once/);
    expect(f.err()).not.toContain(wsToken);
  });

  test('scope sets the scope and prints the new one', async () => {
    const f = fake(() => ({ device: { ...DEVICE, scope: 'full' } }));
    expect(await runCli(['devices', 'scope', ID, 'full'], f.ctx)).toBe(ExitCode.Ok);
    expect(f.calls.map((c) => [c.method, c.params])).toEqual([
      ['devices.set_scope', { bridgeId: ID, scope: 'full' }],
    ]);
    expect(f.out()).toBe(`device ${ID} (Pixel 9) now has scope full\n`);
  });
});

test.each([
  [['pair', '--scope', 'admin'], /--scope must be one of chat_only, tools_safe, full/],
  [['pair', 'extra'], /unexpected argument/],
  [['pair', '--qr'], /--qr/],
  [['devices'], /devices needs list, revoke, rotate or scope/],
  [['devices', 'remove', ID], /unknown devices subcommand "remove"/],
  [['devices', 'list', 'extra'], /unexpected argument/],
  [['devices', 'revoke'], /missing ID/],
  [['devices', 'revoke', 'phone'], /ID must be a device id/],
  [['devices', 'rotate', ID, ID], /too many arguments/],
  [['devices', 'rotate', 'acdv_secret'], /ID must be a device id/],
  [['devices', 'scope', ID], /missing ID SCOPE/],
  [['devices', 'scope', ID, 'admin'], /SCOPE must be one of chat_only, tools_safe, full/],
])('usage error %j exits 2 and calls nothing', async (argv, message) => {
  const f = fake(() => ({}));
  expect(await runCli(argv, f.ctx)).toBe(ExitCode.Usage);
  expect(f.err()).toMatch(message);
  expect(f.err()).toMatch(/usage:/);
  expect(f.err()).not.toContain('acdv_secret');
  expect(f.out()).toBe('');
  expect(f.calls).toEqual([]);
});

test('--help prints the usage and calls nothing; both commands are in the top-level help', async () => {
  const f = fake(() => ({}));
  expect(await runCli(['pair', '--help'], f.ctx)).toBe(ExitCode.Ok);
  expect(f.out()).toMatch(/^usage:\n {2}armorclaw pair \[--scope/);
  expect(await runCli(['devices', 'rotate', '--help'], f.ctx)).toBe(ExitCode.Ok);
  expect(f.out()).toMatch(/armorclaw devices rotate ID/);
  expect(await runCli(['--help'], f.ctx)).toBe(ExitCode.Ok);
  expect(f.out()).toMatch(/\n {2}pair {8}pair \[--scope S\]/);
  expect(f.out()).toMatch(/\n {2}devices {5}devices list/);
  expect(f.calls).toEqual([]);
});
