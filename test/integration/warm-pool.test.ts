/**
 * The warm pool (containers.warm_pool) on the real parts: a bridge with Temporal's dev server and
 * Docker keeps hardened containers started ahead; `start` takes one (the same Docker id answers),
 * hands it the run's name, secrets file and socket, and the pool refills. Durability: a bridge
 * killed with SIGKILL, idle or in the middle of a start, leaves no container and no directory
 * that no run or pool owns once it is back; turned off, the pool is removed.
 */
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { removeDir, spawnBridge, type BridgeProcess } from '../support/bridge-process';
import {
  inspectContainer,
  removeTestContainers,
  rpc,
  runStatus,
  temporalClient,
  waitFor,
} from '../support/containers';
import { docker, ensureAgentImage, ensureDocker } from '../support/docker';
import { freePort } from '../support/ports';

jest.setTimeout(300_000);

interface Setup {
  dir: string;
  secretsDir: string;
  hostId: string;
  temporalPort: number;
  uiPort: number;
}

const setups: Setup[] = [];
const bridges: BridgeProcess[] = [];

beforeAll(async () => {
  await ensureDocker();
  await ensureAgentImage();
});

afterAll(async () => {
  for (const b of bridges) await b.stop('SIGKILL');
  for (const s of setups) {
    await removeTestContainers([], [s.dir, s.secretsDir]);
    removeDir(s.dir);
    removeDir(s.secretsDir);
  }
});

async function setup(): Promise<Setup> {
  const s = {
    dir: mkdtempSync(path.join(os.tmpdir(), 'armorclaw-pool-')),
    secretsDir: mkdtempSync(path.join('/dev/shm', 'armorclaw-pool-secrets-')),
    // The pool is per host: a host of its own keeps this test's pool apart from any other.
    hostId: `pool-test-${randomBytes(3).toString('hex')}`,
    temporalPort: await freePort(),
    uiPort: await freePort(),
  };
  setups.push(s);
  return s;
}

async function bridgeFor(s: Setup, env: NodeJS.ProcessEnv = {}): Promise<BridgeProcess> {
  const b = await spawnBridge({
    dir: s.dir,
    temporalPort: s.temporalPort,
    uiPort: s.uiPort,
    env: {
      ARMORCLAW_MASTER_KEY: 'b7'.repeat(32),
      ARMORCLAW_SECRETS_DIR: s.secretsDir,
      ARMORCLAW_HOST_ID: s.hostId,
      ARMORCLAW_WARM_POOL: JSON.stringify({ echo: 2 }),
      ...env,
    },
  });
  bridges.push(b);
  return b;
}

async function killHard(b: BridgeProcess): Promise<void> {
  const devPid = Number(readFileSync(path.join(b.stateDir, 'temporal', 'dev-server.pid'), 'utf8'));
  await b.stop('SIGKILL');
  await waitFor('the dev server to die with the bridge', () => !isAlive(devPid), {
    timeoutMs: 10_000,
  });
}

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** The host's managed containers: name → id, running or not. */
async function managedContainers(s: Setup): Promise<Map<string, string>> {
  const ls = await docker([
    'ps',
    '-a',
    '--filter',
    'label=armorclaw.managed=true',
    '--filter',
    `label=armorclaw.host=${s.hostId}`,
    '--format',
    '{{.Names}} {{.ID}}',
  ]);
  return new Map(
    ls.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split(' ') as [string, string]),
  );
}

const poolNames = (all: Map<string, string>) =>
  [...all.keys()].filter((n) => n.startsWith('armorclaw-pool-echo-')).sort();

async function health(b: BridgeProcess): Promise<any> {
  return (await rpc(b.socketPath, 'health')).result;
}

/** Waits until the bridge says its echo pool holds `n` ready containers; returns their names. */
async function poolReady(b: BridgeProcess, s: Setup, n: number): Promise<string[]> {
  await waitFor(
    `${n} ready pooled containers`,
    async () => (await health(b)).warm_pool?.echo?.ready === n,
    { timeoutMs: 60_000, intervalMs: 200 },
  );
  const names = poolNames(await managedContainers(s));
  expect(names).toHaveLength(n);
  return names;
}

