import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { parseDuration } from '../services/duration';
import { parseModelPrices, REFUSE_UNKNOWN_MODELS, type ModelPrice } from '../services/budget';
import {
  settingByKey,
  settings,
  type DefaultContext,
  type LogFormat,
  type Setting,
  type SettingValue,
} from './settings';

/** The bridge's validated configuration. */
export interface BridgeConfig {
  /** The file the configuration was read from, if any. */
  configFile?: string;
  stateDir: string;
  hostId: string;
  log: { level: string; format: LogFormat };
  socket: {
    path: string;
    maxMessageBytes: number;
    idleTimeoutMs: number;
    quietCloseMs: number;
    maxConnections: number;
  };
  keystore: { masterKey?: string; masterKeyFile: string };
  temporal: {
    address?: string;
    namespace: string;
    taskQueue: string;
    uiUrl?: string;
    devServer: { port: number; uiPort: number; cliPath?: string };
  };
  configs: { maxBytes: number };
  docker: { socket: string };
  matrix: {
    homeserver?: string;
    username?: string;
    password?: string;
    deviceId: string;
    trustedSenders: string[];
    trustedRooms: string[];
    emptyListAllowsAll: boolean;
    rejectNotice: boolean;
    adminRoom?: string;
    syncTimeoutMs: number;
  };
  containers: {
    defaultImage: string;
    defaultTtlMs: number;
    maxTtlMs: number;
    secretsDeadlineMs: number;
    healthCheckIntervalMs: number;
    network: string;
    memoryBytes: number;
    pidsLimit: number;
    agentUid: number;
    secretsDir: string;
    heartbeatIntervalMs: number;
  };
  voice: {
    defaultTtlMs: number;
    maxTtlMs: number;
    connectTimeoutMs: number;
    signaling: {
      host: string;
      port: number;
      publicUrl?: string;
      tlsCert?: string;
      tlsKey?: string;
      allowedOrigins: string[];
      maxMessageBytes: number;
      messagesPerSecond: number;
    };
    turnUrls: string[];
    turnSecret?: string;
    iceHostAddresses: string[];
    allowedRooms: string[];
    blockedRooms: string[];
    requireEncryptedRoom: boolean;
    requireMembership: boolean;
    rateLimitCalls: number;
    rateLimitWindowMs: number;
    maxConcurrentCalls: number;
    maxCallDurationMs: number;
    maxCallTokens: number;
    budgetWarningFraction: number;
    stopExistingAgentOnEnd: boolean;
  };
  budget: {
    /** 0: no limit. */
    dailyLimitUsd: number;
    /** 0: no limit. */
    monthlyLimitUsd: number;
    /** Fractions in (0, 1), ascending, without duplicates. */
    alertThresholds: number[];
    models: Record<string, ModelPrice>;
    /** "refuse", or the model whose prices apply to unknown models. */
    unknownModelCost: string;
  };
}

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

