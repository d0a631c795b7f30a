/**
 * The ArmorClaw reference agent: the program in the default image `armorclaw/agent:v1`.
 *
 * 1. Reads its credential from the secrets file (`/run/secrets/credentials.json`, a 0400 file on
 *    the bridge's tmpfs, bind-mounted read-only) and keeps the token in memory only.
 * 2. Connects to its bridge socket (`/run/armorclaw/bridge.sock`; the bridge mounts the socket's
 *    DIRECTORY, so a restarted bridge's new socket appears at the same path) and speaks JSON-RPC
 *    2.0 over it, one JSON object per line each way, in both directions:
 *      agent → bridge: `secrets.ack` {key_id} (so the bridge can delete the file at once),
 *                      `notify` {kind, message}, `heartbeat` {seq, uptime_ms};
 *      bridge → agent: `ping`, `agent.echo`, `matrix.event` {seq, event} (answered by
 *                      `matrix.ack`/`matrix.send`), and the notifications `audio.start`
 *                      {session_id, format} / `audio.end` {session_id} of a voice call.
 *    Agent → bridge messages are requests (with an id) so a silent bridge is noticed.
 * 3a. Voice (agent/audio.ts): on `audio.start` it connects to its audio socket
 *    (`/run/armorclaw/audio.sock`, PCM frames as in media/README.md) and echoes the caller or
 *    plays a tone; once a second it notifies `audio_in frequency_hz=<f> rms=<r> frames=<n>` about
 *    what it heard; `audio.end` or an END frame closes the audio socket.
 * 3. Reconnects with backoff (100 ms doubling to 2 s) when the connection goes away.
 * 4. On SIGTERM/SIGINT: notifies `stopping`, closes, exits 0 within a second.
 *
 * Whatever a container prints lands in the host's Docker log: this program prints one-line
 * status messages and never the token or anything derived from it. Node built-ins only (plus the
 * bridge's own media/ framing and analysis files); bundled into one file by
 * scripts/build-agent-image.sh.
 *
 * Environment:
 *   ARMORCLAW_SECRETS_FILE  default /run/secrets/credentials.json
 *   ARMORCLAW_BRIDGE_SOCKET default /run/armorclaw/bridge.sock
 *   ARMORCLAW_HEARTBEAT_MS  default 5000
 *   ARMORCLAW_AGENT_MODE    default | crash-after-ms:<n> (exit 1 after n ms) | no-ack (never acks)
 *   ARMORCLAW_AUDIO_SOCKET  default /run/armorclaw/audio.sock
 *   ARMORCLAW_AGENT_AUDIO   echo (default: caller frames straight back) | tone:<hz> (steady tone)
 *
 * Exit codes: 0 stopped by signal, 1 crash (or crash-after-ms), 2 bad configuration,
 * 3 secrets file missing or invalid.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { inspect } from 'node:util';
import { AgentAudio, parseAudioMode, type AgentAudioMode } from './audio';

// --- configuration -------------------------------------------------------------------------------

type AgentMode = { kind: 'default' } | { kind: 'no-ack' } | { kind: 'crash-after-ms'; ms: number };

interface AgentConfig {
  secretsFile: string;
  socketPath: string;
  heartbeatMs: number;
  mode: AgentMode;
  audioSocketPath: string;
  audioMode: AgentAudioMode;
}

class ConfigError extends Error {}

function parseMode(raw: string | undefined): AgentMode {
  const value = (raw ?? '').trim();
  if (value === '' || value === 'default') return { kind: 'default' };
  if (value === 'no-ack') return { kind: 'no-ack' };
  const crash = /^crash-after-ms:(\d+)$/.exec(value);
  if (crash) return { kind: 'crash-after-ms', ms: Number(crash[1]) };
  throw new ConfigError(`unknown ARMORCLAW_AGENT_MODE ${JSON.stringify(value)}`);
}

function parseAudio(raw: string | undefined): AgentAudioMode {
  try {
    return parseAudioMode(raw);
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
}

function loadConfig(env: NodeJS.ProcessEnv): AgentConfig {
  const heartbeatRaw = env.ARMORCLAW_HEARTBEAT_MS?.trim();
  const heartbeatMs = heartbeatRaw ? Number(heartbeatRaw) : 5000;
  if (!Number.isInteger(heartbeatMs) || heartbeatMs < 10) {
    throw new ConfigError('ARMORCLAW_HEARTBEAT_MS must be an integer of at least 10');
  }
  return {
    secretsFile: env.ARMORCLAW_SECRETS_FILE || '/run/secrets/credentials.json',
    socketPath: env.ARMORCLAW_BRIDGE_SOCKET || '/run/armorclaw/bridge.sock',
    heartbeatMs,
    mode: parseMode(env.ARMORCLAW_AGENT_MODE),
    audioSocketPath: env.ARMORCLAW_AUDIO_SOCKET || '/run/armorclaw/audio.sock',
    audioMode: parseAudio(env.ARMORCLAW_AGENT_AUDIO),
  };
}

// --- logging: one line per event, never a secret -------------------------------------------------

function log(message: string): void {
  process.stdout.write(`[agent] ${message}\n`);
}

// --- the credential ------------------------------------------------------------------------------

/** Holds the token; every way of turning it into text except `reveal()` yields `[redacted]`. */
class Secret {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  reveal(): string {
    return this.#value;
  }
  toString(): string {
    return '[redacted]';
  }
  toJSON(): string {
    return '[redacted]';
  }
  [inspect.custom](): string {
    return 'Secret([redacted])';
  }
}

