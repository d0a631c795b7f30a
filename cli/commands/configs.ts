/** configs attach / configs list: config attachments in the bridge's state directory. */
import fs from 'node:fs';
import path from 'node:path';
import { BRIDGE_OPTIONS_HELP, ExitCode, UsageError } from '../args';
import { bridgeArgs, printJson, type Command } from '../command';
import { formatBytes, formatTime, renderTable } from '../format';

const TYPES_BY_EXTENSION: Record<string, string> = {
  '.env': 'env',
  '.toml': 'toml',
  '.yaml': 'yaml',
  '.yml': 'yaml',
  '.json': 'json',
};

// Above the bridge's configs.max_bytes ceiling; the bridge has the last word on the size, this
// only stops the CLI from reading a huge file (or a device) into memory for nothing.
const MAX_FILE_BYTES = 64 * 1024 * 1024;

export const CONFIGS_USAGE = `usage:
  armorclaw configs attach FILE [--name NAME] [--type T] [--json] [--socket PATH]
      Sends FILE (as base64) to the bridge, which stores it as <state_dir>/configs/NAME, 0640,
      replacing an earlier one of that name (JSON-RPC \`attach_config\`).
      --name NAME   default: FILE's base name ([A-Za-z0-9._-], not starting with ".")
      --type T      env, toml, yaml or json (default: from FILE's extension, else none);
                    json content must parse
  armorclaw configs list [--json] [--socket PATH]
      Name, size, modification time and path of each attachment (JSON-RPC \`list_configs\`).

${BRIDGE_OPTIONS_HELP}`;

export const configsCommand: Command = {
  name: 'configs',
  summary: 'configs attach FILE | configs list',
  usage: CONFIGS_USAGE,
  async run(args, ctx) {
    const [sub, ...rest] = args;
    switch (sub) {
      case 'attach':
        return attach(rest, ctx);
      case 'list':
        return list(rest, ctx);
      case '--help':
      case '-h':
        ctx.write(CONFIGS_USAGE + '\n');
        return ExitCode.Ok;
      case undefined:
        throw new UsageError('configs needs a subcommand: attach or list', CONFIGS_USAGE);
      default:
        throw new UsageError(`unknown configs subcommand "${sub}"`, CONFIGS_USAGE);
    }
  },
};

async function attach(args: string[], ctx: Parameters<Command['run']>[1]): Promise<number> {
  const cli = bridgeArgs(
    args,
    ctx,
    CONFIGS_USAGE,
    { name: { type: 'string' }, type: { type: 'string' } },
    { min: 1, max: 1, names: 'FILE' },
  );
  if (!cli) return ExitCode.Ok;
  const file = cli.positionals[0]!;
  const content = readConfigFile(file);
  const name = (cli.values.name as string | undefined) ?? path.basename(file);
  const type =
    (cli.values.type as string | undefined) ?? TYPES_BY_EXTENSION[path.extname(file).toLowerCase()];
  const r = (await cli.call('attach_config', {
    name,
    content: content.toString('base64'),
    encoding: 'base64',
    ...(type !== undefined && { type }),
  })) as { config_id: string; name: string; path: string; size: number; type?: string };
  if (cli.json) printJson(ctx, r);
  else {
    ctx.write(
      `attached ${r.name} (${r.type ?? 'no type'}, ${formatBytes(r.size)}) at ${r.path}\n` +
        `config id ${r.config_id}\n`,
    );
  }
  return ExitCode.Ok;
}

function readConfigFile(file: string): Buffer {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (err) {
    throw new Error(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  if (!st.isFile()) throw new Error(`${file} is not a regular file`);
  if (st.size > MAX_FILE_BYTES)
    throw new Error(`${file} is larger than ${formatBytes(MAX_FILE_BYTES)}`);
  return fs.readFileSync(file);
}

async function list(args: string[], ctx: Parameters<Command['run']>[1]): Promise<number> {
  const cli = bridgeArgs(args, ctx, CONFIGS_USAGE, {});
  if (!cli) return ExitCode.Ok;
  const configs = (await cli.call('list_configs')) as Array<{
    name: string;
    path: string;
    size: number;
    modified: string;
  }>;
  if (cli.json) printJson(ctx, configs);
  else if (configs.length === 0) ctx.write('no configs attached\n');
  else {
    ctx.write(
      renderTable(
        ['NAME', 'SIZE', 'MODIFIED', 'PATH'],
        configs.map((c) => [c.name, formatBytes(c.size), formatTime(c.modified), c.path]),
      ),
    );
  }
  return ExitCode.Ok;
}
