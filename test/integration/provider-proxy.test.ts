// The provider proxy (proxy/provider-proxy.ts) on real Unix sockets in a temporary directory,
// in front of the provider stub (test/support/provider-stub.ts) over loopback HTTP: keys swapped,
// streams relayed as they come, usage metered, and every refusal in the provider's own format.
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { ProviderProxy, type RunRoute } from '../../proxy/provider-proxy';
import { PROVIDERS, type Provider } from '../../proxy/providers';
import type { Usage } from '../../proxy/usage';
import { freePort } from '../support/ports';
import { ProviderStub, timedRequest, type TimedReply } from '../support/provider-stub';

const PLACEHOLDER = 'sk-armorclaw-placeholder';
const tokens: Record<string, string> = Object.fromEntries(
  PROVIDERS.map((p) => [`key-${p}`, `sk-real-${p}-${randomBytes(12).toString('hex')}`]),
);

let dir: string;
let stub: ProviderStub;
let proxy: ProviderProxy;
const runs = new Map<string, RunRoute>();
const usages: Array<{ run: string; usage: Usage }> = [];
const guardVerdicts = new Map<string, boolean | { reason: string }>();
let logText = '';

const socketOf = (run: string) => path.join(dir, `${run}.sock`);
const logSink = () =>
  new Writable({
    write(chunk: Buffer, _enc, done) {
      logText += chunk.toString();
      done();
    },
  });

function makeProxy(
  baseUrl: string,
  extra: { idleTimeoutMs?: number; extraCa?: string } = {},
): ProviderProxy {
  return new ProviderProxy({
    runs: { lookup: (run) => runs.get(run) },
    credentials: {
      tokenFor: (keyId) => {
        const token = tokens[keyId];
        if (token === undefined) throw new Error(`no key ${keyId}`);
        return token;
      },
    },
    baseUrls: Object.fromEntries(PROVIDERS.map((p) => [p, baseUrl])),
    onUsage: (run, usage) => usages.push({ run, usage }),
    guard: { allow: (run) => guardVerdicts.get(run) ?? true },
    log: pino({ level: 'debug' }, logSink()),
    ...extra,
  });
}

const call = (
  run: string,
  method: string,
  urlPath: string,
  body?: unknown,
  headers: Record<string, string> = {},
  onPiece?: (text: string) => void,
): Promise<TimedReply> =>
  timedRequest({ socketPath: socketOf(run) }, method, urlPath, body, headers, onPiece);

const json = (r: TimedReply) => JSON.parse(r.body);
const chat = (stream = false) => ({
  model: 'gpt-4o-mini',
  stream,
  messages: [{ role: 'user', content: 'hi' }],
});
const messages = (stream = false) => ({
  model: 'claude-haiku-4-5',
  max_tokens: 64,
  stream,
  messages: [{ role: 'user', content: 'hi' }],
});
const bearer = { authorization: `Bearer ${PLACEHOLDER}` };

/** Every header value and body the stub received, as one string. */
const everythingStubSaw = () =>
  stub.requests.map((r) => JSON.stringify(r.headers) + r.url + r.body).join('\n');

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'provider-proxy-'));
  stub = await ProviderStub.start();
  proxy = makeProxy(stub.url);
  for (const p of PROVIDERS) {
    runs.set(`run-${p}`, { active: true, provider: p, keyId: `key-${p}` });
    await proxy.listen(`run-${p}`, socketOf(`run-${p}`));
  }
});

afterAll(async () => {
  await proxy?.closeAll();
  await stub?.close();
  rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
  stub.reset();
  usages.length = 0;
  guardVerdicts.clear();
  for (const p of PROVIDERS) runs.get(`run-${p}`)!.active = true;
});

