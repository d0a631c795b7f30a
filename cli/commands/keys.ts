/**
 * add-key / list-keys: the keystore on this host, opened directly (they work with the bridge
 * stopped; SQLite's WAL and busy timeout let them run beside a running bridge).
 */
import fs from 'node:fs';
import { loadConfig, type BridgeConfig } from '../../config/load';
import {
  Keystore,
  MAX_TOKEN_BYTES,
  PROVIDERS,
  keystorePath,
  loadOrCreateMasterKey,
  type KeyRecord,
} from '../../services/keystore';
import { ExitCode, UsageError, parse, type OptionSpec } from '../args';
import { printJson, type CliContext, type Command } from '../command';
import { formatTime, renderTable } from '../format';
import { readSecret } from '../input';

export const KEYS_USAGE = `usage:
  armorclaw add-key --provider P --id ID [--display-name NAME] [--expires-at UNIX] [--tag T]...
                    [--json]
      Reads the token from stdin, or prompts for it (hidden) on a terminal:
        printf '%s' "$TOKEN" | armorclaw add-key --provider openai --id openai-key-1
  armorclaw list-keys [--provider P] [--json]
      Keys with their provider, times and tags; never a token.
  These open the keystore in the state directory directly (ARMORCLAW_STATE_DIR, the master key
  from ARMORCLAW_MASTER_KEY or <state_dir>/master.key): run them as the bridge's user.

providers: ${PROVIDERS.join(', ')}`;

export const TOKEN_IN_ARGV = `armorclaw: refusing --token: a token on the command line is visible to every user \
of this host (ps, /proc/<pid>/cmdline) and lands in shell history.
Pipe it on stdin instead, e.g.
  printf '%s' "$TOKEN" | armorclaw add-key --provider openai --id openai-key-1
or run add-key on a terminal without piping anything to be prompted for it (input hidden).`;

const checkProvider = (provider: string | undefined) => {
  if (provider !== undefined && !(PROVIDERS as readonly string[]).includes(provider)) {
    throw new UsageError(`--provider must be one of ${PROVIDERS.join(', ')}`, KEYS_USAGE);
  }
};

const COMMON_OPTIONS = {
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies OptionSpec;

/** Parses a keystore command's options plus --json and --help; null after printing the usage. */
function keysArgs<T extends OptionSpec>(args: string[], ctx: CliContext, options: T) {
  const { values } = parse(args, { ...options, ...COMMON_OPTIONS }, KEYS_USAGE);
  const common = values as { json?: boolean; help?: boolean };
  if (common.help) {
    ctx.write(KEYS_USAGE + '\n');
    return null;
  }
  ctx.json = common.json === true;
  return values;
}

export const addKeyCommand: Command = {
  name: 'add-key',
  summary: 'store a provider API key (token on stdin or a hidden prompt)',
  usage: KEYS_USAGE,
  async run(args, ctx) {
    const values = keysArgs(args, ctx, {
      provider: { type: 'string' },
      id: { type: 'string' },
      'display-name': { type: 'string' },
      'expires-at': { type: 'string' },
      tag: { type: 'string', multiple: true },
    });
    if (!values) return ExitCode.Ok;
    if (values.provider === undefined) throw new UsageError('add-key needs --provider', KEYS_USAGE);
    if (values.id === undefined) throw new UsageError('add-key needs --id', KEYS_USAGE);
    checkProvider(values.provider);
    let expiresAt: number | undefined;
    if (values['expires-at'] !== undefined) {
      if (!/^\d+$/.test(values['expires-at'])) {
        throw new UsageError('--expires-at must be a unix time in seconds', KEYS_USAGE);
      }
      expiresAt = Number(values['expires-at']);
    }

    const config = loadConfig({ env: ctx.env });
    // Read the token before touching the keystore, so a prompt the user abandons changes nothing.
    const token = await readSecret('Token (input hidden): ', 'token', MAX_TOKEN_BYTES);
    if (token === '') {
      throw new Error(
        `no token given; pipe it on stdin, e.g. printf '%s' "$TOKEN" | armorclaw add-key ...`,
      );
    }
    const keystore = openKeystore(config);
    try {
      const stored = keystore.store({
        id: values.id,
        provider: values.provider,
        token,
        display_name: values['display-name'],
        expires_at: expiresAt,
        tags: values.tag,
      });
      if (ctx.json) printJson(ctx, stored);
      else ctx.write(`stored key ${stored.id} (${stored.provider})\n`);
      return ExitCode.Ok;
    } finally {
      keystore.close();
    }
  },
};

export const listKeysCommand: Command = {
  name: 'list-keys',
  summary: 'the stored keys (never their tokens)',
  usage: KEYS_USAGE,
  async run(args, ctx) {
    const values = keysArgs(args, ctx, { provider: { type: 'string' } });
    if (!values) return ExitCode.Ok;
    checkProvider(values.provider);
    const config = loadConfig({ env: ctx.env });
    // Listing must not create anything: a master key file made here, before the operator set
    // ARMORCLAW_MASTER_KEY for the bridge, would lock the bridge out of its own keystore.
    let keys: KeyRecord[] = [];
    if (fs.existsSync(keystorePath(config.stateDir))) {
      const keystore = openKeystore(config);
      try {
        keys = keystore.list(values.provider);
      } finally {
        keystore.close();
      }
    }
    if (ctx.json) printJson(ctx, keys);
    else if (keys.length === 0) ctx.write('no keys stored\n');
    else ctx.write(renderKeys(keys, Math.floor(ctx.now() / 1000)));
    return ExitCode.Ok;
  },
};

function openKeystore(config: BridgeConfig): Keystore {
  // The state directory holds the master key and the keystore: nobody else may list it.
  fs.mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
  const masterKey = loadOrCreateMasterKey({
    fromEnv: config.keystore.masterKey,
    keyFile: config.keystore.masterKeyFile,
  });
  return Keystore.open({ dbPath: keystorePath(config.stateDir), masterKey });
}

export function renderKeys(keys: KeyRecord[], now: number): string {
  const date = (t: number) => formatTime(new Date(t * 1000).toISOString());
  return renderTable(
    ['ID', 'PROVIDER', 'DISPLAY NAME', 'CREATED', 'EXPIRES', 'TAGS'],
    keys.map((k) => [
      k.id,
      k.provider,
      k.display_name,
      date(k.created_at),
      k.expires_at === null ? '-' : date(k.expires_at) + (k.expires_at <= now ? ' (expired)' : ''),
      k.tags.join(','),
    ]),
  );
}
