/**
 * The OpenClaw backend (`ARMORCLAW_AGENT_BACKEND=openclaw`, the entrypoint of the image
 * `armorclaw/openclaw:<version>`): the reference agent stays the bridge's client (secrets ack,
 * heartbeats, `matrix.event` → `matrix.send`, audio) and puts OpenClaw's gateway behind it.
 *
 * - `openclawConfig` writes the run's OpenClaw config from the template baked into the image
 *   (docker/openclaw/openclaw.json): one provider, `armorclaw`, at the loopback forwarder
 *   (127.0.0.1:8089 → the bridge's provider proxy) with the proxy's placeholder key, speaking the
 *   run's provider's API, and the run's model as the default agent's model.
 * - `OpenClawGateway` runs `node <openclaw.mjs> gateway run` as a child process with
 *   OPENCLAW_CONFIG_PATH at that file, waits for its `/readyz`, reports its exit, stops it, and
 *   keeps its output out of the container log except one line per warning or error (the gateway
 *   prints every answer to its stdout; those lines never pass).
 * - `OpenClawChat` asks the gateway's OpenAI-compatible `/v1/chat/completions` (non-streamed),
 *   with the OpenAI `user` field naming the conversation: OpenClaw derives a stable session from
 *   it, so each Matrix room is one OpenClaw session. Failures become a short apology for the
 *   person who asked, never an exception.
 *
 * Like the rest of the agent it never prints a question, an answer or the token: lengths and
 * outcomes only.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { Credentials } from './credentials';
import { defaultModelFor, MAX_ANSWER_CHARS, type ChatMessage, type LlmAnswer } from './llm';
import { errorCode, log } from './log';

/** The provider id the run's model is configured under in OpenClaw. */
export const OPENCLAW_PROVIDER_ID = 'armorclaw';
/** The OpenClaw agent the chat endpoint is asked for (the configured default agent). */
export const OPENCLAW_AGENT_MODEL = 'openclaw/default';
/** The gateway port when the template does not name one. */
export const OPENCLAW_DEFAULT_PORT = 18789;

/** The provider of a run OpenClaw cannot be set up for, or a mode it is not run in. */
export class OpenClawUnsupported extends Error {}

/** What OpenClaw's custom provider block needs to know about the run. */
export interface OpenClawProviderSettings {
  /** The run's provider, from the secrets file. */
  provider: string;
  /** The secrets file's base_url: the loopback forwarder plus the provider's API prefix. */
  baseUrl: string;
  /** The model to use (ARMORCLAW_AGENT_MODEL or the provider's default). */
  model: string;
  /** The proxy's placeholder key (the proxy drops it and adds the real one). */
  apiKey: string;
}

/** OpenClaw's request adapter (`models.providers.*.api`) and base URL for each provider. */
function adapterFor(provider: string, baseUrl: string): { api: string; baseUrl: string } {
  const base = baseUrl.replace(/\/+$/, '');
  switch (provider) {
    case 'openai':
    case 'xai':
    case 'openrouter':
      // POST {baseUrl}/chat/completions, Authorization: Bearer <placeholder>.
      return { api: 'openai-completions', baseUrl: base };
    case 'anthropic':
      // Anthropic's SDK: POST {baseUrl}/v1/messages, x-api-key: <placeholder>.
      return { api: 'anthropic-messages', baseUrl: base };
    case 'google':
      // POST {baseUrl}/models/<model>:streamGenerateContent?alt=sse, x-goog-api-key.
      return { api: 'google-generative-ai', baseUrl: `${base}/v1beta` };
    default:
      throw new OpenClawUnsupported(
        `provider ${JSON.stringify(provider)} is not one OpenClaw is set up for here (openai, xai, openrouter, anthropic, google)`,
      );
  }
}

