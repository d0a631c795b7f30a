/**
 * The relay (relay/server.ts) for real on loopback, with a fake bridge written here: a `ws`
 * client that dials /api/relay/bridge with the credential and answers the relay's frames. Devices
 * are plain HTTP requests and `ws` clients.
 */
import http from 'node:http';
import pino from 'pino';
import { WebSocket } from 'ws';
import { DEVICE_PAGE_CSP } from '../../devices/pages';
import {
  RELAY_CLOSE,
  parseRelayToBridge,
  type BridgeToRelay,
  type RelayToBridge,
} from '../../formats/relay-frames';
import { credentialSha256 } from '../../relay/credential';
import { RelayServer, type RelayServerOptions } from '../../relay/server';

const CREDENTIAL = 'acrl_' + 'k'.repeat(43);
const TOKEN = 'acdv_' + 'd'.repeat(43);
const log = pino({ level: 'silent' });

let relay: RelayServer | undefined;
let base = '';
const opened: WebSocket[] = [];

async function startRelay(extra: Partial<RelayServerOptions> = {}): Promise<RelayServer> {
  relay = new RelayServer({
    host: '127.0.0.1',
    port: 0,
    credentialSha256: credentialSha256(CREDENTIAL),
    log,
    ...extra,
  });
  base = (await relay.listen()).url;
  return relay;
}

afterEach(async () => {
  for (const ws of opened.splice(0)) ws.terminate();
  await relay?.close();
  relay = undefined;
});

const wsUrl = (path: string) => base.replace(/^http/, 'ws') + path;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it holds (or fails the test after 3 s). */
async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 150; i++) {
    if (check()) return;
    await sleep(20);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The fake bridge: every frame the relay sends, awaitable in order. */
class FakeBridge {
  readonly frames: RelayToBridge[] = [];
  private waiters: Array<() => void> = [];
  closed: { code: number; reason: string } | undefined;

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const frame = parseRelayToBridge(String(data));
      if (!frame) throw new Error(`the relay sent a malformed frame: ${String(data)}`);
      this.frames.push(frame);
      for (const w of this.waiters.splice(0)) w();
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: String(reason) };
      for (const w of this.waiters.splice(0)) w();
    });
  }

  send(frame: BridgeToRelay): void {
    this.ws.send(JSON.stringify(frame));
  }

  /** Takes the first frame of `type` not taken yet (waiting for it up to 3 s). */
  async next<T extends RelayToBridge['type']>(
    type: T,
  ): Promise<Extract<RelayToBridge, { type: T }>> {
    const deadline = Date.now() + 3000;
    for (;;) {
      const i = this.frames.findIndex((f) => f.type === type);
      if (i >= 0) return this.frames.splice(i, 1)[0] as Extract<RelayToBridge, { type: T }>;
      if (Date.now() > deadline) throw new Error(`no ${type} frame`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 100);
      });
    }
  }

  async waitClosed(): Promise<{ code: number; reason: string }> {
    await until(() => this.closed !== undefined, 'the link to close');
    return this.closed!;
  }
}

async function linkBridge(credential = CREDENTIAL): Promise<FakeBridge> {
  const ws = new WebSocket(wsUrl('/api/relay/bridge'), {
    headers: { authorization: `Bearer ${credential}` },
  });
  opened.push(ws);
  const bridge = new FakeBridge(ws);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return bridge;
}

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(
  method: string,
  path: string,
  body?: string,
  headers: Record<string, string> = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(new URL(path, base), { method, agent: false, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const postJson = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  request('POST', path, JSON.stringify(body), { 'content-type': 'application/json', ...headers });

type Upgrade = { ws: WebSocket } | { status: number; body: string };

/** Opens a WebSocket; a refused upgrade resolves with its status and body. */
function connect(
  path: string,
  headers: Record<string, string> = {},
  options: { autoPong?: boolean } = {},
): Promise<Upgrade> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl(path), { headers, ...options });
    opened.push(ws);
    ws.once('open', () => resolve({ ws }));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    ws.once('error', reject);
  });
}