interface Credentials {
  keyId: string;
  provider: string;
  token: Secret;
}

/** Why the secrets file cannot be used; the reason never quotes the file's content. */
class SecretsError extends Error {}

function readCredentials(file: string): Credentials {
  let raw: string;
  try {
    raw = readFileSync(file, 'utf8');
  } catch (err) {
    throw new SecretsError(`cannot read the secrets file (${errorCode(err)})`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(raw);
  } catch {
    // V8's parse error quotes the input: never pass it on.
    throw new SecretsError('the secrets file is not valid JSON');
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw new SecretsError('the secrets file is not a JSON object');
  }
  const { key_id: keyId, provider, token } = doc as Record<string, unknown>;
  if (typeof keyId !== 'string' || keyId.trim() === '') {
    throw new SecretsError('the secrets file has no key_id');
  }
  if (typeof token !== 'string' || token.trim() === '') {
    throw new SecretsError('the secrets file has no token');
  }
  return {
    keyId,
    provider: typeof provider === 'string' ? provider : '',
    token: new Secret(token),
  };
}

function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : err instanceof Error ? err.name : 'error';
}

// --- JSON-RPC 2.0 ----------------------------------------------------------------------------------

type RpcId = string | number | null;

const PARSE_ERROR = -32700;
const INVALID_REQUEST = -32600;
const METHOD_NOT_FOUND = -32601;
const INVALID_PARAMS = -32602;
const INTERNAL_ERROR = -32603;

/** An error a handler throws to answer with a specific JSON-RPC error. */
class RpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
  }
}

/** The bridge did not answer in time; the connection is dropped and re-established. */
class RpcTimeout extends Error {}
/** The connection closed before the answer came. */
class RpcDisconnected extends Error {}

/**
 * Splits a byte stream into JSON texts: one object (or batch array) at a time, whether they come
 * one per line, pipelined without separators, or split across reads. Anything else at the top
 * level is returned up to the end of its line, so the caller answers it with a parse error.
 */
class JsonStreamSplitter {
  private buf = '';
  private pos = 0;
  private start = 0;
  private depth = 0;
  private inString = false;
  private escaped = false;
  private junk = false;

  constructor(private readonly maxBytes = 1 << 20) {}

