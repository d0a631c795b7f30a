/**
 * Every setting of the bridge, in one place: its TOML key, its environment variable, its type,
 * its default and what it is for. The loader, the validation messages and the generated
 * `docs/config.sample.toml` all come from this table.
 *
 * One idea, a data table: it is long because the bridge has that many settings, and it stays in
 * one file so that every setting is found, and documented, in one place.
 */
import { statfsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export type SettingType =
  'string' | 'integer' | 'number' | 'boolean' | 'path' | 'duration' | 'list' | 'table';

/** A `table` setting is a TOML table (environment: a JSON object); its key validates the rest. */
export type SettingValue =
  | string
  | number
  | boolean
  | readonly string[]
  | readonly number[]
  | Readonly<Record<string, unknown>>;

export interface DefaultContext {
  uid: number;
  env: NodeJS.ProcessEnv;
  /** The state directory once it is resolved (for defaults that live inside it). */
  stateDir: string;
}

export interface Setting {
  key: string;
  env?: string;
  type: SettingType;
  doc: string;
  /** A fixed default, a computed one, or undefined when the setting is optional. */
  default?: SettingValue | ((ctx: DefaultContext) => SettingValue);
  min?: number;
  max?: number;
  /** Allowed values for a string setting. */
  oneOf?: readonly string[];
  /** Entries of a list setting: strings (the default) or numbers, checked against min/max. */
  items?: 'string' | 'number';
  /** Never printed and never read from the TOML file (it might be committed or world-readable). */
  secret?: boolean;
}

/** How log lines are written: `auto` is pretty on a terminal, JSON anywhere else. */
export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** The OpenClaw image scripts/build-openclaw-image.sh builds (its pinned version). */
export const OPENCLAW_IMAGE = 'armorclaw/openclaw:2026.9.6';
/** OpenClaw peaks at about 1.2 GiB on a chat turn; 1 GiB is killed (docs/openclaw.md). */
export const OPENCLAW_MEMORY_BYTES = 2 * 1024 * 1024 * 1024;

/** The agent types every bridge knows; `containers.agent_types` adds to them or replaces one. */
export const DEFAULT_AGENT_TYPES = {
  openclaw: { image: OPENCLAW_IMAGE, memory_bytes: OPENCLAW_MEMORY_BYTES },
  echo: { image: 'armorclaw/agent:v1' },
} as const;

const isRoot = (ctx: DefaultContext) => ctx.uid === 0;

function defaultSocket(ctx: DefaultContext): string {
  if (isRoot(ctx)) return '/run/armorclaw/bridge.sock';
  const runtime = ctx.env.XDG_RUNTIME_DIR;
  if (runtime) return path.join(runtime, 'armorclaw', 'bridge.sock');
  return path.join(os.tmpdir(), `armorclaw-${ctx.uid}`, 'bridge.sock');
}

/** Secrets files must live on tmpfs: /run when it is one, else /dev/shm. */
function defaultSecretsDir(ctx: DefaultContext): string {
  if (isRoot(ctx) && isTmpfs('/run')) return '/run/armorclaw/secrets';
  return path.join('/dev/shm', `armorclaw-${ctx.uid}`, 'secrets');
}

function isTmpfs(dir: string): boolean {
  try {
    return statfsSync(dir).type === TMPFS_MAGIC;
  } catch {
    return false;
  }
}

export const TMPFS_MAGIC = 0x01021994;

function defaultStateDir(ctx: DefaultContext): string {
  if (isRoot(ctx)) return '/var/lib/armorclaw';
  const base = ctx.env.XDG_STATE_HOME || path.join(os.homedir(), '.local', 'state');
  return path.join(base, 'armorclaw');
}

export const settings = [
  {
    key: 'state_dir',
    env: 'ARMORCLAW_STATE_DIR',
    type: 'path',
    default: defaultStateDir,
    doc: 'Directory for the keystore, config attachments, the embedded Temporal database and the master key file (created 0700). Default: /var/lib/armorclaw as root, else $XDG_STATE_HOME/armorclaw.',
  },
  {
    key: 'host_id',
    env: 'ARMORCLAW_HOST_ID',
    type: 'string',
    default: () => os.hostname(),
    doc: 'Name of this host; Docker and media activities run on the task queue armorclaw-host-<host_id>.',
  },
  {
    key: 'host_grace',
    env: 'ARMORCLAW_HOST_GRACE',
    type: 'duration',
    default: '60s',
    doc: 'How long a bridge host may be gone before its sessions give up on it: its calls end Failed (media lost) and its container runs are marked lost (Failed, end_reason host_lost) and reaped when it returns or by `hosts.reap`. A host back sooner keeps its runs.',
  },
  {
    key: 'log.level',
    env: 'ARMORCLAW_LOG_LEVEL',
    type: 'string',
    default: 'info',
    oneOf: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'],
    doc: 'Log level.',
  },
  {
    key: 'log.format',
    env: 'ARMORCLAW_LOG_FORMAT',
    type: 'string',
    default: 'auto',
    oneOf: LOG_FORMATS,
    doc: 'Log lines: json (one JSON object a line), pretty (readable, coloured on a terminal), or auto: pretty when stdout is a terminal, json otherwise. Secrets are redacted in both.',
  },
  {
    key: 'socket.path',
    env: 'ARMORCLAW_SOCKET',
    type: 'path',
    default: defaultSocket,
    doc: 'The JSON-RPC Unix socket (mode 0660). Default: /run/armorclaw/bridge.sock as root, else $XDG_RUNTIME_DIR/armorclaw/bridge.sock.',
  },
  {
    key: 'socket.max_message_bytes',
    env: 'ARMORCLAW_SOCKET_MAX_MESSAGE_BYTES',
    type: 'integer',
    min: 1024,
    max: 64 * 1024 * 1024,
    doc: 'Largest request accepted; a larger one is answered with -32600 and the connection is closed. Default: what the largest legal request needs, a configs.max_bytes config sent as base64 plus 64 KiB for the rest of the request (1,463,640 bytes with the default configs.max_bytes).',
  },
  {
    key: 'socket.idle_timeout_ms',
    env: 'ARMORCLAW_SOCKET_IDLE_TIMEOUT_MS',
    type: 'integer',
    default: 120_000,
    min: 100,
    doc: 'A connection with no traffic and no request in flight for this long is closed.',
  },
  {
    key: 'socket.quiet_close_ms',
    env: 'ARMORCLAW_SOCKET_QUIET_CLOSE_MS',
    type: 'integer',
    default: 500,
    min: 0,
    max: 60_000,
    doc: 'A client that has had all its answers and has no request in flight, no partial request and no subscription is closed after this much quiet, so one-shot clients such as `nc -U` return. 0: only the idle timeout closes connections.',
  },
  {
    key: 'socket.max_connections',
    env: 'ARMORCLAW_SOCKET_MAX_CONNECTIONS',
    type: 'integer',
    default: 1024,
    min: 1,
    doc: 'Most client connections served at once; more are refused.',
  },
  {
    key: 'keystore.master_key',
    env: 'ARMORCLAW_MASTER_KEY',
    type: 'string',
    secret: true,
    doc: '32-byte master key, as 64 hex characters or base64. Environment only. When unset, a key file is used (created on first start, mode 0600).',
  },
  {
    key: 'keystore.master_key_file',
    env: 'ARMORCLAW_MASTER_KEY_FILE',
    type: 'path',
    default: (ctx) => path.join(ctx.stateDir, 'master.key'),
    doc: 'Key file used when ARMORCLAW_MASTER_KEY is unset. Default: <state_dir>/master.key.',
  },
  {
    key: 'temporal.address',
    env: 'TEMPORAL_ADDRESS',
    type: 'string',
    doc: 'host:port of an existing Temporal frontend. When unset the bridge runs an embedded `temporal server start-dev` with its SQLite file in the state directory.',
  },
  {
    key: 'temporal.namespace',
    env: 'TEMPORAL_NAMESPACE',
    type: 'string',
    default: 'default',
    doc: 'Temporal namespace.',
  },
  {
    key: 'temporal.task_queue',
    env: 'ARMORCLAW_TASK_QUEUE',
    type: 'string',
    default: 'armorclaw',
    doc: 'Shared task queue for workflows and stateless activities.',
  },
  {
    key: 'temporal.dev_server.port',
    env: 'ARMORCLAW_TEMPORAL_PORT',
    type: 'integer',
    default: 7233,
    min: 1,
    max: 65535,
    doc: 'gRPC port of the embedded Temporal dev server (127.0.0.1).',
  },
  {
    key: 'temporal.dev_server.ui_port',
    env: 'ARMORCLAW_TEMPORAL_UI_PORT',
    type: 'integer',
    default: 8233,
    min: 1,
    max: 65535,
    doc: 'Port of the embedded Temporal Web UI (127.0.0.1).',
  },
  {
    key: 'temporal.dev_server.cli_path',
    env: 'ARMORCLAW_TEMPORAL_CLI',
    type: 'path',
    doc: 'The `temporal` CLI binary. Default: .tools/venv/bin/temporal in the project, else `temporal` on PATH.',
  },
  {
    key: 'temporal.ui_url',
    env: 'ARMORCLAW_TEMPORAL_UI_URL',
    type: 'string',
    doc: 'Where operators find the Temporal Web UI when TEMPORAL_ADDRESS is set (printed at start).',
  },
  {
    key: 'docker.socket',
    env: 'ARMORCLAW_DOCKER_SOCKET',
    type: 'path',
    default: '/var/run/docker.sock',
    doc: 'The Docker engine socket (never mounted into agent containers).',
  },
  {
    key: 'containers.default_image',
    env: 'ARMORCLAW_AGENT_IMAGE',
    type: 'string',
    default: 'armorclaw/agent:v1',
    doc: 'Image of an agent type not in containers.agent_types, when `start` names no image.',
  },
  {
    key: 'containers.agent_types',
    env: 'ARMORCLAW_AGENT_TYPES',
    type: 'table',
    default: DEFAULT_AGENT_TYPES,
    doc: 'What each `agent_type` of `start` runs: a table of type = { image = "…", memory_bytes = N } (memory_bytes optional, else containers.memory_bytes), added to the built-in types, or replacing one of them: `openclaw` (the spec\'s default type) runs OpenClaw behind the provider proxy with 2 GiB (scripts/build-openclaw-image.sh builds its image), `echo` the reference agent. A type not listed runs containers.default_image. Environment: the same as a JSON object.',
  },
  {
    key: 'containers.warm_pool',
    env: 'ARMORCLAW_WARM_POOL',
    type: 'table',
    default: {},
    doc: "Containers started ahead per agent type (each type runs one image): a table of type = N (0 to 20), e.g. { echo = 2 }. A `start` of that type with the type's image takes one (its secrets file, socket and name are handed over) instead of creating one, and the pool is refilled in the background. Off by default. Environment: the same as a JSON object.",
  },
  {
    key: 'containers.warm_pool_max_age',
    env: 'ARMORCLAW_WARM_POOL_MAX_AGE',
    type: 'duration',
    default: '30m',
    doc: 'A pooled container not taken within this long is replaced by a fresh one (and at once when its image changed under its tag).',
  },
  {
    key: 'containers.default_ttl',
    env: 'ARMORCLAW_CONTAINER_TTL',
    type: 'duration',
    default: '1h',
    doc: 'TTL of a container run when `start` gives none ("20s", "30m", "1h").',
  },
  {
    key: 'containers.max_ttl',
    env: 'ARMORCLAW_CONTAINER_MAX_TTL',
    type: 'duration',
    default: '24h',
    doc: 'Longest TTL a `start` may ask for; longer asks are refused with -32602.',
  },
  {
    key: 'containers.secrets_deadline',
    env: 'ARMORCLAW_SECRETS_DEADLINE',
    type: 'duration',
    default: '9s',
    doc: 'The secrets file is removed this long after the container starts at the latest (sooner when the agent acknowledges it). At most 10s; the default leaves a second for the removal itself, so the file never lives 10 s.',
  },
  {
    key: 'containers.health_check_interval',
    env: 'ARMORCLAW_HEALTH_CHECK_INTERVAL',
    type: 'duration',
    default: '30s',
    doc: 'Period of the inspect that backs up Docker events as the guarantee that a dead container is noticed.',
  },
  {
    key: 'containers.network',
    env: 'ARMORCLAW_CONTAINER_NETWORK',
    type: 'string',
    default: 'none',
    doc: 'Docker network of agent containers: "none" (no egress) unless you configure one.',
  },
  {
    key: 'containers.memory_bytes',
    env: 'ARMORCLAW_CONTAINER_MEMORY_BYTES',
    type: 'integer',
    default: 512 * 1024 * 1024,
    min: 16 * 1024 * 1024,
    doc: 'Memory limit of each agent container.',
  },
  {
    key: 'containers.pids_limit',
    env: 'ARMORCLAW_CONTAINER_PIDS_LIMIT',
    type: 'integer',
    default: 128,
    min: 8,
    doc: 'Process limit of each agent container.',
  },
  {
    key: 'containers.agent_uid',
    env: 'ARMORCLAW_AGENT_UID',
    type: 'integer',
    default: 10001,
    min: 1,
    doc: 'uid (and gid) agents run as; it owns the secrets file (0400).',
  },
  {
    key: 'containers.secrets_dir',
    env: 'ARMORCLAW_SECRETS_DIR',
    type: 'path',
    default: defaultSecretsDir,
    doc: 'tmpfs directory for per-container secrets files. Default: /run/armorclaw/secrets when /run is tmpfs, else under /dev/shm. A directory not on tmpfs is refused.',
  },
  {
    key: 'containers.secrets_mode',
    env: 'ARMORCLAW_SECRETS_MODE',
    type: 'string',
    default: 'proxy',
    oneOf: ['proxy', 'file'],
    doc: 'How a run reaches its model when `start` does not say (`secrets_mode`): "proxy" (the key stays in the bridge; the agent gets a placeholder and the provider proxy on its socket) or "file" (the real key in the short-lived secrets file).',
  },
  {
    key: 'containers.heartbeat_interval',
    env: 'ARMORCLAW_AGENT_HEARTBEAT_INTERVAL',
    type: 'duration',
    default: '5s',
    doc: 'How often agents heartbeat over their socket.',
  },
  {
    key: 'matrix.homeserver',
    env: 'ARMORCLAW_MATRIX_HOMESERVER',
    type: 'string',
    doc: 'Base URL of the Matrix homeserver (https://matrix.example.com). Matrix is enabled when this is set.',
  },
  {
    key: 'matrix.username',
    env: 'ARMORCLAW_MATRIX_USERNAME',
    type: 'string',
    doc: 'Bot user to log in as at start (with ARMORCLAW_MATRIX_PASSWORD); `matrix.login` can do it later instead.',
  },
  {
    key: 'matrix.password',
    env: 'ARMORCLAW_MATRIX_PASSWORD',
    type: 'string',
    secret: true,
    doc: 'Password of matrix.username. Environment only; used once to log in, never stored (the access token is, encrypted in the keystore).',
  },
  {
    key: 'matrix.device_id',
    env: 'ARMORCLAW_MATRIX_DEVICE_ID',
    type: 'string',
    default: 'ARMORCLAW',
    doc: 'Device id the bridge logs in with; kept stable so transaction ids (exactly-once sends) and the device identity survive restarts.',
  },
  {
    key: 'matrix.trusted_senders',
    env: 'ARMORCLAW_MATRIX_TRUSTED_SENDERS',
    type: 'list',
    default: [],
    doc: 'Who may reach agents: exact ids (@alice:example.com) or whole servers (*:example.com, also written *@example.com). Environment: comma-separated.',
  },
  {
    key: 'matrix.trusted_rooms',
    env: 'ARMORCLAW_MATRIX_TRUSTED_ROOMS',
    type: 'list',
    default: [],
    doc: 'Rooms whose events are accepted (room ids). Environment: comma-separated.',
  },
  {
    key: 'matrix.empty_list_allows_all',
    env: 'ARMORCLAW_MATRIX_EMPTY_LIST_ALLOWS_ALL',
    type: 'boolean',
    default: false,
    doc: 'What an empty trusted_senders or trusted_rooms list means: false (zero trust, the default) lets nobody through; true lets everybody through.',
  },
  {
    key: 'matrix.reject_notice',
    env: 'ARMORCLAW_MATRIX_REJECT_NOTICE',
    type: 'boolean',
    default: false,
    doc: 'Answer a dropped event from an untrusted sender in a trusted room with an m.notice.',
  },
  {
    key: 'matrix.admin_room',
    env: 'ARMORCLAW_MATRIX_ADMIN_ROOM',
    type: 'string',
    doc: 'Room id for operator alerts (budget thresholds, security reports) and approval requests, which approvals.admins answer there.',
  },
  {
    key: 'matrix.sync_timeout',
    env: 'ARMORCLAW_MATRIX_SYNC_TIMEOUT',
    type: 'duration',
    default: '30s',
    doc: 'Long-poll timeout of each /sync request.',
  },
  {
    key: 'budget.daily_limit_usd',
    env: 'ARMORCLAW_BUDGET_DAILY_LIMIT_USD',
    type: 'number',
    default: 0,
    min: 0,
    doc: 'Spending limit per UTC day in USD, from the usage the provider proxy meters and the usage agents report (`budget.report`). Reaching it refuses provider requests, stops running agents and refuses new `start`s (-32006) until the day ends. 0: no daily limit.',
  },
  {
    key: 'budget.monthly_limit_usd',
    env: 'ARMORCLAW_BUDGET_MONTHLY_LIMIT_USD',
    type: 'number',
    default: 0,
    min: 0,
    doc: 'Spending limit per UTC month in USD, enforced like the daily one. 0: no monthly limit.',
  },
  {
    key: 'budget.run_limit_usd',
    env: 'ARMORCLAW_BUDGET_RUN_LIMIT_USD',
    type: 'number',
    default: 0,
    min: 0,
    doc: 'Spending limit of each run in USD when `start` does not give one (`budget_usd`), metered by the provider proxy. Reaching it refuses the run\'s further provider requests (429), cuts its streams and ends the run. Applies to runs in secrets_mode "proxy" (nothing else is metered) and needs prices in budget.models. 0: no per-run limit.',
  },
  {
    key: 'budget.alert_thresholds',
    env: 'ARMORCLAW_BUDGET_ALERT_THRESHOLDS',
    type: 'list',
    items: 'number',
    default: [0.5, 0.8, 0.95],
    min: 0,
    max: 1,
    doc: 'Fractions of each limit (between 0 and 1) at which one alert goes to matrix.admin_room and one budget_warning to the audit log, once per period. Environment: comma-separated.',
  },
  {
    key: 'budget.models',
    env: 'ARMORCLAW_BUDGET_MODELS',
    type: 'table',
    default: {},
    doc: 'Prices per model in USD per 1,000 tokens: a table of model = { input_per_1k_usd = 0.0025, output_per_1k_usd = 0.01 }, e.g. [budget.models."gpt-4o"]. Environment: the same as a JSON object.',
  },
  {
    key: 'budget.unknown_model_cost',
    env: 'ARMORCLAW_BUDGET_UNKNOWN_MODEL_COST',
    type: 'string',
    default: 'refuse',
    doc: 'How a report for a model missing from budget.models is priced: "refuse" rejects it with -32602 (nothing is spent unseen), or the name of a model in budget.models whose prices apply.',
  },
  {
    key: 'proxy.base_urls',
    env: 'ARMORCLAW_PROXY_BASE_URLS',
    type: 'table',
    default: {},
    doc: 'Where the provider proxy sends each provider\'s requests, when not the provider\'s own API: a table of provider = "https://…" for openai, anthropic, openrouter, google, xai (an API gateway, a regional endpoint). Environment: the same as a JSON object.',
  },
  {
    key: 'proxy.ca_file',
    env: 'ARMORCLAW_PROXY_CA_FILE',
    type: 'path',
    doc: 'PEM file of certificates the provider proxy trusts for HTTPS besides the public roots: for a gateway in proxy.base_urls with a private CA. Certificates are always verified.',
  },
  {
    key: 'proxy.connect_timeout',
    env: 'ARMORCLAW_PROXY_CONNECT_TIMEOUT',
    type: 'duration',
    default: '10s',
    doc: 'How long the provider proxy waits to connect to a provider before answering 504.',
  },
  {
    key: 'proxy.idle_timeout',
    env: 'ARMORCLAW_PROXY_IDLE_TIMEOUT',
    type: 'duration',
    default: '5m',
    doc: 'How long a provider may stay silent, before and during an answer, before the proxy gives up (504): slow models think.',
  },
  {
    key: 'voice.default_ttl',
    env: 'ARMORCLAW_VOICE_DEFAULT_TTL',
    type: 'duration',
    default: '10m',
    doc: 'Lifetime of a call when webrtc.start gives no ttl (10 minutes). The call token and TURN credentials expire with it.',
  },
  {
    key: 'voice.max_ttl',
    env: 'ARMORCLAW_VOICE_MAX_TTL',
    type: 'duration',
    default: '1h',
    doc: 'Longest ttl webrtc.start accepts; more is refused with -32602.',
  },
  {
    key: 'voice.connect_timeout',
    env: 'ARMORCLAW_VOICE_CONNECT_TIMEOUT',
    type: 'duration',
    default: '30s',
    doc: 'A call whose WebRTC peer has not connected this long after start (or after an ICE restart) ends as Failed.',
  },
  {
    key: 'voice.signaling_host',
    env: 'ARMORCLAW_VOICE_SIGNALING_HOST',
    type: 'string',
    default: '127.0.0.1',
    doc: 'Address the WSS signaling server (and the call page) listens on; 0.0.0.0 for all interfaces.',
  },
  {
    key: 'voice.signaling_port',
    env: 'ARMORCLAW_VOICE_SIGNALING_PORT',
    type: 'integer',
    default: 8443,
    min: 0,
    max: 65535,
    doc: 'TCP port of the signaling server; 0 picks a free port (tests).',
  },
  {
    key: 'voice.public_url',
    env: 'ARMORCLAW_VOICE_PUBLIC_URL',
    type: 'string',
    doc: 'Base URL clients reach the signaling server at (https://bridge.example.com:8443); the signaling_url is its /webrtc. Default: https://<signaling_host>:<port>.',
  },
  {
    key: 'voice.tls_cert',
    env: 'ARMORCLAW_VOICE_TLS_CERT',
    type: 'path',
    doc: 'PEM certificate (chain) of the signaling server. Unset: a self-signed certificate is generated on first start and kept in <state_dir>/tls.',
  },
  {
    key: 'voice.tls_key',
    env: 'ARMORCLAW_VOICE_TLS_KEY',
    type: 'path',
    doc: 'PEM private key for voice.tls_cert.',
  },
  {
    key: 'voice.allowed_origins',
    env: 'ARMORCLAW_VOICE_ALLOWED_ORIGINS',
    type: 'list',
    default: [],
    doc: "Origins (https://app.example.com) whose pages may open signaling WebSockets besides the bridge's own call page. Clients that send no Origin (native apps) are allowed. Environment: comma-separated.",
  },
  {
    key: 'voice.max_message_bytes',
    env: 'ARMORCLAW_VOICE_MAX_MESSAGE_BYTES',
    type: 'integer',
    default: 64 * 1024,
    min: 1024,
    max: 1024 * 1024,
    doc: 'Largest signaling message; a larger one closes the WebSocket (1009).',
  },
  {
    key: 'voice.messages_per_second',
    env: 'ARMORCLAW_VOICE_MESSAGES_PER_SECOND',
    type: 'integer',
    default: 50,
    min: 1,
    doc: 'Signaling messages one WebSocket may send per second (a burst of as many is allowed); beyond it they are refused with an error message, and a client that keeps going is disconnected.',
  },
  {
    key: 'voice.turn_urls',
    env: 'ARMORCLAW_VOICE_TURN_URLS',
    type: 'list',
    default: [],
    doc: 'TURN servers offered to callers (turn:turn.example.com:3478?transport=udp). Environment: comma-separated.',
  },
  {
    key: 'voice.turn_secret',
    env: 'ARMORCLAW_VOICE_TURN_SECRET',
    type: 'string',
    secret: true,
    doc: 'The static-auth-secret shared with coturn (use-auth-secret): TURN credentials are derived from it per call. Environment only. Unset: calls get no TURN credentials.',
  },
  {
    key: 'voice.ice_host_addresses',
    env: 'ARMORCLAW_VOICE_ICE_HOST_ADDRESSES',
    type: 'list',
    default: [],
    doc: 'Extra addresses the bridge offers as ICE host candidates (e.g. 127.0.0.1 on a host whose only interface is loopback). Environment: comma-separated.',
  },
  {
    key: 'voice.media_threads',
    env: 'ARMORCLAW_VOICE_MEDIA_THREADS',
    type: 'integer',
    default: () => os.availableParallelism(),
    min: 0,
    max: 64,
    doc: "Worker threads that carry calls' media (WebRTC, SRTP, Opus, play-out pacing), started as calls need them and stopped when idle; 0 keeps media on the main thread. Default: the machine's CPU count.",
  },
  {
    key: 'voice.calls_per_media_thread',
    env: 'ARMORCLAW_VOICE_CALLS_PER_MEDIA_THREAD',
    type: 'integer',
    default: 10,
    min: 1,
    max: 1000,
    doc: 'Calls a media thread takes before another one starts (up to voice.media_threads; past that, calls go to the least busy thread).',
  },
  {
    key: 'voice.allowed_rooms',
    env: 'ARMORCLAW_VOICE_ALLOWED_ROOMS',
    type: 'list',
    default: [],
    doc: 'Rooms calls may be placed for (room ids). Empty: the rooms of matrix.trusted_rooms; if that is empty too, every room when matrix.empty_list_allows_all is true, else none (zero trust). Environment: comma-separated.',
  },
  {
    key: 'voice.blocked_rooms',
    env: 'ARMORCLAW_VOICE_BLOCKED_ROOMS',
    type: 'list',
    default: [],
    doc: 'Rooms never allowed to call, whatever the allow lists say (-32001). Environment: comma-separated.',
  },
  {
    key: 'voice.require_encrypted_room',
    env: 'ARMORCLAW_VOICE_REQUIRE_ENCRYPTED_ROOM',
    type: 'boolean',
    default: true,
    doc: 'Refuse calls (-32005, audited security_violation) for rooms without end-to-end encryption.',
  },
  {
    key: 'voice.require_membership',
    env: 'ARMORCLAW_VOICE_REQUIRE_MEMBERSHIP',
    type: 'boolean',
    default: true,
    doc: 'Refuse calls (-32005) unless the caller (webrtc.start user_id) has joined the room.',
  },
  {
    key: 'voice.rate_limit_calls',
    env: 'ARMORCLAW_VOICE_RATE_LIMIT_CALLS',
    type: 'integer',
    default: 10,
    min: 1,
    doc: 'Calls one user (or one room, without user_id) may start per voice.rate_limit_window; more are refused with -32002.',
  },
  {
    key: 'voice.rate_limit_window',
    env: 'ARMORCLAW_VOICE_RATE_LIMIT_WINDOW',
    type: 'duration',
    default: '1m',
    doc: 'The sliding window of voice.rate_limit_calls.',
  },
  {
    key: 'voice.max_concurrent_calls',
    env: 'ARMORCLAW_VOICE_MAX_CONCURRENT_CALLS',
    type: 'integer',
    default: 50,
    min: 1,
    doc: 'Calls in progress at once across every bridge on the Temporal namespace; more are refused with -32003.',
  },
  {
    key: 'voice.max_call_duration',
    env: 'ARMORCLAW_VOICE_MAX_CALL_DURATION',
    type: 'duration',
    default: '10m',
    doc: 'Per-call budget of talk time from connect: the call ends (budget_exceeded) when it is used up.',
  },
  {
    key: 'voice.max_call_tokens',
    env: 'ARMORCLAW_VOICE_MAX_CALL_TOKENS',
    type: 'integer',
    default: 0,
    min: 0,
    doc: 'Per-call budget of model tokens the agent reports (budget.report) during the call; 0: no per-call token limit (the global budget still applies).',
  },
  {
    key: 'voice.budget_warning_fraction',
    env: 'ARMORCLAW_VOICE_BUDGET_WARNING_FRACTION',
    type: 'number',
    default: 0.8,
    min: 0,
    max: 1,
    doc: "Fraction of either per-call budget at which a budget_warning is audited and a notice posted in the call's room, once per call.",
  },
  {
    key: 'voice.stop_existing_agent_on_end',
    env: 'ARMORCLAW_VOICE_STOP_EXISTING_AGENT_ON_END',
    type: 'boolean',
    default: false,
    doc: 'Whether ending a call also stops an agent run the call did not start (one named by container_name). Runs started for a call always stop with it.',
  },
  // --- the HTTP gateway (docs/gateway.md) -------------------------------------------------------
  {
    key: 'gateway.enabled',
    env: 'ARMORCLAW_GATEWAY_ENABLED',
    type: 'boolean',
    default: true,
    doc: 'Serve the HTTP gateway (POST /rpc, GET /health, GET /status) for remote clients.',
  },
  {
    key: 'gateway.host',
    env: 'ARMORCLAW_GATEWAY_HOST',
    type: 'string',
    default: '127.0.0.1',
    doc: 'Address the gateway listens on; 0.0.0.0 for all interfaces (then auth_mode must not be "none").',
  },
  {
    key: 'gateway.port',
    env: 'ARMORCLAW_GATEWAY_PORT',
    type: 'integer',
    default: 8787,
    min: 0,
    max: 65535,
    doc: 'TCP port of the gateway; 0 picks a free port (tests). The bridge logs the URL it listens on.',
  },
  {
    key: 'gateway.tls',
    env: 'ARMORCLAW_GATEWAY_TLS',
    type: 'boolean',
    default: false,
    doc: 'Serve HTTPS: with gateway.tls_cert/tls_key when given, else the self-signed certificate in <state_dir>/tls that voice signaling uses.',
  },
  {
    key: 'gateway.tls_cert',
    env: 'ARMORCLAW_GATEWAY_TLS_CERT',
    type: 'path',
    doc: 'PEM certificate (chain) of the gateway when gateway.tls is on. Unset: the self-signed one in <state_dir>/tls.',
  },
  {
    key: 'gateway.tls_key',
    env: 'ARMORCLAW_GATEWAY_TLS_KEY',
    type: 'path',
    doc: 'PEM private key for gateway.tls_cert.',
  },
  {
    key: 'gateway.auth_mode',
    env: 'ARMORCLAW_GATEWAY_AUTH_MODE',
    type: 'string',
    default: 'token',
    oneOf: ['token', 'password', 'none'],
    doc: 'token: `Authorization: Bearer <token>` (tokens from `armorclaw gateway token create`); password: `x-gateway-password` (ARMORCLAW_GATEWAY_PASSWORD); none: no credential, loopback clients only (refused on a non-loopback bind).',
  },
  {
    key: 'gateway.password',
    env: 'ARMORCLAW_GATEWAY_PASSWORD',
    type: 'string',
    secret: true,
    doc: 'The gateway password of auth_mode "password". Environment only; the bridge keeps only its SHA-256.',
  },
  {
    key: 'gateway.trusted_identity_header',
    env: 'ARMORCLAW_GATEWAY_TRUSTED_IDENTITY_HEADER',
    type: 'string',
    doc: "A header (x-forwarded-user) a reverse proxy sets to the authenticated user. When set, every request must come from gateway.trusted_proxy_ips and carry it; it becomes the caller's subject.",
  },
  {
    key: 'gateway.trusted_proxy_ips',
    env: 'ARMORCLAW_GATEWAY_TRUSTED_PROXY_IPS',
    type: 'list',
    default: [],
    doc: 'Addresses of reverse proxies whose gateway.trusted_identity_header is believed. Environment: comma-separated.',
  },
  {
    key: 'gateway.body_limit_bytes',
    env: 'ARMORCLAW_GATEWAY_BODY_LIMIT_BYTES',
    type: 'integer',
    default: 1024 * 1024,
    min: 1024,
    max: 64 * 1024 * 1024,
    doc: 'Largest POST /rpc body; a larger one is answered 413 with BAD_REQUEST.',
  },
  {
    key: 'gateway.rate_limit_per_minute',
    env: 'ARMORCLAW_GATEWAY_RATE_LIMIT_PER_MINUTE',
    type: 'integer',
    default: 120,
    min: 0,
    doc: 'Requests one subject (token, password, identity or local caller) may make to one method per minute, as a bucket that refills evenly (a burst of as many is allowed); more are RATE_LIMITED with Retry-After. 0: unlimited.',
  },
  {
    key: 'gateway.rate_limits',
    env: 'ARMORCLAW_GATEWAY_RATE_LIMITS',
    type: 'table',
    default: {},
    doc: 'Per-method budgets overriding gateway.rate_limit_per_minute: a table of method = requests per minute ("agent.run" = 30; 0: unlimited). Environment: the same as a JSON object.',
  },
  {
    key: 'gateway.chat.sends_per_minute',
    env: 'ARMORCLAW_GATEWAY_CHAT_SENDS_PER_MINUTE',
    type: 'integer',
    default: 20,
    min: 1,
    max: 10_000,
    doc: 'Pacing of chat.send: messages one room takes in a sliding minute; more are answered {delivered: false, reason: "paced"} unless urgent.',
  },
  // --- gateway agent turns (agent.run / agent.wait) and cron schedules ---
  {
    key: 'gateway.session.max_messages_per_turn',
    env: 'ARMORCLAW_GATEWAY_MAX_MESSAGES_PER_TURN',
    type: 'integer',
    default: 64,
    min: 1,
    max: 10_000,
    doc: 'Most messages one agent.run takes; more are refused with BAD_REQUEST.',
  },
  {
    key: 'gateway.session.max_message_chars',
    env: 'ARMORCLAW_GATEWAY_MAX_MESSAGE_CHARS',
    type: 'integer',
    default: 32_000,
    min: 1,
    max: 200_000,
    doc: "Longest content of one agent.run message (and of a cron job's message), in characters; longer is refused with BAD_REQUEST.",
  },
  {
    key: 'gateway.agent.key_id',
    env: 'ARMORCLAW_GATEWAY_AGENT_KEY_ID',
    type: 'string',
    doc: 'The stored credential (store_key id) the agents of gateway turns and cron jobs run with. Unset: agent.run and cron.add answer RUN_UNAVAILABLE.',
  },
  {
    key: 'gateway.agent.agent_type',
    env: 'ARMORCLAW_GATEWAY_AGENT_TYPE',
    type: 'string',
    default: 'openclaw',
    doc: 'The agent type (containers.agent_types) of gateway turns and cron jobs.',
  },
  {
    key: 'gateway.agent.ttl',
    env: 'ARMORCLAW_GATEWAY_AGENT_TTL',
    type: 'duration',
    default: '1h',
    doc: "TTL of a gateway session's agent container, started by its first turn; a turn after it has expired starts a new one.",
  },
  {
    key: 'gateway.turn.timeout',
    env: 'ARMORCLAW_GATEWAY_TURN_TIMEOUT',
    type: 'duration',
    default: '5m',
    doc: 'The whole limit of one turn (starting its agent, delivery, retries, answer); past it the turn is Expired.',
  },
  {
    key: 'gateway.turn.retention',
    env: 'ARMORCLAW_GATEWAY_TURN_RETENTION',
    type: 'duration',
    default: '1h',
    doc: 'How long a finished turn keeps its answer for agent.wait; uncollected by then, it completes and the answer is gone (NOT_FOUND).',
  },
  {
    key: 'gateway.turn.max_wait',
    env: 'ARMORCLAW_GATEWAY_TURN_MAX_WAIT',
    type: 'duration',
    default: '50s',
    doc: 'The longest one agent.wait waits (its timeoutMs is capped to it; default 30 s or this, whichever is less); a turn still running then is answered RUN_UNAVAILABLE "still running". Keep it under the gateway\'s 60 s request timeout.',
  },
  {
    key: 'gateway.turn.max_retries',
    env: 'ARMORCLAW_GATEWAY_TURN_MAX_RETRIES',
    type: 'integer',
    default: 3,
    min: 0,
    max: 100,
    doc: 'Delivery retries of an agent.run turn after its first attempt (a lost connection, a bridge restart); cron jobs set their own (maxRetries).',
  },
  {
    key: 'gateway.turn.backoff',
    env: 'ARMORCLAW_GATEWAY_TURN_BACKOFF',
    type: 'duration',
    default: '1s',
    doc: "First pause between an agent.run turn's delivery attempts (doubling, at most 30 s); cron jobs set their own (backoffMs).",
  },
  // --- approvals and incident containment ---
  {
    key: 'approvals.request_timeout',
    env: 'ARMORCLAW_APPROVALS_REQUEST_TIMEOUT',
    type: 'duration',
    default: '15m',
    doc: "How long an agent's approval request (approval.request) waits for an answer before it expires unanswered.",
  },
  {
    key: 'approvals.admins',
    env: 'ARMORCLAW_APPROVALS_ADMINS',
    type: 'list',
    default: [],
    doc: 'Matrix user ids (@alice:example.com) whose "approve <id>" / "deny <id>" replies in matrix.admin_room resolve approval requests; replies from anyone else are ignored and audited. Empty: requests are answered over the gateway only. Each admin must also pass matrix.trusted_senders, and the admin room matrix.trusted_rooms. Environment: comma-separated.',
  },
  // --- paired devices (pair.start, /api/bridge/pair/complete, /api/bridge/ws) ---
  {
    key: 'devices.enabled',
    env: 'ARMORCLAW_DEVICES_ENABLED',
    type: 'boolean',
    default: true,
    doc: 'Serve paired devices on the gateway: POST /api/bridge/pair/complete, POST /api/bridge/revoke, the device WebSocket /api/bridge/ws and the pairing page /pair. Needs gateway.enabled.',
  },
  {
    key: 'devices.public_url',
    env: 'ARMORCLAW_DEVICES_PUBLIC_URL',
    type: 'string',
    doc: "The base URL devices reach the bridge at (https://bridge.example.com), put in the pairing link and its QR code. Unset: the gateway's own URL.",
  },
  {
    key: 'devices.ping_interval',
    env: 'ARMORCLAW_DEVICES_PING_INTERVAL',
    type: 'duration',
    default: '15s',
    doc: 'How often the bridge pings each device WebSocket; a device that has not answered the previous ping is dropped.',
  },
  {
    key: 'devices.rate_limit_per_minute',
    env: 'ARMORCLAW_DEVICES_RATE_LIMIT_PER_MINUTE',
    type: 'integer',
    default: 120,
    min: 0,
    max: 1_000_000,
    doc: 'Invocations one device may make in a minute, over all its connections; more are refused RATE_LIMITED. 0: unlimited.',
  },
  {
    key: 'devices.max_connections',
    env: 'ARMORCLAW_DEVICES_MAX_CONNECTIONS',
    type: 'integer',
    default: 4,
    min: 1,
    max: 1_000,
    doc: 'Open WebSockets one device may hold at once; a further one is refused.',
  },
  {
    key: 'configs.max_bytes',
    env: 'ARMORCLAW_CONFIG_MAX_BYTES',
    type: 'integer',
    default: 1024 * 1024,
    min: 1,
    doc: 'Largest config attachment (decoded).',
  },
] as const satisfies readonly Setting[];

export const settingByKey = new Map<string, Setting>(settings.map((s) => [s.key, s]));

// --- the value each setting yields, read off the table ------------------------------------------

type SettingEntry = (typeof settings)[number];

/** The key of a setting in the table. */
export type SettingKey = SettingEntry['key'];

type EntryOf<K extends SettingKey> = Extract<SettingEntry, { key: K }>;

/** What a setting's `type` (and `items`, `oneOf`) make of its value once loaded. */
type LoadedValue<S> = S extends { type: 'integer' | 'number' | 'duration' }
  ? number
  : S extends { type: 'boolean' }
    ? boolean
    : S extends { type: 'list'; items: 'number' }
      ? number[]
      : S extends { type: 'list' }
        ? string[]
        : S extends { type: 'table' }
          ? Record<string, unknown>
          : S extends { oneOf: readonly (infer O extends string)[] }
            ? O
            : string;

/** The loaded value of setting `K`: undefined is possible only when the table gives no default. */
export type SettingValueOf<K extends SettingKey> =
  LoadedValue<EntryOf<K>> | (EntryOf<K> extends { default: unknown } ? never : undefined);
