/**
 * Measurements on mono s16le PCM for tests and benchmarks: level (RMS) and frequency
 * (zero crossings, with a Goertzel filter to confirm a tone dominates).
 */
import { SAMPLE_RATE, samplesOf } from './pcm';

/** RMS level of PCM, as a fraction of full scale (a full-scale sine is about 0.707). */
export function rms(pcm: Buffer): number {
  const s = samplesOf(pcm);
  if (s.length === 0) return 0;
  let sum = 0;
  for (const v of s) sum += v * v;
  return Math.sqrt(sum / s.length) / 32768;
}

/**
 * Frequency in Hz from rising zero crossings, interpolated between samples; NaN when fewer
 * than two crossings (silence, or too short).
 */
export function zeroCrossingFrequency(pcm: Buffer, sampleRate = SAMPLE_RATE): number {
  const s = samplesOf(pcm);
  let first = -1;
  let last = -1;
  let count = 0;
  for (let i = 1; i < s.length; i++) {
    const a = s[i - 1] as number;
    const b = s[i] as number;
    if (a < 0 && b >= 0) {
      const t = i - 1 + -a / (b - a);
      if (first < 0) first = t;
      last = t;
      count++;
    }
  }
  if (count < 2) return NaN;
  return ((count - 1) * sampleRate) / (last - first);
}

/** Power of one frequency in PCM by the Goertzel algorithm, normalised to mean-square units. */
export function goertzelPower(pcm: Buffer, frequency: number, sampleRate = SAMPLE_RATE): number {
  const s = samplesOf(pcm);
  const n = s.length;
  if (n === 0) return 0;
  const coeff = 2 * Math.cos((2 * Math.PI * frequency) / sampleRate);
  let q1 = 0;
  let q2 = 0;
  for (const v of s) {
    const q0 = coeff * q1 - q2 + v / 32768;
    q2 = q1;
    q1 = q0;
  }
  const power = q1 * q1 + q2 * q2 - coeff * q1 * q2;
  // A sine of amplitude A gives power ≈ (A·n/2)²; scale so that it reads A²/2 (= its RMS²).
  return (2 * power) / (n * n);
}

/** Fraction of the signal's energy at `frequency` (≈1 for a pure tone, ≈0 when absent). */
export function tonePurity(pcm: Buffer, frequency: number, sampleRate = SAMPLE_RATE): number {
  const level = rms(pcm);
  if (level === 0) return 0;
  return goertzelPower(pcm, frequency, sampleRate) / (level * level);
}
