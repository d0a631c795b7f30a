/**
 * Durations as the API and the settings write them ("20s", "30m", "1h", "1h30m", "500ms"): the
 * format of `webrtc.start`'s `ttl` and of every duration setting.
 *
 * Why formats/: config/ (settings) and services/ with rpc/ (API params) both read durations,
 * and neither may import the other. Modules here import nothing at all, so any layer may use
 * them without reaching up or sideways.
 */
const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Milliseconds, or null when the text is not a duration (or not a positive safe integer of ms). */
export function parseDuration(text: string): number | null {
  const t = text.trim();
  if (!/^(\d+(ms|s|m|h|d))+$/.test(t)) return null;
  let total = 0;
  for (const [, n, unit] of t.matchAll(/(\d+)(ms|s|m|h|d)/g)) {
    total += Number(n) * UNIT_MS[unit!]!;
  }
  return Number.isSafeInteger(total) && total > 0 ? total : null;
}