  push(chunk: string): string[] {
    this.buf += chunk;
    const out: string[] = [];
    for (let i = this.pos; i < this.buf.length; i++) {
      const c = this.buf[i];
      if (this.junk) {
        if (c === '\n') {
          out.push(this.buf.slice(this.start, i));
          this.junk = false;
          this.start = i + 1;
        }
      } else if (this.depth === 0) {
        if (c === '{' || c === '[') {
          this.start = i;
          this.depth = 1;
        } else if (c !== ' ' && c !== '\t' && c !== '\r' && c !== '\n') {
          this.start = i;
          this.junk = true;
        } else {
          this.start = i + 1;
        }
      } else if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === '\\') this.escaped = true;
        else if (c === '"') this.inString = false;
      } else if (c === '"') {
        this.inString = true;
      } else if (c === '{' || c === '[') {
        this.depth++;
      } else if (c === '}' || c === ']') {
        this.depth--;
        if (this.depth === 0) {
          out.push(this.buf.slice(this.start, i + 1));
          this.start = i + 1;
        }
      }
    }
    this.buf = this.buf.slice(this.start);
    this.pos = this.buf.length;
    this.start = 0;
    if (this.buf.length > this.maxBytes) throw new Error('message too large');
    return out;
  }
}

/** What a handler may use besides its params. */
interface HandlerContext {
  /** Sends a `notify` to the bridge (fire and forget). */
  notify(kind: NotifyKind, message: string): void;
  /** Calls a bridge method on the current connection. */
  call(method: string, params: unknown): Promise<unknown>;
}

type Handler = (params: unknown, ctx: HandlerContext) => unknown;

type NotifyKind = 'status' | 'progress' | 'error';

function objectParams(params: unknown): Record<string, unknown> {
  if (typeof params !== 'object' || params === null || Array.isArray(params)) {
    throw new RpcError(INVALID_PARAMS, 'params must be an object');
  }
  return params as Record<string, unknown>;
}

/**
 * Methods the bridge may call on the agent: one entry per method, params validated by the
 * handler (throw RpcError for -32602). `main` adds `audio.start` / `audio.end` once configured.
 */
const handlers = new Map<string, Handler>([
  ['ping', () => ({ pong: true })],
  [
    'agent.echo',
    (params) => {
      const { text } = objectParams(params);
      if (typeof text !== 'string') throw new RpcError(INVALID_PARAMS, 'text must be a string');
      return { text };
    },
  ],
  ['matrix.event', (params, ctx) => onMatrixEvent(params, ctx)],
]);

/** Event ids already handled: the bridge delivers at least once, the agent acts once. */
const seenEvents = new Set<string>();
const SEEN_LIMIT = 10_000;

/**
 * A room event pushed by the bridge (`matrix.event` {seq, event}). The reference agent answers
 * messages that start with `!echo ` by sending the rest back to the room, then acknowledges the
 * event so the bridge stops redelivering it. A real agent would hand the text to its model here.
 */
async function onMatrixEvent(params: unknown, ctx: HandlerContext): Promise<void> {
  const { seq, event } = objectParams(params);
  if (typeof seq !== 'number' || typeof event !== 'object' || event === null) {
    throw new RpcError(INVALID_PARAMS, 'matrix.event needs seq and event');
  }
  const e = event as { event_id?: string; sender?: string; content?: { body?: unknown } };
  if (e.event_id && !seenEvents.has(e.event_id)) {
    const body = typeof e.content?.body === 'string' ? e.content.body : '';
    log(`room message ${e.event_id} from ${e.sender ?? '?'}`);
    if (body.startsWith('!echo ')) {
      // Keyed by the event it answers: if the bridge restarts mid-send and the agent sends
      // again, the room still gets one reply.
      await ctx.call('matrix.send', {
        message: `echo: ${body.slice('!echo '.length)}`,
        idempotency_key: `reply-${e.event_id}`,
      });
    }
    // Marked only once handled: a failed send is tried again on redelivery.
    seenEvents.add(e.event_id);
    if (seenEvents.size > SEEN_LIMIT) seenEvents.delete(seenEvents.values().next().value as string);
  }
  await ctx.call('matrix.ack', { seq });
}

