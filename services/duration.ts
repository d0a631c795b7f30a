/**
 * Durations as the API writes them ("20s", "30m", "1h", "1h30m", "500ms"), the same format as
 * `webrtc.start`'s `ttl`. Returns milliseconds, or null when the text is not a duration.
 */
const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseDuration(text: string): number | null {
  const t = text.trim();
  if (!/^(\d+(ms|s|m|h|d))+$/.test(t)) return null;
  let total = 0;
  for (const [, n, unit] of t.matchAll(/(\d+)(ms|s|m|h|d)/g)) {
    total += Number(n) * UNIT_MS[unit!]!;
  }
  return Number.isSafeInteger(total) && total > 0 ? total : null;
}

/** "5m23s" style, as the API spec shows durations. */
export function formatDuration(ms: number): string {
  const totalSeconds = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(totalSeconds / 3600);
  const m = Math.floor((totalSeconds % 3600) / 60);
  const s = totalSeconds % 60;
  return h > 0 ? `${h}h${m}m${s}s` : `${m}m${s}s`;
}
