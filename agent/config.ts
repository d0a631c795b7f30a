/** The reference agent's settings, read once from its environment (see agent/main.ts). */
import { parseAudioMode, type AgentAudioMode } from './audio';

export type AgentMode =
  { kind: 'default' } | { kind: 'no-ack' } | { kind: 'crash-after-ms'; ms: number };

/** What answers room messages and `agent.ask`: the agent's own model calls, or OpenClaw. */
export type AgentBackend = 'reference' | 'openclaw';

/** Where the OpenClaw backend finds OpenClaw and writes its config (agent/openclaw.ts). */
export interface OpenClawSettings {
  /** OpenClaw's CLI entry (ARMORCLAW_OPENCLAW_ENTRY). */
  entry: string;
  /** The config template baked into the image (ARMORCLAW_OPENCLAW_TEMPLATE). */
  template: string;
  /** Where the run's config is written, on the run's tmpfs (ARMORCLAW_OPENCLAW_DIR). */
  dir: string;
  /** How long the gateway may take to answer /readyz (ARMORCLAW_OPENCLAW_READY_MS). */
  readyTimeoutMs: number;
}

export interface AgentConfig {
  backend: AgentBackend;
  openclaw: OpenClawSettings;
  secretsFile: string;
  /** Started ahead by the bridge's warm pool: waits for its secrets file before anything else. */
  pooled: boolean;
  socketPath: string;
  heartbeatMs: number;
  mode: AgentMode;
  audioSocketPath: string;
  audioMode: AgentAudioMode;
  /** The model `agent.ask` and `!ask` use; undefined: the provider's default (agent/llm.ts). */
  model: string | undefined;
}

/** A setting the agent cannot run with; the message names the variable, main exits 2. */
export class ConfigError extends Error {}

function parseMode(raw: string | undefined): AgentMode {
  const value = (raw ?? '').trim();
  if (value === '' || value === 'default') return { kind: 'default' };
  if (value === 'no-ack') return { kind: 'no-ack' };
  const crash = /^crash-after-ms:(\d+)$/.exec(value);
  if (crash) return { kind: 'crash-after-ms', ms: Number(crash[1]) };
  throw new ConfigError(`unknown ARMORCLAW_AGENT_MODE ${JSON.stringify(value)}`);
}

/**
 * Model ids go into request bodies and, for Google, into the URL path: only the characters real
 * ids use (`openai/gpt-4o-mini`, `ft:gpt-4o:org::id`), nothing that could bend a request.
 */
function parseModel(raw: string | undefined): string | undefined {
  const value = (raw ?? '').trim();
  if (value === '') return undefined;
  if (!/^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,255}$/.test(value)) {
    throw new ConfigError(
      'ARMORCLAW_AGENT_MODEL must be a model id: up to 256 of A-Z a-z 0-9 . _ : / @ -',
    );
  }
  return value;
}

function parseAudio(raw: string | undefined): AgentAudioMode {
  try {
    return parseAudioMode(raw);
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
}

function parseBackend(raw: string | undefined): AgentBackend {
  const value = (raw ?? '').trim();
  if (value === '' || value === 'reference') return 'reference';
  if (value === 'openclaw') return 'openclaw';
  throw new ConfigError(
    `ARMORCLAW_AGENT_BACKEND must be reference or openclaw, not ${JSON.stringify(value)}`,
  );
}

function parseOpenClaw(env: NodeJS.ProcessEnv): OpenClawSettings {
  const readyRaw = env.ARMORCLAW_OPENCLAW_READY_MS?.trim();
  const readyTimeoutMs = readyRaw ? Number(readyRaw) : 90_000;
  if (!Number.isInteger(readyTimeoutMs) || readyTimeoutMs < 100) {
    throw new ConfigError('ARMORCLAW_OPENCLAW_READY_MS must be an integer of at least 100');
  }
  return {
    entry: env.ARMORCLAW_OPENCLAW_ENTRY || '/opt/openclaw/node_modules/openclaw/openclaw.mjs',
    template: env.ARMORCLAW_OPENCLAW_TEMPLATE || '/opt/armorclaw/openclaw.json',
    dir: env.ARMORCLAW_OPENCLAW_DIR || '/tmp/armorclaw-openclaw',
    readyTimeoutMs,
  };
}

/** The configuration from `env`; throws ConfigError naming the bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv): AgentConfig {
  const heartbeatRaw = env.ARMORCLAW_HEARTBEAT_MS?.trim();
  const heartbeatMs = heartbeatRaw ? Number(heartbeatRaw) : 5000;
  if (!Number.isInteger(heartbeatMs) || heartbeatMs < 10) {
    throw new ConfigError('ARMORCLAW_HEARTBEAT_MS must be an integer of at least 10');
  }
  return {
    backend: parseBackend(env.ARMORCLAW_AGENT_BACKEND),
    openclaw: parseOpenClaw(env),
    secretsFile: env.ARMORCLAW_SECRETS_FILE || '/run/secrets/credentials.json',
    pooled: env.ARMORCLAW_POOLED === '1',
    socketPath: env.ARMORCLAW_BRIDGE_SOCKET || '/run/armorclaw/bridge.sock',
    heartbeatMs,
    mode: parseMode(env.ARMORCLAW_AGENT_MODE),
    audioSocketPath: env.ARMORCLAW_AUDIO_SOCKET || '/run/armorclaw/audio.sock',
    audioMode: parseAudio(env.ARMORCLAW_AGENT_AUDIO),
    model: parseModel(env.ARMORCLAW_AGENT_MODEL),
  };
}