async function connectOk(path: string, headers: Record<string, string> = {}) {
  const up = await connect(path, headers);
  if (!('ws' in up)) throw new Error(`upgrade refused ${up.status}: ${up.body}`);
  return up.ws;
}

/** The close code and reason a client socket sees. */
const closeOf = (ws: WebSocket) =>
  new Promise<{ code: number; reason: string }>((resolve) => {
    if (ws.readyState === ws.CLOSED) return resolve({ code: -1, reason: 'already closed' });
    ws.once('close', (code, reason) => resolve({ code, reason: String(reason) }));
  });

const nextMessage = (ws: WebSocket) =>
  new Promise<string>((resolve) => ws.once('message', (d) => resolve(String(d))));

const errorCode = (r: Reply | { body: string }) =>
  (JSON.parse(r.body) as { error: { code: string } }).error.code;

describe('the bridge link', () => {
  test('a wrong or missing credential is refused 401 before any upgrade; a query string 400', async () => {
    await startRelay();
    const wrong = await connect('/api/relay/bridge', {
      authorization: `Bearer acrl_${'x'.repeat(43)}`,
    });
    expect(wrong).toMatchObject({ status: 401 });
    expect(errorCode(wrong as Reply)).toBe('AUTH_INVALID');
    expect(await connect('/api/relay/bridge')).toMatchObject({ status: 401 });
    expect(
      await connect('/api/relay/bridge', { authorization: `Bearer acdv_${'x'.repeat(43)}` }),
    ).toMatchObject({ status: 401 });
    expect(
      await connect('/api/relay/bridge?x=1', { authorization: `Bearer ${CREDENTIAL}` }),
    ).toMatchObject({ status: 400 });
    expect(relay!.bridgeConnected).toBe(false);
  });

  test('the right credential links; /health says so; a ping is answered pong', async () => {
    await startRelay();
    expect(JSON.parse((await request('GET', '/health')).body)).toEqual({
      ok: true,
      bridge: 'disconnected',
    });
    const bridge = await linkBridge();
    await until(() => relay!.bridgeConnected, 'the link');
    expect(JSON.parse((await request('GET', '/health')).body)).toEqual({
      ok: true,
      bridge: 'connected',
    });
    bridge.send({ type: 'ping' });
    expect(await bridge.next('pong')).toEqual({ type: 'pong' });
  });

  test('a second link replaces the first, whose device sockets are closed 1012', async () => {
    await startRelay();
    const first = await linkBridge();
    const device = await connectOk('/api/bridge/ws');
    await first.next('open');
    const deviceClosed = closeOf(device);
    const second = await linkBridge();
    expect(await first.waitClosed()).toMatchObject({ code: RELAY_CLOSE.replaced });
    expect(await deviceClosed).toEqual({
      code: RELAY_CLOSE.bridgeGone,
      reason: 'the bridge is not connected',
    });
    expect(relay!.bridgeConnected).toBe(true);
    // Requests go to the new link now.
    const reply = postJson('/api/bridge/revoke', { bridgeId: 'br_0123456789abcdef' });
    const http = await second.next('http');
    second.send({ type: 'response', id: http.id, status: 200, headers: {}, body: '{"ok":true}' });
    expect((await reply).status).toBe(200);
  });

  test('a link silent for heartbeatTimeoutMs is dropped; a pinging one stays', async () => {
    await startRelay({ heartbeatTimeoutMs: 500 });
    const chatty = await linkBridge();
    const pinger = setInterval(() => chatty.send({ type: 'ping' }), 100);
    let device: WebSocket;
    try {
      await sleep(1200);
      expect(relay!.bridgeConnected).toBe(true);
      expect(chatty.closed).toBeUndefined();
      device = await connectOk('/api/bridge/ws');
    } finally {
      clearInterval(pinger);
    }
    const deviceClosed = closeOf(device);
    const silentSince = Date.now();
    await chatty.waitClosed();
    expect(Date.now() - silentSince).toBeGreaterThanOrEqual(300);
    expect(relay!.bridgeConnected).toBe(false);
    expect((await deviceClosed).code).toBe(RELAY_CLOSE.bridgeGone);
  });

  test('when the link drops, device sockets close 1012 and later requests are 503', async () => {
    await startRelay();
    const bridge = await linkBridge();
    const a = await connectOk('/api/bridge/ws');
    const b = await connectOk('/api/bridge/ws');
    await bridge.next('open');
    await bridge.next('open');
    const closed = Promise.all([closeOf(a), closeOf(b)]);
    bridge.ws.close();
    expect(await closed).toEqual([
      { code: 1012, reason: 'the bridge is not connected' },
      { code: 1012, reason: 'the bridge is not connected' },
    ]);
    await until(() => !relay!.bridgeConnected, 'the link to drop');
    const reply = await postJson('/api/bridge/pair/complete', { pairCode: 'VC-0000-0000' });
    expect(reply.status).toBe(503);
    expect(JSON.parse(reply.body)).toEqual({
      ok: false,
      error: { code: 'RUN_UNAVAILABLE', message: 'the bridge is not connected to this relay' },
    });
    expect(await connect('/api/bridge/ws')).toMatchObject({ status: 503 });
  });

  test('a request waiting for the bridge is answered 503 when the link drops', async () => {
    await startRelay();
    const bridge = await linkBridge();
    const reply = postJson('/api/bridge/pair/complete', {});
    await bridge.next('http');
    bridge.ws.terminate();
    expect((await reply).status).toBe(503);
  });
});

