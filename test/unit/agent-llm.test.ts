// The reference agent's model capability (agent/llm.ts), its secrets-file modes
// (agent/credentials.ts), its loopback forwarder (agent/forwarder.ts) and the methods that use
// them (agent/methods.ts), against the provider stub (test/support/provider-stub.ts). The stub
// stands in for the provider proxy on a Unix socket (to see exactly what the agent sends), or
// for the provider behind the real proxy (to cut a stream as the bridge does).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { AgentAudio } from '../../agent/audio';
import { ConfigError, loadConfig } from '../../agent/config';
import { readCredentials, Secret, SecretsError, type Credentials } from '../../agent/credentials';
import { startForwarder } from '../../agent/forwarder';
import { Llm, MAX_ANSWER_CHARS } from '../../agent/llm';
import { agentMethods, MAX_QUESTION_CHARS } from '../../agent/methods';
import type { HandlerContext } from '../../agent/rpc-peer';
import { SseReader, type SseEvent } from '../../agent/sse';
import { PROXY_PLACEHOLDER_TOKEN, proxyBaseUrl } from '../../formats/secrets-file';
import { ProviderProxy } from '../../proxy/provider-proxy';
import { freePort } from '../support/ports';
import { ProviderStub, timedRequest } from '../support/provider-stub';

const REAL_TOKEN = `sk-real-${randomBytes(16).toString('hex')}`;
const QUESTION = `what is the colour of ${randomBytes(6).toString('hex')}?`;
/** The stub's streamed answer in 3 pieces, whatever the provider. */
const STUB_ANSWER = 'tok0 tok1 tok2 ';
const GOOGLE_STUB_ANSWER = 'tok1 tok2 tok3 ';

let dir: string;
/** The stub as the agent sees the provider proxy: on a Unix socket, recording what it gets. */
let proxyStub: ProviderStub;
/** Everything the agent printed during the test. */
let printed = '';

const proxyCredentials = (provider: string, socketPath = proxyStub.socketPath!): Credentials => ({
  mode: 'proxy',
  keyId: 'k1',
  provider,
  token: new Secret(PROXY_PLACEHOLDER_TOKEN),
  proxySocket: socketPath,
  baseUrl: proxyBaseUrl('/v1'),
});
const fileCredentials = (provider: string): Credentials => ({
  mode: 'file',
  keyId: 'k1',
  provider,
  token: new Secret(REAL_TOKEN),
});

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'agent-llm-'));
  proxyStub = await ProviderStub.start({}, { socketPath: path.join(dir, 'provider.sock') });
});

afterAll(async () => {
  await proxyStub?.close();
  rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
  proxyStub.reset();
  jest.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    printed += String(chunk);
    return true;
  });
});

afterEach(() => jest.restoreAllMocks());