describe('forwarding with the real key', () => {
  it('answers an OpenAI chat request; the provider sees the real key, never the placeholder', async () => {
    const reply = await call('run-openai', 'POST', '/v1/chat/completions', chat(), bearer);
    expect(reply.status).toBe(200);
    expect(json(reply).choices[0].message.content).toBe('hello');
    expect(stub.requests).toHaveLength(1);
    expect(stub.requests[0]!.headers.authorization).toBe(`Bearer ${tokens['key-openai']}`);
    expect(everythingStubSaw()).not.toContain(PLACEHOLDER);
    expect(usages).toEqual([
      { run: 'run-openai', usage: { model: 'gpt-4o-mini', inputTokens: 11, outputTokens: 7 } },
    ]);
  });

  it('answers an Anthropic messages request with x-api-key and the agent’s anthropic-version', async () => {
    const reply = await call('run-anthropic', 'POST', '/v1/messages', messages(), {
      'x-api-key': PLACEHOLDER,
      'anthropic-version': '2023-06-01',
      'anthropic-beta': 'some-beta',
    });
    expect(reply.status).toBe(200);
    expect(json(reply).type).toBe('message');
    const seen = stub.requests[0]!.headers;
    expect(seen['x-api-key']).toBe(tokens['key-anthropic']);
    expect(seen['anthropic-version']).toBe('2023-06-01');
    expect(seen['anthropic-beta']).toBe('some-beta');
    expect(seen.authorization).toBeUndefined();
    expect(everythingStubSaw()).not.toContain(PLACEHOLDER);
    expect(usages[0]!.usage).toEqual({
      model: 'claude-haiku-4-5',
      inputTokens: 11,
      outputTokens: 7,
    });
  });

  it('sends Google its key as x-goog-api-key and drops a ?key= from the agent', async () => {
    const reply = await call(
      'run-google',
      'POST',
      `/v1beta/models/gemini-2.0-flash:generateContent?key=${PLACEHOLDER}`,
      { contents: [{ parts: [{ text: 'hi' }] }] },
      { 'x-goog-api-key': PLACEHOLDER },
    );
    expect(reply.status).toBe(200);
    expect(stub.requests[0]!.headers['x-goog-api-key']).toBe(tokens['key-google']);
    expect(stub.requests[0]!.url).toBe('/v1beta/models/gemini-2.0-flash:generateContent');
    expect(everythingStubSaw()).not.toContain(PLACEHOLDER);
    expect(usages[0]!.usage).toEqual({
      model: 'gemini-2.0-flash',
      inputTokens: 11,
      outputTokens: 7,
    });
  });

  it.each([
    ['openrouter', '/api/v1/chat/completions'],
    ['xai', '/v1/chat/completions'],
  ] as Array<[Provider, string]>)('bears %s its real key', async (provider, urlPath) => {
    const reply = await call(`run-${provider}`, 'POST', urlPath, chat(), bearer);
    expect(reply.status).toBe(200);
    expect(stub.requests[0]!.headers.authorization).toBe(`Bearer ${tokens[`key-${provider}`]}`);
  });

  it('never forwards the agent’s credentials, cookies or hop-by-hop headers', async () => {
    await call('run-openai', 'GET', '/v1/models', undefined, {
      authorization: 'Bearer agent-own-secret',
      'x-api-key': 'agent-own-secret',
      'x-goog-api-key': 'agent-own-secret',
      cookie: 'session=agent-own-secret',
      'proxy-authorization': 'Basic agent-own-secret',
      connection: 'x-hop',
      'x-hop': 'agent-own-secret',
      'user-agent': 'OpenAI/JS 5.0',
    });
    const seen = stub.requests[0]!.headers;
    expect(seen.authorization).toBe(`Bearer ${tokens['key-openai']}`);
    expect(seen['user-agent']).toBe('OpenAI/JS 5.0');
    expect(everythingStubSaw()).not.toContain('agent-own-secret');
  });

  it('passes a provider error through as the provider sent it, with no usage', async () => {
    stub.reset({ error: { status: 429, message: 'slow down from upstream' } });
    const reply = await call('run-openai', 'POST', '/v1/chat/completions', chat(), bearer);
    expect(reply.status).toBe(429);
    expect(json(reply)).toEqual({
      error: { message: 'slow down from upstream', type: 'server_error', code: null },
    });
    expect(usages).toEqual([]);
  });
});

