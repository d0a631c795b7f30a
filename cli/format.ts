/** Human output: aligned tables, readable times and durations. */

// Values come from the bridge (room ids, user ids, agent messages): a control character or an
// escape sequence in one must not rewrite the operator's terminal.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;

/** Makes one cell printable: control characters become `?`, null/undefined `-`. */
export function cell(value: unknown): string {
  if (value === null || value === undefined || value === '') return '-';
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return text.replace(CONTROL, '?');
}

/**
 * Columns padded to their widest cell, two spaces apart, no trailing blanks. Widths count
 * code points, which is right for the ids, names and times shown here.
 */
export function renderTable(header: string[], rows: unknown[][]): string {
  const cells = rows.map((r) => header.map((_, i) => cell(r[i])));
  const width = (s: string) => [...s].length;
  const widths = header.map((h, i) => Math.max(width(h), ...cells.map((r) => width(r[i]!))));
  const line = (row: string[]) =>
    row
      .map((c, i) => c + ' '.repeat(widths[i]! - width(c)))
      .join('  ')
      .trimEnd() + '\n';
  return [header, ...cells].map(line).join('');
}

/** `label  value` lines with the labels aligned. */
export function renderFields(fields: Array<[string, unknown]>): string {
  const w = Math.max(...fields.map(([k]) => k.length));
  return fields.map(([k, v]) => `${k.padEnd(w)}  ${cell(v)}\n`).join('');
}

const pad2 = (n: number) => String(n).padStart(2, '0');

/** `2026-02-11 12:00:05` in local time, or `-`; an unparsable value is shown as it is. */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) return '-';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return cell(iso);
  return (
    `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ` +
    `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`
  );
}

/** A duration as the bridge writes them: `45s`, `5m23s`, `2h05m`, `3d04h`. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${pad2(s % 60)}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h${pad2(m % 60)}m`;
  return `${Math.floor(h / 24)}d${pad2(h % 24)}h`;
}

/** `2026-02-11 12:00:05 (3m10s ago)`. */
export function formatTimeAgo(iso: string | null | undefined, now: number = Date.now()): string {
  const at = formatTime(iso);
  const t = iso ? new Date(iso).getTime() : NaN;
  if (Number.isNaN(t)) return at;
  return t <= now
    ? `${at} (${formatDuration(now - t)} ago)`
    : `${at} (in ${formatDuration(t - now)})`;
}

/** Bytes as `512 B`, `1.5 KiB`, `2.0 MiB`. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** The short container id `docker ps` shows. */
export const shortId = (id: string | null | undefined): string => (id ? id.slice(0, 12) : '-');
