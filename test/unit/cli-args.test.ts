// The CLI's argument handling and exit codes, run in-process against a fake bridge.
import { ExitCode, resolveSocketPath, splitCommand } from '../../cli/args';
import { runCli } from '../../cli/cli';
import type { CliContext } from '../../cli/command';
import { parseAnchor } from '../../cli/commands/audit';
import { holdsSecret } from '../../cli/commands/rpc';
import { BridgeUnreachableError, RpcCallError } from '../../cli/rpc-client';

interface Fake {
  ctx: CliContext;
  out: () => string;
  err: () => string;
  calls: Array<{ socket: string; timeoutMs: number; method: string; params: unknown }>;
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
    bridge: (socket, timeoutMs) => async (method, params) => {
      calls.push({ socket, timeoutMs, method, params });
      return answer(method, params);
    },
  };
  return { ctx, out: () => out, err: () => err, calls };
}

describe('splitCommand', () => {
  test.each([
    [['status'], 'status', []],
    [['--json', 'status'], 'status', ['--json']],
    [['--socket', '/s', 'list', '--all'], 'list', ['--all', '--socket', '/s']],
    [
      ['--socket=/s', '--timeout', '5', 'stop', 'x'],
      'stop',
      ['x', '--socket=/s', '--timeout', '5'],
    ],
    [[], undefined, []],
    [['--socket'], '--socket', []],
  ])('%j → %s %j', (argv, command, rest) => {
    expect(splitCommand(argv)).toEqual({ command, rest });
  });
});

test('the socket: --socket, else ARMORCLAW_SOCKET, else the bridge setting', () => {
  expect(resolveSocketPath('/flag.sock', { ARMORCLAW_SOCKET: '/env.sock' })).toBe('/flag.sock');
  expect(resolveSocketPath(undefined, { ARMORCLAW_SOCKET: '/env.sock' })).toBe('/env.sock');
  const fromConfig = resolveSocketPath(undefined, {
    ARMORCLAW_CONFIG: '',
    XDG_RUNTIME_DIR: '/run/user/1234',
    XDG_CONFIG_HOME: '/nonexistent',
  });
  expect(fromConfig).toBe(
    process.getuid?.() === 0
      ? '/run/armorclaw/bridge.sock'
      : '/run/user/1234/armorclaw/bridge.sock',
  );
  expect(() => resolveSocketPath('', {})).toThrow('--socket needs a path');
});

test('parseAnchor and holdsSecret', () => {
  const hash = 'ab'.repeat(32);
  expect(parseAnchor(`12:${hash}`)).toEqual({ seq: 12, hash });
  for (const bad of ['12', `0:${hash}`, `x:${hash}`, `1:${hash.toUpperCase()}`, `1:${hash}0`]) {
    expect(() => parseAnchor(bad)).toThrow('--anchor must be SEQ:HASH');
  }
  expect(holdsSecret({ id: 'k', token: 't' })).toBe(true);
  expect(holdsSecret([{ nested: { matrix_password: 'p' } }])).toBe(true);
  expect(holdsSecret({ api_key: 'x' })).toBe(true);
  expect(holdsSecret({ input_tokens: 5, key_id: 'k', limit: 1 })).toBe(false);
});

