// The reference agent's OpenClaw backend (agent/openclaw.ts): the run's OpenClaw config per
// provider, the gateway output filter, the gateway as a child process (a fake entry script), and
// the relay of room messages and agent.ask to OpenClaw's chat endpoint (a fake gateway: a small
// HTTP server standing in for OpenClaw on a loopback port).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { AgentAudio } from '../../agent/audio';
import { loadConfig } from '../../agent/config';
import { Secret, type Credentials } from '../../agent/credentials';
import { agentMethods } from '../../agent/methods';
import {
  gatewayLogLine,
  gatewayPort,
  OpenClawChat,
  openclawConfig,
  OpenClawGateway,
  OpenClawUnsupported,
  writeOpenClawConfig,
} from '../../agent/openclaw';
import type { HandlerContext } from '../../agent/rpc-peer';
import { PROXY_PLACEHOLDER_TOKEN, proxyBaseUrl } from '../../formats/secrets-file';
import { freePort } from '../support/ports';

const TEMPLATE: unknown = JSON.parse(
  readFileSync(path.join(__dirname, '..', '..', 'docker', 'openclaw', 'openclaw.json'), 'utf8'),
);

let dir: string;
let printed = '';

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'agent-openclaw-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

beforeEach(() => {
  printed = '';
  jest.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    printed += String(chunk);
    return true;
  });
});
afterEach(() => jest.restoreAllMocks());

const proxyCredentials = (provider: string, sdkBasePath: string): Credentials => ({
  mode: 'proxy',
  keyId: 'k1',
  provider,
  token: new Secret(PROXY_PLACEHOLDER_TOKEN),
  proxySocket: '/run/armorclaw/provider.sock',
  baseUrl: proxyBaseUrl(sdkBasePath),
});