async function storeKey(b: BridgeProcess): Promise<void> {
  const r = await rpc(b.socketPath, 'store_key', {
    id: 'pool-key',
    provider: 'openai',
    token: 'sk-pool-MARKER-0123456789',
  });
  expect(r.error).toBeUndefined();
}

/**
 * Waits until no run is Pending, then checks what is left on the host: each Active run's one
 * container (its id), the pool's two, nothing else, and no secrets directory of anything else.
 * Returns the Active runs.
 */
async function settledWithoutOrphans(b: BridgeProcess, s: Setup): Promise<any[]> {
  const runs: any[] = await waitFor(
    'the interrupted runs to settle',
    async () => {
      const list = (await rpc(b.socketPath, 'containers.list', { all: true })).result.runs;
      return list.length > 0 && list.every((r: any) => r.state !== 'Pending') && list;
    },
    { timeoutMs: 150_000, intervalMs: 500 },
  );
  const active = runs.filter((r) => r.state === 'Active');
  expect(active.length).toBeGreaterThan(0);
  await poolReady(b, s, 2);
  const all = await managedContainers(s);
  expect([...all.keys()].filter((n) => !n.startsWith('armorclaw-pool-')).sort()).toEqual(
    active.map((r) => r.container_name).sort(),
  );
  for (const r of active) expect(all.get(r.container_name)).toBe(r.container_id.slice(0, 12));
  expect(readdirSync(s.secretsDir).filter((d) => !all.has(d))).toEqual([]);
  return active;
}

