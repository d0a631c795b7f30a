/**
 * Several bridges on one production-shaped Temporal cluster (the Temporal server built from Go
 * modules, on PostgreSQL: scripts/temporal-cluster.sh), with real Docker: bridge A and bridge B
 * are two processes with their own host ids, sockets, state and keystores, as on two machines.
 * What one bridge started, the other lists and stops; a bridge killed with -9 loses its runs
 * after its grace and reaps them when it returns; a host given up with `hosts.reap` lets its
 * runs finish; the Temporal server killed with -9 is ridden out and every TTL still fires; and
 * one budget holds for both.
 */
import { mkdtempSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { containerWorkflowId } from '../../workflows/definitions';
import { removeDir, spawnBridge, type BridgeProcess } from '../support/bridge-process';
import { startCluster, type Cluster } from '../support/cluster';
import {
  auditEntries,
  removeTestContainers,
  rpc,
  runStatus,
  sleep,
  waitFor,
} from '../support/containers';
import { docker, ensureAgentImage, ensureDocker } from '../support/docker';

jest.setTimeout(240_000);

const MASTER_KEY = 'd4'.repeat(32);
const GRACE_S = 8;
const KEY_ID = 'hosts-key';
/** One budget for the deployment: $0.30 a report against $1 a day (the last test spends it). */
const MODELS = { 'test-model': { input_per_1k_usd: 0.01, output_per_1k_usd: 0.02 } };
const USAGE = { model: 'test-model', input_tokens: 10_000, output_tokens: 10_000 };

interface Host {
  id: string;
  dir: string;
  env: NodeJS.ProcessEnv;
  bridge: BridgeProcess;
}

let cluster: Cluster;
let a: Host;
let b: Host;
const names = new Set<string>();
const secretsDirs: string[] = [];

async function startHost(id: string, env: NodeJS.ProcessEnv = {}): Promise<Host> {
  const dir = mkdtempSync(path.join('/tmp', `armorclaw-host-${id}-`));
  const secretsDir = mkdtempSync(path.join('/dev/shm', `armorclaw-host-${id}-secrets-`));
  secretsDirs.push(secretsDir);
  const hostEnv = {
    TEMPORAL_ADDRESS: cluster.address,
    ARMORCLAW_HOST_ID: id,
    ARMORCLAW_MASTER_KEY: MASTER_KEY,
    ARMORCLAW_SECRETS_DIR: secretsDir,
    ARMORCLAW_HOST_GRACE: `${GRACE_S}s`,
    ARMORCLAW_HEALTH_CHECK_INTERVAL: '2s',
    ARMORCLAW_BUDGET_DAILY_LIMIT_USD: '1',
    ARMORCLAW_BUDGET_MODELS: JSON.stringify(MODELS),
    ...env,
  };
  const bridge = await spawnBridge({ dir, env: hostEnv });
  const host = { id, dir, env: hostEnv, bridge };
  // Each bridge has its own keystore: the operator adds the provider key to each.
  ok(
    await call(host, 'store_key', {
      id: KEY_ID,
      provider: 'openai',
      token: `sk-${randomBytes(16).toString('hex')}`,
    }),
  );
  return host;
}

/** kill -9 of a host's bridge; its containers keep running, as when a machine's bridge dies. */
async function kill(host: Host): Promise<void> {
  await host.bridge.stop('SIGKILL');
}

async function restart(host: Host): Promise<void> {
  host.bridge = await spawnBridge({ dir: host.dir, env: host.env });
}

const call = (host: Host, method: string, params?: unknown) =>
  rpc(host.bridge.socketPath, method, params, 90_000);

function ok(answer: any): any {
  if (answer.error) throw new Error(`RPC error: ${JSON.stringify(answer.error)}`);
  return answer.result;
}

async function startRun(host: Host, ttl = '10m'): Promise<{ name: string; id: string }> {
  const started = ok(await call(host, 'start', { key_id: KEY_ID, ttl }));
  names.add(started.container_name);
  return { name: started.container_name, id: started.container_id };
}

/**
 * Waits until `check` passes: the cluster's visibility store (lists) follows the workflows a
 * moment later.
 */
const settles = (what: string, check: () => Promise<void>) =>
  waitFor(what, async () => {
    await check();
    return true;
  });

// Each test starts with both bridges up, whatever the one before left.
beforeEach(async () => {
  for (const h of [a, b]) {
    if (h.bridge.child.exitCode !== null || h.bridge.child.signalCode !== null) await restart(h);
  }
});

const containerExists = async (name: string) =>
  (await docker(['inspect', '--type', 'container', name])).code === 0;

const status = (name: string) => runStatus(cluster.client, name);

beforeAll(async () => {
  await ensureDocker();
  await ensureAgentImage();
  cluster = await startCluster();
  a = await startHost(`a-${randomBytes(3).toString('hex')}`);
  b = await startHost(`b-${randomBytes(3).toString('hex')}`);
}, 240_000);

afterAll(async () => {
  for (const h of [a, b]) await h?.bridge.stop('SIGKILL');
  await removeTestContainers(
    names,
    [a, b].filter(Boolean).map((h) => h.dir),
  );
  await cluster?.stop();
  for (const d of [...secretsDirs, ...[a, b].filter(Boolean).map((h) => h.dir)]) removeDir(d);
});

test('a run started through A is listed, inspected and stopped through B, and B knows both hosts', async () => {
  const run = await startRun(a);
  await settles('B to list the run as Active', async () => {
    const listed = ok(await call(b, 'containers.list', {}));
    expect(listed.runs).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ container_name: run.name, host_id: a.id, state: 'Active' }),
      ]),
    );
  });
  expect(ok(await call(b, 'containers.status', { container_id: run.name }))).toMatchObject({
    state: 'Active',
    container_id: run.id,
  });
  await settles('B to list both hosts, A with its run', async () => {
    const hosts = ok(await call(b, 'hosts.list'));
    expect(hosts.this_host).toBe(b.id);
    expect(hosts.hosts).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ host_id: a.id, alive: true, runs: 1 }),
        expect.objectContaining({ host_id: b.id, alive: true }),
      ]),
    );
  });
  // By Docker id (a visibility query on the cluster's PostgreSQL store), through the other bridge.
  expect(ok(await call(b, 'stop', { container_id: run.id }))).toMatchObject({
    status: 'stopped',
    container_name: run.name,
  });
  expect(await containerExists(run.name)).toBe(false);
  expect(await status(run.name)).toMatchObject({ state: 'Ended', cleanup_done: true });

  // The same at once: the run's id reaches PostgreSQL's visibility tables a moment after `start`
  // answered on A, and B's `stop` must wait for it rather than say "not found".
  const next = await startRun(a);
  expect(ok(await call(b, 'stop', { container_id: next.id }))).toMatchObject({
    status: 'stopped',
    container_name: next.name,
  });
  expect(await containerExists(next.name)).toBe(false);
});

