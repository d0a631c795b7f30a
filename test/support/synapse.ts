/**
 * A real Matrix homeserver for the integration tests: Synapse (PyPI `matrix-synapse`, installed
 * into .tools/synapse-venv by `bash scripts/setup.sh --test` → scripts/synapse.sh), one private
 * instance per call, on 127.0.0.1 with plain HTTP, SQLite and everything in a temp directory.
 * Nothing reaches the network: no federation listener, no trusted key servers, no stats.
 *
 * Users are created through the shared-secret admin API (registration stays closed), and a tiny
 * fetch-based client-server helper covers what the tests need to play "the other user".
 *
 * Throws — never skips — when Synapse is missing or does not come up: a suite that skips proves
 * nothing.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHmac, generateKeyPairSync, randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './ports';

const REPO = path.resolve(__dirname, '../..');
export const SYNAPSE_VENV = path.join(REPO, '.tools/synapse-venv');
export const SYNAPSE_PYTHON = path.join(SYNAPSE_VENV, 'bin/python');

const DEFAULT_START_TIMEOUT_MS = 60_000;
const STOP_GRACE_MS = 10_000;
/** Effectively no rate limit: tests post and log in far faster than people do. */
const UNLIMITED = { per_second: 100_000, burst_count: 1_000_000 };

export interface SynapseOptions {
  /** Default `armorclaw.test`; user ids are `@localpart:<serverName>`. */
  serverName?: string;
  /** Default: a free port on 127.0.0.1. */
  port?: number;
  /** Merged over the generated homeserver.yaml (top-level keys replace). */
  extraConfig?: Record<string, unknown>;
  /** How long to wait for `/_matrix/client/versions`; default 60 s. */
  startTimeoutMs?: number;
  /** Keep the temp directory after stop() (logs, database) for a post-mortem. */
  keepDir?: boolean;
}

export interface MatrixSession {
  userId: string;
  accessToken: string;
  deviceId: string;
}

export interface SynapseHandle {
  /** e.g. `http://127.0.0.1:40123` */
  baseUrl: string;
  serverName: string;
  port: number;
  /** Config, signing key, SQLite database, media store and logs. */
  dir: string;
  /** The running homeserver's pid, or undefined while it is stopped. */
  pid(): number | undefined;
  /** How long the last (re)start took until `/versions` answered, in ms. */
  lastStartMs: number;
  /** A plain client-server helper bound to this homeserver. */
  client: MatrixTestClient;
  /** Creates a user through the shared-secret admin API (works with registration closed). */
  registerUser(localpart: string, password: string, admin?: boolean): Promise<MatrixSession>;
  /** Password login; pass a device id to keep one across logins. */
  login(localpart: string, password: string, deviceId?: string): Promise<MatrixSession>;
  /**
   * Stops the homeserver (SIGTERM, SIGKILL after 10 s; `hard` kills at once), stays down for
   * `downMs`, then starts it again on the same port and database.
   */
  restart(opts?: { downMs?: number; hard?: boolean }): Promise<void>;
  /** Stops the homeserver and waits for the process to be gone; removes the temp dir. */
  stop(): Promise<void>;
  /** The last lines of Synapse's log and console output. */
  logTail(lines?: number): string;
}

// --- processes still running when this process exits are killed -------------------------------

const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function track(child: ChildProcess): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const c of live) {
        try {
          c.kill('SIGKILL');
        } catch {
          // already gone
        }
      }
    });
  }
  live.add(child);
  child.once('exit', () => live.delete(child));
}

// --- configuration ---------------------------------------------------------------------------

/** Synapse's signing-key file line: `ed25519 <key id> <unpadded base64 of the 32-byte seed>`. */
function signingKeyLine(): string {
  const { privateKey } = generateKeyPairSync('ed25519');
  const jwk = privateKey.export({ format: 'jwk' });
  const seed = Buffer.from(jwk.d!, 'base64url');
  return `ed25519 a_${randomBytes(3).toString('hex')} ${seed.toString('base64').replace(/=+$/, '')}\n`;
}

const secret = () => randomBytes(24).toString('hex');