/** The model of an OpenClaw run: ARMORCLAW_AGENT_MODEL, else the provider's default. */
export function openclawModel(provider: string, model: string | undefined): string {
  const chosen = model ?? defaultModelFor(provider);
  if (!chosen) {
    throw new OpenClawUnsupported(`no default model for provider ${JSON.stringify(provider)}`);
  }
  return chosen;
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * The run's OpenClaw config: the template with `models.providers` replaced by the one provider
 * `armorclaw` for this run and the default agent's model pointing at it. The template itself is
 * not changed.
 */
export function openclawConfig(
  template: unknown,
  settings: OpenClawProviderSettings,
): Record<string, unknown> {
  if (!isObject(template)) throw new Error('the OpenClaw config template is not a JSON object');
  const config = structuredClone(template);
  const { api, baseUrl } = adapterFor(settings.provider, settings.baseUrl);
  const models = isObject(config.models) ? config.models : {};
  config.models = {
    ...models,
    mode: 'replace',
    providers: {
      [OPENCLAW_PROVIDER_ID]: {
        baseUrl,
        apiKey: settings.apiKey,
        api,
        models: [
          {
            id: settings.model,
            name: `${settings.model} via the ArmorClaw provider proxy`,
            input: ['text'],
            contextWindow: 128000,
            maxTokens: 4096,
          },
        ],
      },
    },
  };
  const agents = isObject(config.agents) ? config.agents : {};
  const defaults = isObject(agents.defaults) ? agents.defaults : {};
  const model = isObject(defaults.model) ? defaults.model : {};
  config.agents = {
    ...agents,
    defaults: {
      ...defaults,
      model: { ...model, primary: `${OPENCLAW_PROVIDER_ID}/${settings.model}` },
    },
  };
  return config;
}

/** The gateway's port as the config names it. */
export function gatewayPort(config: Record<string, unknown>): number {
  const port = isObject(config.gateway) ? config.gateway.port : undefined;
  return typeof port === 'number' && Number.isInteger(port) && port > 0 && port < 65536
    ? port
    : OPENCLAW_DEFAULT_PORT;
}

/**
 * Writes the run's config as `<dir>/openclaw.json` (0600 in a 0700 directory, on the run's
 * tmpfs); returns its path. Proxy mode only: in file mode the agent holds the real key, and
 * OpenClaw is run only behind the provider proxy.
 */
export function writeOpenClawConfig(
  dir: string,
  template: unknown,
  credentials: Credentials,
  model: string | undefined,
): { file: string; config: Record<string, unknown>; model: string } {
  if (credentials.mode !== 'proxy') {
    throw new OpenClawUnsupported(
      'OpenClaw runs in proxy mode only (secrets_mode "proxy"); this run is in file mode',
    );
  }
  const chosen = openclawModel(credentials.provider, model);
  const config = openclawConfig(template, {
    provider: credentials.provider,
    baseUrl: credentials.baseUrl,
    model: chosen,
    apiKey: credentials.token.reveal(),
  });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const file = path.join(dir, 'openclaw.json');
  writeFileSync(file, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  return { file, config, model: chosen };
}

// --- the gateway's output ----------------------------------------------------------------------

/** Longest part of a gateway line that is passed on. */
const MAX_LINE_CHARS = 200;
/** The gateway's own lines: `<ISO time> [<subsystem>] <message>`. */
const TAGGED = /^\d{4}-\d\d-\d\dT\S+\s+\[([A-Za-z0-9_./:-]{1,60})\]\s?(.*)$/;
/** Lifecycle lines of the gateway worth keeping (no content in them). */
const LIFECYCLE =
  /^(ready\b|starting\b|http server listening|agent model:|received SIG|shutting down|stopp)/;
const TROUBLE =
  /\b(error|errors|warn|warning|fail|failed|failure|fatal|denied|refused|timeout|timed out|crash|crashed|exception|unhandled|oom)\b/i;
// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[[0-9;?]*[A-Za-z]/g;

/**
 * What the container log gets for one line of the gateway's output, or undefined to hold it
 * back: tagged lifecycle lines, and tagged (or stderr) lines about warnings or errors, one line
 * each and cut at 200 characters. Untagged stdout lines (the gateway prints each answer that
 * way), continuation lines and stack frames never pass, nor any line holding a recent question
 * or answer (`recent`).
 */
export function gatewayLogLine(
  raw: string,
  stream: 'stdout' | 'stderr',
  recent: Iterable<string> = [],
): string | undefined {
  const line = raw.replace(ANSI, '').trim();
  if (line === '') return undefined;
  for (const text of recent) {
    const probe = text.trim().slice(0, 32);
    if (probe.length >= 4 && line.includes(probe)) return undefined;
  }
  const cut = (s: string) => (s.length > MAX_LINE_CHARS ? `${s.slice(0, MAX_LINE_CHARS)}…` : s);
  const tagged = TAGGED.exec(line);
  if (tagged) {
    const [, tag, message = ''] = tagged;
    if (tag === 'gateway' && LIFECYCLE.test(message)) return `openclaw: [${tag}] ${cut(message)}`;
    if (stream === 'stderr' || TROUBLE.test(message)) {
      return `openclaw${stream === 'stderr' ? ' stderr' : ''}: [${tag}] ${cut(message)}`;
    }
    return undefined;
  }
  // Untagged: on stdout an answer text (or a continuation line); on stderr Node's own warnings
  // and errors, whose stack frames are left out.
  if (stream === 'stderr' && !/^at\s/.test(line) && TROUBLE.test(line)) {
    return `openclaw stderr: ${cut(line)}`;
  }
  return undefined;
}

/** Splits a stream into lines and hands each to `onLine`. */
function eachLine(stream: NodeJS.ReadableStream | null, onLine: (line: string) => void): void {
  if (!stream) return;
  let buffer = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    buffer += chunk;
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      onLine(buffer.slice(0, nl));
      buffer = buffer.slice(nl + 1);
    }
    // A line without an end that keeps growing is not kept whole.
    if (buffer.length > 64 * 1024) {
      onLine(buffer);
      buffer = '';
    }
  });
  stream.on('end', () => {
    if (buffer) onLine(buffer);
  });
}