describe('the secrets file', () => {
  const write = (content: unknown): string => {
    const file = path.join(dir, `credentials-${randomBytes(4).toString('hex')}.json`);
    writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
    return file;
  };
  const proxyFile = {
    mode: 'proxy',
    key_id: 'k1',
    provider: 'openai',
    token: PROXY_PLACEHOLDER_TOKEN,
    proxy_socket: '/run/armorclaw/provider.sock',
    base_url: 'http://127.0.0.1:8089/v1',
  };
  const refusal = (content: unknown): string => {
    try {
      readCredentials(write(content));
    } catch (err) {
      expect(err).toBeInstanceOf(SecretsError);
      return (err as Error).message;
    }
    throw new Error('the secrets file was accepted');
  };

  it('reads proxy mode: the proxy socket, the base URL, the placeholder kept as a Secret', () => {
    const c = readCredentials(write(proxyFile));
    expect(c).toMatchObject({
      mode: 'proxy',
      keyId: 'k1',
      provider: 'openai',
      proxySocket: '/run/armorclaw/provider.sock',
      baseUrl: 'http://127.0.0.1:8089/v1',
    });
    expect(c.token.reveal()).toBe(PROXY_PLACEHOLDER_TOKEN);
    expect(JSON.stringify(c)).not.toContain(PROXY_PLACEHOLDER_TOKEN);
  });

  it('reads file mode, and a file without a mode as file mode', () => {
    const file = { key_id: 'k1', provider: 'anthropic', token: REAL_TOKEN };
    for (const doc of [file, { ...file, mode: 'file' }]) {
      const c = readCredentials(write(doc));
      expect(c.mode).toBe('file');
      expect(c.provider).toBe('anthropic');
      expect(c.token.reveal()).toBe(REAL_TOKEN);
      expect(c).not.toHaveProperty('proxySocket');
    }
  });

  it('refuses a bad mode, socket or base URL, never quoting the file', () => {
    const secret = `sk-${randomBytes(8).toString('hex')}`;
    const cases: Array<[unknown, RegExp]> = [
      [{ ...proxyFile, mode: secret }, /mode is not one of proxy, file/],
      [{ ...proxyFile, proxy_socket: undefined }, /without an absolute proxy_socket/],
      [{ ...proxyFile, proxy_socket: `relative/${secret}` }, /without an absolute proxy_socket/],
      [{ ...proxyFile, base_url: `http://${secret}:8089/v1` }, /base_url is not http:\/\/127/],
      [{ ...proxyFile, base_url: 'http://127.0.0.1:9999/v1' }, /base_url/],
      [{ ...proxyFile, base_url: 'https://127.0.0.1:8089/v1' }, /base_url/],
      [{ ...proxyFile, base_url: secret }, /base_url/],
      [{ ...proxyFile, base_url: 42 }, /base_url/],
      [`{"token": "${secret}"`, /not valid JSON/],
    ];
    for (const [content, reason] of cases) {
      const message = refusal(content);
      expect(message).toMatch(reason);
      expect(message).not.toContain(secret);
    }
  });
});

describe('ARMORCLAW_AGENT_MODEL', () => {
  it('names the model, or leaves the choice to the provider default', () => {
    expect(loadConfig({ ARMORCLAW_AGENT_MODEL: ' openai/gpt-4o ' }).model).toBe('openai/gpt-4o');
    expect(loadConfig({ ARMORCLAW_AGENT_MODEL: 'ft:gpt-4o:org::id' }).model).toBe(
      'ft:gpt-4o:org::id',
    );
    expect(loadConfig({}).model).toBeUndefined();
  });

  it('refuses what is not a model id', () => {
    for (const bad of ['gpt 4o', 'a?b', '../x', 'm'.repeat(257)]) {
      expect(() => loadConfig({ ARMORCLAW_AGENT_MODEL: bad })).toThrow(ConfigError);
    }
  });
});

