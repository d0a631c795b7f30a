/**
 * The bridge's configuration: the TOML file (if any) and the environment, each setting coerced
 * by its row of the settings table (config/settings.ts, config/coerce.ts), checked across keys,
 * with defaults applied. `BridgeConfig`'s value types are read off the table, so a setting
 * changes type in one place and every reader follows.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { parseDuration } from '../formats/duration';
import { decodeMasterKey } from '../formats/master-key';
import { parseModelPrices, REFUSE_UNKNOWN_MODELS } from '../formats/model-prices';
import { PROVIDERS } from '../formats/providers';
import type { SecretsMode } from '../formats/secrets-file';
import { coerce } from './coerce';
import {
  DEFAULT_AGENT_TYPES,
  settingByKey,
  settings,
  type DefaultContext,
  type Setting,
  type SettingKey,
  type SettingValue,
  type SettingValueOf,
} from './settings';

/** The bridge's validated configuration. */
export type BridgeConfig = ReturnType<typeof assemble>;

/** Room in a request for everything but an attachment's content: envelope, name, metadata. */
export const REQUEST_ENVELOPE_BYTES = 64 * 1024;

/**
 * The socket's default frame cap: the largest legal request is `attach_config` with a config of
 * `configMaxBytes` sent as base64 (4 characters per 3 bytes), so that one must fit, and a config
 * just over the limit still arrives whole and gets -32602 naming the limit instead of a cut
 * connection.
 */
export function largestRequestBytes(configMaxBytes: number): number {
  return Math.ceil(configMaxBytes / 3) * 4 + REQUEST_ENVELOPE_BYTES;
}

/** A configuration problem, naming the key and where its value came from. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

export interface LoadOptions {
  env?: NodeJS.ProcessEnv;
  /** Overrides ARMORCLAW_CONFIG and the search path. */
  configFile?: string;
  uid?: number;
}

/** Where a config file is looked for when ARMORCLAW_CONFIG is unset, first match wins. */
export function configSearchPath(env: NodeJS.ProcessEnv): string[] {
  const xdg = env.XDG_CONFIG_HOME || path.join(os.homedir(), '.config');
  return [
    path.resolve('armorclaw.toml'),
    path.join(xdg, 'armorclaw', 'config.toml'),
    '/etc/armorclaw/config.toml',
  ];
}

/** Reads one setting's loaded value: what was given, else its default. */
type Read = <K extends SettingKey>(key: K) => SettingValueOf<K>;

/** Loads the TOML file (if any) and the environment, validates both, applies defaults. */
export function loadConfig(options: LoadOptions = {}): BridgeConfig {
  const env = options.env ?? process.env;
  const uid = options.uid ?? process.getuid?.() ?? 1000;
  const problems: string[] = [];

  const explicit = options.configFile ?? env.ARMORCLAW_CONFIG;
  let configFile: string | undefined;
  let fileValues: Record<string, unknown> = {};
  if (explicit) {
    if (!existsSync(explicit)) {
      throw new ConfigError([`ARMORCLAW_CONFIG: file ${explicit} does not exist`]);
    }
    configFile = explicit;
  } else {
    configFile = configSearchPath(env).find((p) => existsSync(p));
  }
  if (configFile) {
    try {
      fileValues = flatten(parseToml(readFileSync(configFile, 'utf8')));
    } catch (err) {
      throw new ConfigError([`${configFile}: not valid TOML: ${(err as Error).message}`]);
    }
    for (const key of Object.keys(fileValues)) {
      const setting = settingByKey.get(key);
      if (!setting) problems.push(`${key} (in ${configFile}): unknown setting`);
      else if (setting.secret) {
        problems.push(`${key} (in ${configFile}): secrets are read from ${setting.env} only`);
      }
    }
  }

  const table: readonly Setting[] = settings;
  const given = new Map<string, SettingValue>();
  for (const setting of table) {
    const envValue = setting.env ? env[setting.env] : undefined;
    if (envValue !== undefined && envValue !== '') {
      const v = coerce(setting, envValue, `${setting.key} (env ${setting.env})`, problems);
      if (v !== undefined) given.set(setting.key, v);
    } else if (setting.key in fileValues && !setting.secret) {
      const v = coerce(
        setting,
        fileValues[setting.key],
        `${setting.key} (in ${configFile})`,
        problems,
      );
      if (v !== undefined) given.set(setting.key, v);
    }
  }

  const ctx: DefaultContext = { uid, env, stateDir: '' };
  const read: Read = (key) => {
    let v: SettingValue | undefined = given.get(key);
    if (v === undefined) {
      const setting = settingByKey.get(key);
      v = typeof setting?.default === 'function' ? setting.default(ctx) : setting?.default;
      if (setting?.type === 'duration' && typeof v === 'string') v = parseDuration(v) ?? undefined;
    }
    // The one cast: `given` holds what coerce made of this key's type, and a default is the
    // table's own value for the key (durations parsed above); a Map cannot tie each entry's
    // type to its key.
    return v as SettingValueOf<typeof key>;
  };
  ctx.stateDir = path.resolve(read('state_dir'));

  checkAcrossKeys(read, problems);
  const modelsFrom = env.ARMORCLAW_BUDGET_MODELS
    ? 'env ARMORCLAW_BUDGET_MODELS'
    : `in ${configFile}`;
  const budget = checkBudget(read, modelsFrom, problems);
  const proxyBaseUrls = checkProxyBaseUrls(read, problems);
  const agentTypes = checkAgentTypes(read, problems);
  const warmPool = checkWarmPool(read, agentTypes, problems);
  const gateway = checkGateway(read, problems);
  if (problems.length > 0) throw new ConfigError(problems);
  return assemble(read, {
    configFile,
    stateDir: ctx.stateDir,
    budget,
    proxyBaseUrls,
    agentTypes,
    warmPool,
    gateway,
  });
}