describe('streams', () => {
  it('relays an OpenAI chat stream chunk by chunk and meters the usage it asked for', async () => {
    stub.reset({ chunks: 5, delayMs: 100, inputTokens: 21, outputTokens: 13 });
    const reply = await call('run-openai', 'POST', '/v1/chat/completions', chat(true), bearer);
    expect(reply.status).toBe(200);
    expect(reply.headers['content-type']).toBe('text/event-stream');
    const stubDone = stub.requests[0]!.finishedAt!;
    // The first piece was in the agent's hands while the stub was still pausing between chunks.
    expect(reply.pieces[0]!.at).toBeLessThan(stubDone - 300);
    expect(reply.pieces.length).toBeGreaterThanOrEqual(5);
    expect(reply.body).toContain('tok0');
    expect(reply.body).toContain('data: [DONE]');
    expect(JSON.parse(stub.requests[0]!.body).stream_options).toEqual({ include_usage: true });
    expect(usages.map((u) => u.usage)).toEqual([
      { model: 'gpt-4o-mini', inputTokens: 21, outputTokens: 13 },
    ]);
  });

  it('relays an Anthropic stream and meters message_start and message_delta', async () => {
    stub.reset({ chunks: 4, delayMs: 60, inputTokens: 40, outputTokens: 25 });
    const reply = await call('run-anthropic', 'POST', '/v1/messages', messages(true), {
      'x-api-key': PLACEHOLDER,
    });
    expect(reply.pieces[0]!.at).toBeLessThan(stub.requests[0]!.finishedAt! - 150);
    expect(reply.body).toContain('event: message_stop');
    expect(stub.requests[0]!.body).not.toContain('stream_options');
    expect(usages.map((u) => u.usage)).toEqual([
      { model: 'claude-haiku-4-5', inputTokens: 40, outputTokens: 25 },
    ]);
  });

  it('meters the responses API and Google streams', async () => {
    stub.reset({ chunks: 3, inputTokens: 5, outputTokens: 9 });
    await call('run-openai', 'POST', '/v1/responses', { model: 'gpt-4.1', stream: true }, bearer);
    await call(
      'run-google',
      'POST',
      '/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse',
      { contents: [] },
    );
    expect(stub.requests[1]!.url).toBe(
      '/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse',
    );
    expect(usages).toEqual([
      { run: 'run-openai', usage: { model: 'gpt-4.1', inputTokens: 5, outputTokens: 9 } },
      { run: 'run-google', usage: { model: 'gemini-2.5-flash', inputTokens: 5, outputTokens: 9 } },
    ]);
  });

  it('completes 50 concurrent streams, each metered', async () => {
    stub.reset({ chunks: 5, delayMs: 20, inputTokens: 3, outputTokens: 4 });
    const replies = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        i % 2
          ? call('run-openai', 'POST', '/v1/chat/completions', chat(true), bearer)
          : call('run-anthropic', 'POST', '/v1/messages', messages(true)),
      ),
    );
    for (const r of replies) {
      expect(r.status).toBe(200);
      expect(r.broken).toBe(false);
    }
    expect(usages).toHaveLength(50);
    const total = usages.reduce((s, u) => s + u.usage.inputTokens + u.usage.outputTokens, 0);
    expect(total).toBe(50 * 7);
  });

  it('cut() ends a run’s stream in flight with an error event and stops the provider', async () => {
    stub.reset({ chunks: 40, delayMs: 50, inputTokens: 30 });
    let cutDone: (n: number) => void;
    const cutCount = new Promise<number>((r) => (cutDone = r));
    const reply = await call('run-anthropic', 'POST', '/v1/messages', messages(true), {}, () =>
      cutDone(proxy.cut('run-anthropic', 'daily budget reached')),
    );
    expect(await cutCount).toBe(1);
    expect(reply.status).toBe(200);
    expect(reply.body).toContain('event: error');
    expect(reply.body).toContain('daily budget reached');
    expect(reply.body).not.toContain('message_stop');
    await waitFor(() => stub.requests[0]!.finishedAt !== undefined);
    expect(stub.requests[0]!.dropped).toBe(true);
    // What was seen before the cut is still counted.
    expect(usages.map((u) => u.usage)).toEqual([
      { model: 'claude-haiku-4-5', inputTokens: 30, outputTokens: 1 },
    ]);
    expect(proxy.cut('run-anthropic')).toBe(0);
  });
});