describe('the run’s OpenClaw config', () => {
  const provider = (config: Record<string, any>) => config.models.providers.armorclaw;

  it.each([
    ['openai', '/v1', 'openai-completions', 'http://127.0.0.1:8089/v1'],
    ['xai', '/v1', 'openai-completions', 'http://127.0.0.1:8089/v1'],
    ['openrouter', '/api/v1', 'openai-completions', 'http://127.0.0.1:8089/api/v1'],
    ['anthropic', '', 'anthropic-messages', 'http://127.0.0.1:8089'],
    ['google', '', 'google-generative-ai', 'http://127.0.0.1:8089/v1beta'],
  ])('%s (SDK base path "%s"): api %s at %s', (name, sdkBasePath, api, baseUrl) => {
    const config = openclawConfig(TEMPLATE, {
      provider: name,
      baseUrl: proxyBaseUrl(sdkBasePath),
      model: 'm-1',
      apiKey: PROXY_PLACEHOLDER_TOKEN,
    });
    expect(Object.keys(config.models as object)).toEqual(
      expect.arrayContaining(['mode', 'providers', 'catalogRefresh']),
    );
    expect((config.models as any).mode).toBe('replace');
    expect(Object.keys((config.models as any).providers)).toEqual(['armorclaw']);
    expect(provider(config)).toEqual({
      baseUrl,
      apiKey: PROXY_PLACEHOLDER_TOKEN,
      api,
      models: [expect.objectContaining({ id: 'm-1', input: ['text'], contextWindow: 128000 })],
    });
    expect((config.agents as any).defaults.model).toEqual({ primary: 'armorclaw/m-1' });
    // The rest of the template stays: no heartbeat turns, gateway on loopback, chat endpoint on.
    expect((config.agents as any).defaults.heartbeat).toEqual({ every: '0m' });
    expect(config.gateway).toEqual((TEMPLATE as any).gateway);
    expect(config.plugins).toEqual((TEMPLATE as any).plugins);
    expect(gatewayPort(config)).toBe(18789);
  });

  it('leaves the template alone and refuses a provider it cannot set up', () => {
    const before = JSON.stringify(TEMPLATE);
    openclawConfig(TEMPLATE, {
      provider: 'openai',
      baseUrl: proxyBaseUrl('/v1'),
      model: 'x',
      apiKey: 'p',
    });
    expect(JSON.stringify(TEMPLATE)).toBe(before);
    expect(() =>
      openclawConfig(TEMPLATE, {
        provider: 'mistral',
        baseUrl: 'http://127.0.0.1:8089',
        model: 'x',
        apiKey: 'p',
      }),
    ).toThrow(OpenClawUnsupported);
    expect(() =>
      openclawConfig([], {
        provider: 'openai',
        baseUrl: 'http://127.0.0.1:8089',
        model: 'x',
        apiKey: 'p',
      }),
    ).toThrow(/not a JSON object/);
  });

  it('writes it 0600 in a 0700 directory, with the provider’s default model or ARMORCLAW_AGENT_MODEL', () => {
    const out = path.join(dir, 'cfg');
    const a = writeOpenClawConfig(out, TEMPLATE, proxyCredentials('anthropic', ''), undefined);
    expect(a.model).toBe('claude-3-5-haiku-latest');
    expect(statSync(out).mode & 0o777).toBe(0o700);
    expect(statSync(a.file).mode & 0o777).toBe(0o600);
    const written = JSON.parse(readFileSync(a.file, 'utf8'));
    expect(written.agents.defaults.model.primary).toBe('armorclaw/claude-3-5-haiku-latest');
    expect(written.models.providers.armorclaw.api).toBe('anthropic-messages');

    const b = writeOpenClawConfig(
      out,
      TEMPLATE,
      proxyCredentials('openrouter', '/api/v1'),
      'meta/llama-3',
    );
    expect(b.model).toBe('meta/llama-3');
    expect(JSON.parse(readFileSync(b.file, 'utf8')).agents.defaults.model.primary).toBe(
      'armorclaw/meta/llama-3',
    );
  });

  it('file mode is refused: OpenClaw runs behind the provider proxy only', () => {
    const file: Credentials = {
      mode: 'file',
      keyId: 'k',
      provider: 'openai',
      token: new Secret('sk-real'),
    };
    expect(() => writeOpenClawConfig(path.join(dir, 'no'), TEMPLATE, file, undefined)).toThrow(
      /proxy mode only/,
    );
  });

  it('ARMORCLAW_AGENT_BACKEND selects the backend', () => {
    expect(loadConfig({}).backend).toBe('reference');
    const c = loadConfig({
      ARMORCLAW_AGENT_BACKEND: 'openclaw',
      ARMORCLAW_OPENCLAW_READY_MS: '5000',
    });
    expect(c.backend).toBe('openclaw');
    expect(c.openclaw).toEqual({
      entry: '/opt/openclaw/node_modules/openclaw/openclaw.mjs',
      template: '/opt/armorclaw/openclaw.json',
      dir: '/tmp/armorclaw-openclaw',
      readyTimeoutMs: 5000,
    });
    expect(() => loadConfig({ ARMORCLAW_AGENT_BACKEND: 'hermes' })).toThrow(
      /ARMORCLAW_AGENT_BACKEND/,
    );
  });
});

