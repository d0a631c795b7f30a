/**
 * The agent's life on its bridge socket: connect (and reconnect with backoff), acknowledge the
 * secrets, announce readiness, heartbeat, and say `stopping` on the way out.
 */
import type net from 'node:net';
import type { AgentConfig } from './config';
import type { Credentials } from './credentials';
import { errorCode, log } from './log';
import {
  connect,
  RpcConnection,
  RpcDisconnected,
  RpcError,
  RpcTimeout,
  type Handler,
  type HandlerContext,
} from './rpc-peer';

const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 2000;
const CALL_TIMEOUT_MS = 2000;
const STOP_DEADLINE_MS = 900;
/** Sends go through a workflow that retries; give them longer than a plain call. */
const SEND_TIMEOUT_MS = 30_000;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export interface AgentOptions {
  /**
   * Say `notify status ready` only once `markReady()` is called (the OpenClaw backend: once its
   * gateway is ready). Without it the agent is ready as soon as its secrets are acknowledged.
   */
  readyGate?: boolean;
}

/** One agent: keeps a connection to the bridge and answers it with `methods`. */
export class Agent {
  private conn: RpcConnection | null = null;
  private stopping = false;
  private acked = false;
  private readyNotified = false;
  private readyToSay: boolean;
  private failing = false;
  private seq = 0;
  private lastConnectError = '';

  constructor(
    private readonly config: AgentConfig,
    private readonly credentials: Credentials,
    private readonly methods: ReadonlyMap<string, Handler>,
    options: AgentOptions = {},
  ) {
    this.readyToSay = !options.readyGate;
  }

  /** The backend is ready: say `ready` now (once acknowledged) or as soon as connected. */
  markReady(): void {
    this.readyToSay = true;
    const conn = this.conn;
    if (conn?.isOpen && (this.acked || this.config.mode.kind === 'no-ack')) {
      void this.sayReady(conn).catch(() => undefined);
    }
  }

  private async sayReady(conn: RpcConnection): Promise<void> {
    if (this.readyNotified || !this.readyToSay) return;
    this.readyNotified = true;
    try {
      await conn.call('notify', { kind: 'status', message: 'ready' }, CALL_TIMEOUT_MS);
      log('ready');
    } catch (err) {
      // Said again on the next connection.
      this.readyNotified = false;
      throw err;
    }
  }

  /**
   * The agent cannot go on (its backend died): notify the error (if the bridge answers within a
   * second) and exit with `code`.
   */
  async fail(message: string, code: number): Promise<never> {
    if (!this.failing && !this.stopping) {
      this.failing = true;
      log(`failed: ${message}; exiting ${code}`);
      setTimeout(() => process.exit(code), 1500).unref();
      const conn = this.conn;
      if (conn?.isOpen) {
        await conn.call('notify', { kind: 'error', message }, 1000).catch(() => undefined);
        conn.end();
      }
      process.exit(code);
    }
    return new Promise<never>(() => undefined);
  }

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
      const conn = new RpcConnection(socket, this.methods, this.ctx);
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
      // Without a gate (or once open), before the first heartbeat; else when markReady() comes.
      await this.sayReady(conn);
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
export function failOnSecrets(
  config: AgentConfig,
  methods: ReadonlyMap<string, Handler>,
  reason: string,
): Promise<never> {
  return failBeforeRun(config, methods, `secrets: ${reason}`, 3);
}

/** The agent cannot run: say so in the log and to the bridge (if it answers soon), exit `code`. */
export async function failBeforeRun(
  config: AgentConfig,
  methods: ReadonlyMap<string, Handler>,
  message: string,
  code: number,
): Promise<never> {
  log(message);
  const deadline = Date.now() + 2000;
  let backoff = BACKOFF_MIN_MS;
  while (Date.now() < deadline) {
    try {
      const socket = await connect(config.socketPath);
      const conn = new RpcConnection(socket, methods, {
        notify: () => undefined,
        call: () => Promise.reject(new Error('not connected')),
      });
      await conn
        .call('notify', { kind: 'error', message }, Math.max(100, deadline - Date.now()))
        .catch(() => undefined);
      conn.end();
      break;
    } catch {
      await sleep(Math.min(backoff, Math.max(0, deadline - Date.now())));
      backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
    }
  }
  process.exit(code);
}
