/**
 * pair: issues a one-time pairing code for a device (VoiceClaw and other bridge clients) through
 * the bridge's socket (`pair.start`), and shows it with its pairing link as a QR code to scan.
 * The code text leaves the bridge only in this answer: the bridge keeps a scrypt hash of it.
 */
import { DEFAULT_DEVICE_SCOPE, DEVICE_SCOPES } from '../../formats/device-scopes';
import { BRIDGE_OPTIONS_HELP, ExitCode, UsageError } from '../args';
import { bridgeArgs, printJson, type CliContext, type Command } from '../command';
import { cell, formatTime, renderFields } from '../format';
import { renderQrText } from '../qr';

export const PAIR_USAGE = `usage:
  armorclaw pair [--scope chat_only|tools_safe|full] [--no-qr] [--json] [--socket PATH]
      Issues a pairing code (VC-XXXX-XXXX) for a new device and prints it with its expiry, the
      device's scope, the pairing link and the link as a QR code (JSON-RPC \`pair.start\`).
      The code is shown once and works once, for 10 minutes; a new \`armorclaw pair\` replaces
      a code not yet used.

options:
  --scope SCOPE     what the device may do (default ${DEFAULT_DEVICE_SCOPE}):
                      chat_only   chat replies, no tools
                      tools_safe  chat, agent runs and read-only tools; no shell, no file
                                  changes, no admin
                      full        everything a device may do, shell and file changes included
  --no-qr           print no QR code (the link is still printed)

${BRIDGE_OPTIONS_HELP}`;

interface PairStarted {
  pairCode: string;
  expiresAt: string;
  scope: string;
  pairUrl?: string;
}

export const pairCommand: Command = {
  name: 'pair',
  summary: 'pair [--scope S]: a one-time code and QR code to pair a device',
  usage: PAIR_USAGE,
  run: pair,
};

async function pair(args: string[], ctx: CliContext): Promise<number> {
  const cli = bridgeArgs(
    args,
    ctx,
    PAIR_USAGE,
    { scope: { type: 'string' }, 'no-qr': { type: 'boolean' } },
    { max: 0 },
  );
  if (!cli) return ExitCode.Ok;
  const values = cli.values as { scope?: string; 'no-qr'?: boolean };
  const { scope } = values;
  if (scope !== undefined && !(DEVICE_SCOPES as readonly string[]).includes(scope)) {
    throw new UsageError(`--scope must be one of ${DEVICE_SCOPES.join(', ')}`, PAIR_USAGE);
  }
  const r = (await cli.call('pair.start', scope ? { scope } : {})) as PairStarted;
  if (cli.json) {
    printJson(ctx, r);
    return ExitCode.Ok;
  }
  ctx.write(`\n  pairing code:  ${cell(r.pairCode)}\n\n`);
  ctx.write(
    renderFields([
      ['expires', `${formatTime(r.expiresAt)} (${expiresIn(r.expiresAt, ctx.now())})`],
      ['scope', r.scope],
      [
        'link',
        r.pairUrl ??
          '- (the bridge serves no device endpoints: see gateway.enabled and devices.enabled)',
      ],
    ]),
  );
  if (r.pairUrl && !values['no-qr']) ctx.write('\n' + renderQrText(r.pairUrl));
  ctx.write(
    '\nThe code is shown only this once and works once: ' +
      (r.pairUrl
        ? 'enter it on the device, or open the link\nor scan the QR code with it,'
        : 'enter it on the device') +
      ' before it expires. A new `armorclaw pair` replaces it.\n',
  );
  return ExitCode.Ok;
}

/** `in 10 minutes`, `in 1 minute`, `in less than a minute`, `already expired`. */
function expiresIn(expiresAt: string, now: number): string {
  const ms = Date.parse(expiresAt) - now;
  if (Number.isNaN(ms)) return 'expiry unknown';
  if (ms <= 0) return 'already expired';
  const minutes = Math.round(ms / 60_000);
  if (minutes < 1) return 'in less than a minute';
  return minutes === 1 ? 'in 1 minute' : `in ${minutes} minutes`;
}
