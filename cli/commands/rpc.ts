/** rpc METHOD [JSON]: any JSON-RPC method, for what has no command of its own. */
import { BRIDGE_OPTIONS_HELP, ExitCode, UsageError } from '../args';
import { bridgeCommand, printJson } from '../command';
import { readStdin } from '../input';

export const RPC_USAGE = `usage: armorclaw rpc METHOD [PARAMS] [--socket PATH]
  Calls METHOD with PARAMS (a JSON object; "-" reads it from stdin) and prints the raw result
  as JSON. Params holding a secret (token, password, secret, api_key, ...) must come on stdin:
    armorclaw rpc budget.status
    armorclaw rpc webrtc.get_audit_log '{"limit": 5}'
    printf '%s' '{"id":"k1","provider":"openai","token":"sk-..."}' | armorclaw rpc store_key -

${BRIDGE_OPTIONS_HELP}`;

// Requests above the bridge's socket.max_message_bytes are refused there; this only bounds what
// the CLI buffers from stdin.
const MAX_STDIN_BYTES = 64 * 1024 * 1024;

/** Keys whose value is a credential; mirrors the audit log's list. */
const SECRET_KEY = /(^|[_.-])(token|password|passphrase|secret|authorization|api[_-]?key)$/i;

export const rpcCommand = bridgeCommand({
  name: 'rpc',
  summary: 'rpc METHOD [JSON]: call any method, print the raw result',
  usage: RPC_USAGE,
  positionals: { min: 1, max: 2, names: 'METHOD' },
  async run(cli, ctx) {
    const [method, raw] = cli.positionals as [string, string | undefined];
    let params: unknown;
    if (raw === '-') params = parseParams(await readStdin('params', MAX_STDIN_BYTES));
    else if (raw !== undefined) {
      params = parseParams(raw);
      if (holdsSecret(params)) {
        // Checked after parsing, but the text is never printed: the error names no value.
        throw new UsageError(
          'refusing params with a secret on the command line (visible in ps and shell history); ' +
            'pipe them on stdin with "-" as PARAMS',
          RPC_USAGE,
        );
      }
    }
    // `rpc` always prints JSON: --json is accepted so scripts can pass it to every command.
    printJson(ctx, await cli.call(method, params));
    return ExitCode.Ok;
  },
});

function parseParams(text: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new UsageError('PARAMS must be JSON (an object or an array)', RPC_USAGE);
  }
  if (value === null || typeof value !== 'object') {
    throw new UsageError('PARAMS must be a JSON object or array', RPC_USAGE);
  }
  return value;
}

/** Whether any key, at any depth, names a credential. */
export function holdsSecret(value: unknown): boolean {
  if (Array.isArray(value)) return value.some(holdsSecret);
  if (value === null || typeof value !== 'object') return false;
  return Object.entries(value).some(([k, v]) => SECRET_KEY.test(k) || holdsSecret(v));
}
