/**
 * The WSS signaling server on a real port with real TLS and a real `ws` client; the call media
 * behind it is a small fake backend that records what reached it. Proves authentication (hello,
 * tokens, origins), routing to the right session only, the limits (size, rate, liveness), the
 * self-signed certificate's persistence and the call page's headers.
 */
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import WebSocket from 'ws';
import {
  CALL_PAGE_CSP,
  SignalingServer,
  type SignalingAuditEntry,
  type SignalingServerOptions,
} from '../../media/signaling-server';
import type { ServerMessage, SignalingBackend, SignalingSink } from '../../media/signaling-types';
import type { RTCIceCandidateInit } from 'werift';
import { signCallToken } from '../../services/call-tokens';

jest.setTimeout(30_000);

const KEY = Buffer.alloc(32, 7);
const ROOM = '!room:example.org';

/** Records every call; answers offers with a recognisable SDP; `bye` on hangup like the hub. */
class FakeBackend implements SignalingBackend {
  readonly sessions = new Set<string>();
  readonly calls: { method: string; sessionId: string; arg?: unknown }[] = [];
  readonly sinks = new Map<string, SignalingSink>();

  has(sessionId: string): boolean {
    return this.sessions.has(sessionId);
  }
  async offer(sessionId: string, sdp: string): Promise<string> {
    this.calls.push({ method: 'offer', sessionId, arg: sdp });
    if (sdp === 'explode') throw new Error('/secret/path/werift: negotiate codecs failed.');
    return `answer-to(${sdp})`;
  }
  async answer(sessionId: string, sdp: string): Promise<void> {
    this.calls.push({ method: 'answer', sessionId, arg: sdp });
  }
  async addIceCandidate(sessionId: string, candidate: RTCIceCandidateInit): Promise<void> {
    this.calls.push({ method: 'ice', sessionId, arg: candidate });
  }
  async hangup(sessionId: string, reason: string): Promise<void> {
    this.calls.push({ method: 'hangup', sessionId, arg: reason });
    this.sinks.get(sessionId)?.({
      type: 'bye',
      session_id: sessionId,
      payload: { reason, state: 'Ended' },
    });
  }
  attach(sessionId: string, sink: SignalingSink): () => void {
    this.calls.push({ method: 'attach', sessionId });
    this.sinks.set(sessionId, sink);
    sink({ type: 'state', session_id: sessionId, payload: { state: 'Connecting' } });
    return () => {
      if (this.sinks.get(sessionId) === sink) this.sinks.delete(sessionId);
    };
  }
}

const log = pino({ level: 'silent' });

interface Harness {
  server: SignalingServer;
  backend: FakeBackend;
  audits: SignalingAuditEntry[];
  port: number;
  url: string;
  dir: string;
}

const open: Harness[] = [];

async function startServer(overrides: Partial<SignalingServerOptions> = {}): Promise<Harness> {
  const dir = (overrides.tls as { selfSignedDir?: string } | undefined)?.selfSignedDir
    ? path.dirname((overrides.tls as { selfSignedDir: string }).selfSignedDir)
    : mkdtempSync(path.join(tmpdir(), 'signaling-'));
  const backend = (overrides.backend as FakeBackend | undefined) ?? new FakeBackend();
  backend.sessions.add('s-a');
  backend.sessions.add('s-b');
  const audits: SignalingAuditEntry[] = [];
  const server = new SignalingServer({
    host: '127.0.0.1',
    port: 0,
    tls: { selfSignedDir: path.join(dir, 'tls') },
    tokenKey: KEY,
    backend,
    allowedOrigins: ['https://app.example.org'],
    maxMessageBytes: 64 * 1024,
    messagesPerSecond: 20,
    helloTimeoutMs: 5000,
    pingIntervalMs: 15_000,
    audit: (e) => audits.push(e),
    log,
    ...overrides,
  });
  const { port, url } = await server.listen();
  const h = { server, backend, audits, port, url, dir };
  open.push(h);
  return h;
}

afterEach(async () => {
  for (const h of open.splice(0)) {
    await h.server.close();
    rmSync(h.dir, { recursive: true, force: true });
  }
});