// --- the gateway process -----------------------------------------------------------------------

export interface GatewayOptions {
  /** The node binary (the image's Node 24: process.execPath). */
  node: string;
  /** OpenClaw's CLI entry, `/opt/openclaw/node_modules/openclaw/openclaw.mjs` in the image. */
  entry: string;
  /** The run's config file (OPENCLAW_CONFIG_PATH of the child). */
  configPath: string;
  /** Where the gateway listens (loopback). */
  port: number;
  /** The longest wait for `/readyz` to answer 200. */
  readyTimeoutMs: number;
  /** The child's environment before OPENCLAW_CONFIG_PATH is set (ARMORCLAW_* are left out). */
  env: NodeJS.ProcessEnv;
  /** Texts the gateway's output must not show (recent questions and answers). */
  recent?: () => Iterable<string>;
  /** Arguments after the entry; default `gateway run`. */
  args?: string[];
}

/** How the gateway ended. */
export interface GatewayExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** OpenClaw's gateway as a child process. */
export class OpenClawGateway {
  private child: ChildProcess | null = null;
  private stopping = false;
  private held = 0;
  private heldReported = 0;
  private heldTimer: NodeJS.Timeout | undefined;
  private exitListeners: Array<(exit: GatewayExit) => void> = [];
  private exited: GatewayExit | null = null;
  /** Settles once the gateway is ready (resolves) or failed to be (rejects). */
  readonly ready: Promise<void>;
  private resolveReady!: () => void;
  private rejectReady!: (err: Error) => void;
  private isReady = false;

