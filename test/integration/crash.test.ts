/**
 * Durability: the bridge is killed with SIGKILL in the middle of a container run and started
 * again on the same state. The run's TTL, its secret cleanup and its teardown still happen, on
 * time, and nothing is orphaned (container, secrets file, socket, Temporal dev server).
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { containerStatusQuery, type ContainerRunStatus } from '../../workflows/definitions';
import { removeDir, spawnBridge, type BridgeProcess } from '../support/bridge-process';
import { AGENT_IMAGE, docker, ensureDocker } from '../support/docker';
import { freePort } from '../support/ports';
import { call } from '../support/socket-clients';

const MASTER_KEY = 'c3'.repeat(32);
const NO_ACK_IMAGE = 'armorclaw/agent:test-no-ack';

jest.setTimeout(180_000);

beforeAll(async () => {
  await ensureDocker();
  // An agent that never acknowledges its secrets, so only the deadline timer can remove them.
  const built = await docker(['build', '-q', '-t', NO_ACK_IMAGE, '-'], {
    input: `FROM ${AGENT_IMAGE}\nENV ARMORCLAW_AGENT_MODE=no-ack\n`,
    timeoutMs: 60_000,
  });
  if (built.code !== 0) throw new Error(`could not build ${NO_ACK_IMAGE}: ${built.stderr}`);
});

interface Setup {
  dir: string;
  secretsDir: string;
  env: NodeJS.ProcessEnv;
  temporalPort: number;
  uiPort: number;
}

async function setup(): Promise<Setup> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'armorclaw-crash-'));
  const secretsDir = mkdtempSync(path.join('/dev/shm', 'armorclaw-crash-secrets-'));
  return {
    dir,
    secretsDir,
    env: {
      ARMORCLAW_MASTER_KEY: MASTER_KEY,
      ARMORCLAW_SECRETS_DIR: secretsDir,
      ARMORCLAW_HEALTH_CHECK_INTERVAL: '5s',
    },
    temporalPort: await freePort(),
    uiPort: await freePort(),
  };
}

const bridgeFor = (s: Setup) =>
  spawnBridge({ dir: s.dir, env: s.env, temporalPort: s.temporalPort, uiPort: s.uiPort });

async function runStatus(s: Setup, containerName: string): Promise<ContainerRunStatus> {
  const connection = await Connection.connect({ address: `127.0.0.1:${s.temporalPort}` });
  try {
    return await new Client({ connection }).workflow
      .getHandle(`container-${containerName}`)
      .query(containerStatusQuery);
  } finally {
    await connection.close();
  }
}

const containerExists = async (name: string) =>
  (await docker(['inspect', '--type', 'container', name])).code === 0;

const devServerPid = (b: BridgeProcess) =>
  Number.parseInt(readFileSync(path.join(b.stateDir, 'temporal', 'dev-server.pid'), 'utf8'), 10);

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  timeoutMs: number,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v) return v as T;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function killHard(b: BridgeProcess): Promise<void> {
  const devPid = devServerPid(b);
  await b.stop('SIGKILL');
  // The embedded Temporal server dies with it (parent-death signal): nothing keeps the port.
  await waitFor('the dev server to die with the bridge', async () => !alive(devPid), 10_000);
}

describe('kill -9 of the bridge during a run', () => {
  test('a 20 s TTL still expires on time after a restart; nothing is orphaned', async () => {
    const s = await setup();
    let bridge = await bridgeFor(s);
    try {
      await call(bridge.socketPath, 'store_key', {
        id: 'crash-key',
        provider: 'openai',
        token: 'sk-crash-MARKER',
      });
      const startedAt = Date.now();
      const started = (await call(bridge.socketPath, 'start', { key_id: 'crash-key', ttl: '20s' }))
        .result;
      expect(started.status).toBe('running');
      const name: string = started.container_name;

      await new Promise((r) => setTimeout(r, 3_000));
      await killHard(bridge);
      // The container outlives the bridge; the run must not.
      expect(await containerExists(name)).toBe(true);

      bridge = await bridgeFor(s);
      const status = (await call(bridge.socketPath, 'status')).result;
      expect(status.container_ids).toContain(started.container_id);

      const expiredAt = await waitFor(
        'the run to expire',
        async () => ((await runStatus(s, name)).state === 'Expired' ? Date.now() : undefined),
        60_000,
      );
      const elapsedMs = expiredAt - startedAt;
      expect(elapsedMs).toBeGreaterThanOrEqual(19_500);
      expect(elapsedMs).toBeLessThan(30_000);

      await waitFor('teardown', async () => (await runStatus(s, name)).cleanup_done, 30_000);
      expect(await containerExists(name)).toBe(false);
      expect(readdirSync(s.secretsDir)).toEqual([]);
      expect(existsSync(path.join(path.dirname(bridge.socketPath), 'containers', name))).toBe(
        false,
      );
      expect(
        existsSync(path.join(path.dirname(bridge.socketPath), 'containers', `${name}.sock`)),
      ).toBe(false);
      expect((await call(bridge.socketPath, 'status')).result.container_ids).toEqual([]);
    } finally {
      await bridge.stop();
      removeDir(s.dir);
      removeDir(s.secretsDir);
    }
  });

  test('killed within the first 10 s: the secrets file is still removed by its deadline', async () => {
    const s = await setup();
    let bridge = await bridgeFor(s);
    try {
      await call(bridge.socketPath, 'store_key', {
        id: 'k',
        provider: 'anthropic',
        token: 'sk-ant-MARKER',
      });
      const startedAt = Date.now();
      const started = (
        await call(bridge.socketPath, 'start', { key_id: 'k', image: NO_ACK_IMAGE, ttl: '5m' })
      ).result;
      const name: string = started.container_name;
      expect(readdirSync(s.secretsDir)).toEqual([name]);

      await killHard(bridge);
      bridge = await bridgeFor(s);

      const removedAt = await waitFor(
        'the secrets file to be removed',
        async () => (readdirSync(s.secretsDir).length === 0 ? Date.now() : undefined),
        40_000,
      );
      // The deadline is 10 s after start; the restart may delay it, never skip it.
      expect(removedAt - startedAt).toBeGreaterThanOrEqual(9_000);
      // The run records the removal when the activity's result reaches it, just after.
      const st = await waitFor(
        'the run to record the removal',
        async () => {
          const status = await runStatus(s, name);
          return status.secrets_removed ? status : undefined;
        },
        10_000,
      );
      expect(st.secrets_removed).toBe(true);
      // (the reason and detail say what went wrong if it did)
      expect({ state: st.state, reason: st.end_reason, detail: st.end_detail }).toEqual({
        state: 'Active',
        reason: undefined,
        detail: undefined,
      });

      expect(
        (await call(bridge.socketPath, 'stop', { container_id: started.container_id })).result
          .status,
      ).toBe('stopped');
      expect(await containerExists(name)).toBe(false);
    } finally {
      await bridge.stop();
      removeDir(s.dir);
      removeDir(s.secretsDir);
    }
  });

  test('a container that dies while the bridge is down fails its run once the bridge is back', async () => {
    const s = await setup();
    let bridge = await bridgeFor(s);
    try {
      await call(bridge.socketPath, 'store_key', { id: 'k', provider: 'xai', token: 'xai-MARKER' });
      const started = (await call(bridge.socketPath, 'start', { key_id: 'k', ttl: '5m' })).result;
      const name: string = started.container_name;
      await killHard(bridge);
      await docker(['kill', name]);

      bridge = await bridgeFor(s);
      const run = await waitFor(
        'the run to fail',
        async () => {
          const st = await runStatus(s, name);
          return st.state === 'Failed' && st.cleanup_done ? st : undefined;
        },
        30_000,
      );
      expect(run.end_reason).toBe('container_exited');
      expect(run.exit_code).toBe(137);
      expect(await containerExists(name)).toBe(false);
    } finally {
      await bridge.stop();
      removeDir(s.dir);
      removeDir(s.secretsDir);
    }
  });
});