describe('refusals in the provider’s format', () => {
  it('refuses an inactive run with 403', async () => {
    runs.get('run-openai')!.active = false;
    runs.get('run-anthropic')!.active = false;
    runs.get('run-google')!.active = false;
    const openai = await call('run-openai', 'POST', '/v1/chat/completions', chat(), bearer);
    expect(openai.status).toBe(403);
    expect(json(openai)).toEqual({
      error: { message: expect.any(String), type: 'permission_error', code: 'inactive' },
    });
    const anthropic = await call('run-anthropic', 'POST', '/v1/messages', messages());
    expect(anthropic.status).toBe(403);
    expect(json(anthropic)).toEqual({
      type: 'error',
      error: { type: 'permission_error', message: expect.any(String) },
    });
    const google = await call('run-google', 'POST', '/v1beta/models/g:generateContent', {});
    expect(json(google)).toEqual({
      error: { code: 403, message: expect.any(String), status: 'PERMISSION_DENIED' },
    });
    expect(stub.requests).toEqual([]);
  });

  it('refuses a run the resolver does not know', async () => {
    runs.delete('run-xai');
    try {
      const reply = await call('run-xai', 'POST', '/v1/chat/completions', chat(), bearer);
      expect(reply.status).toBe(403);
    } finally {
      runs.set('run-xai', { active: true, provider: 'xai', keyId: 'key-xai' });
    }
    expect(stub.requests).toEqual([]);
  });

  it.each([
    ['POST', '/v1/files'],
    ['GET', '/v1/chat/completions'],
    ['POST', '/v1/../v1/fine_tuning/jobs'],
    ['POST', '/v1/chat/completions/extra'],
    ['GET', '/v1/models/..%2f..%2fadmin'],
  ])('refuses %s %s (not allowlisted) with 404', async (method, urlPath) => {
    const reply = await call('run-openai', method, urlPath, undefined, bearer);
    expect(reply.status).toBe(404);
    expect(json(reply).error.code).toBe('not_found');
    expect(stub.requests).toEqual([]);
  });

  it('refuses another provider’s path with 403', async () => {
    const reply = await call('run-anthropic', 'POST', '/v1/chat/completions', chat());
    expect(reply.status).toBe(403);
    expect(json(reply)).toEqual({
      type: 'error',
      error: { type: 'not_found_error', message: expect.stringContaining('anthropic') },
    });
    const google = await call('run-openai', 'POST', '/v1beta/models/g:generateContent', {});
    expect(google.status).toBe(403);
    expect(stub.requests).toEqual([]);
  });

  it('refuses with 429 when the guard says no, giving its reason', async () => {
    guardVerdicts.set('run-openai', { reason: 'monthly budget of $5 reached' });
    guardVerdicts.set('run-anthropic', false);
    const openai = await call('run-openai', 'POST', '/v1/chat/completions', chat(true), bearer);
    expect(openai.status).toBe(429);
    expect(json(openai)).toEqual({
      error: {
        message: 'monthly budget of $5 reached',
        type: 'insufficient_quota',
        code: 'budget',
      },
    });
    const anthropic = await call('run-anthropic', 'POST', '/v1/messages', messages());
    expect(anthropic.status).toBe(429);
    expect(json(anthropic).error.type).toBe('rate_limit_error');
    expect(stub.requests).toEqual([]);
  });

  it('refuses with 403 when the run’s key cannot be had', async () => {
    runs.set('run-xai', { active: true, provider: 'xai', keyId: 'key-gone' });
    try {
      const reply = await call('run-xai', 'POST', '/v1/chat/completions', chat(), bearer);
      expect(reply.status).toBe(403);
      expect(json(reply).error.code).toBe('no_credential');
    } finally {
      runs.set('run-xai', { active: true, provider: 'xai', keyId: 'key-xai' });
    }
    expect(stub.requests).toEqual([]);
  });

  it('answers 502 when the provider cannot be reached', async () => {
    const down = makeProxy(`http://127.0.0.1:${await freePort()}`);
    await down.listen('run-down', socketOf('run-down'));
    runs.set('run-down', { active: true, provider: 'anthropic', keyId: 'key-anthropic' });
    try {
      const reply = await call('run-down', 'POST', '/v1/messages', messages());
      expect(reply.status).toBe(502);
      expect(json(reply)).toEqual({
        type: 'error',
        error: { type: 'api_error', message: 'the bridge could not reach the provider' },
      });
    } finally {
      await down.closeAll();
      runs.delete('run-down');
    }
  });

  it('answers 504 when the provider stays silent past the idle limit', async () => {
    stub.reset({ delayMs: 1_000 });
    const slow = makeProxy(stub.url, { idleTimeoutMs: 200 });
    await slow.listen('run-slow', socketOf('run-slow'));
    runs.set('run-slow', { active: true, provider: 'google', keyId: 'key-google' });
    try {
      const reply = await call('run-slow', 'POST', '/v1beta/models/g:generateContent', {});
      expect(reply.status).toBe(504);
      expect(json(reply).error.status).toBe('DEADLINE_EXCEEDED');
    } finally {
      await slow.closeAll();
      runs.delete('run-slow');
    }
  });
});