describe('asking in proxy mode (the stub as the proxy socket)', () => {
  const cases: Array<{
    provider: string;
    url: string;
    model: string;
    keyHeader: string;
    keyValue: string;
    answer: string;
  }> = [
    {
      provider: 'openai',
      url: '/v1/chat/completions',
      model: 'gpt-4o-mini',
      keyHeader: 'authorization',
      keyValue: `Bearer ${PROXY_PLACEHOLDER_TOKEN}`,
      answer: STUB_ANSWER,
    },
    {
      provider: 'xai',
      url: '/v1/chat/completions',
      model: 'grok-2-latest',
      keyHeader: 'authorization',
      keyValue: `Bearer ${PROXY_PLACEHOLDER_TOKEN}`,
      answer: STUB_ANSWER,
    },
    {
      provider: 'openrouter',
      url: '/api/v1/chat/completions',
      model: 'openai/gpt-4o-mini',
      keyHeader: 'authorization',
      keyValue: `Bearer ${PROXY_PLACEHOLDER_TOKEN}`,
      answer: STUB_ANSWER,
    },
    {
      provider: 'anthropic',
      url: '/v1/messages',
      model: 'claude-3-5-haiku-latest',
      keyHeader: 'x-api-key',
      keyValue: PROXY_PLACEHOLDER_TOKEN,
      // The stub's first event is message_start: text starts with the second.
      answer: 'tok1 tok2 ',
    },
    {
      provider: 'google',
      url: '/v1beta/models/gemini-1.5-flash:streamGenerateContent?alt=sse',
      model: 'gemini-1.5-flash',
      keyHeader: 'x-goog-api-key',
      keyValue: PROXY_PLACEHOLDER_TOKEN,
      answer: GOOGLE_STUB_ANSWER,
    },
  ];

  it.each(cases)(
    '$provider: streams $url with the placeholder as its only key',
    async ({ provider, url, model, keyHeader, keyValue, answer }) => {
      const reply = await new Llm(proxyCredentials(provider)).ask(QUESTION);
      expect(reply).toEqual({ answer, model, ok: true });

      expect(proxyStub.requests).toHaveLength(1);
      const seen = proxyStub.requests[0]!;
      expect(seen.method).toBe('POST');
      expect(seen.url).toBe(url);
      expect(seen.headers.accept).toBe('text/event-stream');
      // The placeholder, in the provider's own header, and no other credential header at all.
      const credentialHeaders = ['authorization', 'x-api-key', 'x-goog-api-key', 'api-key'];
      const sent = Object.fromEntries(
        credentialHeaders
          .filter((h) => seen.headers[h] !== undefined)
          .map((h) => [h, seen.headers[h]]),
      );
      expect(sent).toEqual({ [keyHeader]: keyValue });

      const body = JSON.parse(seen.body);
      if (provider === 'google') {
        expect(body).toEqual({ contents: [{ role: 'user', parts: [{ text: QUESTION }] }] });
      } else {
        expect(body).toMatchObject({
          model,
          stream: true,
          messages: [{ role: 'user', content: QUESTION }],
        });
      }
      if (provider === 'anthropic') {
        expect(seen.headers['anthropic-version']).toBe('2023-06-01');
        expect(body.max_tokens).toBeGreaterThan(0);
      }
    },
  );

  it('asks the model it was given instead of the default', async () => {
    const reply = await new Llm(proxyCredentials('google'), { model: 'gemini-2.5-pro' }).ask('hi');
    expect(reply).toMatchObject({ model: 'gemini-2.5-pro', ok: true });
    expect(proxyStub.requests[0]!.url).toBe(
      '/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse',
    );
  });

  it.each([
    ['openai', 'slow down there'],
    ['anthropic', 'overloaded, try later'],
    ['google', 'quota exhausted'],
  ])('%s: a provider error becomes "model error (429): <message>"', async (provider, message) => {
    proxyStub.reset({ error: { status: 429, message } });
    const reply = await new Llm(proxyCredentials(provider)).ask(QUESTION);
    expect(reply).toMatchObject({ answer: `model error (429): ${message}`, ok: false });
  });

  it('a stream that breaks off is reported with what had arrived', async () => {
    proxyStub.reset({ chunks: 5, breakAfter: 2 });
    const openai = await new Llm(proxyCredentials('openai')).ask(QUESTION);
    expect(openai).toMatchObject({
      answer: "tok0 tok1 \n\n(the model's answer was cut short)",
      ok: false,
    });
    proxyStub.reset({ breakAfter: 0 });
    const anthropic = await new Llm(proxyCredentials('anthropic')).ask(QUESTION);
    expect(anthropic).toMatchObject({
      answer: "the model's answer broke off before any text arrived",
      ok: false,
    });
  });

  it('a silent model is given up on at the time limit', async () => {
    proxyStub.reset({ delayMs: 3000 });
    const t0 = Date.now();
    const reply = await new Llm(proxyCredentials('openai'), { timeoutMs: 1000 }).ask(QUESTION);
    expect(reply).toMatchObject({ answer: 'the model did not answer within 1 s', ok: false });
    expect(Date.now() - t0).toBeLessThan(2500);
  });

  it('an answer stops at MAX_ANSWER_CHARS', async () => {
    const longAnswer = MAX_ANSWER_CHARS + 1000;
    // Each piece of the stub's stream is "tok<i> ": enough pieces to pass the limit.
    proxyStub.reset({ chunks: Math.ceil(longAnswer / 5) });
    const reply = await new Llm(proxyCredentials('openai')).ask(QUESTION);
    expect(reply.ok).toBe(true);
    expect(reply.answer).toMatch(/\n\n\(the answer was truncated\)$/);
    expect(reply.answer.length).toBe(MAX_ANSWER_CHARS + '\n\n(the answer was truncated)'.length);
  });

  it('a missing proxy socket, or an unknown provider, is an answer that says so', async () => {
    const gone = await new Llm(proxyCredentials('openai', path.join(dir, 'nothing.sock'))).ask(
      QUESTION,
    );
    expect(gone).toMatchObject({ answer: 'the model could not be reached (ENOENT)', ok: false });
    const unknown = await new Llm(proxyCredentials('mistral')).ask(QUESTION);
    expect(unknown.ok).toBe(false);
    expect(unknown.answer).toBe(
      'this agent cannot ask provider "mistral"; it speaks openai, xai, openrouter, anthropic, google',
    );
    expect(proxyStub.requests).toEqual([]);
  });

  it('prints neither the question, nor the answer, nor the key', async () => {
    printed = '';
    await new Llm(proxyCredentials('openai')).ask(QUESTION);
    await new Llm(fileCredentials('openai'), {
      origin: `http://127.0.0.1:${await freePort()}`,
    }).ask(QUESTION);
    expect(printed).toContain(`question ${QUESTION.length} chars`);
    expect(printed).toContain(`answered ${STUB_ANSWER.length} chars`);
    expect(printed).not.toContain(QUESTION);
    expect(printed).not.toContain('tok1');
    expect(printed).not.toContain(PROXY_PLACEHOLDER_TOKEN);
    expect(printed).not.toContain(REAL_TOKEN);
  });
});

