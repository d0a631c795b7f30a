/**
 * The `armorclaw` command: manages the keystore on this host. Tokens come from stdin or a
 * hidden prompt, never from argv, where `ps`, /proc/<pid>/cmdline and shell history would
 * expose them to other users.
 *
 * Exit codes: 0 ok, 1 error, 2 usage (bad or missing arguments).
 */
import fs from 'node:fs';
import readline from 'node:readline';
import { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import { loadConfig, type BridgeConfig } from '../config/load';
import {
  Keystore,
  MAX_TOKEN_BYTES,
  PROVIDERS,
  keystorePath,
  loadOrCreateMasterKey,
  type KeyRecord,
} from '../services/keystore';

const USAGE = `usage:
  armorclaw add-key --provider P --id ID [--display-name NAME] [--expires-at UNIX] [--tag T]...
      Reads the token from stdin, or prompts for it (hidden) on a terminal:
        printf '%s' "$TOKEN" | armorclaw add-key --provider openai --id openai-key-1
  armorclaw list-keys [--provider P] [--json]

providers: ${PROVIDERS.join(', ')}`;

const TOKEN_IN_ARGV = `armorclaw: refusing --token: a token on the command line is visible to every user \
of this host (ps, /proc/<pid>/cmdline) and lands in shell history.
Pipe it on stdin instead, e.g.
  printf '%s' "$TOKEN" | armorclaw add-key --provider openai --id openai-key-1
or run add-key on a terminal without piping anything to be prompted for it (input hidden).`;

/** A problem with the command line itself: exit 2 with the usage text. */
class UsageError extends Error {}

/** Runs one command; resolves to the exit code. */
async function main(argv: string[]): Promise<number> {
  // Checked before parsing so that no parse error message can echo the token back.
  if (argv.some((a) => a === '--token' || a.startsWith('--token='))) {
    process.stderr.write(TOKEN_IN_ARGV + '\n');
    return 2;
  }
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'add-key':
        return await addKey(rest);
      case 'list-keys':
        return listKeys(rest);
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(USAGE + '\n');
        return 0;
      case undefined:
        throw new UsageError('missing command');
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`armorclaw: ${err.message}\n${USAGE}\n`);
      return 2;
    }
    // The CLI's user is the host's operator: the message is enough, a stack is noise.
    process.stderr.write(`armorclaw: ${(err as Error).message ?? String(err)}\n`);
    return 1;
  }
}

async function addKey(args: string[]): Promise<number> {
  const { values } = parse(args, {
    provider: { type: 'string' },
    id: { type: 'string' },
    'display-name': { type: 'string' },
    'expires-at': { type: 'string' },
    tag: { type: 'string', multiple: true },
  });
  if (values.provider === undefined) throw new UsageError('add-key needs --provider');
  if (values.id === undefined) throw new UsageError('add-key needs --id');
  if (!(PROVIDERS as readonly string[]).includes(values.provider)) {
    throw new UsageError(`--provider must be one of ${PROVIDERS.join(', ')}`);
  }
  let expiresAt: number | undefined;
  if (values['expires-at'] !== undefined) {
    if (!/^\d+$/.test(values['expires-at'])) {
      throw new UsageError('--expires-at must be a unix time in seconds');
    }
    expiresAt = Number(values['expires-at']);
  }

  const config = loadConfig();
  // Read the token before touching the keystore, so a prompt the user abandons changes nothing.
  const token = process.stdin.isTTY
    ? await promptHidden('Token (input hidden): ')
    : await readStdin();
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
    process.stdout.write(`stored key ${stored.id} (${stored.provider})\n`);
    return 0;
  } finally {
    keystore.close();
  }
}

function listKeys(args: string[]): number {
  const { values } = parse(args, {
    provider: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (
    values.provider !== undefined &&
    !(PROVIDERS as readonly string[]).includes(values.provider)
  ) {
    throw new UsageError(`--provider must be one of ${PROVIDERS.join(', ')}`);
  }
  const config = loadConfig();
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
  if (values.json) {
    process.stdout.write(JSON.stringify(keys, null, 2) + '\n');
  } else if (keys.length === 0) {
    process.stdout.write('no keys stored\n');
  } else {
    process.stdout.write(formatTable(keys, Math.floor(Date.now() / 1000)));
  }
  return 0;
}

function openKeystore(config: BridgeConfig): Keystore {
  // The state directory holds the master key and the keystore: nobody else may list it.
  fs.mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
  const masterKey = loadOrCreateMasterKey({
    fromEnv: config.keystore.masterKey,
    keyFile: config.keystore.masterKeyFile,
  });
  return Keystore.open({ dbPath: keystorePath(config.stateDir), masterKey });
}

type OptionSpec = Record<string, { type: 'string' | 'boolean'; multiple?: boolean }>;

function parse<T extends OptionSpec>(args: string[], options: T) {
  let parsed;
  try {
    parsed = parseArgs({ args, options, strict: true, allowPositionals: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  // Positionals are allowed only so that parseArgs never quotes one back: a stray argument could
  // be a token typed in the wrong place.
  if (parsed.positionals.length > 0) {
    throw new UsageError(`unexpected argument(s); ${TOKEN_HINT}`);
  }
  return parsed;
}

const TOKEN_HINT = 'tokens are read from stdin, not from the command line';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    size += chunk.length;
    // Room for the token plus a trailing CRLF; anything bigger would be refused anyway, and
    // stopping early keeps `cat /dev/urandom | armorclaw add-key` from eating memory.
    if (size > MAX_TOKEN_BYTES + 2) {
      throw new Error(`the token on stdin is larger than ${MAX_TOKEN_BYTES} bytes`);
    }
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  return text.replace(/\r?\n$/, '');
}

function promptHidden(prompt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let muted = false;
    // readline echoes keystrokes to its output; once the prompt is shown, swallow that echo.
    const output = new Writable({
      write(chunk, encoding, callback) {
        if (!muted) process.stderr.write(chunk, encoding);
        callback();
      },
    });
    const rl = readline.createInterface({
      input: process.stdin,
      output,
      terminal: true,
      historySize: 0,
    });
    let answered = false;
    rl.on('SIGINT', () => {
      rl.close();
    });
    rl.on('close', () => {
      process.stderr.write('\n');
      if (!answered) reject(new Error('no token entered'));
    });
    // The prompt goes out before muting; readline would redraw it through the muted stream.
    process.stderr.write(prompt);
    muted = true;
    rl.question('', (answer) => {
      answered = true;
      rl.close();
      resolve(answer);
    });
  });
}

function formatTable(keys: KeyRecord[], now: number): string {
  const date = (t: number) => new Date(t * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const rows = keys.map((k) => [
    k.id,
    k.provider,
    k.display_name,
    date(k.created_at),
    k.expires_at === null ? '-' : date(k.expires_at) + (k.expires_at <= now ? ' (expired)' : ''),
    k.tags.join(','),
  ]);
  const header = ['ID', 'PROVIDER', 'DISPLAY NAME', 'CREATED', 'EXPIRES', 'TAGS'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd() + '\n';
  return [header, ...rows].map(line).join('');
}

void main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