describe('device requests', () => {
  test('pair/complete is forwarded with its body and address, answered with the bridge status and Retry-After', async () => {
    await startRelay();
    const bridge = await linkBridge();
    const body = { pairCode: 'VC-7M2K-91Q4', device: { name: 'Pixel', os: 'android' } };
    const reply = postJson('/api/bridge/pair/complete', body);
    const http = await bridge.next('http');
    expect(http).toEqual({
      type: 'http',
      id: expect.stringMatching(/^h_[0-9a-f]{12}$/),
      path: '/api/bridge/pair/complete',
      address: '127.0.0.1',
      body: JSON.stringify(body),
    });
    bridge.send({
      type: 'response',
      id: http.id,
      status: 429,
      headers: { 'retry-after': '42', 'set-cookie': 'a=b', 'content-type': 'text/html' },
      body: '{"ok":false,"error":{"code":"RATE_LIMITED","message":"locked out"}}',
    });
    const r = await reply;
    expect(r.status).toBe(429);
    expect(r.headers['retry-after']).toBe('42');
    expect(r.headers['set-cookie']).toBeUndefined();
    expect(r.headers['content-type']).toMatch(/^application\/json/);
    expect(errorCode(r)).toBe('RATE_LIMITED');
  });

  test('revoke carries the Authorization header', async () => {
    await startRelay();
    const bridge = await linkBridge();
    const reply = postJson(
      '/api/bridge/revoke',
      { bridgeId: 'br_0123456789abcdef' },
      { authorization: `Bearer ${TOKEN}` },
    );
    const http = await bridge.next('http');
    expect(http).toMatchObject({ path: '/api/bridge/revoke', authorization: `Bearer ${TOKEN}` });
    bridge.send({ type: 'response', id: http.id, status: 200, headers: {}, body: '{"ok":true}' });
    expect(await reply).toMatchObject({ status: 200, body: '{"ok":true}' });
  });

  test('no link: 503 RUN_UNAVAILABLE', async () => {
    await startRelay();
    const r = await postJson('/api/bridge/revoke', { bridgeId: 'br_0123456789abcdef' });
    expect(r.status).toBe(503);
    expect(errorCode(r)).toBe('RUN_UNAVAILABLE');
  });

  test('a bridge that does not answer in requestTimeoutMs: 504', async () => {
    await startRelay({ requestTimeoutMs: 200 });
    const bridge = await linkBridge();
    const r = await postJson('/api/bridge/pair/complete', {});
    expect(r.status).toBe(504);
    const http = await bridge.next('http');
    // A late answer is dropped quietly.
    bridge.send({ type: 'response', id: http.id, status: 200, headers: {}, body: '{}' });
    expect((await request('GET', '/health')).status).toBe(200);
  });

  test('refused before forwarding: query string, wrong verb or content type, too big', async () => {
    await startRelay();
    const bridge = await linkBridge();
    const query = await postJson('/api/bridge/pair/complete?x=1', {});
    expect(query.status).toBe(400);
    const credential = await postJson('/api/bridge/revoke?token=acdv_x', {});
    expect(credential.status).toBe(401);
    expect(errorCode(credential)).toBe('AUTH_INVALID');
    expect((await request('GET', '/api/bridge/pair/complete')).status).toBe(405);
    expect(
      (await request('POST', '/api/bridge/pair/complete', '{}', { 'content-type': 'text/plain' }))
        .status,
    ).toBe(400);
    const big = await postJson('/api/bridge/pair/complete', { pad: 'x'.repeat(17 * 1024) });
    expect(big.status).toBe(413);
    expect(bridge.frames.filter((f) => f.type === 'http')).toEqual([]);
  });

  test('/pair, /pair.js and /devices.css are served with the CSP; /devices and others are 404', async () => {
    await startRelay();
    for (const path of ['/pair', '/pair.js', '/devices.css']) {
      const r = await request('GET', path);
      expect(r.status).toBe(200);
      expect(r.headers['content-security-policy']).toBe(DEVICE_PAGE_CSP);
      expect(r.headers['cache-control']).toBe('no-store');
    }
    expect((await request('GET', '/pair')).body).toContain('/pair.js');
    for (const path of ['/devices', '/devices.js', '/devices/qrcode.js', '/rpc', '/']) {
      const r = await request('GET', path);
      expect(r.status).toBe(404);
      expect(errorCode(r)).toBe('NOT_FOUND');
    }
  });
});