describe('asking in file mode', () => {
  let provider: ProviderStub;
  beforeAll(async () => (provider = await ProviderStub.start()));
  afterAll(async () => provider?.close());

  it('sends the real key to the provider', async () => {
    const reply = await new Llm(fileCredentials('openai'), { origin: provider.url }).ask(QUESTION);
    expect(reply).toEqual({ answer: STUB_ANSWER, model: 'gpt-4o-mini', ok: true });
    expect(provider.requests[0]!.headers.authorization).toBe(`Bearer ${REAL_TOKEN}`);
  });

  it('an unreachable provider is an answer naming the error', async () => {
    const port = await freePort();
    const reply = await new Llm(fileCredentials('anthropic'), {
      origin: `http://127.0.0.1:${port}`,
    }).ask(QUESTION);
    expect(reply).toEqual({
      answer: 'the model could not be reached (ECONNREFUSED)',
      model: 'claude-3-5-haiku-latest',
      ok: false,
    });
  });
});

describe('through the real provider proxy', () => {
  let provider: ProviderStub;
  let proxy: ProviderProxy;
  const socketOf = (family: string) => path.join(dir, `proxy-${family}.sock`);
  const runs = new Map<
    string,
    { active: boolean; provider: 'openai' | 'anthropic' | 'google'; keyId: string }
  >();

  beforeAll(async () => {
    provider = await ProviderStub.start();
    proxy = new ProviderProxy({
      runs: { lookup: (run) => runs.get(run) },
      credentials: { tokenFor: () => REAL_TOKEN },
      baseUrls: { openai: provider.url, anthropic: provider.url, google: provider.url },
      log: pino({ level: 'silent' }),
    });
    for (const p of ['openai', 'anthropic', 'google'] as const) {
      runs.set(p, { active: true, provider: p, keyId: 'k1' });
      await proxy.listen(p, socketOf(p));
    }
  });
  afterAll(async () => {
    await proxy?.closeAll();
    await provider?.close();
  });

  it('the provider gets the real key; the answer is the stream', async () => {
    provider.reset();
    const reply = await new Llm(proxyCredentials('anthropic', socketOf('anthropic'))).ask(QUESTION);
    expect(reply).toMatchObject({ answer: 'tok1 tok2 ', ok: true });
    expect(provider.requests[0]!.headers['x-api-key']).toBe(REAL_TOKEN);
    expect(JSON.stringify(provider.requests[0]!.headers)).not.toContain(PROXY_PLACEHOLDER_TOKEN);
  });

  it.each([
    ['openai', 'model error (cut): budget spent'],
    ['anthropic', 'model error (rate_limit_error): budget spent'],
    ['google', 'model error (429): budget spent'],
  ])(
    '%s: a stream the bridge cuts ends in its error event, the answer says so',
    async (family, answer) => {
      provider.reset({ chunks: 50, delayMs: 40 });
      const asking = new Llm(proxyCredentials(family, socketOf(family))).ask(QUESTION);
      // Cut once the stream is flowing: a few pieces have passed.
      await waitFor(() => provider.requests.length === 1);
      await new Promise((r) => setTimeout(r, 200));
      expect(proxy.cut(family, 'budget spent')).toBe(1);
      expect(await asking).toMatchObject({ answer, ok: false });
    },
  );
});