test('kill -9 of A: B keeps serving, A’s run is lost after the grace, and reaped when A returns', async () => {
  const run = await startRun(a);
  await kill(a);
  const killedAt = Date.now();
  expect(ok(await call(b, 'status'))).toBeDefined();

  const lost = await waitFor(
    'the run of the dead host to be marked lost',
    async () => {
      const s = await status(run.name);
      return s.end_reason === 'host_lost' ? s : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 250 },
  );
  const lostAfterMs = Date.now() - killedAt;
  expect(lostAfterMs).toBeGreaterThanOrEqual((GRACE_S - 1) * 1000);
  expect(lost).toMatchObject({ state: 'Failed', cleanup_done: false });
  expect(lost.end_detail).toContain(`host ${a.id} did not come back within ${GRACE_S}s`);
  // Marked lost, not forgotten: its container is still there, waiting for its host.
  expect(await containerExists(run.name)).toBe(true);
  await settles('B to list the run as Failed, waiting for its host', async () => {
    const listed = ok(await call(b, 'containers.list', {}));
    expect(listed.runs).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ container_name: run.name, state: 'Failed' }),
      ]),
    );
    const hosts = ok(await call(b, 'hosts.list'));
    expect(hosts.hosts).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ host_id: a.id, runs: 0, awaiting_cleanup: 1 }),
      ]),
    );
  });
  // `stop` through B answers within the grace: ended, the teardown pending on A's return.
  const stopAskedAt = Date.now();
  expect(ok(await call(b, 'stop', { container_id: run.name }))).toMatchObject({
    status: 'stopped',
    container_name: run.name,
    cleanup: 'pending',
  });
  expect(Date.now() - stopAskedAt).toBeLessThan((GRACE_S + 5) * 1000);
  // A host that polled a moment ago is not given up without force.
  const refused = await call(b, 'hosts.reap', { host_id: a.id });
  expect(refused.error).toMatchObject({ code: -32602 });
  expect(refused.error.message).toContain('looks alive');

  await restart(a);
  await waitFor(
    'the returned host to tear the lost run down',
    async () => (await status(run.name)).cleanup_done,
    { timeoutMs: 60_000, intervalMs: 250 },
  );
  expect(await containerExists(run.name)).toBe(false);
});

