/**
 * devices list | revoke | rotate | scope: the paired devices, through the bridge's socket
 * (`devices.list`, `devices.revoke`, `devices.rotate`, `devices.set_scope`). A device's token is
 * printed once, by `rotate`; the bridge keeps only its SHA-256. Pairing is `armorclaw pair`.
 */
import { DEVICE_SCOPES } from '../../formats/device-scopes';
import { BRIDGE_ID_PATTERN } from '../../services/device-registry-file';
import { BRIDGE_OPTIONS_HELP, ExitCode, UsageError } from '../args';
import { bridgeArgs, printJson, type CliContext, type Command } from '../command';
import { cell, formatTime, renderTable } from '../format';

export const DEVICES_USAGE = `usage:
  armorclaw devices list [--json] [--socket PATH]
      Every paired device, revoked ones included: id, name, OS, scope, when it paired and
      whether it is connected now (JSON-RPC \`devices.list\`).
  armorclaw devices revoke ID [--json] [--socket PATH]
      Revokes the device for good: its token is refused and its connections are closed. To use
      it again, pair it again (\`armorclaw pair\`).
  armorclaw devices rotate ID [--json] [--socket PATH]
      Gives the device a new token and prints it once: the old one is refused from now on.
  armorclaw devices scope ID SCOPE [--json] [--socket PATH]
      Sets what the device may do: ${DEVICE_SCOPES.join(', ')} (see armorclaw pair --help).

ID is a device id as listed (br_ and 16 hex digits).

${BRIDGE_OPTIONS_HELP}`;

interface Device {
  bridgeId: string;
  name: string;
  os: string;
  bridgeVersion: string;
  pubKey: string;
  scope: string;
  pairedAt: string;
  rotatedAt: string | null;
  revokedAt: string | null;
  connections: number;
}

export const devicesCommand: Command = {
  name: 'devices',
  summary: 'devices list | revoke ID | rotate ID | scope ID SCOPE',
  usage: DEVICES_USAGE,
  async run(args, ctx) {
    const [sub, ...rest] = args;
    switch (sub) {
      case 'list':
        return list(rest, ctx);
      case 'revoke':
        return revoke(rest, ctx);
      case 'rotate':
        return rotate(rest, ctx);
      case 'scope':
        return scope(rest, ctx);
      case '--help':
      case '-h':
        ctx.write(DEVICES_USAGE + '\n');
        return ExitCode.Ok;
      case undefined:
        throw new UsageError('devices needs list, revoke, rotate or scope', DEVICES_USAGE);
      default:
        throw new UsageError(`unknown devices subcommand "${sub}"`, DEVICES_USAGE);
    }
  },
};

/** The device id argument, checked here so that a typo is a usage error, not a bridge error. */
function deviceId(id: string): string {
  if (!BRIDGE_ID_PATTERN.test(id)) {
    // Not quoted back: a token pasted in the wrong place must not be echoed.
    throw new UsageError('ID must be a device id (br_ and 16 hex digits)', DEVICES_USAGE);
  }
  return id;
}

/** `connected(2)`, `offline` or `revoked`. */
const deviceState = (d: Device): string =>
  d.revokedAt !== null ? 'revoked' : d.connections > 0 ? `connected(${d.connections})` : 'offline';

async function list(args: string[], ctx: CliContext): Promise<number> {
  const cli = bridgeArgs(args, ctx, DEVICES_USAGE, {}, { max: 0 });
  if (!cli) return ExitCode.Ok;
  const r = (await cli.call('devices.list', {})) as { devices: Device[] };
  if (cli.json) printJson(ctx, r);
  else if (r.devices.length === 0) ctx.write('no paired devices (armorclaw pair pairs one)\n');
  else {
    ctx.write(
      renderTable(
        ['ID', 'NAME', 'OS', 'SCOPE', 'PAIRED', 'STATE'],
        r.devices.map((d) => [
          d.bridgeId,
          d.name,
          d.os,
          d.scope,
          formatTime(d.pairedAt),
          deviceState(d),
        ]),
      ),
    );
  }
  return ExitCode.Ok;
}

async function revoke(args: string[], ctx: CliContext): Promise<number> {
  const cli = bridgeArgs(args, ctx, DEVICES_USAGE, {}, { min: 1, max: 1, names: 'ID' });
  if (!cli) return ExitCode.Ok;
  const bridgeId = deviceId(cli.positionals[0]!);
  const r = (await cli.call('devices.revoke', { bridgeId })) as { device: Device };
  if (cli.json) printJson(ctx, r);
  else {
    const d = r.device;
    ctx.write(
      `revoked device ${cell(d.bridgeId)} (${cell(d.name)}, ${cell(d.os)}) at ` +
        `${formatTime(d.revokedAt)}: its token is refused from now on\n`,
    );
  }
  return ExitCode.Ok;
}

async function rotate(args: string[], ctx: CliContext): Promise<number> {
  const cli = bridgeArgs(args, ctx, DEVICES_USAGE, {}, { min: 1, max: 1, names: 'ID' });
  if (!cli) return ExitCode.Ok;
  const bridgeId = deviceId(cli.positionals[0]!);
  const r = (await cli.call('devices.rotate', { bridgeId })) as {
    bridgeId: string;
    wsToken: string;
  };
  if (cli.json) printJson(ctx, r);
  else {
    ctx.write(`${r.wsToken}\n`);
    ctx.warn(
      `device ${cell(r.bridgeId)} has a new token; it is shown only this once, ` +
        'and the old token is refused from now on.\n',
    );
  }
  return ExitCode.Ok;
}

async function scope(args: string[], ctx: CliContext): Promise<number> {
  const cli = bridgeArgs(args, ctx, DEVICES_USAGE, {}, { min: 2, max: 2, names: 'ID SCOPE' });
  if (!cli) return ExitCode.Ok;
  const bridgeId = deviceId(cli.positionals[0]!);
  const newScope = cli.positionals[1]!;
  if (!(DEVICE_SCOPES as readonly string[]).includes(newScope)) {
    throw new UsageError(`SCOPE must be one of ${DEVICE_SCOPES.join(', ')}`, DEVICES_USAGE);
  }
  const r = (await cli.call('devices.set_scope', { bridgeId, scope: newScope })) as {
    device: Device;
  };
  if (cli.json) printJson(ctx, r);
  else {
    const d = r.device;
    ctx.write(`device ${cell(d.bridgeId)} (${cell(d.name)}) now has scope ${cell(d.scope)}\n`);
  }
  return ExitCode.Ok;
}
