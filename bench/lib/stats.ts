import type { LatencySummaryMs } from './protocol';

/**
 * Summarises latencies given in nanoseconds. Percentiles are nearest-rank on the sorted
 * samples (no interpolation), so every reported value is one that was really observed.
 * Null when nothing completed.
 */
export function summariseLatencyNs(samples: Float64Array): LatencySummaryMs | null {
  if (samples.length === 0) return null;
  const sorted = Float64Array.from(samples).sort();
  const rank = (q: number) =>
    sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]! / 1e6;
  let sum = 0;
  for (const v of sorted) sum += v;
  return {
    min: sorted[0]! / 1e6,
    mean: sum / sorted.length / 1e6,
    p50: rank(0.5),
    p90: rank(0.9),
    p99: rank(0.99),
    p999: rank(0.999),
    max: sorted[sorted.length - 1]! / 1e6,
  };
}

/** A Float64Array that grows by doubling, so recording a sample never allocates per request. */
export class SampleBuffer {
  private data = new Float64Array(1 << 16);
  private size = 0;

  push(value: number): void {
    if (this.size === this.data.length) {
      const bigger = new Float64Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.size++] = value;
  }

  get length(): number {
    return this.size;
  }

  values(): Float64Array {
    return this.data.subarray(0, this.size);
  }
}

/** Order statistics of a small sample of milliseconds (tens to hundreds of values). */
export interface MsSummary {
  n: number;
  p50: number;
  p95: number;
  min: number;
  max: number;
  mean: number;
}

/** Nearest-rank p50/p95, min, max and mean of `samples`; NaNs for an empty sample. */
export function summariseMs(samples: number[]): MsSummary {
  if (samples.length === 0) return { n: 0, p50: NaN, p95: NaN, min: NaN, max: NaN, mean: NaN };
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  return { n: s.length, p50: at(0.5), p95: at(0.95), min: s[0]!, max: s[s.length - 1]!, mean };
}