describe('the gateway’s output', () => {
  const ts = '2026-12-04T04:09:47.519+00:00';

  it('keeps lifecycle, warnings and errors one line each, and never an answer', () => {
    expect(gatewayLogLine(`${ts} [gateway] ready`, 'stdout')).toBe('openclaw: [gateway] ready');
    expect(gatewayLogLine(`${ts} [gateway] loading configuration…`, 'stdout')).toBeUndefined();
    expect(
      gatewayLogLine(`${ts} The fake provider heard: a secret question`, 'stdout'),
    ).toBeUndefined();
    expect(gatewayLogLine('a secret answer with no tag', 'stdout')).toBeUndefined();
    expect(
      gatewayLogLine('- memory-core tool configured, enabled automatically.', 'stdout'),
    ).toBeUndefined();
    expect(
      gatewayLogLine(
        `${ts} [agents/agent-command] [agent] run x ended with stopReason=stop`,
        'stdout',
      ),
    ).toBeUndefined();
    const long = gatewayLogLine(
      `${ts} [session-sqlite] operation failed ${'x'.repeat(400)}`,
      'stdout',
    );
    expect(long).toMatch(/^openclaw: \[session-sqlite\] operation failed x+…$/);
    expect(long!.length).toBeLessThan(240);
    expect(gatewayLogLine(`${ts} [gateway] auth mode=none`, 'stderr')).toBe(
      'openclaw stderr: [gateway] auth mode=none',
    );
    expect(gatewayLogLine('Error: something broke', 'stderr')).toBe(
      'openclaw stderr: Error: something broke',
    );
    expect(gatewayLogLine('    at foo (file:///x.mjs:1:1) error', 'stderr')).toBeUndefined();
    expect(gatewayLogLine('\u001b[31m\u001b[0m', 'stderr')).toBeUndefined();
  });

  it('holds back any line that quotes a recent question or answer, even an error', () => {
    const question = 'what is the launch code for the moon base?';
    expect(
      gatewayLogLine(`${ts} [agent] error while answering: ${question}`, 'stderr', [question]),
    ).toBeUndefined();
  });
});

describe('the gateway process', () => {
  /** A stand-in for `openclaw.mjs gateway run`: prints like the gateway, serves /readyz. */
  const fakeEntry = (port: number, behaviour: 'serve' | 'exit' | 'never-ready') => {
    const file = path.join(dir, `fake-gateway-${randomBytes(3).toString('hex')}.js`);
    writeFileSync(
      file,
      `
const http = require('node:http');
const ts = () => new Date().toISOString();
console.log(ts() + ' [gateway] starting...');
console.log(ts() + ' THE ANSWER TEXT the gateway prints');
console.error(ts() + ' [gateway] a warning on stderr');
if (${JSON.stringify(behaviour)} === 'exit') process.exit(7);
if (process.env.ARMORCLAW_SECRET_ENV || !process.env.OPENCLAW_CONFIG_PATH) process.exit(9);
if (${JSON.stringify(behaviour)} === 'serve') {
  http.createServer((req, res) => res.end(req.url === '/readyz' ? 'ok' : 'no'))
    .listen(${port}, '127.0.0.1', () => console.log(ts() + ' [gateway] ready'));
} else {
  setInterval(() => undefined, 1000);
}
process.on('SIGTERM', () => { console.log(ts() + ' [gateway] received SIGTERM; shutting down'); process.exit(0); });
`,
    );
    return file;
  };

  const gateway = (entry: string, port: number, readyTimeoutMs = 10_000) =>
    new OpenClawGateway({
      node: process.execPath,
      entry,
      configPath: path.join(dir, 'openclaw.json'),
      port,
      readyTimeoutMs,
      env: { ...process.env, ARMORCLAW_SECRET_ENV: 'must not pass' },
      args: [],
    });

  it('starts, is ready on /readyz, filters its output, stops on SIGTERM', async () => {
    const port = await freePort();
    const g = gateway(fakeEntry(port, 'serve'), port);
    const exits: unknown[] = [];
    g.onExit((e) => exits.push(e));
    g.start();
    await g.ready;
    expect(g.readyNow).toBe(true);
    await g.stop();
    expect(exits).toEqual([{ code: 0, signal: null }]);
    expect(printed).toContain('openclaw: [gateway] starting...');
    expect(printed).toContain('openclaw stderr: [gateway] a warning on stderr');
    expect(printed).toMatch(/openclaw: gateway ready after \d+ ms/);
    expect(printed).not.toContain('THE ANSWER TEXT');
    expect(printed).toContain('openclaw: 1 output lines held back (log policy)');
  });

  it('an exit before ready rejects ready and is reported', async () => {
    const port = await freePort();
    const g = gateway(fakeEntry(port, 'exit'), port);
    const exited = new Promise((resolve) => g.onExit(resolve));
    g.start();
    await expect(g.ready).rejects.toThrow(/exited before it was ready/);
    expect(await exited).toEqual({ code: 7, signal: null });
    expect(printed).toContain('openclaw: gateway exited (code 7)');
  });

  it('not ready in time: ready rejects; stop() kills it', async () => {
    const port = await freePort();
    const g = gateway(fakeEntry(port, 'never-ready'), port, 600);
    g.start();
    await expect(g.ready).rejects.toThrow(/not ready within/);
    await g.stop(200);
    expect(g.isStopping).toBe(true);
  });
});

