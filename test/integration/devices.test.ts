/**
 * Paired devices against a real bridge: `pair.start` on the socket, the pairing endpoint and the
 * device WebSocket on the real gateway, `chatCompletions` answered by a real agent container
 * (the reference agent, its model the provider stub behind the real provider proxy), scopes,
 * revocation mid-conversation, refused and reused codes, a kill -9 of the bridge, the lockout.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import WebSocket from 'ws';
import { removeDir, spawnBridge, type BridgeProcess } from '../support/bridge-process';
import { auditEntries, removeTestContainers, rpc, sleep, waitFor } from '../support/containers';
import { sessionContainerPrefix } from '../../activities/turn';
import { deviceSessionId } from '../../devices/chat-completions';
import { containerSocketPaths } from '../../rpc/container-socket';
import { completePairing, connectDevice, type DeviceConnection } from '../support/device-client';
import { ensureAgentImage, ensureDocker } from '../support/docker';
import { freePort } from '../support/ports';
import { ProviderStub } from '../support/provider-stub';
import { call } from '../support/socket-clients';

jest.setTimeout(300_000);

const KEY = `sk-devices-${randomBytes(12).toString('hex')}`;
const STUB_ANSWER = 'tok0 tok1 tok2 ';

let stub: ProviderStub;
let bridge: BridgeProcess;
let base: string;
let temporalPort: number;
let uiPort: number;
const dirs: string[] = [];
const open: DeviceConnection[] = [];

async function startBridge(dir?: string): Promise<void> {
  bridge = await spawnBridge({
    dir,
    env: {
      ARMORCLAW_MASTER_KEY: 'd7'.repeat(32),
      ARMORCLAW_PROXY_BASE_URLS: JSON.stringify({ openai: stub.url }),
      ARMORCLAW_SECRETS_MODE: 'proxy',
      ARMORCLAW_GATEWAY_AGENT_KEY_ID: 'dev',
      // Pings fast enough to see a dead peer dropped within the test.
      ARMORCLAW_DEVICES_PING_INTERVAL: '1s',
    },
    temporalPort,
    uiPort,
  });
  if (!dir) dirs.push(bridge.dir);
  base = await bridge.gatewayUrl();
}

async function socket(method: string, params: unknown = {}): Promise<any> {
  const r = await call(bridge.socketPath, method, params);
  if (r.error) throw new Error(`${method}: ${JSON.stringify(r.error)}`);
  return r.result;
}

/** pair.start, then the device redeems the code: its id and token. */
async function pairDevice(scope?: string): Promise<{ bridgeId: string; wsToken: string }> {
  const started = await socket('pair.start', scope ? { scope } : {});
  const paired = await completePairing(base, started.pairCode);
  expect(paired.status).toBe(200);
  return paired.body;
}

