/**
 * A bridge behind NAT reached through its relay: the real relay (`armorclaw relay serve`, a
 * child process, as on a public host) and a real bridge that dials out to it (`relay.link`);
 * the bridge's gateway listens on loopback only, so the relay's URL is the only way in. A device
 * pairs, connects and is answered by a real agent container through the relay; revocation
 * reaches the relay's socket within a second; the relay killed and restarted, the bridge
 * reconnects by itself; the bridge killed, devices see a clean close and reconnect after it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  PROJECT_ROOT,
  removeDir,
  spawnBridge,
  type BridgeProcess,
} from '../support/bridge-process';
import { removeTestContainers, waitFor } from '../support/containers';
import { completePairing, connectDevice, type DeviceConnection } from '../support/device-client';
import { ensureAgentImage, ensureDocker } from '../support/docker';
import { freePort } from '../support/ports';
import { ProviderStub } from '../support/provider-stub';
import { call } from '../support/socket-clients';

jest.setTimeout(300_000);

const CLI = path.join(PROJECT_ROOT, 'cli', 'armorclaw.js');
const KEY = `sk-relay-${randomBytes(12).toString('hex')}`;
const STUB_ANSWER = 'tok0 tok1 tok2 ';

let stub: ProviderStub;
let bridge: BridgeProcess;
let relay: ChildProcess | undefined;
let relayPort: number;
let relayUrl: string;
let credential: string;
const relayState = mkdtempSync(path.join(os.tmpdir(), 'armorclaw-relay-'));
let temporalPort: number;
let uiPort: number;
const dirs: string[] = [];
const open: DeviceConnection[] = [];

/** Runs the CLI to completion: exit code, stdout, stderr. */
function cli(
  args: string[],
  input = '',
): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: 'pipe' });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out, err }));
    child.stdin.end(input);
  });
}