test('a host given up with hosts.reap: its runs finish at once; its bridge removes their containers when it starts again', async () => {
  const run = await startRun(a);
  await kill(a);
  const reaped = ok(await call(b, 'hosts.reap', { host_id: a.id, force: true }));
  expect(reaped).toEqual({ host_id: a.id, status: 'reaped', runs: [run.name] });
  const result = await cluster.client.workflow.getHandle(containerWorkflowId(run.name)).result();
  expect(result).toMatchObject({ state: 'Failed', end_reason: 'host_lost' });
  expect(await status(run.name)).toMatchObject({ cleanup_done: true });
  // The host is away: nobody could remove the container.
  expect(await containerExists(run.name)).toBe(true);
  expect(auditEntries(b.bridge.stateDir).map((e) => e.event_type)).toContain('host_reaped');
  await settles('B to list no open session on A', async () => {
    const hosts = ok(await call(b, 'hosts.list'));
    expect(hosts.hosts.find((h: any) => h.host_id === a.id)).toBeUndefined();
  });

  await restart(a);
  await waitFor(
    'the returned host to remove the reaped run’s container',
    async () => !(await containerExists(run.name)),
    { timeoutMs: 30_000, intervalMs: 250 },
  );
  expect(a.bridge.output()).toContain('removed containers of runs that had ended');
});

test('A back within its grace: its run goes on', async () => {
  const run = await startRun(a);
  await kill(a);
  await restart(a);
  // Several health checks after the return: still Active, same container.
  await sleep(5_000);
  expect(await status(run.name)).toMatchObject({ state: 'Active', container_id: run.id });
  expect(ok(await call(b, 'stop', { container_id: run.name }))).toMatchObject({
    status: 'stopped',
  });
  // A restarted bridge under load may take longer than the grace to tear down, and `stop` then
  // answers `cleanup: pending`: the container goes when A gets to it.
  await waitFor(
    'A to remove the stopped run’s container',
    async () => !(await containerExists(run.name)),
    {
      timeoutMs: 30_000,
      intervalMs: 250,
    },
  );
});

test('kill -9 of the Temporal server mid-run: both bridges ride it out and both TTLs fire', async () => {
  const runA = await startRun(a, '20s');
  const runB = await startRun(b, '20s');
  const oldPid = cluster.serverPid();
  await cluster.killServer();
  await sleep(5_000);
  // Both bridges still run and answer their sockets while Temporal is down.
  for (const h of [a, b]) {
    expect(h.bridge.child.exitCode).toBeNull();
    const health = await call(h, 'health');
    expect(health.result ?? health.error).toBeDefined();
  }
  await cluster.restartServer();
  expect(cluster.serverPid()).not.toBe(oldPid);
  for (const run of [runA, runB]) {
    await waitFor(
      `the TTL of ${run.name} to fire and its cleanup to finish`,
      async () => {
        const s = await status(run.name);
        return s.state === 'Expired' && s.cleanup_done;
      },
      { timeoutMs: 90_000, intervalMs: 500 },
    );
    expect(await containerExists(run.name)).toBe(false);
  }
  for (const h of [a, b]) expect(ok(await call(h, 'status'))).toBeDefined();
});

// Last: it spends the day's budget, after which no host may start anything.
test('one budget for every host: usage of a run on A counts on B, ends the run over the limit, and B refuses new starts', async () => {
  const started = ok(await call(a, 'start', { key_id: KEY_ID, ttl: '10m' }));
  names.add(started.container_name);
  // The agent's own socket reports its usage (as the provider proxy's meter does for calls).
  for (let i = 1; i <= 4; i++) {
    expect(ok(await rpc(started.endpoint, 'budget.report', USAGE))).toEqual({
      status: 'recorded',
      cost_usd: 0.3,
    });
    await settles(`report ${i} counted, read through B`, async () => {
      expect(ok(await call(b, 'budget.status')).day.reports).toBe(i);
    });
  }
  const ended = await waitFor(
    'the run on A to end over budget',
    async () => {
      const st = await status(started.container_name);
      return st.cleanup_done ? st : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 250 },
  );
  expect(ended).toMatchObject({ state: 'Ended', end_reason: 'budget_exceeded' });
  expect(ok(await call(b, 'budget.status'))).toMatchObject({ exceeded: true });
  const refused = await call(b, 'start', { key_id: KEY_ID });
  expect(refused.result).toBeUndefined();
  expect(refused.error?.code).toBe(-32006);
  expect(refused.error?.message).toMatch(/^Budget exceeded: \$1\.20 of \$1\.00 spent in /);
});