function writeConfig(
  dir: string,
  serverName: string,
  port: number,
  extra: Record<string, unknown>,
): {
  configPath: string;
  registrationSecret: string;
} {
  const registrationSecret = secret();
  const signingKeyPath = path.join(dir, 'signing.key');
  writeFileSync(signingKeyPath, signingKeyLine(), { mode: 0o600 });

  const logConfigPath = path.join(dir, 'log.config.yaml');
  // JSON is YAML: Synapse reads both files with yaml.safe_load.
  const logConfig = {
    version: 1,
    formatters: {
      precise: { format: '%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(message)s' },
    },
    handlers: {
      file: {
        class: 'logging.FileHandler',
        formatter: 'precise',
        filename: path.join(dir, 'homeserver.log'),
        encoding: 'utf8',
      },
    },
    loggers: { synapse: { level: 'WARNING' }, twisted: { level: 'WARNING' } },
    root: { level: 'WARNING', handlers: ['file'] },
    disable_existing_loggers: false,
  };
  writeFileSync(logConfigPath, JSON.stringify(logConfig, null, 2));

  const config: Record<string, unknown> = {
    server_name: serverName,
    public_baseurl: `http://127.0.0.1:${port}/`,
    pid_file: path.join(dir, 'homeserver.pid'),
    listeners: [
      {
        port,
        bind_addresses: ['127.0.0.1'],
        type: 'http',
        tls: false,
        x_forwarded: false,
        resources: [{ names: ['client'], compress: false }],
      },
    ],
    database: { name: 'sqlite3', args: { database: path.join(dir, 'homeserver.db') } },
    log_config: logConfigPath,
    media_store_path: path.join(dir, 'media_store'),
    signing_key_path: signingKeyPath,
    registration_shared_secret: registrationSecret,
    macaroon_secret_key: secret(),
    form_secret: secret(),
    enable_registration: false,
    // Password hashing at Synapse's default cost makes every register/login ~0.5 s.
    bcrypt_rounds: 4,
    report_stats: false,
    enable_metrics: false,
    // No federation and nothing fetched from elsewhere.
    federation_domain_whitelist: [],
    trusted_key_servers: [],
    suppress_key_server_warning: true,
    url_preview_enabled: false,
    // Presence only adds noise (and work) to every /sync.
    presence: { enabled: false },
    rc_message: UNLIMITED,
    rc_registration: UNLIMITED,
    rc_login: { address: UNLIMITED, account: UNLIMITED, failed_attempts: UNLIMITED },
    rc_joins: { local: UNLIMITED, remote: UNLIMITED },
    rc_joins_per_room: UNLIMITED,
    rc_invites: { per_room: UNLIMITED, per_user: UNLIMITED, per_issuer: UNLIMITED },
    rc_admin_redaction: UNLIMITED,
    rc_3pid_validation: UNLIMITED,
    rc_key_requests: UNLIMITED,
    rc_third_party_invite: UNLIMITED,
    rc_media_create: UNLIMITED,
    rc_presence: { per_user: UNLIMITED },
    rc_delayed_event_mgmt: UNLIMITED,
    rc_room_creation: UNLIMITED,
    rc_reports: UNLIMITED,
    rc_user_directory: UNLIMITED,
    rc_profile: UNLIMITED,
    ...extra,
  };
  const configPath = path.join(dir, 'homeserver.yaml');
  writeFileSync(configPath, JSON.stringify(config, null, 2), { mode: 0o600 });
  return { configPath, registrationSecret };
}