function token(sessionId: string, expiresInS = 600): string {
  return signCallToken(KEY, {
    session_id: sessionId,
    room_id: ROOM,
    expires_at: Math.floor(Date.now() / 1000) + expiresInS,
  });
}

/** A `ws` client that records every message and the close code. */
class Client {
  readonly messages: ServerMessage[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly opened: Promise<void>;
  private waiters: (() => void)[] = [];

  constructor(
    readonly ws: WebSocket,
    readonly sessionId = 's-a',
  ) {
    ws.on('message', (data) => {
      this.messages.push(JSON.parse(String(data)) as ServerMessage);
      for (const w of this.waiters.splice(0)) w();
    });
    this.closed = new Promise((resolve) =>
      ws.on('close', (code, reason) => resolve({ code, reason: String(reason) })),
    );
    this.opened = new Promise((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    ws.on('error', () => undefined);
  }

  send(type: string, payload: unknown, sessionId = this.sessionId): void {
    this.ws.send(JSON.stringify({ type, session_id: sessionId, payload }));
  }

  /** Waits for the first message of `type` not yet returned by an earlier `next`. */
  async next<T extends ServerMessage['type']>(
    type: T,
    timeoutMs = 5000,
  ): Promise<Extract<ServerMessage, { type: T }>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.messages.findIndex((m) => m.type === type);
      if (i >= 0) return this.messages.splice(i, 1)[0] as Extract<ServerMessage, { type: T }>;
      if (Date.now() > deadline) throw new Error(`no ${type} message within ${timeoutMs} ms`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
  }
}

function connect(h: Harness, opts: { origin?: string; autoPong?: boolean } = {}): Client {
  return new Client(
    new WebSocket(h.url, {
      rejectUnauthorized: false,
      ...(opts.origin !== undefined && { origin: opts.origin }),
      ...(opts.autoPong === false && { autoPong: false }),
    }),
  );
}

/** Connects and authenticates for `sessionId`; resolves after the first `state`. */
async function authed(h: Harness, sessionId = 's-a', origin?: string): Promise<Client> {
  const c = connect(h, { origin });
  Object.assign(c, { sessionId });
  await c.opened;
  c.send('hello', { token: token(sessionId) }, sessionId);
  await c.next('state');
  return c;
}

function httpsGet(
  port: number,
  pathname: string,
): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    https
      .get({ host: '127.0.0.1', port, path: pathname, rejectUnauthorized: false }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      })
      .on('error', reject);
  });
}

/** Resolves with the HTTP status of a refused upgrade. */
function upgradeStatus(h: Harness, origin: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(h.url, { rejectUnauthorized: false, origin });
    ws.on('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.on('open', () => reject(new Error('upgrade was accepted')));
    ws.on('error', () => undefined);
  });
}