/** A bare WebSocket upgrade request to `path` without credentials: the refusal's status and body. */
function upgradeStatus(pathAndQuery: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${base}${pathAndQuery}`, {
      headers: {
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': randomBytes(16).toString('base64'),
      },
    });
    req.on('response', (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('upgrade', () => reject(new Error(`${pathAndQuery} was upgraded`)));
    req.on('error', reject);
  });
}

async function connect(token: string, via?: 'header' | 'message'): Promise<DeviceConnection> {
  const c = await connectDevice(base, token, via);
  open.push(c);
  return c;
}

beforeAll(async () => {
  await ensureDocker();
  await ensureAgentImage();
  stub = await ProviderStub.start({});
  temporalPort = await freePort();
  uiPort = await freePort();
  await startBridge();
  await socket('store_key', { id: 'dev', provider: 'openai', token: KEY });
});

afterEach(() => {
  for (const c of open.splice(0)) c.close();
});

afterAll(async () => {
  await bridge?.stop('SIGKILL');
  await removeTestContainers([], dirs);
  for (const d of dirs) removeDir(d);
  await stub?.close();
});

test('a device pairs with a one-time code and its agent answers chatCompletions', async () => {
  const started = await socket('pair.start');
  expect(started.pairCode).toMatch(/^VC-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$/);
  expect(started.scope).toBe('tools_safe');
  expect(started.pairUrl).toBe(`${base}/pair#${started.pairCode}`);
  const expiresIn = Date.parse(started.expiresAt) - Date.now();
  expect(expiresIn).toBeGreaterThan(9 * 60_000);
  expect(expiresIn).toBeLessThanOrEqual(10 * 60_000);

  // Typed by a person: lower case, spaces instead of dashes.
  const typed = started.pairCode.toLowerCase().replace(/-/g, ' ');
  const paired = await completePairing(base, typed);
  expect(paired.status).toBe(200);
  expect(paired.body).toEqual({
    bridgeId: expect.stringMatching(/^br_[0-9a-f]{16}$/),
    wsToken: expect.stringMatching(/^acdv_[A-Za-z0-9_-]{43}$/),
    scope: 'tools_safe',
  });
  // Once only.
  const again = await completePairing(base, started.pairCode);
  expect(again.status).toBe(409);
  expect(again.body.error).toMatchObject({ code: 'AUTH_INVALID', reason: 'used' });

  const device = await connect(paired.body.wsToken);
  expect(device.ready).toMatchObject({
    type: 'ready',
    bridgeId: paired.body.bridgeId,
    scope: 'tools_safe',
  });
  expect(device.ready.operations).toContain('chatCompletions');
  expect(device.ready.operations).not.toContain('shell.exec');

  const answer = await device.invoke('chatCompletions', {
    model: 'openclaw:main',
    messages: [{ role: 'user', content: 'hello from the phone' }],
  });
  expect(answer).toMatchObject({ type: 'result', ok: true });
  expect(answer.payload.choices[0].message).toEqual({ role: 'assistant', content: STUB_ANSWER });
  expect(answer.payload.object).toBe('chat.completion');
  // The real key reached the provider through the proxy; the device never saw it.
  const sent = stub.requests.at(-1)!;
  expect(JSON.parse(sent.body).messages.at(-1)).toEqual({
    role: 'user',
    content: 'hello from the phone',
  });
  expect(sent.headers.authorization).toBe(`Bearer ${KEY}`);
  expect(JSON.stringify(answer)).not.toContain(KEY);

  // Listed as connected; every step audited without the code or the token.
  const { devices } = await socket('devices.list');
  expect(devices.find((d: any) => d.bridgeId === paired.body.bridgeId)).toMatchObject({
    name: 'Test Phone',
    scope: 'tools_safe',
    connections: 1,
    revokedAt: null,
  });
  await waitFor('the device invoke in the audit log', () =>
    auditEntries(bridge.stateDir).some(
      (e) =>
        e.event_type === 'gateway_request' &&
        (e.details as any).subject === `device:${paired.body.bridgeId}` &&
        (e.details as any).method === 'chatCompletions',
    ),
  );
  const entries = auditEntries(bridge.stateDir);
  const types = entries.map((e) => e.event_type);
  expect(types).toEqual(expect.arrayContaining(['pair_started', 'pair_completed', 'pair_failed']));
  const text = JSON.stringify(entries);
  expect(text).not.toContain(started.pairCode);
  expect(text).not.toContain(paired.body.wsToken);
});