describe('device sockets', () => {
  test('with a header token: open with the token, admit ok, upgraded; frames both ways; close from the bridge', async () => {
    await startRelay();
    const bridge = await linkBridge();
    const connecting = connect('/api/bridge/ws', { authorization: `Bearer ${TOKEN}` });
    const open = await bridge.next('open');
    expect(open).toEqual({
      type: 'open',
      conn: expect.stringMatching(/^c_[0-9a-f]{12}$/),
      address: '127.0.0.1',
      token: TOKEN,
    });
    bridge.send({ type: 'admit', conn: open.conn, ok: true });
    const up = await connecting;
    if (!('ws' in up)) throw new Error(`refused ${up.status}`);
    const device = up.ws;

    const ready = nextMessage(device);
    bridge.send({ type: 'send', conn: open.conn, text: '{"type":"ready"}' });
    expect(await ready).toBe('{"type":"ready"}');
    device.send('{"id":1,"type":"invoke","payload":{"kind":"status"}}');
    expect(await bridge.next('frame')).toEqual({
      type: 'frame',
      conn: open.conn,
      text: '{"id":1,"type":"invoke","payload":{"kind":"status"}}',
    });

    const closed = closeOf(device);
    bridge.send({ type: 'close', conn: open.conn, code: 4403, reason: 'this device is revoked' });
    expect(await closed).toEqual({ code: 4403, reason: 'this device is revoked' });
    expect(await bridge.next('gone')).toEqual({ type: 'gone', conn: open.conn });
  });

  test.each([403, 429, 401])('admit refused %i: the upgrade is refused with it', async (status) => {
    await startRelay();
    const bridge = await linkBridge();
    const connecting = connect('/api/bridge/ws', { authorization: `Bearer ${TOKEN}` });
    const open = await bridge.next('open');
    bridge.send({ type: 'admit', conn: open.conn, ok: false, status, message: 'no, because' });
    const up = await connecting;
    expect(up).toMatchObject({ status });
    expect(JSON.parse((up as { body: string }).body)).toMatchObject({
      ok: false,
      error: { message: 'no, because' },
    });
  });

  test('a bridge that never admits: refused after the admit timeout, and told the socket is gone', async () => {
    await startRelay({ admitTimeoutMs: 200 });
    const bridge = await linkBridge();
    const up = await connect('/api/bridge/ws', { authorization: `Bearer ${TOKEN}` });
    expect(up).toMatchObject({ status: 504 });
    const open = await bridge.next('open');
    expect(await bridge.next('gone')).toEqual({ type: 'gone', conn: open.conn });
  });

  test('an admitted upgrade whose handshake then fails: the bridge is told the socket is gone', async () => {
    await startRelay();
    const bridge = await linkBridge();
    const reply = request('GET', '/api/bridge/ws', undefined, {
      connection: 'Upgrade',
      upgrade: 'websocket',
      'sec-websocket-version': '13',
      'sec-websocket-key': 'not a key',
      authorization: `Bearer ${TOKEN}`,
    });
    const open = await bridge.next('open');
    bridge.send({ type: 'admit', conn: open.conn, ok: true });
    expect((await reply).status).toBe(400);
    expect(await bridge.next('gone')).toEqual({ type: 'gone', conn: open.conn });
  });

  test('without a header: upgraded at once, open without a token', async () => {
    await startRelay();
    const bridge = await linkBridge();
    const device = await connectOk('/api/bridge/ws');
    const open = await bridge.next('open');
    expect(open).toEqual({ type: 'open', conn: expect.any(String), address: '127.0.0.1' });
    device.send(`{"type":"auth","token":"${TOKEN}"}`);
    expect(await bridge.next('frame')).toMatchObject({ conn: open.conn });
    device.close(1000);
    expect(await bridge.next('gone')).toEqual({ type: 'gone', conn: open.conn });
  });

  test('refused before the upgrade: a query string (400), a bad Authorization (401), no link (503)', async () => {
    await startRelay();
    expect(await connect('/api/bridge/ws')).toMatchObject({ status: 503 });
    const bridge = await linkBridge();
    expect(await connect(`/api/bridge/ws?token=${TOKEN}`)).toMatchObject({ status: 400 });
    expect(await connect('/api/bridge/ws?x')).toMatchObject({ status: 400 });
    expect(await connect('/api/bridge/ws', { authorization: 'Basic dXNlcjpwdw==' })).toMatchObject({
      status: 401,
    });
    expect(
      await connect('/api/bridge/ws', { authorization: `Bearer acgw_${'x'.repeat(20)}` }),
    ).toMatchObject({ status: 401 });
    expect(await connect('/api/other')).toMatchObject({ status: 404 });
    expect(bridge.frames).toEqual([]);
  });

  test('a binary message closes the socket 1003', async () => {
    await startRelay();
    const bridge = await linkBridge();
    const device = await connectOk('/api/bridge/ws');
    const open = await bridge.next('open');
    const closed = closeOf(device);
    device.send(Buffer.from([1, 2, 3]), { binary: true });
    expect((await closed).code).toBe(1003);
    expect(await bridge.next('gone')).toEqual({ type: 'gone', conn: open.conn });
  });

  test('a device that misses a pong is dropped, and the bridge told', async () => {
    await startRelay({ devicePingMs: 250 });
    const bridge = await linkBridge();
    const answering = await connectOk('/api/bridge/ws');
    const first = await bridge.next('open');
    const up = await connect('/api/bridge/ws', {}, { autoPong: false });
    if (!('ws' in up)) throw new Error('refused');
    const second = await bridge.next('open');
    const closed = closeOf(up.ws);
    expect((await closed).code).toBe(1006);
    expect(await bridge.next('gone')).toEqual({ type: 'gone', conn: second.conn });
    await sleep(600);
    expect(answering.readyState).toBe(WebSocket.OPEN);
    expect(bridge.frames).not.toContainEqual({ type: 'gone', conn: first.conn });
  });

  test('closing the relay closes the link and the device sockets', async () => {
    const server = await startRelay();
    const bridge = await linkBridge();
    const device = await connectOk('/api/bridge/ws');
    await bridge.next('open');
    const closed = closeOf(device);
    await server.close();
    relay = undefined;
    expect((await closed).code).toBe(1001);
    expect((await bridge.waitClosed()).code).toBe(1001);
  });
});