describe('signaling server: authentication', () => {
  it('hello with a good token → state from the backend; the token is never audited or echoed', async () => {
    const h = await startServer();
    expect(h.url).toBe(`wss://127.0.0.1:${h.port}/webrtc`);
    const c = await authed(h);
    expect(h.backend.calls).toEqual([{ method: 'attach', sessionId: 's-a' }]);
    expect(h.audits).toEqual([]);
    c.ws.close();
  });

  it('no hello within helloTimeoutMs → hello_timeout and close 4408', async () => {
    const h = await startServer({ helloTimeoutMs: 300 });
    const c = connect(h);
    const { code } = await c.closed;
    expect(code).toBe(4408);
    expect(c.messages[0]).toMatchObject({ type: 'error', payload: { code: 'hello_timeout' } });
    expect(h.backend.calls).toEqual([]);
  });

  it('a first message that is not hello → unauthorized, 4401', async () => {
    const h = await startServer();
    const c = connect(h);
    await c.opened;
    c.send('offer', { sdp: 'v=0' });
    expect((await c.closed).code).toBe(4401);
    expect(c.messages[0]).toMatchObject({ type: 'error', payload: { code: 'unauthorized' } });
    expect(h.backend.calls).toEqual([]);
  });

  it.each([
    [
      'forged',
      () => signCallToken(Buffer.alloc(32, 9), claims('s-a')),
      'unauthorized',
      'bad_signature',
    ],
    ['expired', () => token('s-a', -5), 'token_expired', 'expired'],
    ['other-session', () => token('s-b'), 'unauthorized', 'wrong_session'],
    ['garbage', () => 'not.a.jwt', 'unauthorized', 'malformed'],
  ])(
    '%s token → error, close 4401, security_violation audited without the token',
    async (_name, make, code, problem) => {
      const h = await startServer();
      const c = connect(h);
      await c.opened;
      const bad = make();
      c.send('hello', { token: bad });
      expect((await c.closed).code).toBe(4401);
      expect(c.messages).toEqual([
        { type: 'error', session_id: null, payload: { code, message: expect.any(String) } },
      ]);
      expect(h.audits).toHaveLength(1);
      expect(h.audits[0]).toMatchObject({
        event_type: 'security_violation',
        session_id: 's-a',
        details: { reason: 'invalid_call_token', token_problem: problem },
      });
      expect(JSON.stringify(h.audits)).not.toContain(bad);
      expect(h.backend.calls).toEqual([]);
    },
  );

  it('a good token for a session this bridge does not have → session_not_found, 4404', async () => {
    const h = await startServer();
    const c = connect(h);
    await c.opened;
    c.send('hello', { token: token('s-gone') }, 's-gone');
    expect((await c.closed).code).toBe(4404);
    expect(c.messages[0]).toMatchObject({ payload: { code: 'session_not_found' } });
  });

  it('origin: none, own and listed are accepted; any other is refused with 403 and audited', async () => {
    const h = await startServer();
    (await authed(h, 's-a')).ws.close();
    (await authed(h, 's-a', `https://127.0.0.1:${h.port}`)).ws.close();
    (await authed(h, 's-a', 'https://app.example.org')).ws.close();
    expect(h.audits).toEqual([]);

    expect(await upgradeStatus(h, 'https://evil.example.com')).toBe(403);
    expect(await upgradeStatus(h, `http://127.0.0.1:${h.port}`)).toBe(403); // scheme matters
    expect(h.audits).toHaveLength(2);
    expect(h.audits[0]).toMatchObject({
      event_type: 'security_violation',
      details: { reason: 'origin_not_allowed', origin: 'https://evil.example.com' },
    });
  });
});

function claims(sessionId: string) {
  return { session_id: sessionId, room_id: ROOM, expires_at: Math.floor(Date.now() / 1000) + 600 };
}