  constructor(private readonly options: GatewayOptions) {
    this.ready = new Promise<void>((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    // Whoever awaits it reports the failure; an unobserved rejection must not end the agent.
    this.ready.catch(() => undefined);
  }

  get readyNow(): boolean {
    return this.isReady;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Called once when the gateway exits (at once if it already has). */
  onExit(listener: (exit: GatewayExit) => void): void {
    if (this.exited) listener(this.exited);
    else this.exitListeners.push(listener);
  }

  /** Spawns the gateway and starts waiting for it to be ready. */
  start(): void {
    const o = this.options;
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(o.env)) {
      if (!k.startsWith('ARMORCLAW_')) env[k] = v;
    }
    env.OPENCLAW_CONFIG_PATH = o.configPath;
    const started = Date.now();
    const child = spawn(o.node, [o.entry, ...(o.args ?? ['gateway', 'run'])], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    log(`openclaw: gateway starting (pid ${child.pid ?? '?'}, port ${o.port})`);
    const recent = () => o.recent?.() ?? [];
    eachLine(child.stdout, (line) => this.relay(gatewayLogLine(line, 'stdout', recent())));
    eachLine(child.stderr, (line) => this.relay(gatewayLogLine(line, 'stderr', recent())));
    child.once('error', (err) => {
      log(`openclaw: gateway could not be started (${errorCode(err)})`);
      this.onChildExit({ code: null, signal: null });
    });
    child.once('exit', (code, signal) => this.onChildExit({ code, signal }));
    void this.waitReady(started);
  }

  private relay(line: string | undefined): void {
    if (line !== undefined) {
      log(line);
      return;
    }
    this.held++;
    // Say now and then how much was held back, never what.
    this.heldTimer ??= setTimeout(() => {
      this.heldTimer = undefined;
      this.reportHeld();
    }, 30_000).unref();
  }

  private reportHeld(): void {
    if (this.held > this.heldReported) {
      log(`openclaw: ${this.held - this.heldReported} output lines held back (log policy)`);
      this.heldReported = this.held;
    }
  }

  private onChildExit(exit: GatewayExit): void {
    if (this.exited) return;
    this.exited = exit;
    this.reportHeld();
    log(
      `openclaw: gateway exited (${exit.signal ? `signal ${exit.signal}` : `code ${exit.code ?? '?'}`})`,
    );
    this.rejectReady(new Error('the gateway exited before it was ready'));
    for (const l of this.exitListeners.splice(0)) l(exit);
  }

  private async waitReady(started: number): Promise<void> {
    const deadline = started + this.options.readyTimeoutMs;
    while (!this.exited && !this.stopping) {
      if (await probe(this.options.port, '/readyz')) {
        this.isReady = true;
        log(`openclaw: gateway ready after ${Date.now() - started} ms`);
        this.resolveReady();
        return;
      }
      if (Date.now() > deadline) {
        this.rejectReady(
          new Error(
            `the gateway was not ready within ${Math.round(this.options.readyTimeoutMs / 1000)} s`,
          ),
        );
        return;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** Stops the gateway: SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. */
  async stop(graceMs = 1500): Promise<void> {
    this.stopping = true;
    const child = this.child;
    if (!child || this.exited) return;
    const gone = new Promise<void>((resolve) => this.onExit(() => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await gone;
    clearTimeout(timer);
  }

  /** Whether the gateway is being stopped on purpose (its exit is then not a failure). */
  get isStopping(): boolean {
    return this.stopping;
  }
}

/** GET 127.0.0.1:<port><path> answered 200 (within 2 s). */
function probe(port: number, urlPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get(
      { host: '127.0.0.1', port, path: urlPath, agent: false, timeout: 2000 },
      (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      },
    );
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

// --- asking ------------------------------------------------------------------------------------

export interface ChatOptions {
  /** Where the gateway listens: a loopback port, or a Unix socket (tests). */
  target: { host: string; port: number } | { socketPath: string };
  /** The model the run's questions go to (reported as `agent.ask`'s `model`). */
  model: string;
  /** Settles when the gateway can be asked; a question waits for it. */
  ready?: Promise<void>;
  /** The limit on one answer, default 240 s (OpenClaw may call tools and its model repeatedly). */
  timeoutMs?: number;
}

const DEFAULT_CHAT_TIMEOUT_MS = 240_000;
const MAX_BODY_BYTES = 4 * 1024 * 1024;
/** How many recent questions and answers the output filter watches for. */
const RECENT_LIMIT = 32;

/** Asks OpenClaw's chat endpoint, one conversation (OpenClaw session) per `conversation` key. */
export class OpenClawChat {
  readonly model: string;
  private readonly recentTexts: string[] = [];

  constructor(private readonly options: ChatOptions) {
    this.model = options.model;
  }

  /** Recent questions and answers, for the gateway's output filter. */
  recent(): Iterable<string> {
    return this.recentTexts;
  }

  private remember(text: string): void {
    this.recentTexts.push(text);
    if (this.recentTexts.length > RECENT_LIMIT) this.recentTexts.shift();
  }

  /** One question in `conversation`; every failure is an apology text with `ok: false`. */
  ask(question: string, conversation: string): Promise<LlmAnswer> {
    return this.chat([{ role: 'user', content: question }], conversation);
  }

  /**
   * One turn of `conversation` (`agent.turn`: the gateway's messages, oldest first); every
   * failure is an apology text with `ok: false`.
   */
  async chat(messages: readonly ChatMessage[], conversation: string): Promise<LlmAnswer> {
    for (const m of messages) this.remember(m.content);
    const started = performance.now();
    log(
      `openclaw: ask in ${conversation.split(':')[0]} conversation, ${messages.length} message(s), ${messages.reduce((n, m) => n + m.content.length, 0)} chars`,
    );
    try {
      await this.options.ready;
    } catch {
      return this.failed('not ready', started, 'OpenClaw is not running');
    }
    const outcome = await this.request(messages, conversation);
    const ms = Math.round(performance.now() - started);
    if (outcome.ok) {
      this.remember(outcome.answer);
      log(`openclaw: answered ${outcome.answer.length} chars in ${ms} ms`);
      return { answer: outcome.answer, model: this.model, ok: true };
    }
    return this.failed(outcome.note, started, outcome.reason);
  }

  private failed(note: string, started: number, reason: string): LlmAnswer {
    log(`openclaw: ask failed (${note}) after ${Math.round(performance.now() - started)} ms`);
    return { answer: `Sorry, I could not answer that: ${reason}.`, model: this.model, ok: false };
  }

  private request(
    messages: readonly ChatMessage[],
    conversation: string,
  ): Promise<{ ok: true; answer: string } | { ok: false; note: string; reason: string }> {
    const payload = JSON.stringify({
      model: OPENCLAW_AGENT_MODEL,
      stream: false,
      user: conversation,
      messages: messages.map((m) => ({ role: m.role, content: m.content })),
    });
    const timeoutMs = this.options.timeoutMs ?? DEFAULT_CHAT_TIMEOUT_MS;
    return new Promise((resolve) => {
      let settled = false;
      const finish = (
        r: { ok: true; answer: string } | { ok: false; note: string; reason: string },
      ) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        req.destroy();
        resolve(r);
      };
      const timer = setTimeout(
        () =>
          finish({
            ok: false,
            note: 'timeout',
            reason: `OpenClaw did not answer within ${Math.round(timeoutMs / 1000)} s`,
          }),
        timeoutMs,
      );
      const req = http.request(
        {
          ...this.options.target,
          method: 'POST',
          path: '/v1/chat/completions',
          agent: false,
          headers: {
            'content-type': 'application/json',
            'content-length': String(Buffer.byteLength(payload)),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size <= MAX_BODY_BYTES) chunks.push(c);
          });
          res.on('close', () => finish(readAnswer(res, Buffer.concat(chunks), size)));
        },
      );
      req.on('error', (err) =>
        finish({
          ok: false,
          note: errorCode(err),
          reason: `OpenClaw could not be reached (${errorCode(err)})`,
        }),
      );
      req.end(payload);
    });
  }
}

/** The answer text of a chat completion, or why there is none. */
function readAnswer(
  res: http.IncomingMessage,
  body: Buffer,
  size: number,
): { ok: true; answer: string } | { ok: false; note: string; reason: string } {
  const status = res.statusCode ?? 0;
  if (!res.complete) return { ok: false, note: 'cut short', reason: "OpenClaw's answer broke off" };
  if (size > MAX_BODY_BYTES)
    return { ok: false, note: 'too large', reason: 'the answer was too large' };
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    parsed = undefined;
  }
  if (status < 200 || status >= 300) {
    // The status and the error's type only: the message may quote the question.
    const type = (parsed as { error?: { type?: unknown } } | undefined)?.error?.type;
    const label =
      typeof type === 'string' && /^[a-z_]{1,40}$/.test(type) ? `${status} ${type}` : `${status}`;
    return {
      ok: false,
      note: `http ${label}`,
      reason: `OpenClaw answered with an error (${label})`,
    };
  }
  const content = (parsed as { choices?: Array<{ message?: { content?: unknown } }> } | undefined)
    ?.choices?.[0]?.message?.content;
  if (typeof content !== 'string') {
    return { ok: false, note: `http ${status} no text`, reason: 'OpenClaw answered without text' };
  }
  const answer = content.trim() === '' ? '(OpenClaw answered with no text)' : content;
  return {
    ok: true,
    answer:
      answer.length > MAX_ANSWER_CHARS
        ? `${answer.slice(0, MAX_ANSWER_CHARS)}\n\n(the answer was truncated)`
        : answer,
  };
}