/** `armorclaw relay serve` on loopback, until it answers /health. */
async function startRelay(): Promise<void> {
  relay = spawn(
    process.execPath,
    [
      CLI,
      'relay',
      'serve',
      '--host',
      '127.0.0.1',
      '--port',
      String(relayPort),
      '--state',
      relayState,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  relay.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  relay.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  await waitFor(
    'the relay to answer /health',
    async () => (await fetch(`${relayUrl}/health`).catch(() => undefined))?.ok || undefined,
    { timeoutMs: 20_000 },
  ).catch((err: Error) => {
    throw new Error(`${err.message}\n--- relay output ---\n${output}`);
  });
}

async function killRelay(): Promise<void> {
  const r = relay;
  relay = undefined;
  if (!r || r.exitCode !== null) return;
  const exited = new Promise((resolve) => r.once('exit', resolve));
  r.kill('SIGKILL');
  await exited;
}

async function relayHealth(): Promise<any> {
  return (await fetch(`${relayUrl}/health`)).json();
}

async function startBridge(dir?: string): Promise<void> {
  bridge = await spawnBridge({
    dir,
    env: {
      ARMORCLAW_MASTER_KEY: 'a9'.repeat(32),
      ARMORCLAW_PROXY_BASE_URLS: JSON.stringify({ openai: stub.url }),
      ARMORCLAW_SECRETS_MODE: 'proxy',
      ARMORCLAW_GATEWAY_AGENT_KEY_ID: 'relay',
      ARMORCLAW_GATEWAY_HOST: '127.0.0.1',
    },
    temporalPort,
    uiPort,
  });
  if (!dir) dirs.push(bridge.dir);
}

async function socket(method: string, params: unknown = {}): Promise<any> {
  const r = await call(bridge.socketPath, method, params);
  if (r.error) throw new Error(`${method}: ${JSON.stringify(r.error)}`);
  return r.result;
}

async function connect(token: string, via?: 'header' | 'message'): Promise<DeviceConnection> {
  const c = await connectDevice(relayUrl, token, via);
  open.push(c);
  return c;
}

beforeAll(async () => {
  await ensureDocker();
  await ensureAgentImage();
  stub = await ProviderStub.start({});
  temporalPort = await freePort();
  uiPort = await freePort();
  relayPort = await freePort();
  relayUrl = `http://127.0.0.1:${relayPort}`;
  const made = await cli(['relay', 'credential', '--state', relayState]);
  expect(made.code).toBe(0);
  credential = made.out.trim();
  expect(credential).toMatch(/^acrl_[A-Za-z0-9_-]{40,}$/);
  await startRelay();
  await startBridge();
  await socket('store_key', { id: 'relay', provider: 'openai', token: KEY });
  // The credential goes in on stdin, never on the command line.
  const linked = await cli(['relay', 'link', relayUrl, '--socket', bridge.socketPath], credential);
  expect(linked.code).toBe(0);
  await waitFor(
    'the bridge to link to the relay',
    async () => (await socket('relay.status')).connected || undefined,
  );
});

afterEach(() => {
  for (const c of open.splice(0)) c.close();
});

afterAll(async () => {
  await killRelay();
  await bridge?.stop('SIGKILL');
  await removeTestContainers([], dirs);
  for (const d of [...dirs, relayState]) removeDir(d);
  await stub?.close();
});

test('a device pairs and chats through the relay; the bridge listens on loopback only', async () => {
  expect(await relayHealth()).toMatchObject({ ok: true, bridge: 'connected' });
  const status = await socket('relay.status');
  expect(status).toMatchObject({ linked: true, connected: true });
  expect(JSON.stringify(status)).not.toContain(credential);

  const started = await socket('pair.start');
  // The pairing link points at the relay, where the phone can reach it.
  expect(started.pairUrl).toBe(`${relayUrl}/pair#${started.pairCode}`);
  const page = await fetch(`${relayUrl}/pair`);
  expect(page.status).toBe(200);
  expect(await page.text()).toContain('<html');

  const paired = await completePairing(relayUrl, started.pairCode);
  expect(paired.status).toBe(200);
  expect(paired.body.scope).toBe('tools_safe');
  const used = await completePairing(relayUrl, started.pairCode);
  expect(used.status).toBe(409);
  expect(used.body.error.reason).toBe('used');

  for (const via of ['header', 'message'] as const) {
    const device = await connect(paired.body.wsToken, via);
    expect(device.ready).toMatchObject({ bridgeId: paired.body.bridgeId, scope: 'tools_safe' });
    const answer = await device.invoke('chatCompletions', {
      messages: [{ role: 'user', content: `hello via ${via}` }],
    });
    expect(answer.ok).toBe(true);
    expect(answer.payload.choices[0].message.content).toBe(STUB_ANSWER);
    // Scopes hold through the relay as directly.
    expect(await device.invoke('start', {})).toMatchObject({
      ok: false,
      error: { code: 'AUTH_ROLE_MISMATCH' },
    });
  }
  // Unknown tokens are refused by the bridge, at the relay's door.
  await expect(connect('acdv_' + 'z'.repeat(43))).rejects.toMatchObject({ status: 401 });
  await expect(connect('acdv_' + 'z'.repeat(43), 'message')).rejects.toMatchObject({
    code: 4401,
  });
});

test('revocation closes the device socket held by the relay within a second', async () => {
  const started = await socket('pair.start');
  const { body } = await completePairing(relayUrl, started.pairCode);
  const device = await connect(body.wsToken);
  const revokedAt = Date.now();
  await socket('devices.revoke', { bridgeId: body.bridgeId });
  const closed = await device.closed;
  expect(closed.code).toBe(4403);
  expect(closed.at - revokedAt).toBeLessThan(1_000);
  await expect(connect(body.wsToken)).rejects.toMatchObject({ status: 403 });
});

test('the relay killed: devices lose it, the bridge reconnects with backoff and serves again', async () => {
  const started = await socket('pair.start');
  const { body } = await completePairing(relayUrl, started.pairCode);
  const device = await connect(body.wsToken);
  const linkedBefore = await socket('relay.status');
  await killRelay();
  expect((await device.closed).code).toBe(1006);
  await waitFor(
    'the bridge to see the link down',
    async () => (await socket('relay.status')).connected === false || undefined,
  );
  await startRelay();
  await waitFor(
    'the bridge to reconnect',
    async () => (await socket('relay.status')).connected || undefined,
    { timeoutMs: 60_000 },
  );
  const linkedAfter = await socket('relay.status');
  expect(linkedAfter.reconnects).toBeGreaterThan(linkedBefore.reconnects);
  expect(Date.parse(linkedAfter.connectedSince)).toBeGreaterThan(
    Date.parse(linkedBefore.connectedSince),
  );
  const back = await connect(body.wsToken);
  expect(await back.invoke('health')).toMatchObject({ ok: true });
});

test('the bridge killed: devices see a clean close, reconnect after it; nothing paired is lost', async () => {
  const started = await socket('pair.start');
  const { body } = await completePairing(relayUrl, started.pairCode);
  const device = await connect(body.wsToken);
  await bridge.stop('SIGKILL');
  const closed = await device.closed;
  expect(closed.code).toBe(1012);
  // While the bridge is away the relay says so.
  expect(await relayHealth()).toMatchObject({ bridge: 'disconnected' });
  expect((await completePairing(relayUrl, 'VC-0000-0000')).status).toBe(503);

  await startBridge(bridge.dir);
  await waitFor(
    'the restarted bridge to link again',
    async () => (await socket('relay.status')).connected || undefined,
    { timeoutMs: 60_000 },
  );
  const back = await connect(body.wsToken);
  expect(back.ready.bridgeId).toBe(body.bridgeId);
  expect(await back.invoke('health')).toMatchObject({ ok: true });
});