describe('commands against a fake bridge', () => {
  test('start maps its flags to the params; the socket and timeout reach the client', async () => {
    const f = fake(() => ({
      container_id: 'c'.repeat(64),
      container_name: 'armorclaw-x-1',
      status: 'running',
      endpoint: '/e.sock',
    }));
    const code = await runCli(
      [
        '--timeout',
        '7',
        'start',
        '--key-id',
        'k1',
        '--agent-type',
        'x',
        '--image',
        'img:v1',
        '--ttl',
        '30m',
        '--room-id',
        '!r:x',
        '--secrets-mode',
        'proxy',
        '--budget-usd',
        '0.5',
      ],
      f.ctx,
    );
    expect(code).toBe(0);
    expect(f.calls).toEqual([
      {
        socket: '/env/bridge.sock',
        timeoutMs: 7000,
        method: 'start',
        params: {
          key_id: 'k1',
          agent_type: 'x',
          image: 'img:v1',
          ttl: '30m',
          room_id: '!r:x',
          secrets_mode: 'proxy',
          budget_usd: 0.5,
        },
      },
    ]);
    expect(f.out()).toMatch(/^started\s+armorclaw-x-1\ncontainer\s+cccccccccccc\n/);
  });

  test('list asks for both lists; --json prints them together', async () => {
    const f = fake((method) =>
      method === 'containers.list'
        ? { count: 0, truncated: false, runs: [] }
        : { active_sessions: 0, sessions: [] },
    );
    expect(await runCli(['list', '--all', '--limit', '5', '--json', '--socket', '/s'], f.ctx)).toBe(
      0,
    );
    expect(f.calls.map((c) => [c.socket, c.method, c.params])).toEqual([
      ['/s', 'containers.list', { all: true, limit: 5 }],
      ['/s', 'webrtc.list', undefined],
    ]);
    expect(JSON.parse(f.out())).toEqual({
      containers: { count: 0, truncated: false, runs: [] },
      calls: { active_sessions: 0, sessions: [] },
    });
  });

  test('configs list, audit tail, show and rpc send what their flags say', async () => {
    const f = fake(() => ({ entries: [] }));
    expect(await runCli(['audit', 'tail', '-n', '3', '--session', 's1'], f.ctx)).toBe(0);
    expect(await runCli(['audit', 'tail'], f.ctx)).toBe(0);
    expect(await runCli(['audit', 'tail', '--type', 'container_ended'], f.ctx)).toBe(0);
    expect(await runCli(['show', '4f1c2a9be0d3', '--json'], f.ctx)).toBe(0);
    expect(await runCli(['rpc', 'budget.status'], f.ctx)).toBe(0);
    expect(await runCli(['rpc', 'webrtc.end', '{"session_id":"s"}'], f.ctx)).toBe(0);
    expect(f.calls.map((c) => [c.method, c.params])).toEqual([
      ['audit.tail', { limit: 3, session_id: 's1' }],
      ['audit.tail', { limit: 20 }],
      ['audit.tail', { limit: 20, event_type: 'container_ended' }],
      ['containers.status', { container_id: '4f1c2a9be0d3' }],
      ['budget.status', undefined],
      ['webrtc.end', { session_id: 's' }],
    ]);
  });

  test.each([
    ['health unhealthy → 5', ['health'], { status: 'unhealthy', checks: {} }, ExitCode.Unhealthy],
    ['health healthy → 0', ['health'], { status: 'healthy', checks: {} }, ExitCode.Ok],
    [
      'a broken chain → 4',
      ['audit', 'verify'],
      { ok: false, entries: 3, head: null, first_bad_seq: 2, reason: 'x' },
      ExitCode.AuditBroken,
    ],
    ['an intact chain → 0', ['audit', 'verify'], { ok: true, entries: 3, head: null }, ExitCode.Ok],
  ])('%s', async (_name, argv, result, code) => {
    expect(await runCli(argv, fake(() => result).ctx)).toBe(code);
  });

  test('a bridge error exits 1 with its message and code; --json also prints it on stdout', async () => {
    const f = fake(() => {
      throw new RpcCallError(-2, 'Container not found: x');
    });
    expect(await runCli(['stop', 'x'], f.ctx)).toBe(ExitCode.Error);
    expect(f.err()).toBe(
      'armorclaw: the bridge answered: Container not found: x (JSON-RPC code -2)\n',
    );
    expect(f.out()).toBe('');
    expect(await runCli(['stop', 'x', '--json'], f.ctx)).toBe(ExitCode.Error);
    expect(JSON.parse(f.out())).toEqual({ error: { code: -2, message: 'Container not found: x' } });
  });

  test('an unreachable bridge exits 3', async () => {
    const f = fake(() => {
      throw new BridgeUnreachableError('cannot reach the bridge: no socket at /s');
    });
    expect(await runCli(['status'], f.ctx)).toBe(ExitCode.Unreachable);
    expect(f.err()).toBe('armorclaw: cannot reach the bridge: no socket at /s\n');
  });

  test.each([
    [['status', 'extra'], /unexpected argument/],
    [['status', '--bogus'], /--bogus/],
    [['start'], /start needs --key-id/],
    [['start', '--key-id', 'k', '--budget-usd', 'lots'], /--budget-usd must be a number/],
    [['stop'], /missing CONTAINER/],
    [['stop', 'a', 'b'], /too many arguments/],
    [['show'], /missing CONTAINER/],
    [['show', 'a', 'b'], /too many arguments/],
    [['list', '--limit', '1001'], /--limit must be a whole number from 1 to 1000/],
    [['status', '--timeout', '0'], /--timeout must be/],
    [['configs'], /configs needs a subcommand/],
    [['configs', 'rm'], /unknown configs subcommand "rm"/],
    [['configs', 'attach'], /missing FILE/],
    [['audit', 'tail', '-n', 'x'], /-n must be/],
    [['audit'], /audit needs a subcommand/],
    [['matrix'], /matrix needs a subcommand/],
    [['matrix', 'login', '--homeserver', 'https://hs'], /not a login option/],
    [['rpc'], /missing METHOD/],
    [['rpc', 'm', '[1', '--json'], /PARAMS must be JSON/],
    [['rpc', 'm', '"scalar"'], /PARAMS must be a JSON object or array/],
    [['nope'], /unknown command "nope"/],
    [[], /missing command/],
  ])('usage error %j exits 2 and calls nothing', async (argv, message) => {
    const f = fake(() => ({}));
    expect(await runCli(argv, f.ctx)).toBe(ExitCode.Usage);
    expect(f.err()).toMatch(message);
    expect(f.err()).toMatch(/usage:/);
    expect(f.calls).toEqual([]);
  });

  test.each([
    [['matrix', 'login', '--username', 'u', '--password', 'hunter2']],
    [['matrix', 'login', '--password=hunter2']],
    [['rpc', 'matrix.login', '{"username":"u","password":"hunter2"}']],
    [['add-key', '--provider', 'openai', '--id', 'k', '--token', 'hunter2']],
  ])('a secret on argv is refused without echo: %j', async (argv) => {
    const f = fake(() => ({}));
    expect(await runCli(argv, f.ctx)).toBe(ExitCode.Usage);
    expect(f.out() + f.err()).not.toContain('hunter2');
    expect(f.calls).toEqual([]);
  });

  test('--help prints the usage and calls nothing', async () => {
    const f = fake(() => ({}));
    expect(await runCli(['stop', '--help'], f.ctx)).toBe(0);
    expect(f.out()).toMatch(/^usage: armorclaw stop CONTAINER/);
    expect(await runCli(['help', 'list'], f.ctx)).toBe(0);
    expect(f.out()).toMatch(/usage: armorclaw list/);
    expect(f.calls).toEqual([]);
  });
});