describe('the loopback forwarder', () => {
  it('pipes TCP connections to the proxy socket, streams included', async () => {
    const forwarder = await startForwarder(proxyStub.socketPath!, 0);
    try {
      const target = { host: '127.0.0.1', port: forwarder.port };
      const models = await timedRequest(target, 'GET', '/v1/models');
      expect(models.status).toBe(200);
      expect(JSON.parse(models.body)).toEqual({
        object: 'list',
        data: [{ id: 'stub-model', object: 'model' }],
      });
      proxyStub.reset({ chunks: 4, delayMs: 30 });
      const stream = await timedRequest(target, 'POST', '/v1/chat/completions', {
        model: 'm',
        stream: true,
        messages: [],
      });
      expect(stream.broken).toBe(false);
      expect(stream.body).toContain('tok3');
      expect(stream.body.trimEnd().endsWith('data: [DONE]')).toBe(true);
      // Delivered as it came: the pieces arrived spread over the stub's pauses.
      expect(stream.pieces.length).toBeGreaterThan(1);
      expect(proxyStub.requests.map((r) => r.url)).toEqual(['/v1/chat/completions']);
    } finally {
      await forwarder.close();
    }
  });

  it('refuses a port already taken, and drops connections on close', async () => {
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as net.AddressInfo).port;
    await expect(startForwarder(proxyStub.socketPath!, port)).rejects.toMatchObject({
      code: 'EADDRINUSE',
    });
    taken.close();

    const forwarder = await startForwarder(proxyStub.socketPath!, 0);
    const client = net.createConnection({ host: '127.0.0.1', port: forwarder.port });
    await new Promise((r) => client.once('connect', r));
    const closed = new Promise((r) => client.once('close', r));
    await forwarder.close();
    await closed;
    // Nothing listens any more.
    const again = net.createConnection({ host: '127.0.0.1', port: forwarder.port });
    await expect(
      new Promise((resolve, reject) => {
        again.once('connect', resolve);
        again.once('error', reject);
      }),
    ).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('without a proxy socket, closes the connection and says so once', async () => {
    printed = '';
    const forwarder = await startForwarder(path.join(dir, 'absent.sock'), 0);
    try {
      for (let i = 0; i < 2; i++) {
        await expect(
          timedRequest({ host: '127.0.0.1', port: forwarder.port }, 'GET', '/v1/models'),
        ).rejects.toMatchObject({ code: 'ECONNRESET' });
      }
      expect(printed.match(/forwarder: provider proxy unavailable \(ENOENT\)/g)).toHaveLength(1);
    } finally {
      await forwarder.close();
    }
  });
});

describe('agent.ask and !ask', () => {
  const audio = new AgentAudio({
    socketPath: path.join(os.tmpdir(), 'no-audio.sock'),
    mode: { kind: 'echo' },
    log: () => undefined,
  });
  const calls: Array<{ method: string; params: any }> = [];
  const ctx: HandlerContext = {
    notify: () => undefined,
    call: async (method, params) => {
      calls.push({ method, params });
      return { ok: true };
    },
  };
  beforeEach(() => (calls.length = 0));

  it('agent.ask answers {answer, model}; a bad question is -32602', async () => {
    const methods = agentMethods(audio, new Llm(proxyCredentials('openai')));
    const ask = methods.get('agent.ask')!;
    expect(await ask({ question: QUESTION }, ctx)).toEqual({
      answer: STUB_ANSWER,
      model: 'gpt-4o-mini',
    });
    for (const question of ['', '   ', 'x'.repeat(MAX_QUESTION_CHARS + 1), 42, undefined]) {
      await expect(Promise.resolve().then(() => ask({ question }, ctx))).rejects.toMatchObject({
        code: -32602,
      });
    }
    expect(await ask({ question: 'x'.repeat(MAX_QUESTION_CHARS) }, ctx)).toMatchObject({
      answer: STUB_ANSWER,
    });
    // Without a model (unusable secrets) the method is not offered at all.
    expect(agentMethods(audio).has('agent.ask')).toBe(false);
  });

  it('!ask answers in the room once, keyed by the event, however often it is delivered', async () => {
    const methods = agentMethods(audio, new Llm(proxyCredentials('openai')));
    const onEvent = methods.get('matrix.event')!;
    proxyStub.reset({ delayMs: 50 });
    const eventId = `$ask-${randomBytes(4).toString('hex')}:example.org`;
    const event = {
      event_id: eventId,
      sender: '@alice:example.org',
      content: { body: `!ask ${QUESTION}` },
    };
    // The bridge pushes an unacknowledged event again while the first answer is on its way.
    await Promise.all([onEvent({ seq: 7, event }, ctx), onEvent({ seq: 7, event }, ctx)]);
    await onEvent({ seq: 7, event }, ctx);
    expect(proxyStub.requests).toHaveLength(1);
    expect(calls).toEqual([
      {
        method: 'matrix.send',
        params: { message: STUB_ANSWER, idempotency_key: `reply-${eventId}` },
      },
      { method: 'matrix.ack', params: { seq: 7 } },
      { method: 'matrix.ack', params: { seq: 7 } },
    ]);

    calls.length = 0;
    const empty = { event_id: `${eventId}-2`, content: { body: '!ask   ' } };
    await onEvent({ seq: 8, event: empty }, ctx);
    expect(calls[0]).toEqual({
      method: 'matrix.send',
      params: {
        message: `usage: !ask <question> (1 to ${MAX_QUESTION_CHARS} characters)`,
        idempotency_key: `reply-${eventId}-2`,
      },
    });
  });
});

describe('the SSE reader', () => {
  it('reads the same events whatever the chunk boundaries (CRLF, UTF-8 split)', () => {
    const text =
      'event: content_block_delta\r\ndata: {"text":"héllo ✓"}\r\n\r\n: keep-alive\r\n\r\n' +
      'data: line one\ndata: line two\n\ndata: [DONE]\r\r';
    const bytes = Buffer.from(text, 'utf8');
    const expected: SseEvent[] = [
      { event: 'content_block_delta', data: '{"text":"héllo ✓"}' },
      { event: '', data: 'line one\nline two' },
      { event: '', data: '[DONE]' },
    ];
    const whole = new SseReader();
    expect([...whole.push(bytes), ...whole.end()]).toEqual(expected);
    for (let i = 1; i < bytes.length; i++) {
      const reader = new SseReader();
      const events = [
        ...reader.push(bytes.subarray(0, i)),
        ...reader.push(bytes.subarray(i)),
        ...reader.end(),
      ];
      expect(events).toEqual(expected);
    }
  });

  it('counts an event cut off before its blank line', () => {
    const reader = new SseReader();
    expect(reader.push(Buffer.from('data: {"a":1}'))).toEqual([]);
    expect(reader.end()).toEqual([{ event: '', data: '{"a":1}' }]);
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}