test('the token goes in a header or the first message, never in the URL', async () => {
  const { wsToken } = await pairDevice();
  // A browser cannot set headers: the first message carries the token.
  const viaMessage = await connect(wsToken, 'message');
  expect(viaMessage.ready.type).toBe('ready');
  const status = await viaMessage.invoke('status');
  expect(status).toMatchObject({ ok: true, payload: { version: expect.any(String) } });

  // A token in the URL is refused before any upgrade: nothing to log, nothing to leak.
  const inQuery = await upgradeStatus(`/api/bridge/ws?token=${wsToken}`);
  expect(inQuery.status).toBe(400);
  expect(inQuery.body).not.toContain(wsToken);
  expect((await upgradeStatus('/api/bridge/elsewhere')).status).toBe(404);

  // Sockets waiting to authenticate: a few per address, then refused.
  const waiting: WebSocket[] = [];
  for (let i = 0; i < 8; i++) {
    const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/api/bridge/ws`);
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    waiting.push(ws);
  }
  expect((await upgradeStatus('/api/bridge/ws')).status).toBe(429);
  await Promise.all(
    waiting.map((ws) => new Promise((resolve) => ws.once('close', resolve).close())),
  );
  await sleep(200);

  await expect(connect('acdv_' + 'x'.repeat(43))).rejects.toMatchObject({ status: 401 });
  await expect(connect('acdv_' + 'y'.repeat(43), 'message')).rejects.toMatchObject({ code: 4401 });
});

test('scopes refuse what they must, on every call', async () => {
  const { bridgeId, wsToken } = await pairDevice('chat_only');
  const device = await connect(wsToken);
  expect(device.ready.scope).toBe('chat_only');
  const refused = await device.invoke('agent.run', {
    session: { sessionId: 's', channelId: 'c', channelKind: 'mobile' },
    messages: [{ role: 'user', content: 'hi' }],
  });
  expect(refused).toMatchObject({ ok: false, error: { code: 'AUTH_ROLE_MISMATCH' } });
  expect(refused.error.message).toContain('chat_only');
  for (const kind of [
    'start',
    'stop',
    'shell.exec',
    'fs.delete',
    'pair.start',
    'devices.revoke',
    'store_key',
  ]) {
    const r = await device.invoke(kind, {});
    expect(r).toMatchObject({ ok: false, error: { code: 'AUTH_ROLE_MISMATCH' } });
  }
  expect(await device.invoke('health')).toMatchObject({ ok: true });

  // Widened by an admin: the next call of the same connection sees it.
  await socket('devices.set_scope', { bridgeId, scope: 'tools_safe' });
  const run = await device.invoke('agent.run', {
    session: { sessionId: `dev-${bridgeId}`, channelId: 'c', channelKind: 'mobile' },
    messages: [{ role: 'user', content: 'hi' }],
  });
  expect(run).toMatchObject({ ok: true, payload: { runId: expect.any(String) } });
  // Still no admin operation under tools_safe.
  expect(await device.invoke('start', { key_id: 'dev' })).toMatchObject({
    ok: false,
    error: { code: 'AUTH_ROLE_MISMATCH' },
  });
  // Bad frames are answered, and the connection serves on.
  device.ws.send('not json');
  device.ws.send(JSON.stringify({ id: 'x', type: 'invoke', payload: { kind: 7 } }));
  expect(await device.invoke('health')).toMatchObject({ ok: true });
});

test("a device's agent gets no capability its scope does not allow, without asking anyone", async () => {
  const { bridgeId, wsToken } = await pairDevice('tools_safe');
  const device = await connect(wsToken);
  const answer = await device.invoke('chatCompletions', {
    messages: [{ role: 'user', content: 'start my agent' }],
  });
  expect(answer.ok).toBe(true);
  // The device's agent, as it would call its own socket.
  const agentName = `${sessionContainerPrefix('openclaw', deviceSessionId(bridgeId))}-1`;
  const { endpoint } = containerSocketPaths(bridge.socketPath, agentName);
  const shell = await rpc(endpoint, 'approval.request', { capability: 'shell.exec', reason: 'ls' });
  expect(shell.error).toMatchObject({ code: -32005 });
  expect(shell.error.message).toContain('tools_safe');
  await waitFor(
    'the refusal in the audit log',
    () =>
      auditEntries(bridge.stateDir).some(
        (e) => e.event_type === 'approval_refused' && (e.details as any).reason === 'device_scope',
      ) || undefined,
  );
  // Widened to full: the request goes to the operators as any agent's does.
  await socket('devices.set_scope', { bridgeId, scope: 'full' });
  const asked = await rpc(endpoint, 'approval.request', { capability: 'shell.exec', reason: 'ls' });
  expect(asked.error).toBeUndefined();
  expect(asked.result).toMatchObject({ status: 'pending', capability: 'shell.exec' });
});

test('revocation mid-conversation closes the socket within a second; the next connect is refused', async () => {
  const { bridgeId, wsToken } = await pairDevice();
  const device = await connect(wsToken);
  const second = await connect(wsToken, 'message');
  // A conversation in flight.
  const inFlight = device.invoke('chatCompletions', {
    messages: [{ role: 'user', content: 'a long question' }],
  });
  const revokedAt = Date.now();
  const revoked = await socket('devices.revoke', { bridgeId });
  expect(revoked.device.revokedAt).not.toBeNull();
  const [a, b] = await Promise.all([device.closed, second.closed]);
  for (const c of [a, b]) {
    expect(c.code).toBe(4403);
    expect(c.at - revokedAt).toBeLessThan(1_000);
  }
  // The answer in flight is not delivered to a revoked device.
  await expect(inFlight).rejects.toThrow(/closed 4403/);
  await expect(connect(wsToken)).rejects.toMatchObject({ status: 403 });
  await expect(connect(wsToken, 'message')).rejects.toMatchObject({ code: 4403 });
});

test('a device revokes itself over HTTP; no one else may', async () => {
  const mine = await pairDevice();
  const other = await pairDevice();
  const post = (token: string | undefined, bridgeId: string) =>
    fetch(`${base}/api/bridge/revoke`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      body: JSON.stringify({ bridgeId }),
    });
  const foreign = await post(mine.wsToken, other.bridgeId);
  expect(foreign.status).toBe(403);
  expect(((await foreign.json()) as any).error.code).toBe('AUTH_ROLE_MISMATCH');
  // No credential at all: the gateway's own auth applies (token mode), and refuses.
  const anonymous = await post(undefined, other.bridgeId);
  expect(anonymous.status).toBe(401);

  const connection = await connect(mine.wsToken);
  const self = await post(mine.wsToken, mine.bridgeId);
  expect(self.status).toBe(200);
  expect(await self.json()).toEqual({ ok: true });
  expect((await connection.closed).code).toBe(4403);
  // Again: done already. But a revoked token revokes no one else.
  expect((await post(mine.wsToken, mine.bridgeId)).status).toBe(200);
  const stale = await post(mine.wsToken, other.bridgeId);
  expect(stale.status).toBe(401);
  expect(((await stale.json()) as any).error.code).toBe('AUTH_INVALID');
  await expect(connect(other.wsToken)).resolves.toMatchObject({
    ready: { bridgeId: other.bridgeId },
  });
});

test('a rotated token: its sockets close with 4409, it is refused, the new one connects', async () => {
  const d = await pairDevice();
  const before = await connect(d.wsToken);
  const rotated = await socket('devices.rotate', { bridgeId: d.bridgeId });
  expect(rotated.wsToken).not.toBe(d.wsToken);
  expect((await before.closed).code).toBe(4409);
  await expect(connect(d.wsToken)).rejects.toMatchObject({ status: 401 });
  const after = await connect(rotated.wsToken);
  expect(after.ready.bridgeId).toBe(d.bridgeId);
});

test('kill -9 of the bridge: devices see the socket close, reconnect after the restart; revocations hold', async () => {
  const live = await pairDevice();
  const gone = await pairDevice();
  await socket('devices.revoke', { bridgeId: gone.bridgeId });
  const device = await connect(live.wsToken);
  await bridge.stop('SIGKILL');
  const closed = await device.closed;
  expect(closed.code).toBe(1006);

  await startBridge(bridge.dir);
  const back = await connect(live.wsToken);
  expect(back.ready.bridgeId).toBe(live.bridgeId);
  expect(await back.invoke('health')).toMatchObject({ ok: true });
  await expect(connect(gone.wsToken)).rejects.toMatchObject({ status: 403 });
});

test('guessing codes is locked out, with Retry-After; expired and unknown codes are refused', async () => {
  const started = await socket('pair.start');
  // A newer code replaces it: refused as expired.
  await socket('pair.start');
  const stale = await completePairing(base, started.pairCode);
  expect(stale.status).toBe(410);
  expect(stale.body.error.reason).toBe('expired');

  let locked: Awaited<ReturnType<typeof completePairing>> | undefined;
  for (let i = 0; i < 10 && !locked; i++) {
    const r = await completePairing(base, `VC-0000-${String(i).padStart(4, '0')}`);
    if (r.status === 429) locked = r;
    else expect(r.body.error.reason).toBe('invalid_code');
  }
  expect(locked?.body.error).toMatchObject({ code: 'RATE_LIMITED', reason: 'locked_out' });
  expect(Number(locked!.headers.get('retry-after'))).toBeGreaterThan(0);
  // Locked out, even the right code is not looked at.
  const right = await socket('pair.start');
  expect((await completePairing(base, right.pairCode)).status).toBe(429);
});