function tailOf(file: string, lines: number): string {
  if (!existsSync(file)) return '';
  const all = readFileSync(file, 'utf8').split('\n');
  return all
    .slice(-lines - 1)
    .join('\n')
    .trim();
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// --- the homeserver --------------------------------------------------------------------------

/** Starts a private Synapse and waits until its client API answers. */
export async function startSynapse(opts: SynapseOptions = {}): Promise<SynapseHandle> {
  if (!existsSync(SYNAPSE_PYTHON)) {
    throw new Error(
      `Synapse not installed (${SYNAPSE_PYTHON} missing); run \`bash scripts/setup.sh --test\` ` +
        '(scripts/synapse.sh installs PyPI matrix-synapse into .tools/synapse-venv).',
    );
  }
  const serverName = opts.serverName ?? 'armorclaw.test';
  const timeoutMs = opts.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'armorclaw-synapse-'));
  const logFile = path.join(dir, 'homeserver.log');
  const consoleFile = path.join(dir, 'console.log');
  const logTail = (lines = 40) =>
    [
      `--- ${logFile}`,
      tailOf(logFile, lines),
      `--- ${consoleFile}`,
      tailOf(consoleFile, lines),
    ].join('\n');

  let port = 0;
  let baseUrl = '';
  let configPath = '';
  let registrationSecret = '';
  let child: ChildProcess | undefined;

  const launch = (): ChildProcess => {
    const out = openSync(consoleFile, 'a');
    try {
      const c = spawn(SYNAPSE_PYTHON, ['-m', 'synapse.app.homeserver', '-c', configPath], {
        cwd: dir,
        env: { ...process.env, PYTHONUNBUFFERED: '1' },
        stdio: ['ignore', out, out],
      });
      track(c);
      return c;
    } finally {
      closeSync(out);
    }
  };

  /** Launches and polls `/versions`; rejects with the log tail if Synapse exits or is too slow. */
  const startOnce = async (): Promise<number> => {
    const t0 = Date.now();
    const c = launch();
    child = c;
    let exited: string | undefined;
    c.once('exit', (code, signal) => (exited = `exited with ${signal ?? code}`));
    c.once('error', (err) => (exited = `failed to spawn: ${err.message}`));
    while (Date.now() - t0 < timeoutMs) {
      if (exited) break;
      try {
        const res = await fetch(`${baseUrl}/_matrix/client/versions`, {
          signal: AbortSignal.timeout(2_000),
        });
        if (res.ok) return Date.now() - t0;
      } catch {
        // not listening yet
      }
      await sleep(50);
    }
    const why = exited ?? `did not answer within ${timeoutMs} ms`;
    await stopChild(true);
    throw new Error(`Synapse on ${baseUrl} ${why}\n${logTail()}`);
  };

  const stopChild = async (hard = false): Promise<void> => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    c.kill(hard ? 'SIGKILL' : 'SIGTERM');
    const timer = setTimeout(() => c.kill('SIGKILL'), hard ? 0 : STOP_GRACE_MS);
    await gone;
    clearTimeout(timer);
  };

  // A free port can be taken between freePort() and Synapse's bind: retry on a fresh one.
  let lastStartMs = 0;
  for (let attempt = 1; ; attempt++) {
    port = opts.port ?? (await freePort());
    baseUrl = `http://127.0.0.1:${port}`;
    ({ configPath, registrationSecret } = writeConfig(
      dir,
      serverName,
      port,
      opts.extraConfig ?? {},
    ));
    try {
      lastStartMs = await startOnce();
      break;
    } catch (err) {
      const portTaken = /Address already in use/.test(logTail(200));
      if (!portTaken || opts.port !== undefined || attempt >= 3) {
        if (!opts.keepDir) rmSync(dir, { recursive: true, force: true });
        throw err;
      }
    }
  }

  const client = new MatrixTestClient(baseUrl);

  const handle: SynapseHandle = {
    baseUrl,
    serverName,
    port,
    dir,
    lastStartMs,
    client,
    pid: () => child?.pid,
    logTail,

    async registerUser(localpart, password, admin = false) {
      const url = `${baseUrl}/_synapse/admin/v1/register`;
      const { nonce } = await client.request<{ nonce: string }>('GET', url);
      // HMAC-SHA1 over nonce, user, password and admin flag, NUL-separated (Synapse admin API docs).
      const mac = createHmac('sha1', registrationSecret)
        .update([nonce, localpart, password, admin ? 'admin' : 'notadmin'].join('\0'))
        .digest('hex');
      const res = await client.request<{
        user_id: string;
        access_token: string;
        device_id: string;
      }>('POST', url, undefined, { nonce, username: localpart, password, admin, mac });
      return { userId: res.user_id, accessToken: res.access_token, deviceId: res.device_id };
    },

    login(localpart, password, deviceId) {
      return client.login(localpart, password, deviceId);
    },

    async restart(o = {}) {
      await stopChild(o.hard ?? false);
      if (o.downMs) await sleep(o.downMs);
      handle.lastStartMs = await startOnce();
    },

    async stop() {
      await stopChild();
      if (!opts.keepDir) rmSync(dir, { recursive: true, force: true });
    },
  };
  return handle;
}

// --- a plain client-server API helper --------------------------------------------------------

export class MatrixHttpError extends Error {
  constructor(
    readonly status: number,
    readonly errcode: string | undefined,
    readonly body: unknown,
    what: string,
  ) {
    super(`${what} → HTTP ${status}${errcode ? ` ${errcode}` : ''}: ${JSON.stringify(body)}`);
  }
}