describe('signaling server: routing', () => {
  it('offer → backend.offer → answer; answer and ice reach the backend; end-of-candidates is ignored', async () => {
    const h = await startServer();
    const c = await authed(h);
    c.send('offer', { sdp: 'v=0 offer' });
    expect(await c.next('answer')).toEqual({
      type: 'answer',
      session_id: 's-a',
      payload: { sdp: 'answer-to(v=0 offer)' },
    });
    const cand = {
      candidate: 'candidate:1 1 udp 1 127.0.0.1 5000 typ host',
      sdpMid: '0',
      sdpMLineIndex: 0,
    };
    c.send('ice', cand);
    c.send('ice', null);
    c.send('ice', { candidate: '' });
    c.send('answer', { sdp: 'v=0 restart answer' });
    await waitFor(() => h.backend.calls.some((x) => x.method === 'answer'));
    expect(h.backend.calls.slice(1)).toEqual([
      { method: 'offer', sessionId: 's-a', arg: 'v=0 offer' },
      { method: 'ice', sessionId: 's-a', arg: cand },
      { method: 'answer', sessionId: 's-a', arg: 'v=0 restart answer' },
    ]);
    c.ws.close();
  });

  it('a backend failure is negotiation_failed, without the library message', async () => {
    const h = await startServer();
    const c = await authed(h);
    c.send('offer', { sdp: 'explode' });
    const err = await c.next('error');
    expect(err.payload.code).toBe('negotiation_failed');
    expect(err.payload.message).not.toMatch(/secret|werift/);
    c.ws.close();
  });

  it('bad messages → bad_message and the socket stays; a foreign session_id → wrong_session + audit', async () => {
    const h = await startServer();
    const c = await authed(h);
    c.ws.send('{not json');
    expect((await c.next('error')).payload.code).toBe('bad_message');
    c.send('dance', {});
    expect((await c.next('error')).payload.code).toBe('bad_message');
    c.send('offer', { sdp: 42 });
    expect((await c.next('error')).payload.code).toBe('bad_message');
    c.send('offer', { sdp: 'v=0' }, 's-b');
    expect((await c.next('error')).payload.code).toBe('wrong_session');
    expect(h.audits).toEqual([
      expect.objectContaining({
        event_type: 'security_violation',
        session_id: 's-a',
        room_id: ROOM,
        details: expect.objectContaining({ reason: 'wrong_session', claimed_session_id: 's-b' }),
      }),
    ]);
    expect(h.backend.calls.filter((x) => x.method === 'offer')).toEqual([]);
    c.send('offer', { sdp: 'still here' });
    expect((await c.next('answer')).payload.sdp).toBe('answer-to(still here)');
    c.ws.close();
  });

  it('two sockets on two sessions each get only their own messages', async () => {
    const h = await startServer();
    const a = await authed(h, 's-a');
    const b = await authed(h, 's-b');
    a.send('offer', { sdp: 'A' });
    b.send('offer', { sdp: 'B' });
    expect((await a.next('answer')).payload.sdp).toBe('answer-to(A)');
    expect((await b.next('answer')).payload.sdp).toBe('answer-to(B)');
    h.backend.sinks.get('s-a')!({
      type: 'ice',
      session_id: 's-a',
      payload: { candidate: 'for-a' },
    });
    h.backend.sinks.get('s-b')!({ type: 'state', session_id: 's-b', payload: { state: 'Live' } });
    // A (buggy) backend message for another session through A's sink is dropped, not routed.
    h.backend.sinks.get('s-a')!({ type: 'state', session_id: 's-b', payload: { state: 'Failed' } });
    expect((await a.next('ice')).payload).toEqual({ candidate: 'for-a' });
    expect((await b.next('state')).payload.state).toBe('Live');
    await new Promise((r) => setTimeout(r, 200));
    expect(a.messages).toEqual([]);
    expect(b.messages).toEqual([]);
    a.ws.close();
    b.ws.close();
  });

  it('a second socket for the same session replaces the first (4409)', async () => {
    const h = await startServer();
    const first = await authed(h, 's-a');
    const second = await authed(h, 's-a');
    expect((await first.closed).code).toBe(4409);
    second.send('offer', { sdp: 'again' });
    expect((await second.next('answer')).payload.sdp).toBe('answer-to(again)');
    second.ws.close();
  });

  it('bye → backend.hangup, the backend’s bye is delivered, close 1000', async () => {
    const h = await startServer();
    const c = await authed(h);
    c.send('bye', { reason: 'done talking' });
    expect((await c.closed).code).toBe(1000);
    expect(c.messages).toContainEqual({
      type: 'bye',
      session_id: 's-a',
      payload: { reason: 'done talking', state: 'Ended' },
    });
    expect(h.backend.calls).toContainEqual({
      method: 'hangup',
      sessionId: 's-a',
      arg: 'done talking',
    });
  });

  it('a bye from the backend is sent and the socket closed with 1000', async () => {
    const h = await startServer();
    const c = await authed(h);
    h.backend.sinks.get('s-a')!({
      type: 'bye',
      session_id: 's-a',
      payload: { reason: 'ttl', state: 'Ended' },
    });
    expect((await c.closed).code).toBe(1000);
    expect(c.messages).toEqual([
      { type: 'bye', session_id: 's-a', payload: { reason: 'ttl', state: 'Ended' } },
    ]);
    expect(h.backend.sinks.has('s-a')).toBe(false); // detached on close
  });
});

