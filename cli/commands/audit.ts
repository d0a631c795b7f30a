/** audit tail / audit verify: the bridge's hash-chained security audit log. */
import { BRIDGE_OPTIONS_HELP, ExitCode, UsageError, positiveNumber } from '../args';
import { bridgeArgs, printJson, type CliContext, type Command } from '../command';
import { cell, formatTime, renderTable } from '../format';
import type { AuditTailEntry } from '../../rpc/methods/audit';

export const AUDIT_USAGE = `usage:
  armorclaw audit tail [-n N] [--type EVENT] [--session ID] [--json] [--socket PATH]
      The newest N audit entries of every kind (container runs, agents, calls, budget,
      provider proxy, security), oldest first (JSON-RPC \`audit.tail\`).
      -n, --lines N    how many (1-1000, default 20)
      --type EVENT     only this event type (container_ended, provider_request_refused, ...)
      --session ID     only this session's entries: a container name or a call id
      --json prints the bridge's result: {"entries": [...]}, newest last.
  armorclaw audit verify [--anchor SEQ:HASH] [--json] [--socket PATH]
      Recomputes the whole hash chain of the audit log on the bridge (JSON-RPC
      \`audit.verify\`); exits 4 when an entry was edited, deleted or reordered.
      --anchor SEQ:HASH  a head printed by an earlier verify and kept elsewhere: also
                         detects a log cut short or rewritten since then

${BRIDGE_OPTIONS_HELP}`;

/** An entry as `audit.tail` answers it. */
export type AuditEntry = AuditTailEntry;

export interface VerifyResult {
  ok: boolean;
  entries: number;
  head: { seq: number; hash: string } | null;
  first_bad_seq?: number;
  reason?: string;
}

export const auditCommand: Command = {
  name: 'audit',
  summary: 'audit tail [-n N] | audit verify (exit 4 when the chain is broken)',
  usage: AUDIT_USAGE,
  async run(args, ctx) {
    const [sub, ...rest] = args;
    switch (sub) {
      case 'tail':
        return tail(rest, ctx);
      case 'verify':
        return verify(rest, ctx);
      case '--help':
      case '-h':
        ctx.write(AUDIT_USAGE + '\n');
        return ExitCode.Ok;
      case undefined:
        throw new UsageError('audit needs a subcommand: tail or verify', AUDIT_USAGE);
      default:
        throw new UsageError(`unknown audit subcommand "${sub}"`, AUDIT_USAGE);
    }
  },
};

async function tail(args: string[], ctx: CliContext): Promise<number> {
  const cli = bridgeArgs(args, ctx, AUDIT_USAGE, {
    lines: { type: 'string', short: 'n' },
    type: { type: 'string' },
    session: { type: 'string' },
  });
  if (!cli) return ExitCode.Ok;
  const limit =
    positiveNumber(cli.values.lines as string | undefined, '-n', AUDIT_USAGE, 1000) ?? 20;
  const { type, session } = cli.values as { type?: string; session?: string };
  const r = (await cli.call('audit.tail', {
    limit,
    ...(type !== undefined && { event_type: type }),
    ...(session !== undefined && { session_id: session }),
  })) as { entries: AuditEntry[] };
  if (cli.json) printJson(ctx, r);
  else ctx.write(renderAuditTail(r.entries));
  return ExitCode.Ok;
}

/** Oldest first, like `tail`: the newest entry is the last line. */
export function renderAuditTail(entries: AuditEntry[]): string {
  if (entries.length === 0) return 'no audit entries\n';
  const rows = [...entries]
    .sort((a, b) => a.seq - b.seq)
    .map((e) => [
      e.seq,
      formatTime(e.timestamp),
      e.event_type,
      e.session_id,
      e.room_id,
      e.user_id,
      summarizeDetails(e.details),
    ]);
  return renderTable(['SEQ', 'TIME', 'EVENT', 'SESSION', 'ROOM', 'USER', 'DETAILS'], rows);
}

/** `key=value` pairs on one line, cut at 80 characters. */
export function summarizeDetails(details: Record<string, unknown> | null | undefined): string {
  if (!details) return '';
  const text = Object.entries(details)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  const safe = cell(text);
  return safe.length > 80 ? safe.slice(0, 79) + '…' : safe === '-' ? '' : safe;
}

async function verify(args: string[], ctx: CliContext): Promise<number> {
  const cli = bridgeArgs(args, ctx, AUDIT_USAGE, { anchor: { type: 'string' } });
  if (!cli) return ExitCode.Ok;
  const anchor = parseAnchor(cli.values.anchor as string | undefined);
  const r = (await cli.call('audit.verify', anchor ? { anchor } : undefined)) as VerifyResult;
  if (cli.json) printJson(ctx, r);
  else ctx.write(renderVerify(r));
  return r.ok ? ExitCode.Ok : ExitCode.AuditBroken;
}

export function parseAnchor(value: string | undefined): { seq: number; hash: string } | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d+):([0-9a-f]{64})$/.exec(value);
  if (!m || Number(m[1]) < 1 || !Number.isSafeInteger(Number(m[1]))) {
    throw new UsageError('--anchor must be SEQ:HASH (a head printed by audit verify)', AUDIT_USAGE);
  }
  return { seq: Number(m[1]), hash: m[2]! };
}

export function renderVerify(r: VerifyResult): string {
  const head = r.head ? `${r.head.seq}:${r.head.hash}` : 'none (empty log)';
  if (r.ok) {
    return `audit chain ok: ${r.entries} entries verified\nhead ${head}\n`;
  }
  return (
    `audit chain BROKEN at entry ${r.first_bad_seq}: ${cell(r.reason)}\n` +
    `head ${head}\n` +
    'Entries from there on cannot be trusted; keep a copy of the audit database for analysis.\n'
  );
}