describe('warm pool', () => {
  test('start takes a pooled container, hardened like any run; the pool refills', async () => {
    const s = await setup();
    const b = await bridgeFor(s);
    await storeKey(b);
    const pooled = await poolReady(b, s, 2);
    const status = (await rpc(b.socketPath, 'status')).result;
    expect(status.warm_pool.echo).toMatchObject({ size: 2, ready: 2, image: 'armorclaw/agent:v1' });
    expect((await health(b)).checks.warm_pool.status).toBe('ok');

    // Nothing of a run in a pooled container: no key, no run name; empty secrets directory.
    const before = await inspectContainer(pooled[0]!);
    expect(before.State.Running).toBe(true);
    expect(before.Config.Labels['armorclaw.pool']).toBe('true');
    expect(before.Config.Labels['armorclaw.key-id']).toBeUndefined();
    expect(before.Config.Env).toContain('ARMORCLAW_POOLED=1');
    expect(readdirSync(path.join(s.secretsDir, pooled[0]!))).toEqual([]);
    const pooledIds = new Set(
      await Promise.all(pooled.map(async (n) => (await inspectContainer(n)).Id as string)),
    );

    const started = (await rpc(b.socketPath, 'start', { key_id: 'pool-key', agent_type: 'echo' }))
      .result;
    expect(started.status).toBe('running');
    expect(pooledIds.has(started.container_id)).toBe(true);
    const info = await inspectContainer(started.container_name);
    expect(info.Id).toBe(started.container_id);

    // The same hardening as a container created for a run.
    const cold = (await rpc(b.socketPath, 'start', { key_id: 'pool-key', agent_type: 'openclaw' }))
      .result;
    expect(pooledIds.has(cold.container_id)).toBe(false);
    const coldInfo = await inspectContainer(cold.container_name);
    for (const field of [
      'ReadonlyRootfs',
      'CapDrop',
      'SecurityOpt',
      'PidsLimit',
      'Memory',
      'NetworkMode',
      'Tmpfs',
      'Init',
      'Privileged',
      'PortBindings',
    ]) {
      expect([field, info.HostConfig[field]]).toEqual([field, coldInfo.HostConfig[field]]);
    }
    expect(info.Config.User).toBe(coldInfo.Config.User);
    expect(info.Mounts.map((m: any) => m.Destination).sort()).toEqual(
      coldInfo.Mounts.map((m: any) => m.Destination).sort(),
    );

    // The agent waited for its secrets file, read it, reached its socket and acknowledged it.
    const client = await temporalClient(s.temporalPort);
    const acked = await waitFor(
      'the pooled agent to acknowledge its secrets',
      async () => {
        const st = await runStatus(client.client, started.container_name);
        return st.secrets_removed && st.notifications.some((n) => n.message === 'ready') && st;
      },
      { timeoutMs: 20_000, intervalMs: 200 },
    );
    expect(acked.state).toBe('Active');
    const echoed = await docker(['logs', started.container_name]);
    expect(echoed.stdout + echoed.stderr).toMatch(
      /pooled: waiting for a run[\s\S]*credential loaded/,
    );
    expect(echoed.stdout + echoed.stderr).not.toContain('MARKER');

    // Refilled with new containers; the taken one left the pool.
    const refilled = await poolReady(b, s, 2);
    expect(refilled).not.toContain(pooled.find((n) => !refilled.includes(n)));
    expect((await health(b)).warm_pool.echo.taken).toBe(1);

    for (const name of [started.container_name, cold.container_name]) {
      const stopped = await rpc(b.socketPath, 'stop', { container_id: name });
      expect(stopped.result.status).toBe('stopped');
    }
    const left = await managedContainers(s);
    expect([...left.keys()].sort()).toEqual(refilled);
    await client.close();
  });

  test('kill -9 idle and in the middle of a start: no orphans; turned off, the pool is removed', async () => {
    const s = await setup();
    let b = await bridgeFor(s);
    await storeKey(b);
    const first = await poolReady(b, s, 2);

    // Idle: the next bridge adopts the same containers.
    await killHard(b);
    b = await bridgeFor(s);
    expect(await poolReady(b, s, 2)).toEqual(first);

    // In the middle of a start: Docker frozen while the run takes a pooled container, so the
    // kill lands in the hand-over (the run's directories moved, the container not yet renamed).
    const dockerd = Number(execFileSync('pidof', ['-s', 'dockerd'], { encoding: 'utf8' }).trim());
    process.kill(dockerd, 'SIGSTOP');
    try {
      void rpc(b.socketPath, 'start', { key_id: 'pool-key', agent_type: 'echo' }).catch(
        () => undefined,
      );
      await waitFor(
        "a pooled container's directories to move to the run",
        () => readdirSync(s.secretsDir).some((d) => d.startsWith('armorclaw-echo-')),
        { timeoutMs: 20_000 },
      );
      expect(readdirSync(s.secretsDir).filter((d) => first.includes(d))).toHaveLength(1);
      await killHard(b);
    } finally {
      process.kill(dockerd, 'SIGCONT');
    }
    b = await bridgeFor(s);
    const [run] = await settledWithoutOrphans(b, s);

    // The agent in whichever container the run has got its secrets and its socket.
    const client = await temporalClient(s.temporalPort);
    await waitFor(
      'the agent to acknowledge its secrets',
      async () => (await runStatus(client.client, run.container_name)).secrets_removed,
      { timeoutMs: 20_000, intervalMs: 200 },
    );
    await client.close();

    // Off: the pool goes, the run stays.
    await b.stop();
    b = await bridgeFor(s, { ARMORCLAW_WARM_POOL: '{}' });
    expect((await rpc(b.socketPath, 'status')).result.warm_pool).toBeUndefined();
    expect([...(await managedContainers(s)).keys()]).toEqual([run.container_name]);
    const sockets = readdirSync(path.join(s.dir, 'run', 'containers')).filter(
      (d) => !d.endsWith('.sock'),
    );
    expect(sockets).toEqual([run.container_name]);
    await rpc(b.socketPath, 'stop', { container_id: run.container_name });
  });

  test('pooled containers older than warm_pool_max_age are replaced', async () => {
    const s = await setup();
    const b = await bridgeFor(s, { ARMORCLAW_WARM_POOL_MAX_AGE: '4s' });
    const first = await poolReady(b, s, 2);
    await waitFor(
      'both pooled containers to be replaced',
      async () => {
        const now = poolNames(await managedContainers(s));
        return now.length === 2 && now.every((n) => !first.includes(n));
      },
      { timeoutMs: 30_000, intervalMs: 250 },
    );
    expect(poolNames(await managedContainers(s))).toHaveLength(2);
  });
});
