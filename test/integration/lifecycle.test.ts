/**
 * Starting and stopping the real bridge: socket permissions, a stale socket, a second bridge,
 * graceful shutdown, the embedded Temporal server (Web UI, search attributes, persistence) and
 * an external one via TEMPORAL_ADDRESS.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { allSearchAttributes } from '../../workflows/search-attributes';
import {
  removeDir,
  spawnBridge,
  PROJECT_ROOT,
  type BridgeProcess,
} from '../support/bridge-process';
import { waitFor } from '../support/containers';
import { freePort } from '../support/ports';
import { call, PersistentClient } from '../support/socket-clients';

const processAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

const devServerPid = (b: BridgeProcess) =>
  Number.parseInt(
    require('node:fs').readFileSync(path.join(b.stateDir, 'temporal', 'dev-server.pid'), 'utf8'),
    10,
  );

describe('one bridge, start to stop', () => {
  let bridge: BridgeProcess;
  beforeAll(async () => {
    bridge = await spawnBridge();
  }, 120_000);
  afterAll(async () => {
    await bridge?.stop('SIGKILL');
    if (bridge) removeDir(bridge.dir);
  });

  test('prints where the socket and the Web UI are', async () => {
    // The banner comes once everything listens; the socket answers a little before.
    await waitFor(
      'the start banner',
      () => bridge.output().includes(' ready: socket ') || undefined,
    );
    expect(bridge.output()).toContain(`socket ${bridge.socketPath}`);
    expect(bridge.output()).toContain(`Temporal Web UI http://127.0.0.1:${bridge.uiPort}`);
  });

  test('socket mode 0660 in a 0750 directory; state directory 0700', () => {
    expect(statSync(bridge.socketPath).mode & 0o777).toBe(0o660);
    expect(statSync(path.dirname(bridge.socketPath)).mode & 0o777).toBe(0o750);
    expect(statSync(bridge.stateDir).mode & 0o777).toBe(0o700);
  });

  test('the Temporal Web UI answers', async () => {
    const res = await fetch(`http://127.0.0.1:${bridge.uiPort}/`);
    expect(res.status).toBe(200);
    expect(await res.text()).toMatch(/<html/i);
  });

  test('the embedded Temporal keeps its SQLite file in the state directory and has our search attributes', async () => {
    expect(existsSync(path.join(bridge.stateDir, 'temporal', 'temporal.db'))).toBe(true);
    const connection = await Connection.connect({ address: `127.0.0.1:${bridge.temporalPort}` });
    try {
      const listed = await connection.operatorService.listSearchAttributes({
        namespace: 'default',
      });
      for (const key of allSearchAttributes) {
        expect(Object.keys(listed.customAttributes ?? {})).toContain(key.name);
      }
    } finally {
      await connection.close();
    }
  });

  test('a second bridge on the same socket refuses to start with a clear message', async () => {
    const second = await spawnBridge({
      noWait: true,
      env: { ARMORCLAW_SOCKET: bridge.socketPath },
    });
    const code = await second.exited;
    expect(code).not.toBe(0);
    expect(second.output()).toMatch(/another bridge is already answering on/);
    removeDir(second.dir);
    // the first one still serves
    expect((await call(bridge.socketPath, 'status')).result.state).toBe('running');
  }, 120_000);

  test('SIGTERM: in-flight requests finish, the socket and the dev server go away, exit 0', async () => {
    const pid = devServerPid(bridge);
    expect(processAlive(pid)).toBe(true);
    const c = await PersistentClient.connect(bridge.socketPath);
    c.write('{"jsonrpc":"2.0","id":1,"method":"health"}');
    bridge.child.kill('SIGTERM');
    const [res] = await c.readLines(1);
    expect(res.result.status).toMatch(/healthy|unhealthy/);
    expect(await bridge.exited).toBe(0);
    expect(existsSync(bridge.socketPath)).toBe(false);
    expect(processAlive(pid)).toBe(false);
  }, 60_000);
});

describe('restarts', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'armorclaw-it-restart-'));
  afterAll(() => removeDir(dir));

  test('a stale socket file from a killed bridge is replaced; Temporal state survives; no dev server is orphaned', async () => {
    const first = await spawnBridge({ dir });
    // Leave a workflow in Temporal: nobody polls its queue, so it stays Running in the SQLite file.
    const connection = await Connection.connect({ address: `127.0.0.1:${first.temporalPort}` });
    const client = new Client({ connection });
    const workflowId = `persistence-probe-${Date.now()}`;
    await client.workflow.start('nonexistentWorkflow', {
      taskQueue: 'nobody-polls-this',
      workflowId,
    });
    await connection.close();
    const oldDevPid = devServerPid(first);

    await first.stop('SIGKILL');
    expect(existsSync(first.socketPath)).toBe(true); // stale: nobody answers it now
    // the kernel's parent-death signal stops the orphaned dev server
    for (let i = 0; i < 100 && processAlive(oldDevPid); i++)
      await new Promise((r) => setTimeout(r, 100));
    expect(processAlive(oldDevPid)).toBe(false);

    const second = await spawnBridge({
      dir,
      temporalPort: first.temporalPort,
      uiPort: first.uiPort,
    });
    try {
      expect((await call(second.socketPath, 'health')).result.status).toBe('healthy');
      const c2 = await Connection.connect({ address: `127.0.0.1:${second.temporalPort}` });
      const desc = await new Client({ connection: c2 }).workflow.getHandle(workflowId).describe();
      expect(desc.status.name).toBe('RUNNING');
      await c2.close();
    } finally {
      await second.stop();
    }
  }, 180_000);

  test('a non-socket file at the socket path is never deleted', async () => {
    const d = mkdtempSync(path.join(os.tmpdir(), 'armorclaw-it-file-'));
    mkdirSync(path.join(d, 'run'), { recursive: true });
    writeFileSync(path.join(d, 'run', 'bridge.sock'), 'precious');
    const b = await spawnBridge({ dir: d, noWait: true });
    expect(await b.exited).not.toBe(0);
    expect(b.output()).toMatch(/exists and is not a socket/);
    expect(require('node:fs').readFileSync(path.join(d, 'run', 'bridge.sock'), 'utf8')).toBe(
      'precious',
    );
    removeDir(d);
  }, 60_000);
});

describe('configuration errors', () => {
  test.each([
    [
      'ARMORCLAW_SOCKET_MAX_MESSAGE_BYTES',
      'lots',
      /socket\.max_message_bytes \(env ARMORCLAW_SOCKET_MAX_MESSAGE_BYTES\): expected an integer/,
    ],
    [
      'ARMORCLAW_MASTER_KEY',
      'too-short',
      /keystore\.master_key \(env ARMORCLAW_MASTER_KEY\): must be 32 bytes/,
    ],
    [
      'TEMPORAL_ADDRESS',
      'no-port',
      /temporal\.address \(env TEMPORAL_ADDRESS\): expected host:port/,
    ],
  ])('%s=%s stops the start with a message naming the key', async (name, value, message) => {
    const b = await spawnBridge({ noWait: true, env: { [name]: value } });
    expect(await b.exited).toBe(2);
    expect(b.output()).toMatch(message);
    expect(b.output()).not.toContain('too-short'); // a bad secret is not echoed
    removeDir(b.dir);
  });
});

describe('TEMPORAL_ADDRESS: an existing Temporal server', () => {
  test('the bridge connects there, registers missing search attributes, and starts no server of its own', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'armorclaw-it-ext-'));
    const port = await freePort();
    const server = spawn(
      path.join(PROJECT_ROOT, '.tools', 'venv', 'bin', 'temporal'),
      [
        'server',
        'start-dev',
        '--ip',
        '127.0.0.1',
        '--port',
        String(port),
        '--headless',
        '--log-level',
        'error',
      ],
      { stdio: 'ignore' },
    );
    try {
      await waitForPort(port);
      const b = await spawnBridge({
        dir,
        env: { TEMPORAL_ADDRESS: `127.0.0.1:${port}`, TEMPORAL_NAMESPACE: 'default' },
      });
      try {
        expect((await call(b.socketPath, 'health')).result.checks.temporal.status).toBe('ok');
        expect(existsSync(path.join(b.stateDir, 'temporal', 'dev-server.pid'))).toBe(false);
        const connection = await Connection.connect({ address: `127.0.0.1:${port}` });
        const listed = await connection.operatorService.listSearchAttributes({
          namespace: 'default',
        });
        expect(Object.keys(listed.customAttributes ?? {})).toEqual(
          expect.arrayContaining(allSearchAttributes.map((k) => k.name)),
        );
        await connection.close();
      } finally {
        await b.stop();
      }
      // The bridge left the external server running.
      expect(server.exitCode).toBeNull();
    } finally {
      server.kill('SIGTERM');
      removeDir(dir);
    }
  }, 120_000);

  test('health reports Temporal down as unhealthy while the socket keeps answering', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'armorclaw-it-down-'));
    const port = await freePort();
    const server = spawn(
      path.join(PROJECT_ROOT, '.tools', 'venv', 'bin', 'temporal'),
      [
        'server',
        'start-dev',
        '--ip',
        '127.0.0.1',
        '--port',
        String(port),
        '--headless',
        '--log-level',
        'error',
      ],
      { stdio: 'ignore' },
    );
    try {
      await waitForPort(port);
      const b = await spawnBridge({ dir, env: { TEMPORAL_ADDRESS: `127.0.0.1:${port}` } });
      try {
        server.kill('SIGKILL');
        await new Promise((r) => server.once('exit', r));
        const health = await call(b.socketPath, 'health');
        expect(health.result.status).toBe('unhealthy');
        expect(health.result.checks.temporal.status).toBe('error');
        expect(health.result.checks.keystore.status).toBe('ok');
        const status = await call(b.socketPath, 'status');
        expect(status.error.code).toBe(-32603);
        expect((await call(b.socketPath, 'list_configs')).result).toEqual([]);
      } finally {
        await b.stop();
      }
    } finally {
      server.kill('SIGKILL');
      removeDir(dir);
    }
  }, 120_000);
});

async function waitForPort(port: number, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`port ${port} did not open`);
}