type Value = SettingValue;

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

  const raw = new Map<string, Value>();
  for (const setting of settings) {
    const envValue = setting.env ? env[setting.env] : undefined;
    if (envValue !== undefined && envValue !== '') {
      const v = coerce(setting, envValue, `${setting.key} (env ${setting.env})`, problems);
      if (v !== undefined) raw.set(setting.key, v);
    } else if (setting.key in fileValues && !setting.secret) {
      const v = coerce(
        setting,
        fileValues[setting.key],
        `${setting.key} (in ${configFile})`,
        problems,
      );
      if (v !== undefined) raw.set(setting.key, v);
    }
  }

  const ctx: DefaultContext = { uid, env, stateDir: '' };
  const value = (key: string): Value | undefined => {
    if (raw.has(key)) return raw.get(key);
    const setting = settingByKey.get(key);
    const d = typeof setting?.default === 'function' ? setting.default(ctx) : setting?.default;
    return setting?.type === 'duration' && typeof d === 'string'
      ? (parseDuration(d) ?? undefined)
      : d;
  };
  ctx.stateDir = path.resolve(String(value('state_dir')));

  const masterKey = raw.get('keystore.master_key') as string | undefined;
  if (masterKey !== undefined && decodeMasterKey(masterKey) === null) {
    problems.push(
      'keystore.master_key (env ARMORCLAW_MASTER_KEY): must be 32 bytes as 64 hex characters or base64',
    );
  }
  const address = value('temporal.address') as string | undefined;
  if (address !== undefined && !/^[^\s:]+:\d{1,5}$/.test(address)) {
    problems.push(`temporal.address (env TEMPORAL_ADDRESS): expected host:port, got "${address}"`);
  }
  const ms = (key: string) => value(key) as number;
  if (ms('containers.secrets_deadline') > 10_000) {
    problems.push('containers.secrets_deadline: must be at most 10s (secrets live at most 10 s)');
  }
  if (ms('containers.default_ttl') > ms('containers.max_ttl')) {
    problems.push('containers.default_ttl: must not exceed containers.max_ttl');
  }
  if (ms('voice.default_ttl') > ms('voice.max_ttl')) {
    problems.push('voice.default_ttl: must not exceed voice.max_ttl');
  }
  if (Boolean(value('voice.tls_cert')) !== Boolean(value('voice.tls_key'))) {
    problems.push('voice.tls_cert, voice.tls_key: give both or neither');
  }
  const homeserver = value('matrix.homeserver') as string | undefined;
  if (homeserver !== undefined && !/^https?:\/\/[^\s/]+(\/.*)?$/.test(homeserver)) {
    problems.push(`matrix.homeserver: expected an http(s) URL, got "${homeserver}"`);
  }
  const modelsFrom = env.ARMORCLAW_BUDGET_MODELS
    ? 'env ARMORCLAW_BUDGET_MODELS'
    : `in ${configFile}`;
  const budget = checkBudget(value, modelsFrom, problems);
  if (problems.length > 0) throw new ConfigError(problems);

  const str = (key: string) => value(key) as string;
  const int = (key: string) => value(key) as number;
  const optPath = (key: string) => {
    const v = value(key) as string | undefined;
    return v === undefined ? undefined : path.resolve(v);
  };
  return {
    configFile,
    stateDir: ctx.stateDir,
    hostId: str('host_id'),
    log: { level: str('log.level'), format: str('log.format') as LogFormat },
    socket: {
      path: path.resolve(str('socket.path')),
      maxMessageBytes:
        (value('socket.max_message_bytes') as number | undefined) ??
        largestRequestBytes(int('configs.max_bytes')),
      idleTimeoutMs: int('socket.idle_timeout_ms'),
      quietCloseMs: int('socket.quiet_close_ms'),
      maxConnections: int('socket.max_connections'),
    },
    keystore: {
      masterKey,
      masterKeyFile: path.resolve(str('keystore.master_key_file')),
    },
    temporal: {
      address,
      namespace: str('temporal.namespace'),
      taskQueue: str('temporal.task_queue'),
      uiUrl: value('temporal.ui_url') as string | undefined,
      devServer: {
        port: int('temporal.dev_server.port'),
        uiPort: int('temporal.dev_server.ui_port'),
        cliPath: optPath('temporal.dev_server.cli_path'),
      },
    },
    configs: { maxBytes: int('configs.max_bytes') },
    docker: { socket: path.resolve(str('docker.socket')) },
    matrix: {
      homeserver: value('matrix.homeserver') as string | undefined,
      username: value('matrix.username') as string | undefined,
      password: raw.get('matrix.password') as string | undefined,
      deviceId: str('matrix.device_id'),
      trustedSenders: value('matrix.trusted_senders') as string[],
      trustedRooms: value('matrix.trusted_rooms') as string[],
      emptyListAllowsAll: value('matrix.empty_list_allows_all') as boolean,
      rejectNotice: value('matrix.reject_notice') as boolean,
      adminRoom: value('matrix.admin_room') as string | undefined,
      syncTimeoutMs: ms('matrix.sync_timeout'),
    },
    containers: {
      defaultImage: str('containers.default_image'),
      defaultTtlMs: ms('containers.default_ttl'),
      maxTtlMs: ms('containers.max_ttl'),
      secretsDeadlineMs: ms('containers.secrets_deadline'),
      healthCheckIntervalMs: ms('containers.health_check_interval'),
      network: str('containers.network'),
      memoryBytes: int('containers.memory_bytes'),
      pidsLimit: int('containers.pids_limit'),
      agentUid: int('containers.agent_uid'),
      secretsDir: path.resolve(str('containers.secrets_dir')),
      heartbeatIntervalMs: ms('containers.heartbeat_interval'),
    },
    voice: {
      defaultTtlMs: ms('voice.default_ttl'),
      maxTtlMs: ms('voice.max_ttl'),
      connectTimeoutMs: ms('voice.connect_timeout'),
      signaling: {
        host: str('voice.signaling_host'),
        port: int('voice.signaling_port'),
        publicUrl: value('voice.public_url') as string | undefined,
        tlsCert: value('voice.tls_cert') as string | undefined,
        tlsKey: value('voice.tls_key') as string | undefined,
        allowedOrigins: value('voice.allowed_origins') as string[],
        maxMessageBytes: int('voice.max_message_bytes'),
        messagesPerSecond: int('voice.messages_per_second'),
      },
      turnUrls: value('voice.turn_urls') as string[],
      turnSecret: raw.get('voice.turn_secret') as string | undefined,
      iceHostAddresses: value('voice.ice_host_addresses') as string[],
      allowedRooms: value('voice.allowed_rooms') as string[],
      blockedRooms: value('voice.blocked_rooms') as string[],
      requireEncryptedRoom: value('voice.require_encrypted_room') as boolean,
      requireMembership: value('voice.require_membership') as boolean,
      rateLimitCalls: int('voice.rate_limit_calls'),
      rateLimitWindowMs: ms('voice.rate_limit_window'),
      maxConcurrentCalls: int('voice.max_concurrent_calls'),
      maxCallDurationMs: ms('voice.max_call_duration'),
      maxCallTokens: int('voice.max_call_tokens'),
      budgetWarningFraction: value('voice.budget_warning_fraction') as number,
      stopExistingAgentOnEnd: value('voice.stop_existing_agent_on_end') as boolean,
    },
    budget,
  };
}