/** The checks that span keys or look inside a value; each problem names its key. */
function checkAcrossKeys(read: Read, problems: string[]): void {
  const masterKey = read('keystore.master_key');
  if (masterKey !== undefined && decodeMasterKey(masterKey) === null) {
    problems.push(
      'keystore.master_key (env ARMORCLAW_MASTER_KEY): must be 32 bytes as 64 hex characters or base64',
    );
  }
  const address = read('temporal.address');
  if (address !== undefined && !/^[^\s:]+:\d{1,5}$/.test(address)) {
    problems.push(`temporal.address (env TEMPORAL_ADDRESS): expected host:port, got "${address}"`);
  }
  if (read('containers.secrets_deadline') > 10_000) {
    problems.push('containers.secrets_deadline: must be at most 10s (secrets live at most 10 s)');
  }
  if (read('containers.default_ttl') > read('containers.max_ttl')) {
    problems.push('containers.default_ttl: must not exceed containers.max_ttl');
  }
  if (read('voice.default_ttl') > read('voice.max_ttl')) {
    problems.push('voice.default_ttl: must not exceed voice.max_ttl');
  }
  if (Boolean(read('voice.tls_cert')) !== Boolean(read('voice.tls_key'))) {
    problems.push('voice.tls_cert, voice.tls_key: give both or neither');
  }
  const homeserver = read('matrix.homeserver');
  if (homeserver !== undefined && !/^https?:\/\/[^\s/]+(\/.*)?$/.test(homeserver)) {
    problems.push(`matrix.homeserver: expected an http(s) URL, got "${homeserver}"`);
  }
  const publicUrl = read('devices.public_url');
  if (publicUrl !== undefined && !/^https?:\/\/[^\s/?#]+\/?$/.test(publicUrl)) {
    problems.push(
      `devices.public_url: expected an http(s) base URL without a path (https://bridge.example.com), got "${publicUrl}"`,
    );
  }
}

/** The budget settings that span keys: thresholds, the price table, the unknown-model rule. */
function checkBudget(read: Read, modelsFrom: string, problems: string[]) {
  const thresholds = read('budget.alert_thresholds');
  if (thresholds.some((t) => t <= 0 || t >= 1)) {
    problems.push('budget.alert_thresholds: each threshold must be between 0 and 1 (exclusive)');
  }
  const parsed = parseModelPrices(read('budget.models'));
  if (!parsed.ok) {
    for (const p of parsed.problems) problems.push(`budget.models (${modelsFrom}): ${p}`);
  }
  const models = parsed.ok ? parsed.prices : {};
  const unknownModelCost = read('budget.unknown_model_cost');
  if (
    parsed.ok &&
    unknownModelCost !== REFUSE_UNKNOWN_MODELS &&
    !Object.prototype.hasOwnProperty.call(models, unknownModelCost)
  ) {
    problems.push(
      `budget.unknown_model_cost: must be "${REFUSE_UNKNOWN_MODELS}" or a model of budget.models, got "${unknownModelCost}"`,
    );
  }
  if (read('budget.run_limit_usd') > 0 && parsed.ok && Object.keys(models).length === 0) {
    problems.push(
      'budget.run_limit_usd: needs prices in budget.models (nothing priced, no run would reach it)',
    );
  }
  return {
    /** 0: no limit. */
    dailyLimitUsd: read('budget.daily_limit_usd'),
    /** 0: no limit. */
    monthlyLimitUsd: read('budget.monthly_limit_usd'),
    /** Each run's limit unless `start` gives one; 0: none. */
    runLimitUsd: read('budget.run_limit_usd'),
    /** Fractions in (0, 1), ascending, without duplicates. */
    alertThresholds: [...new Set(thresholds)].sort((a, b) => a - b),
    models,
    /** "refuse", or the model whose prices apply to unknown models. */
    unknownModelCost,
  };
}

/** `proxy.base_urls`: provider names to http(s) origins (an optional path prefix allowed). */
function checkProxyBaseUrls(read: Read, problems: string[]): Record<string, string> {
  const table = read('proxy.base_urls');
  const urls: Record<string, string> = {};
  for (const [provider, value] of Object.entries(table)) {
    if (!(PROVIDERS as readonly string[]).includes(provider)) {
      problems.push(
        `proxy.base_urls: unknown provider "${provider}" (one of ${PROVIDERS.join(', ')})`,
      );
      continue;
    }
    let url: URL | undefined;
    try {
      url = typeof value === 'string' ? new URL(value) : undefined;
    } catch {
      url = undefined;
    }
    if (!url || !['http:', 'https:'].includes(url.protocol) || url.search || url.hash) {
      problems.push(
        `proxy.base_urls.${provider}: expected an http(s) URL, got ${JSON.stringify(value)}`,
      );
      continue;
    }
    urls[provider] = url.href.replace(/\/$/, '');
  }
  return urls;
}

/** The HTTP gateway's settings (docs/gateway.md), checked across keys. */
export interface GatewaySettings {
  enabled: boolean;
  host: string;
  port: number;
  /** Absent: plain HTTP. `selfSignedDir`: the certificate voice signaling uses too. */
  tls?: { certFile: string; keyFile: string } | { selfSignedDir: string };
  authMode: 'token' | 'password' | 'none';
  /** SHA-256 of ARMORCLAW_GATEWAY_PASSWORD (hex): the password itself is not kept. */
  passwordSha256?: string;
  /** Lower-cased header name. */
  trustedIdentityHeader?: string;
  trustedProxyIps: string[];
  bodyLimitBytes: number;
  /** Requests per minute per method and subject; 0: unlimited. */
  ratePerMinute: number;
  /** Per-method overrides of ratePerMinute. */
  methodRates: Record<string, number>;
  /** chat.send pacing: sends one room takes in a sliding minute. */
  chatSendsPerMinute: number;
}

/** Whether `host` (a bind address) is loopback only. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return (
    h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h) || /^::ffff:127\./.test(h)
  );
}

function checkGateway(read: Read, problems: string[]): GatewaySettings {
  const host = read('gateway.host');
  const authMode = read('gateway.auth_mode');
  const enabled = read('gateway.enabled');
  const password = read('gateway.password');
  if (enabled && authMode === 'none' && !isLoopbackHost(host)) {
    problems.push(
      `gateway.auth_mode: "none" serves loopback clients only; gateway.host "${host}" is not a loopback address (use token or password auth, or bind 127.0.0.1)`,
    );
  }
  if (enabled && authMode === 'password' && !password) {
    problems.push(
      'gateway.password (env ARMORCLAW_GATEWAY_PASSWORD): required when gateway.auth_mode is "password"',
    );
  }
  if (Boolean(read('gateway.tls_cert')) !== Boolean(read('gateway.tls_key'))) {
    problems.push('gateway.tls_cert, gateway.tls_key: give both or neither');
  }
  const header = read('gateway.trusted_identity_header');
  if (header !== undefined && !/^[a-z0-9!#$%&'*+.^_`|~-]+$/i.test(header)) {
    problems.push(`gateway.trusted_identity_header: "${header}" is not an HTTP header name`);
  }
  const proxies = read('gateway.trusted_proxy_ips');
  for (const ip of proxies) {
    if (isIP(ip) === 0) problems.push(`gateway.trusted_proxy_ips: "${ip}" is not an IP address`);
  }
  if (header !== undefined && proxies.length === 0) {
    problems.push(
      'gateway.trusted_identity_header: needs gateway.trusted_proxy_ips (the proxies allowed to set it)',
    );
  }
  const methodRates: Record<string, number> = {};
  for (const [method, value] of Object.entries(read('gateway.rate_limits'))) {
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
      problems.push(
        `gateway.rate_limits.${method}: expected a whole number of requests per minute (0: unlimited), got ${JSON.stringify(value)}`,
      );
      continue;
    }
    methodRates[method] = value;
  }
  const cert = read('gateway.tls_cert');
  const key = read('gateway.tls_key');
  const stateDir = path.resolve(read('state_dir'));
  return {
    enabled,
    host,
    port: read('gateway.port'),
    ...(read('gateway.tls')
      ? {
          tls:
            cert && key
              ? { certFile: path.resolve(cert), keyFile: path.resolve(key) }
              : { selfSignedDir: path.join(stateDir, 'tls') },
        }
      : {}),
    authMode,
    ...(password ? { passwordSha256: createHash('sha256').update(password).digest('hex') } : {}),
    ...(header !== undefined ? { trustedIdentityHeader: header.toLowerCase() } : {}),
    trustedProxyIps: proxies,
    bodyLimitBytes: read('gateway.body_limit_bytes'),
    ratePerMinute: read('gateway.rate_limit_per_minute'),
    methodRates,
    chatSendsPerMinute: read('gateway.chat.sends_per_minute'),
  };
}

/** What one agent type runs (`containers.agent_types`). */
export interface AgentTypeSettings {
  image: string;
  /** Absent: containers.memory_bytes. */
  memoryBytes?: number;
}

/**
 * What a run of `agentType` gets: `image` when `start` names one, else the type's image, else
 * containers.default_image; the type's memory limit when it has one.
 */
export function agentTypeRun(
  containers: { defaultImage: string; agentTypes: Record<string, AgentTypeSettings> },
  agentType: string,
  image?: string,
): AgentTypeSettings {
  const type = Object.prototype.hasOwnProperty.call(containers.agentTypes, agentType)
    ? containers.agentTypes[agentType]
    : undefined;
  return {
    image: image ?? type?.image ?? containers.defaultImage,
    ...(type?.memoryBytes !== undefined ? { memoryBytes: type.memoryBytes } : {}),
  };
}

const AGENT_TYPE_NAME = /^[a-z0-9][a-z0-9_.-]{0,31}$/;
const MIN_MEMORY_BYTES = 16 * 1024 * 1024;

/** `containers.agent_types`: type names to an image and, optionally, a memory limit. */
function checkAgentTypes(read: Read, problems: string[]): Record<string, AgentTypeSettings> {
  const types: Record<string, AgentTypeSettings> = {};
  const table = { ...DEFAULT_AGENT_TYPES, ...read('containers.agent_types') };
  for (const [name, value] of Object.entries(table)) {
    const where = `containers.agent_types.${name}`;
    if (!AGENT_TYPE_NAME.test(name)) {
      problems.push(`${where}: a type name must match [a-z0-9][a-z0-9_.-]{0,31}`);
      continue;
    }
    const v = value as { image?: unknown; memory_bytes?: unknown } | null;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      problems.push(`${where}: expected a table { image = "…", memory_bytes = N }`);
      continue;
    }
    const extra = Object.keys(v).filter((k) => k !== 'image' && k !== 'memory_bytes');
    if (extra.length > 0) problems.push(`${where}: unknown field(s) ${extra.join(', ')}`);
    if (typeof v.image !== 'string' || !/^[a-z0-9][a-z0-9._/:@-]{0,254}$/.test(v.image)) {
      problems.push(`${where}.image: expected an image reference, got ${JSON.stringify(v.image)}`);
      continue;
    }
    const memory = v.memory_bytes;
    if (
      memory !== undefined &&
      (typeof memory !== 'number' || !Number.isSafeInteger(memory) || memory < MIN_MEMORY_BYTES)
    ) {
      problems.push(`${where}.memory_bytes: expected an integer of at least ${MIN_MEMORY_BYTES}`);
      continue;
    }
    types[name] = { image: v.image, ...(memory !== undefined ? { memoryBytes: memory } : {}) };
  }
  return types;
}

