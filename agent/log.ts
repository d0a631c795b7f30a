/**
 * The agent's output, which lands in the host's Docker log: one line per event, and never the
 * token or anything derived from it, so errors are reported by kind, not by message.
 */

/** Prints one status line. */
export function log(message: string): void {
  process.stdout.write(`[agent] ${message}\n`);
}

/** An error's code or class name: safe to print, unlike a message that may quote input. */
export function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : err instanceof Error ? err.name : 'error';
}