/** The budget settings that span keys: thresholds, the price table, the unknown-model rule. */
function checkBudget(
  value: (key: string) => Value | undefined,
  modelsFrom: string,
  problems: string[],
): BridgeConfig['budget'] {
  const thresholds = value('budget.alert_thresholds') as number[];
  if (thresholds.some((t) => t <= 0 || t >= 1)) {
    problems.push('budget.alert_thresholds: each threshold must be between 0 and 1 (exclusive)');
  }
  const parsed = parseModelPrices(value('budget.models'));
  if (!parsed.ok) {
    for (const p of parsed.problems) problems.push(`budget.models (${modelsFrom}): ${p}`);
  }
  const models = parsed.ok ? parsed.prices : {};
  const unknownModelCost = value('budget.unknown_model_cost') as string;
  if (
    parsed.ok &&
    unknownModelCost !== REFUSE_UNKNOWN_MODELS &&
    !Object.prototype.hasOwnProperty.call(models, unknownModelCost)
  ) {
    problems.push(
      `budget.unknown_model_cost: must be "${REFUSE_UNKNOWN_MODELS}" or a model of budget.models, got "${unknownModelCost}"`,
    );
  }
  return {
    dailyLimitUsd: value('budget.daily_limit_usd') as number,
    monthlyLimitUsd: value('budget.monthly_limit_usd') as number,
    alertThresholds: [...new Set(thresholds)].sort((a, b) => a - b),
    models,
    unknownModelCost,
  };
}

/** A master key given as 64 hex characters or as base64 of 32 bytes, or null if it is neither. */
export function decodeMasterKey(text: string): Buffer | null {
  const t = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(t)) return Buffer.from(t, 'hex');
  if (/^[A-Za-z0-9+/]{43}=$/.test(t) || /^[A-Za-z0-9_-]{43}$/.test(t)) {
    const b = Buffer.from(t, t.includes('=') || /[+/]/.test(t) ? 'base64' : 'base64url');
    return b.length === 32 ? b : null;
  }
  return null;
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