describe('signaling server: limits', () => {
  it('a message over maxMessageBytes closes the socket with 1009', async () => {
    const h = await startServer({ maxMessageBytes: 4096 });
    const c = await authed(h);
    c.send('offer', { sdp: 'x'.repeat(5000) });
    expect((await c.closed).code).toBe(1009);
    expect(h.backend.calls.filter((x) => x.method === 'offer')).toEqual([]);
  });

  it('over the rate → rate_limited and dropped; a flood of 3× the rate → 1008 and audit', async () => {
    const h = await startServer({ messagesPerSecond: 5 });
    const c = await authed(h); // hello used one token
    for (let i = 0; i < 5; i++) c.send('ice', { candidate: `c${i}` });
    const limited = await c.next('error');
    expect(limited.payload.code).toBe('rate_limited');
    await waitFor(() => h.backend.calls.filter((x) => x.method === 'ice').length === 4);
    for (let i = 0; i < 20; i++) c.send('ice', { candidate: `flood${i}` });
    expect((await c.closed).code).toBe(1008);
    // A token may have refilled while the test waited; never more.
    expect(h.backend.calls.filter((x) => x.method === 'ice').length).toBeLessThanOrEqual(5);
    expect(h.audits).toEqual([
      expect.objectContaining({
        event_type: 'security_violation',
        session_id: 's-a',
        details: expect.objectContaining({ reason: 'message_flood' }),
      }),
    ]);
  });

  it('a client that never answers pings is terminated', async () => {
    const h = await startServer({ pingIntervalMs: 200 });
    const silent = connect(h, { autoPong: false });
    const polite = await authed(h, 's-b');
    await silent.opened;
    silent.send('hello', { token: token('s-a') });
    const { code } = await silent.closed;
    expect(code).toBe(1006); // terminated: no closing handshake
    await new Promise((r) => setTimeout(r, 500));
    expect(polite.ws.readyState).toBe(WebSocket.OPEN);
    polite.ws.close();
  });
});

describe('signaling server: TLS and HTTP', () => {
  it('creates a self-signed certificate once (key 0600, dir 0700) and reuses it', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'signaling-tls-'));
    const tlsDir = path.join(dir, 'tls');
    const first = await startServer({ tls: { selfSignedDir: tlsDir } });
    const served1 = await servedFingerprint(first.port);
    expect(served1).toBe(first.server.certificateFingerprint);
    expect(statSync(path.join(tlsDir, 'key.pem')).mode & 0o777).toBe(0o600);
    expect(statSync(path.join(tlsDir, 'cert.pem')).mode & 0o777).toBe(0o644);
    expect(statSync(tlsDir).mode & 0o777).toBe(0o700);
    const cert = new X509Certificate(
      require('node:fs').readFileSync(path.join(tlsDir, 'cert.pem')) as Buffer,
    );
    expect(cert.subjectAltName).toContain('DNS:localhost');
    expect(cert.subjectAltName).toContain('IP Address:127.0.0.1');
    await first.server.close();
    open.splice(open.indexOf(first), 1);

    const second = await startServer({ tls: { selfSignedDir: tlsDir } });
    expect(await servedFingerprint(second.port)).toBe(served1);
    rmSync(dir, { recursive: true, force: true });
  });

  it('GET /call and /call.js serve the page with its CSP and no-store; /healthz ok; others 404', async () => {
    const h = await startServer();
    const page = await httpsGet(h.port, '/call');
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.headers['content-security-policy']).toBe(CALL_PAGE_CSP);
    expect(CALL_PAGE_CSP).toContain("default-src 'self'");
    expect(CALL_PAGE_CSP).toContain("connect-src 'self' wss:");
    expect(CALL_PAGE_CSP).toContain("media-src 'self' blob: mediastream:");
    expect(page.headers['cache-control']).toBe('no-store');
    expect(page.body).toContain('id="state"');
    expect(page.body).toContain('src="/call.js"');
    const script = await httpsGet(h.port, '/call.js');
    expect(script.status).toBe(200);
    expect(script.headers['content-type']).toMatch(/^text\/javascript/);
    expect(script.body).toContain('armorclawCall');
    expect(await httpsGet(h.port, '/healthz')).toMatchObject({ status: 200, body: 'ok' });
    expect((await httpsGet(h.port, '/etc/passwd')).status).toBe(404);
    expect((await httpsGet(h.port, '/call/../package.json')).status).toBe(404);
  });
});

function servedFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = https.get(
      { host: '127.0.0.1', port, path: '/healthz', rejectUnauthorized: false },
      (res) => {
        const socket = res.socket as import('node:tls').TLSSocket;
        resolve(socket.getPeerX509Certificate()!.fingerprint256);
        res.resume();
      },
    );
    req.on('error', reject);
  });
}

async function waitFor(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