export interface MatrixEvent {
  event_id: string;
  type: string;
  sender: string;
  room_id?: string;
  origin_server_ts: number;
  content: Record<string, unknown>;
  unsigned?: Record<string, unknown> & { transaction_id?: string };
  state_key?: string;
}

let txnCounter = 0;
const enc = encodeURIComponent;

/** Just enough of the Matrix client-server API (v3) over fetch to play a user in tests. */
export class MatrixTestClient {
  constructor(readonly baseUrl: string) {}

  /** One request; throws MatrixHttpError on a non-2xx answer. `url` may be a path. */
  async request<T = any>(method: string, url: string, token?: string, body?: unknown): Promise<T> {
    const full = url.startsWith('http') ? url : `${this.baseUrl}${url}`;
    const headers: Record<string, string> = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(full, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let json: any;
    try {
      json = text ? JSON.parse(text) : {};
    } catch {
      json = text;
    }
    if (!res.ok)
      throw new MatrixHttpError(
        res.status,
        json?.errcode,
        json,
        `${method} ${url.replace(/access_token=[^&]*/, 'access_token=…')}`,
      );
    return json as T;
  }

  async login(localpart: string, password: string, deviceId?: string): Promise<MatrixSession> {
    const res = await this.request<{ user_id: string; access_token: string; device_id: string }>(
      'POST',
      '/_matrix/client/v3/login',
      undefined,
      {
        type: 'm.login.password',
        identifier: { type: 'm.id.user', user: localpart },
        password,
        ...(deviceId ? { device_id: deviceId } : {}),
      },
    );
    return { userId: res.user_id, accessToken: res.access_token, deviceId: res.device_id };
  }

  async createRoom(
    token: string,
    opts: { invite?: string[]; encrypted?: boolean; name?: string; preset?: string } = {},
  ): Promise<string> {
    const body: Record<string, unknown> = { preset: opts.preset ?? 'private_chat' };
    if (opts.invite?.length) body.invite = opts.invite;
    if (opts.name) body.name = opts.name;
    if (opts.encrypted) {
      body.initial_state = [
        {
          type: 'm.room.encryption',
          state_key: '',
          content: { algorithm: 'm.megolm.v1.aes-sha2' },
        },
      ];
    }
    const res = await this.request<{ room_id: string }>(
      'POST',
      '/_matrix/client/v3/createRoom',
      token,
      body,
    );
    return res.room_id;
  }

  async invite(token: string, roomId: string, userId: string): Promise<void> {
    await this.request('POST', `/_matrix/client/v3/rooms/${enc(roomId)}/invite`, token, {
      user_id: userId,
    });
  }

  async join(token: string, roomIdOrAlias: string): Promise<string> {
    const res = await this.request<{ room_id: string }>(
      'POST',
      `/_matrix/client/v3/join/${enc(roomIdOrAlias)}`,
      token,
      {},
    );
    return res.room_id;
  }

  /** PUT with a transaction id (fresh unless given): the same id with the same token is one event. */
  async sendEvent(
    token: string,
    roomId: string,
    type: string,
    content: Record<string, unknown>,
    txnId?: string,
  ): Promise<string> {
    const txn = txnId ?? `t${Date.now()}.${process.pid}.${++txnCounter}`;
    const res = await this.request<{ event_id: string }>(
      'PUT',
      `/_matrix/client/v3/rooms/${enc(roomId)}/send/${enc(type)}/${enc(txn)}`,
      token,
      content,
    );
    return res.event_id;
  }

  sendText(token: string, roomId: string, body: string, txnId?: string): Promise<string> {
    return this.sendEvent(token, roomId, 'm.room.message', { msgtype: 'm.text', body }, txnId);
  }

  /** The latest events of a room, newest first (`/messages?dir=b`). */
  async messages(token: string, roomId: string, limit = 100): Promise<MatrixEvent[]> {
    const res = await this.request<{ chunk: MatrixEvent[] }>(
      'GET',
      `/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=${limit}`,
      token,
    );
    return res.chunk;
  }

  /** One `/sync`; the raw response (`next_batch`, `rooms.join[roomId].timeline.events`, ...). */
  async sync(token: string, since?: string, timeoutMs = 0): Promise<any> {
    const q = new URLSearchParams({ timeout: String(timeoutMs) });
    if (since) q.set('since', since);
    return this.request('GET', `/_matrix/client/v3/sync?${q}`, token);
  }
}