function coerce(
  setting: Setting,
  input: unknown,
  where: string,
  problems: string[],
): Value | undefined {
  const fromEnv = typeof input === 'string';
  switch (setting.type) {
    case 'integer': {
      const n = fromEnv && /^-?\d+$/.test(input.trim()) ? Number(input) : input;
      if (typeof n !== 'number' && typeof n !== 'bigint') {
        problems.push(`${where}: expected an integer, got ${describe(input)}`);
        return undefined;
      }
      const num = Number(n);
      if (!Number.isSafeInteger(num)) {
        problems.push(`${where}: expected an integer, got ${describe(input)}`);
        return undefined;
      }
      if (setting.min !== undefined && num < setting.min) {
        problems.push(`${where}: must be at least ${setting.min}, got ${num}`);
        return undefined;
      }
      if (setting.max !== undefined && num > setting.max) {
        problems.push(`${where}: must be at most ${setting.max}, got ${num}`);
        return undefined;
      }
      return num;
    }
    case 'number': {
      const n = fromEnv && /^-?(\d+(\.\d*)?|\.\d+)$/.test(input.trim()) ? Number(input) : input;
      if (typeof n !== 'number' || !Number.isFinite(n)) {
        problems.push(`${where}: expected a number, got ${describe(input)}`);
        return undefined;
      }
      return inRange(setting, n, where, problems) ? n : undefined;
    }
    case 'table': {
      let table: unknown = input;
      if (fromEnv) {
        try {
          table = JSON.parse(input);
        } catch {
          problems.push(`${where}: expected a JSON object, got text that is not JSON`);
          return undefined;
        }
      }
      if (table === null || typeof table !== 'object' || Array.isArray(table)) {
        problems.push(`${where}: expected a table, got ${describe(table)}`);
        return undefined;
      }
      return table as Record<string, unknown>;
    }
    case 'duration': {
      const parsed = typeof input === 'string' ? parseDuration(input) : null;
      if (parsed === null) {
        problems.push(
          `${where}: expected a duration such as "20s", "30m" or "1h", got ${describe(input)}`,
        );
        return undefined;
      }
      return parsed;
    }
    case 'list': {
      if (setting.items === 'number') return numberList(setting, input, where, problems);
      const items = fromEnv
        ? input
            .split(',')
            .map((x) => x.trim())
            .filter((x) => x !== '')
        : input;
      if (!Array.isArray(items) || !items.every((x) => typeof x === 'string' && x.trim() !== '')) {
        problems.push(`${where}: expected a list of strings, got ${describe(input)}`);
        return undefined;
      }
      return items as string[];
    }
    case 'boolean': {
      if (typeof input === 'boolean') return input;
      if (fromEnv && /^(true|1|yes|on)$/i.test(input)) return true;
      if (fromEnv && /^(false|0|no|off)$/i.test(input)) return false;
      problems.push(`${where}: expected true or false, got ${describe(input)}`);
      return undefined;
    }
    case 'string':
    case 'path': {
      if (typeof input !== 'string' || input.trim() === '') {
        problems.push(`${where}: expected a non-empty string, got ${describe(input)}`);
        return undefined;
      }
      if (setting.oneOf && !setting.oneOf.includes(input)) {
        problems.push(`${where}: must be one of ${setting.oneOf.join(', ')}, got "${input}"`);
        return undefined;
      }
      return input;
    }
  }
}

function inRange(setting: Setting, n: number, where: string, problems: string[]): boolean {
  if (setting.min !== undefined && n < setting.min) {
    problems.push(`${where}: must be at least ${setting.min}, got ${n}`);
    return false;
  }
  if (setting.max !== undefined && n > setting.max) {
    problems.push(`${where}: must be at most ${setting.max}, got ${n}`);
    return false;
  }
  return true;
}

/** A list of numbers: a TOML array of numbers, or comma-separated numbers in the environment. */
function numberList(
  setting: Setting,
  input: unknown,
  where: string,
  problems: string[],
): number[] | undefined {
  const items = typeof input === 'string' ? input.split(',').map((x) => x.trim()) : input;
  const nums = Array.isArray(items)
    ? items.map((x) => (typeof x === 'string' && x !== '' ? Number(x) : x))
    : undefined;
  if (!nums || !nums.every((x): x is number => typeof x === 'number' && Number.isFinite(x))) {
    problems.push(`${where}: expected a list of numbers, got ${describe(input)}`);
    return undefined;
  }
  return nums.every((n) => inRange(setting, n, where, problems)) ? nums : undefined;
}

function describe(v: unknown): string {
  if (typeof v === 'string') return `"${v}"`;
  if (Array.isArray(v)) return 'an array';
  if (v !== null && typeof v === 'object') return 'a table';
  return String(v);
}