describe('sockets', () => {
  it('serves each run on its own socket and removes it on close', async () => {
    const run = 'run-extra';
    runs.set(run, { active: true, provider: 'openai', keyId: 'key-openai' });
    await proxy.listen(run, socketOf(run));
    await expect(proxy.listen(run, socketOf(run))).rejects.toThrow(/already/);
    expect((await call(run, 'GET', '/v1/models', undefined, bearer)).status).toBe(200);
    await proxy.close(run);
    runs.delete(run);
    expect(existsSync(socketOf(run))).toBe(false);
    expect(proxy.runs()).not.toContain(run);
  });
});

describe('logs', () => {
  // Last, so it sees the lines of every request above, refusals, failures and cuts included.
  it('never hold a real token', () => {
    expect(logText).toContain('provider request');
    for (const token of Object.values(tokens)) expect(logText).not.toContain(token);
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('HTTPS to the provider', () => {
  let tlsStub: ProviderStub;
  let ca: string;

  beforeAll(async () => {
    // A self-signed certificate for 127.0.0.1, standing in for a gateway on a private CA.
    const key = path.join(dir, 'tls.key');
    const cert = path.join(dir, 'tls.crt');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '1',
        '-keyout',
        key,
        '-out',
        cert,
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
      ],
      { stdio: 'ignore' },
    );
    ca = readFileSync(cert, 'utf8');
    tlsStub = await ProviderStub.start({}, { tls: { key: readFileSync(key, 'utf8'), cert: ca } });
  });

  afterAll(async () => {
    await tlsStub?.close();
  });

  async function through(extraCa: string | undefined): Promise<TimedReply> {
    const p = makeProxy(tlsStub.url, { extraCa });
    await p.listen('run-tls', socketOf('run-tls'));
    runs.set('run-tls', { active: true, provider: 'openai', keyId: 'key-openai' });
    try {
      return await call('run-tls', 'POST', '/v1/chat/completions', chat(), bearer);
    } finally {
      await p.closeAll();
    }
  }

  it('forwards over TLS with the real key when the certificate is trusted', async () => {
    expect(tlsStub.url).toMatch(/^https:/);
    const reply = await through(ca);
    expect(reply.status).toBe(200);
    expect(tlsStub.requests.at(-1)!.headers.authorization).toBe(`Bearer ${tokens['key-openai']}`);
  });

  it('refuses an upstream whose certificate it cannot verify: 502, nothing sent', async () => {
    const before = tlsStub.requests.length;
    const reply = await through(undefined);
    expect(reply.status).toBe(502);
    expect(json(reply).error.message).toMatch(/could not reach the provider/);
    expect(tlsStub.requests.length).toBe(before);
  });
});