describe('room messages and agent.ask relayed to OpenClaw', () => {
  interface Seen {
    url: string;
    body: any;
  }
  const seen: Seen[] = [];
  let answer: { status: number; body: unknown } = { status: 200, body: {} };
  let server: http.Server;
  let port: number;
  const calls: Array<{ method: string; params: any }> = [];
  const ctx: HandlerContext = {
    notify: () => undefined,
    call: async (method, params) => {
      calls.push({ method, params });
      return { ok: true };
    },
  };
  const audio = new AgentAudio({
    socketPath: path.join(os.tmpdir(), 'no-audio.sock'),
    mode: { kind: 'echo' },
    log: () => undefined,
  });
  const completion = (content: string) => ({
    id: 'chatcmpl_x',
    object: 'chat.completion',
    model: 'openclaw/default',
    choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
  });

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      let raw = '';
      req.on('data', (c) => (raw += c));
      req.on('end', () => {
        seen.push({ url: req.url ?? '', body: JSON.parse(raw) });
        const body = JSON.stringify(answer.body);
        res.writeHead(answer.status, { 'content-type': 'application/json' });
        res.end(body);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
  beforeEach(() => {
    seen.length = 0;
    calls.length = 0;
    answer = { status: 200, body: completion('the gateway says hi') };
  });

  const chat = (p = port) =>
    new OpenClawChat({ target: { host: '127.0.0.1', port: p }, model: 'gpt-4o-mini' });
  let seq = 0;
  const event = (room: string, body: unknown, extra: Record<string, unknown> = {}) => {
    const id = `$e${++seq}-${randomBytes(3).toString('hex')}`;
    return {
      id,
      params: {
        seq,
        event: {
          type: 'm.room.message',
          room_id: room,
          sender: '@alice:example.org',
          content: { msgtype: 'm.text', body },
          event_id: id,
          ...extra,
        },
      },
    };
  };

  it('a room message → one non-streamed chat completion in the room’s session → matrix.send', async () => {
    const methods = agentMethods(audio, undefined, chat());
    const e = event('!a:example.org', 'what is up?');
    await methods.get('matrix.event')!(e.params, ctx);
    expect(seen).toEqual([
      {
        url: '/v1/chat/completions',
        body: {
          model: 'openclaw/default',
          stream: false,
          user: 'room:!a:example.org',
          messages: [{ role: 'user', content: 'what is up?' }],
        },
      },
    ]);
    expect(calls).toEqual([
      {
        method: 'matrix.send',
        params: { message: 'the gateway says hi', idempotency_key: `reply-${e.id}` },
      },
      { method: 'matrix.ack', params: { seq: e.params.seq } },
    ]);
    // Once per event: a redelivery is acknowledged, not answered again.
    calls.length = 0;
    await methods.get('matrix.event')!(e.params, ctx);
    expect(seen).toHaveLength(1);
    expect(calls).toEqual([{ method: 'matrix.ack', params: { seq: e.params.seq } }]);
    expect(printed).not.toContain('what is up?');
    expect(printed).not.toContain('the gateway says hi');
  });

  it('!ask strips its prefix, !echo stays local, notices and other types are not answered', async () => {
    const methods = agentMethods(audio, undefined, chat());
    await methods.get('matrix.event')!(event('!b:example.org', '!ask tell me').params, ctx);
    expect(seen.map((s) => s.body.messages[0].content)).toEqual(['tell me']);
    expect(seen[0]!.body.user).toBe('room:!b:example.org');
    seen.length = 0;
    calls.length = 0;
    await methods.get('matrix.event')!(event('!b:example.org', '!echo hi').params, ctx);
    const notice = event('!b:example.org', 'a notice');
    notice.params.event.content = { msgtype: 'm.notice', body: 'a notice' };
    await methods.get('matrix.event')!(notice.params, ctx);
    await methods.get('matrix.event')!(
      event('!b:example.org', 'x', { type: 'm.room.encrypted' }).params,
      ctx,
    );
    expect(seen).toEqual([]);
    expect(calls.filter((c) => c.method === 'matrix.send').map((c) => c.params.message)).toEqual([
      'echo: hi',
    ]);
    expect(calls.filter((c) => c.method === 'matrix.ack')).toHaveLength(3);
  });

  it('agent.ask goes to OpenClaw in a session of its own', async () => {
    const methods = agentMethods(audio, undefined, chat());
    expect(await methods.get('agent.ask')!({ question: 'q?' }, ctx)).toEqual({
      answer: 'the gateway says hi',
      model: 'gpt-4o-mini',
    });
    expect(seen[0]!.body.user).toBe('agent.ask');
  });

  it('gateway errors and an unreachable gateway become a short apology, not a crash', async () => {
    const methods = agentMethods(audio, undefined, chat());
    answer = {
      status: 500,
      body: { error: { message: 'internal: the secret question was …', type: 'api_error' } },
    };
    const e = event('!c:example.org', 'hello?');
    await methods.get('matrix.event')!(e.params, ctx);
    expect(calls[0]).toEqual({
      method: 'matrix.send',
      params: {
        message: 'Sorry, I could not answer that: OpenClaw answered with an error (500 api_error).',
        idempotency_key: `reply-${e.id}`,
      },
    });

    answer = { status: 200, body: { choices: [] } };
    expect((await chat().ask('q', 'room:x')).answer).toBe(
      'Sorry, I could not answer that: OpenClaw answered without text.',
    );

    const closed = await freePort();
    const down = await chat(closed).ask('q', 'room:x');
    expect(down).toEqual({
      answer: 'Sorry, I could not answer that: OpenClaw could not be reached (ECONNREFUSED).',
      model: 'gpt-4o-mini',
      ok: false,
    });
  });

  it('a question waits for the gateway to be ready; a gateway that never is gets an apology', async () => {
    let release!: () => void;
    const ready = new Promise<void>((r) => (release = r));
    const c = new OpenClawChat({ target: { host: '127.0.0.1', port }, model: 'm', ready });
    const pending = c.ask('early?', 'room:x');
    await new Promise((r) => setTimeout(r, 50));
    expect(seen).toEqual([]);
    release();
    expect((await pending).ok).toBe(true);

    const failed = Promise.reject(new Error('exited'));
    failed.catch(() => undefined);
    const dead = new OpenClawChat({
      target: { host: '127.0.0.1', port },
      model: 'm',
      ready: failed,
    });
    expect((await dead.ask('q', 'room:x')).answer).toBe(
      'Sorry, I could not answer that: OpenClaw is not running.',
    );
  });

  it('a slow gateway times out into an apology', async () => {
    const slow = http.createServer(() => undefined);
    await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve));
    try {
      const c = new OpenClawChat({
        target: { host: '127.0.0.1', port: (slow.address() as AddressInfo).port },
        model: 'm',
        timeoutMs: 200,
      });
      expect((await c.ask('q', 'room:x')).answer).toBe(
        'Sorry, I could not answer that: OpenClaw did not answer within 0 s.',
      );
    } finally {
      slow.closeAllConnections();
      await new Promise<void>((resolve) => slow.close(() => resolve()));
    }
  });
});
