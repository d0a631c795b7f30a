/**
 * relay serve | credential | link | status | unlink: the relay for a bridge behind NAT
 * (relay/server.ts). `serve` and `credential` run on the relay's public host and talk to no
 * bridge; `link`, `status` and `unlink` ask the bridge, through its socket, to dial a relay
 * (`relay.link`, `relay.status`, `relay.unlink`). The credential is printed once by
 * `credential` and read by `link` from stdin or a hidden prompt, never from the command line.
 */
import os from 'node:os';
import path from 'node:path';
import pino, { type Logger } from 'pino';
import { RELAY_CREDENTIAL_PREFIX } from '../../formats/relay-frames';
import { createRelayCredential, readRelayCredentialHash } from '../../relay/credential';
import { RelayServer, type RelayServerOptions } from '../../relay/server';
import { BRIDGE_OPTIONS_HELP, ExitCode, UsageError, parse } from '../args';
import { bridgeArgs, printJson, type CliContext, type Command } from '../command';
import { cell, formatTimeAgo, renderFields } from '../format';
import { readSecret } from '../input';

const DEFAULT_HOST = '0.0.0.0';
const DEFAULT_PORT = 8788;
const CREDENTIAL = new RegExp(`^${RELAY_CREDENTIAL_PREFIX}[A-Za-z0-9_-]{1,200}$`);
const MAX_CREDENTIAL_BYTES = 1024;

export const RELAY_USAGE = `usage:
  On the relay's public host (no bridge involved):
  armorclaw relay credential [--state DIR] [--json]
      Makes the credential a bridge links with (acrl_…) and prints it once: store it now, it
      cannot be shown again. The relay keeps only its SHA-256; a new credential replaces the
      old one, which stops working at once.
  armorclaw relay serve [--host H] [--port P] [--tls-cert FILE --tls-key FILE] [--state DIR]
      Runs the relay in the foreground until SIGINT or SIGTERM: the device endpoints (pairing,
      revocation, the device WebSocket, the /pair page), forwarded to the linked bridge.
      Defaults: --host ${DEFAULT_HOST}, --port ${DEFAULT_PORT}. Devices need HTTPS: give a certificate,
      or put a TLS proxy in front.

  On the bridge's host (JSON-RPC over the bridge's socket):
  armorclaw relay link URL [--json] [--socket PATH]
      Has the bridge dial the relay at URL (https://relay.example.com) and keep that link up
      (\`relay.link\`). The credential is read from stdin, or prompted for (hidden) on a
      terminal; never give it as an argument:
        armorclaw relay link https://relay.example.com < relay-credential
  armorclaw relay status [--json] [--socket PATH]
      Whether the bridge is linked to a relay and connected to it now (\`relay.status\`).
  armorclaw relay unlink [--json] [--socket PATH]
      The bridge stops dialing its relay (\`relay.unlink\`).

relay options:
  --state DIR       the relay's state directory (default $ARMORCLAW_RELAY_STATE_DIR, else
                    ~/.armorclaw-relay); it holds relay.json, the credential's hash

${BRIDGE_OPTIONS_HELP}`;

export const CREDENTIAL_IN_ARGV = `refusing --credential: a credential on the command line is visible to every user \
of this host (ps, /proc/<pid>/cmdline) and lands in shell history.
Pipe it on stdin instead, e.g.
  armorclaw relay link https://relay.example.com < relay-credential
or run relay link on a terminal without piping anything to be prompted for it (input hidden).`;

interface RelayStatus {
  linked: boolean;
  url?: string;
  connected: boolean;
  connectedSince?: string;
  reconnects: number;
  lastError?: string;
}

export const relayCommand: Command = {
  name: 'relay',
  summary: 'relay serve | credential | link URL | status | unlink',
  usage: RELAY_USAGE,
  async run(args, ctx) {
    const [sub, ...rest] = args;
    switch (sub) {
      case 'credential':
        return credential(rest, ctx);
      case 'serve':
        return serve(rest, ctx);
      case 'link':
        return link(rest, ctx);
      case 'status':
        return status(rest, ctx);
      case 'unlink':
        return unlink(rest, ctx);
      case '--help':
      case '-h':
        ctx.write(RELAY_USAGE + '\n');
        return ExitCode.Ok;
      case undefined:
        throw new UsageError('relay needs serve, credential, link, status or unlink', RELAY_USAGE);
      default:
        throw new UsageError(`unknown relay subcommand "${sub}"`, RELAY_USAGE);
    }
  },
};

