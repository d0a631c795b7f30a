// `armorclaw hosts …`, run in-process against a fake bridge.
import { ExitCode } from '../../cli/args';
import { runCli } from '../../cli/cli';
import type { CliContext } from '../../cli/command';

function fake(answer: (method: string, params: unknown) => unknown) {
  let out = '';
  const calls: Array<{ method: string; params: unknown }> = [];
  const ctx: CliContext = {
    write: (t) => void (out += t),
    warn: () => undefined,
    env: { ARMORCLAW_SOCKET: '/env/bridge.sock' },
    now: () => Date.parse('2026-12-04T12:00:00Z'),
    bridge: () => async (method, params) => {
      calls.push({ method, params });
      return answer(method, params);
    },
  };
  return { ctx, out: () => out, calls };
}

const LISTED = {
  this_host: 'b',
  hosts: [
    {
      host_id: 'a',
      alive: false,
      last_seen: '2026-12-04T11:57:00.000Z',
      runs: 0,
      awaiting_cleanup: 2,
      calls: 0,
    },
    { host_id: 'b', alive: true, last_seen: null, runs: 3, awaiting_cleanup: 0, calls: 1 },
  ],
};

test('hosts (and hosts list) show each host, this one marked, gone or alive, with its sessions', async () => {
  for (const argv of [['hosts'], ['hosts', 'list']]) {
    const f = fake(() => LISTED);
    expect(await runCli(argv, f.ctx)).toBe(ExitCode.Ok);
    expect(f.calls).toEqual([{ method: 'hosts.list', params: {} }]);
    const lines = f.out().trim().split('\n');
    expect(lines[0]).toMatch(/^HOST\s+STATE\s+LAST SEEN\s+RUNS\s+AWAITING CLEANUP\s+CALLS$/);
    expect(lines[1]).toMatch(/^a\s+gone\s+.+\s+0\s+2\s+0$/);
    expect(lines[2]).toMatch(/^b \(this\)\s+alive\s+-\s+3\s+0\s+1$/);
  }
});

test('hosts --json prints the answer as it is', async () => {
  const f = fake(() => LISTED);
  expect(await runCli(['hosts', '--json'], f.ctx)).toBe(ExitCode.Ok);
  expect(JSON.parse(f.out())).toEqual(LISTED);
});

test('hosts reap HOST [--force] asks hosts.reap and says which runs no longer wait', async () => {
  const f = fake(() => ({ host_id: 'a', status: 'reaped', runs: ['armorclaw-echo-1'] }));
  expect(await runCli(['hosts', 'reap', 'a'], f.ctx)).toBe(ExitCode.Ok);
  expect(await runCli(['hosts', 'reap', 'a', '--force'], f.ctx)).toBe(ExitCode.Ok);
  expect(f.calls).toEqual([
    { method: 'hosts.reap', params: { host_id: 'a' } },
    { method: 'hosts.reap', params: { host_id: 'a', force: true } },
  ]);
  expect(f.out()).toContain('gave host a up: 1 run(s) no longer wait for it (armorclaw-echo-1)');
});

test('hosts reap without a host, or an unknown subcommand, is a usage error', async () => {
  const f = fake(() => ({}));
  expect(await runCli(['hosts', 'reap'], f.ctx)).toBe(ExitCode.Usage);
  expect(await runCli(['hosts', 'forget', 'a'], f.ctx)).toBe(ExitCode.Usage);
  expect(f.calls).toEqual([]);
});