interface Pending {
  resolve(result: unknown): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

/** One connection to the bridge: calls out, answers calls in. */
class RpcConnection {
  private nextId = 1;
  private readonly pending = new Map<RpcId, Pending>();
  private readonly splitter = new JsonStreamSplitter();
  readonly closed: Promise<void>;

  constructor(
    private readonly socket: net.Socket,
    private readonly table: Map<string, Handler>,
    private readonly ctx: HandlerContext,
  ) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      let texts: string[];
      try {
        texts = this.splitter.push(chunk);
      } catch {
        log('bridge sent an oversized message; reconnecting');
        socket.destroy();
        return;
      }
      for (const text of texts) this.receive(text);
    });
    this.closed = new Promise((resolve) => {
      socket.once('close', () => {
        for (const p of this.pending.values()) {
          clearTimeout(p.timer);
          p.reject(new RpcDisconnected('connection closed'));
        }
        this.pending.clear();
        resolve();
      });
    });
    socket.on('error', () => {
      // 'close' follows and is what matters.
    });
  }

  get isOpen(): boolean {
    return !this.socket.destroyed;
  }

  call(method: string, params: unknown, timeoutMs: number): Promise<unknown> {
    if (!this.isOpen) return Promise.reject(new RpcDisconnected('not connected'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new RpcTimeout(`${method}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.send({ jsonrpc: '2.0', id, method, params });
    });
  }

  /** Ends the connection after what was written is flushed. */
  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  private send(message: unknown): void {
    if (this.isOpen) this.socket.write(`${JSON.stringify(message)}\n`);
  }

  private receive(text: string): void {
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch {
      this.send({ jsonrpc: '2.0', id: null, error: { code: PARSE_ERROR, message: 'Parse error' } });
      return;
    }
    if (Array.isArray(message)) {
      if (message.length === 0) {
        this.send(errorResponse(null, INVALID_REQUEST, 'Invalid Request'));
        return;
      }
      void Promise.all(message.map((m) => this.handle(m))).then((answers) => {
        const replies = answers.filter((a) => a !== undefined);
        if (replies.length) this.send(replies);
      });
      return;
    }
    void this.handle(message).then((reply) => {
      if (reply !== undefined) this.send(reply);
    });
  }

  /** Returns the reply to send, or undefined (notifications, responses to our calls). */
  private async handle(message: unknown): Promise<unknown> {
    if (typeof message !== 'object' || message === null || Array.isArray(message)) {
      return errorResponse(null, INVALID_REQUEST, 'Invalid Request');
    }
    const m = message as Record<string, unknown>;
    const id = m.id;
    const validId =
      id === undefined || id === null || typeof id === 'string' || typeof id === 'number';
    if (!('method' in m)) {
      if (('result' in m || 'error' in m) && validId && id !== undefined) {
        this.settle(id as RpcId, m);
        return undefined;
      }
      return errorResponse(null, INVALID_REQUEST, 'Invalid Request');
    }
    if (m.jsonrpc !== '2.0' || typeof m.method !== 'string' || !validId) {
      return errorResponse(
        validId && id !== undefined ? (id as RpcId) : null,
        INVALID_REQUEST,
        'Invalid Request',
      );
    }
    const isNotification = id === undefined;
    const handler = this.table.get(m.method);
    if (!handler) {
      return isNotification
        ? undefined
        : errorResponse(id as RpcId, METHOD_NOT_FOUND, 'Method not found');
    }
    try {
      const result = await handler(m.params, this.ctx);
      return isNotification ? undefined : { jsonrpc: '2.0', id, result: result ?? null };
    } catch (err) {
      if (isNotification) return undefined;
      if (err instanceof RpcError)
        return errorResponse(id as RpcId, err.code, err.message, err.data);
      log(`${m.method} failed (${errorCode(err)})`);
      return errorResponse(id as RpcId, INTERNAL_ERROR, 'Internal error');
    }
  }

  private settle(id: RpcId, m: Record<string, unknown>): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    if ('error' in m) {
      const e = (m.error ?? {}) as { code?: unknown; message?: unknown; data?: unknown };
      p.reject(
        new RpcError(
          typeof e.code === 'number' ? e.code : INTERNAL_ERROR,
          typeof e.message === 'string' ? e.message : 'error',
          e.data,
        ),
      );
    } else {
      p.resolve(m.result);
    }
  }
}

function errorResponse(id: RpcId, code: number, message: string, data?: unknown): unknown {
  const error = data === undefined ? { code, message } : { code, message, data };
  return { jsonrpc: '2.0', id, error };
}

function connect(socketPath: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(socketPath);
    const onError = (err: Error) => {
      socket.destroy();
      reject(err);
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      socket.off('error', onError);
      resolve(socket);
    });
  });
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// --- the agent -------------------------------------------------------------------------------------

const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 2000;
const CALL_TIMEOUT_MS = 2000;
const STOP_DEADLINE_MS = 900;
/** Sends go through a workflow that retries; give them longer than a plain call. */
const SEND_TIMEOUT_MS = 30_000;

class Agent {
  private conn: RpcConnection | null = null;
  private stopping = false;
  private acked = false;
  private readyNotified = false;
  private seq = 0;
  private lastConnectError = '';

  constructor(
    private readonly config: AgentConfig,
    private readonly credentials: Credentials,
  ) {}

  private readonly ctx: HandlerContext = {
    notify: (kind, message) => {
      this.conn?.call('notify', { kind, message }, CALL_TIMEOUT_MS).catch(() => undefined);
    },
    call: (method, params) => {
      if (!this.conn) return Promise.reject(new Error('not connected'));
      return this.conn.call(method, params, SEND_TIMEOUT_MS);
    },
  };

  /** Keeps a connection to the bridge until stopped. */
  async run(): Promise<void> {
    let backoff = BACKOFF_MIN_MS;
    while (!this.stopping) {
      let socket: net.Socket;
      try {
        socket = await connect(this.config.socketPath);
      } catch (err) {
        const code = errorCode(err);
        if (code !== this.lastConnectError) log(`bridge socket unavailable (${code}); retrying`);
        this.lastConnectError = code;
        await sleep(backoff);
        backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
        continue;
      }
      if (this.stopping) {
        socket.destroy();
        break;
      }
      backoff = BACKOFF_MIN_MS;
      this.lastConnectError = '';
      const conn = new RpcConnection(socket, handlers, this.ctx);
      this.conn = conn;
      log('connected to the bridge');
      await this.session(conn);
      if (this.conn === conn) this.conn = null;
      if (!this.stopping) log('bridge connection lost; reconnecting');
    }
  }

  /** Acknowledges the secrets, announces readiness, heartbeats; returns when the connection ends. */
  private async session(conn: RpcConnection): Promise<void> {
    let heartbeat: NodeJS.Timeout | undefined;
    try {
      await this.acknowledge(conn);
      if (!this.readyNotified) {
        await conn.call('notify', { kind: 'status', message: 'ready' }, CALL_TIMEOUT_MS);
        this.readyNotified = true;
        log('ready');
      }
      const beat = () => {
        const params = { seq: ++this.seq, uptime_ms: Math.round(process.uptime() * 1000) };
        // An unanswered heartbeat means a hung bridge: drop the connection and reconnect.
        conn
          .call('heartbeat', params, Math.max(CALL_TIMEOUT_MS, 2 * this.config.heartbeatMs))
          .catch((err: unknown) => {
            if (err instanceof RpcTimeout) {
              log('heartbeat unanswered; reconnecting');
              conn.destroy();
            }
          });
      };
      beat();
      heartbeat = setInterval(beat, this.config.heartbeatMs);
    } catch (err) {
      if (err instanceof RpcTimeout) {
        log(`bridge did not answer (${err.message}); reconnecting`);
        conn.destroy();
      } else if (!(err instanceof RpcDisconnected)) {
        log(`session failed (${errorCode(err)}); reconnecting`);
        conn.destroy();
      }
    }
    await conn.closed;
    if (heartbeat) clearInterval(heartbeat);
  }

  /** `secrets.ack` until the bridge accepts it (once per agent, not per connection). */
  private async acknowledge(conn: RpcConnection): Promise<void> {
    if (this.acked || this.config.mode.kind === 'no-ack') return;
    let backoff = BACKOFF_MIN_MS;
    for (;;) {
      try {
        await conn.call('secrets.ack', { key_id: this.credentials.keyId }, CALL_TIMEOUT_MS);
        this.acked = true;
        log(`secrets acknowledged (key_id ${this.credentials.keyId})`);
        return;
      } catch (err) {
        if (!(err instanceof RpcError)) throw err;
        log(`secrets.ack refused (${err.code}); retrying`);
        await sleep(backoff);
        backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
      }
    }
  }

  /** Says `stopping`, closes and exits 0, within a second whatever the bridge does. */
  async stop(signal: string): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    log(`${signal}: stopping`);
    setTimeout(() => process.exit(0), STOP_DEADLINE_MS);
    const conn = this.conn;
    if (conn?.isOpen) {
      await conn
        .call('notify', { kind: 'status', message: 'stopping' }, STOP_DEADLINE_MS - 200)
        .catch(() => undefined);
      conn.end();
    }
    process.exit(0);
  }
}

/** The secrets cannot be used: tell the bridge (if it answers soon) and exit 3. */
async function failOnSecrets(config: AgentConfig, reason: string): Promise<never> {
  log(`secrets: ${reason}`);
  const deadline = Date.now() + 2000;
  let backoff = BACKOFF_MIN_MS;
  while (Date.now() < deadline) {
    try {
      const socket = await connect(config.socketPath);
      const conn = new RpcConnection(socket, handlers, {
        notify: () => undefined,
        call: () => Promise.reject(new Error('not connected')),
      });
      await conn
        .call(
          'notify',
          { kind: 'error', message: `secrets: ${reason}` },
          Math.max(100, deadline - Date.now()),
        )
        .catch(() => undefined);
      conn.end();
      break;
    } catch {
      await sleep(Math.min(backoff, Math.max(0, deadline - Date.now())));
      backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
    }
  }
  process.exit(3);
}

async function main(): Promise<void> {
  let config: AgentConfig;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    log(`configuration: ${err instanceof ConfigError ? err.message : errorCode(err)}`);
    process.exit(2);
  }
  const audio = new AgentAudio({
    socketPath: config.audioSocketPath,
    mode: config.audioMode,
    log,
  });
  handlers.set('audio.start', (params, ctx) => audio.start(params, ctx.notify));
  handlers.set('audio.end', (params) => audio.end(params));
  // Until the agent runs there is nothing to say goodbye to.
  let agent: Agent | null = null;
  const onSignal = (signal: string) => {
    audio.endAll();
    return agent ? void agent.stop(signal) : process.exit(0);
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));

  const mode = config.mode;
  if (mode.kind === 'crash-after-ms') {
    setTimeout(() => {
      log(`crash-after-ms: exiting 1 after ${mode.ms} ms`);
      process.exit(1);
    }, mode.ms);
  }

  let credentials: Credentials;
  try {
    credentials = readCredentials(config.secretsFile);
  } catch (err) {
    return failOnSecrets(config, err instanceof SecretsError ? err.message : errorCode(err));
  }
  log(
    `credential loaded (key_id ${credentials.keyId}${credentials.provider ? `, provider ${credentials.provider}` : ''})`,
  );

  agent = new Agent(config, credentials);
  await agent.run();
}

// An unexpected error must not print the token: report its kind only.
process.on('uncaughtException', (err) => {
  log(`fatal: ${errorCode(err)}`);
  process.exit(1);
});
process.on('unhandledRejection', (err) => {
  log(`fatal: ${errorCode(err)}`);
  process.exit(1);
});

void main();