/** The relay's state directory: --state, else $ARMORCLAW_RELAY_STATE_DIR, else ~/.armorclaw-relay. */
export function relayStateDir(flag: string | undefined, env: NodeJS.ProcessEnv): string {
  if (flag !== undefined) {
    if (flag === '') throw new UsageError('--state needs a directory', RELAY_USAGE);
    return path.resolve(flag);
  }
  if (env.ARMORCLAW_RELAY_STATE_DIR) return path.resolve(env.ARMORCLAW_RELAY_STATE_DIR);
  return path.join(env.HOME || os.homedir(), '.armorclaw-relay');
}

/** Parses a relay-host command's options; null after printing the usage for --help. */
function localArgs<T extends Record<string, { type: 'string' | 'boolean' }>>(
  args: string[],
  ctx: CliContext,
  options: T,
) {
  const { values } = parse(
    args,
    { ...options, state: { type: 'string' }, help: { type: 'boolean', short: 'h' } } as const,
    RELAY_USAGE,
  );
  if ((values as { help?: boolean }).help) {
    ctx.write(RELAY_USAGE + '\n');
    return null;
  }
  return values as { [K in keyof T]?: T[K]['type'] extends 'string' ? string : boolean } & {
    state?: string;
  };
}

async function credential(args: string[], ctx: CliContext): Promise<number> {
  const values = localArgs(args, ctx, { json: { type: 'boolean' } });
  if (!values) return ExitCode.Ok;
  ctx.json = values.json === true;
  const dir = relayStateDir(values.state, ctx.env);
  const made = createRelayCredential(dir, new Date(ctx.now()));
  if (ctx.json) printJson(ctx, { credential: made });
  else ctx.write(`${made}\n`);
  ctx.warn(
    `relay credential made (its hash is in ${path.join(dir, 'relay.json')}); it is shown only ` +
      'this once. Any previous credential no longer links: give this one to the bridge with\n' +
      '  armorclaw relay link URL < credential-file\n',
  );
  return ExitCode.Ok;
}

/** A TCP port from --port: 0 (any free port) to 65535. */
function portOf(value: string | undefined): number {
  if (value === undefined) return DEFAULT_PORT;
  if (!/^\d+$/.test(value) || Number(value) > 65535) {
    throw new UsageError('--port must be a whole number from 0 to 65535', RELAY_USAGE);
  }
  return Number(value);
}

async function serve(args: string[], ctx: CliContext): Promise<number> {
  const values = localArgs(args, ctx, {
    host: { type: 'string' },
    port: { type: 'string' },
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
  });
  if (!values) return ExitCode.Ok;
  const port = portOf(values.port);
  const host = values.host ?? DEFAULT_HOST;
  if (host === '') throw new UsageError('--host needs an address', RELAY_USAGE);
  const certFile = values['tls-cert'];
  const keyFile = values['tls-key'];
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new UsageError('--tls-cert and --tls-key go together', RELAY_USAGE);
  }
  const dir = relayStateDir(values.state, ctx.env);
  const hash = readRelayCredentialHash(dir);
  if (hash === undefined) {
    throw new Error(
      `no relay credential in ${dir}: run \`armorclaw relay credential\` first ` +
        '(and give it to the bridge with `armorclaw relay link`)',
    );
  }
  const log = pino(
    { base: { service: 'armorclaw-relay' }, timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination({ fd: 2, sync: true }),
  );
  await runRelay(
    {
      host,
      port,
      credentialSha256: hash,
      log,
      ...(certFile !== undefined && keyFile !== undefined ? { tls: { certFile, keyFile } } : {}),
    },
    untilSignal(log),
  );
  return ExitCode.Ok;
}