/** The most containers `containers.warm_pool` keeps started ahead for one agent type. */
export const MAX_WARM_POOL = 20;

/** `containers.warm_pool`: agent type → how many containers are kept started ahead. */
function checkWarmPool(
  read: Read,
  agentTypes: Record<string, AgentTypeSettings>,
  problems: string[],
): Record<string, number> {
  const sizes: Record<string, number> = {};
  for (const [name, value] of Object.entries(read('containers.warm_pool'))) {
    const where = `containers.warm_pool.${name}`;
    if (!Object.prototype.hasOwnProperty.call(agentTypes, name)) {
      const known = Object.keys(agentTypes).join(', ');
      problems.push(`${where}: not an agent type of containers.agent_types (${known})`);
      continue;
    }
    if (
      typeof value !== 'number' ||
      !Number.isInteger(value) ||
      value < 0 ||
      value > MAX_WARM_POOL
    ) {
      problems.push(`${where}: expected a whole number from 0 to ${MAX_WARM_POOL}`);
      continue;
    }
    if (value > 0) sizes[name] = value;
  }
  return sizes;
}

/** The configuration's shape: every setting under the name the bridge's code uses. */
function assemble(
  read: Read,
  found: {
    configFile?: string;
    stateDir: string;
    budget: ReturnType<typeof checkBudget>;
    proxyBaseUrls: Record<string, string>;
    agentTypes: Record<string, AgentTypeSettings>;
    warmPool: Record<string, number>;
    gateway: GatewaySettings;
  },
) {
  const optPath = (v: string | undefined) => (v === undefined ? undefined : path.resolve(v));
  return {
    /** The file the configuration was read from, if any. */
    configFile: found.configFile,
    stateDir: found.stateDir,
    hostId: read('host_id'),
    hostGraceMs: read('host_grace'),
    log: { level: read('log.level'), format: read('log.format') },
    socket: {
      path: path.resolve(read('socket.path')),
      maxMessageBytes:
        read('socket.max_message_bytes') ?? largestRequestBytes(read('configs.max_bytes')),
      idleTimeoutMs: read('socket.idle_timeout_ms'),
      quietCloseMs: read('socket.quiet_close_ms'),
      maxConnections: read('socket.max_connections'),
    },
    keystore: {
      masterKey: read('keystore.master_key'),
      masterKeyFile: path.resolve(read('keystore.master_key_file')),
    },
    temporal: {
      address: read('temporal.address'),
      namespace: read('temporal.namespace'),
      taskQueue: read('temporal.task_queue'),
      uiUrl: read('temporal.ui_url'),
      devServer: {
        port: read('temporal.dev_server.port'),
        uiPort: read('temporal.dev_server.ui_port'),
        cliPath: optPath(read('temporal.dev_server.cli_path')),
      },
    },
    configs: { maxBytes: read('configs.max_bytes') },
    docker: { socket: path.resolve(read('docker.socket')) },
    matrix: {
      homeserver: read('matrix.homeserver'),
      username: read('matrix.username'),
      password: read('matrix.password'),
      deviceId: read('matrix.device_id'),
      trustedSenders: read('matrix.trusted_senders'),
      trustedRooms: read('matrix.trusted_rooms'),
      emptyListAllowsAll: read('matrix.empty_list_allows_all'),
      rejectNotice: read('matrix.reject_notice'),
      adminRoom: read('matrix.admin_room'),
      syncTimeoutMs: read('matrix.sync_timeout'),
    },
    approvals: {
      requestTimeoutMs: read('approvals.request_timeout'),
      admins: read('approvals.admins'),
    },
    containers: {
      defaultImage: read('containers.default_image'),
      defaultTtlMs: read('containers.default_ttl'),
      maxTtlMs: read('containers.max_ttl'),
      secretsDeadlineMs: read('containers.secrets_deadline'),
      healthCheckIntervalMs: read('containers.health_check_interval'),
      network: read('containers.network'),
      memoryBytes: read('containers.memory_bytes'),
      pidsLimit: read('containers.pids_limit'),
      agentUid: read('containers.agent_uid'),
      secretsDir: path.resolve(read('containers.secrets_dir')),
      heartbeatIntervalMs: read('containers.heartbeat_interval'),
      secretsMode: read('containers.secrets_mode') as SecretsMode,
      agentTypes: found.agentTypes,
      warmPool: found.warmPool,
      warmPoolMaxAgeMs: read('containers.warm_pool_max_age'),
    },
    proxy: {
      /** Provider → base URL, for the providers configured; the others use their own API. */
      baseUrls: found.proxyBaseUrls,
      caFile: optPath(read('proxy.ca_file')),
      connectTimeoutMs: read('proxy.connect_timeout'),
      idleTimeoutMs: read('proxy.idle_timeout'),
    },
    voice: {
      defaultTtlMs: read('voice.default_ttl'),
      maxTtlMs: read('voice.max_ttl'),
      connectTimeoutMs: read('voice.connect_timeout'),
      signaling: {
        host: read('voice.signaling_host'),
        port: read('voice.signaling_port'),
        publicUrl: read('voice.public_url'),
        tlsCert: read('voice.tls_cert'),
        tlsKey: read('voice.tls_key'),
        allowedOrigins: read('voice.allowed_origins'),
        maxMessageBytes: read('voice.max_message_bytes'),
        messagesPerSecond: read('voice.messages_per_second'),
      },
      turnUrls: read('voice.turn_urls'),
      turnSecret: read('voice.turn_secret'),
      iceHostAddresses: read('voice.ice_host_addresses'),
      mediaThreads: read('voice.media_threads'),
      callsPerMediaThread: read('voice.calls_per_media_thread'),
      allowedRooms: read('voice.allowed_rooms'),
      blockedRooms: read('voice.blocked_rooms'),
      requireEncryptedRoom: read('voice.require_encrypted_room'),
      requireMembership: read('voice.require_membership'),
      rateLimitCalls: read('voice.rate_limit_calls'),
      rateLimitWindowMs: read('voice.rate_limit_window'),
      maxConcurrentCalls: read('voice.max_concurrent_calls'),
      maxCallDurationMs: read('voice.max_call_duration'),
      maxCallTokens: read('voice.max_call_tokens'),
      budgetWarningFraction: read('voice.budget_warning_fraction'),
      stopExistingAgentOnEnd: read('voice.stop_existing_agent_on_end'),
    },
    budget: found.budget,
    gateway: found.gateway,
    /** Gateway agent turns and cron jobs (gateway/methods/agent.ts, cron.ts). */
    turns: {
      maxMessagesPerTurn: read('gateway.session.max_messages_per_turn'),
      maxMessageChars: read('gateway.session.max_message_chars'),
      keyId: read('gateway.agent.key_id'),
      agentType: read('gateway.agent.agent_type'),
      agentTtlMs: read('gateway.agent.ttl'),
      timeoutMs: read('gateway.turn.timeout'),
      retentionMs: read('gateway.turn.retention'),
      maxWaitMs: read('gateway.turn.max_wait'),
      maxRetries: read('gateway.turn.max_retries'),
      backoffMs: read('gateway.turn.backoff'),
    },
    /** Paired devices (devices/). */
    devices: {
      enabled: read('devices.enabled'),
      publicUrl: read('devices.public_url'),
      pingIntervalMs: read('devices.ping_interval'),
      ratePerMinute: read('devices.rate_limit_per_minute'),
      maxConnectionsPerDevice: read('devices.max_connections'),
    },
  };
}

function flatten(obj: Record<string, unknown>, prefix = ''): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Date)) {
      // A table that is itself a setting's name would be a type error; let coerce report it.
      if (settingByKey.has(key)) out[key] = v;
      else Object.assign(out, flatten(v as Record<string, unknown>, key));
    } else {
      out[key] = v;
    }
  }
  return out;
}