/** Resolves on the first SIGINT or SIGTERM. */
function untilSignal(log: Logger): Promise<void> {
  return new Promise((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      log.info({ signal }, 'relay stopping');
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

/** Runs a relay until `until` resolves, then closes it; logs "relay listening on URL". */
export async function runRelay(options: RelayServerOptions, until: Promise<void>): Promise<void> {
  let server: RelayServer;
  try {
    server = new RelayServer(options);
  } catch (err) {
    throw new Error(`cannot start the relay: ${(err as Error).message}`);
  }
  let url: string;
  try {
    ({ url } = await server.listen());
  } catch (err) {
    await server.close();
    throw new Error(`cannot listen on ${options.host}:${options.port}: ${(err as Error).message}`);
  }
  options.log.info({ url }, `relay listening on ${url}`);
  await until;
  await server.close();
  options.log.info('relay stopped');
}

async function link(args: string[], ctx: CliContext): Promise<number> {
  // Checked before parsing so that no parse error message can echo the credential back.
  if (args.some((a) => a === '--credential' || a.startsWith('--credential='))) {
    throw new UsageError(CREDENTIAL_IN_ARGV, RELAY_USAGE);
  }
  if (args.some((a) => a.includes(RELAY_CREDENTIAL_PREFIX))) {
    throw new UsageError(
      'a relay credential on the command line is refused (it would be visible to every user ' +
        'of this host); pipe it on stdin: armorclaw relay link URL < relay-credential',
      RELAY_USAGE,
    );
  }
  const cli = bridgeArgs(args, ctx, RELAY_USAGE, {}, { min: 1, max: 1, names: 'URL' });
  if (!cli) return ExitCode.Ok;
  const url = relayUrl(cli.positionals[0]!);
  const secret = (
    await readSecret('Relay credential (input hidden): ', 'credential', MAX_CREDENTIAL_BYTES)
  ).trim();
  if (secret === '') {
    throw new Error(
      'no credential given; pipe it on stdin, e.g. armorclaw relay link URL < relay-credential',
    );
  }
  if (!CREDENTIAL.test(secret)) {
    // Not quoted back: whatever was pasted may be some other secret.
    throw new Error(
      `that is not a relay credential (${RELAY_CREDENTIAL_PREFIX}…, as printed by \`armorclaw relay credential\`)`,
    );
  }
  const r = (await cli.call('relay.link', { url, credential: secret })) as {
    url: string;
    linked: boolean;
  };
  if (cli.json) printJson(ctx, r);
  else {
    ctx.write(
      `linked to the relay at ${cell(r.url)}: the bridge keeps dialing it ` +
        '(armorclaw relay status shows the connection)\n',
    );
  }
  return ExitCode.Ok;
}

/** The relay's URL: http(s) or ws(s), no user info, no query, no fragment. */
function relayUrl(text: string): string {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new UsageError(
      "URL must be the relay's URL, e.g. https://relay.example.com",
      RELAY_USAGE,
    );
  }
  if (!['https:', 'wss:', 'http:', 'ws:'].includes(u.protocol)) {
    throw new UsageError('URL must be https://, wss://, http:// or ws://', RELAY_USAGE);
  }
  if (u.username !== '' || u.password !== '' || u.search !== '' || u.hash !== '') {
    throw new UsageError(
      'URL takes no user, password, query or fragment: the credential is read from stdin',
      RELAY_USAGE,
    );
  }
  return text;
}

async function status(args: string[], ctx: CliContext): Promise<number> {
  const cli = bridgeArgs(args, ctx, RELAY_USAGE, {}, { max: 0 });
  if (!cli) return ExitCode.Ok;
  const r = (await cli.call('relay.status', {})) as RelayStatus;
  if (cli.json) printJson(ctx, r);
  else if (!r.linked) ctx.write('not linked to a relay (armorclaw relay link URL links it)\n');
  else {
    ctx.write(
      renderFields([
        ['relay', r.url],
        [
          'connected',
          r.connected
            ? `yes${r.connectedSince ? `, since ${formatTimeAgo(r.connectedSince, ctx.now())}` : ''}`
            : 'no (the bridge keeps retrying)',
        ],
        ['reconnects', String(r.reconnects)],
        ['last error', r.lastError],
      ]),
    );
  }
  return ExitCode.Ok;
}

async function unlink(args: string[], ctx: CliContext): Promise<number> {
  const cli = bridgeArgs(args, ctx, RELAY_USAGE, {}, { max: 0 });
  if (!cli) return ExitCode.Ok;
  const r = (await cli.call('relay.unlink', {})) as { linked: boolean };
  if (cli.json) printJson(ctx, r);
  else ctx.write('unlinked: the bridge no longer dials a relay\n');
  return ExitCode.Ok;
}
