/**
 * Pairing codes: the alphabet and its entropy, generation (format and an unbiased draw, checked
 * statistically with a seeded source), and reading what people type.
 */
import { randomBytes } from 'node:crypto';
import {
  drawUniformIndices,
  generatePairCode,
  isPairCode,
  normalizePairCode,
  PAIR_CODE_ALPHABET,
  PAIR_CODE_BITS,
  type RandomBytes,
} from '../../formats/pair-code';

/** mulberry32: a small seeded PRNG, so the statistical checks give the same answer every run. */
function seededBytes(seed: number): RandomBytes {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) & 0xff;
  };
  return (n) => Uint8Array.from({ length: n }, next);
}

/** Pearson's chi-square of observed counts against a uniform expectation. */
function chiSquare(counts: number[]): number {
  const total = counts.reduce((a, b) => a + b, 0);
  const expected = total / counts.length;
  return counts.reduce((sum, c) => sum + (c - expected) ** 2 / expected, 0);
}

describe('alphabet', () => {
  test('32 distinct symbols, digits and capitals without I, L, O, U', () => {
    expect(PAIR_CODE_ALPHABET).toHaveLength(32);
    expect(new Set(PAIR_CODE_ALPHABET).size).toBe(32);
    expect(PAIR_CODE_ALPHABET).toMatch(/^[0-9A-Z]+$/);
    for (const ch of 'ILOU') expect(PAIR_CODE_ALPHABET).not.toContain(ch);
  });

  test('eight symbols carry at least 40 bits', () => {
    expect(PAIR_CODE_BITS).toBeGreaterThanOrEqual(40);
  });

  test("the spec's example is a valid code", () => {
    expect(isPairCode('VC-7M2K-91Q4')).toBe(true);
  });
});

describe('generatePairCode', () => {
  test('VC-XXXX-XXXX from the alphabet, symbols in value order', () => {
    expect(generatePairCode(() => Uint8Array.from([0, 1, 2, 3, 4, 5, 6, 7]))).toBe('VC-0123-4567');
    expect(generatePairCode(() => new Uint8Array(8).fill(31))).toBe('VC-ZZZZ-ZZZZ');
    // Only the low five bits choose: 32 divides 256, so no byte is wasted.
    expect(generatePairCode(() => new Uint8Array(8).fill(32 + 10))).toBe('VC-AAAA-AAAA');
  });

  test('codes from crypto.randomBytes are canonical and normalise to themselves', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 500; i++) {
      const code = generatePairCode(randomBytes);
      expect(isPairCode(code)).toBe(true);
      expect(normalizePairCode(code)).toBe(code);
      seen.add(code);
    }
    expect(seen.size).toBe(500);
  });

  test('symbols are uniform in every position (chi-square, seeded source)', () => {
    const source = seededBytes(20260226);
    const perPosition = Array.from({ length: 8 }, () => new Array<number>(32).fill(0));
    for (let i = 0; i < 8000; i++) {
      const body = generatePairCode(source).replace(/^VC-|-/g, '');
      [...body].forEach((ch, pos) => perPosition[pos]![PAIR_CODE_ALPHABET.indexOf(ch)]!++);
    }
    // 31 degrees of freedom: 61.1 is the p = 0.001 critical value.
    for (const counts of perPosition) expect(chiSquare(counts)).toBeLessThan(61.1);
    const overall = perPosition.reduce((acc, c) => acc.map((v, i) => v + c[i]!));
    expect(chiSquare(overall)).toBeLessThan(61.1);
  });
});

describe('drawUniformIndices', () => {
  test('rejects bytes above the largest multiple of the alphabet size', () => {
    // 30 symbols: 240..255 would favour indices 0..15 under a plain modulo.
    const queue = [255, 240, 239, 241, 0, 250, 59];
    const source: RandomBytes = (n) => Uint8Array.from(queue.splice(0, n));
    expect(drawUniformIndices(30, 3, source)).toEqual([29, 0, 29]);
    expect(queue).toEqual([]);
  });

  test('stays uniform when rejection is needed (30 symbols, chi-square, seeded source)', () => {
    const counts = new Array<number>(30).fill(0);
    for (const i of drawUniformIndices(30, 60_000, seededBytes(7))) counts[i]!++;
    // 29 degrees of freedom: 58.3 is the p = 0.001 critical value.
    expect(chiSquare(counts)).toBeLessThan(58.3);
  });

  test('a plain modulo would have been caught', () => {
    const counts = new Array<number>(30).fill(0);
    const bytes = seededBytes(7)(60_000);
    for (const b of bytes) counts[b % 30]!++;
    expect(chiSquare(counts)).toBeGreaterThan(58.3);
  });

  test('refuses a source that returns nothing and a bad alphabet size', () => {
    expect(() => drawUniformIndices(32, 1, () => new Uint8Array(0))).toThrow(/no bytes/);
    expect(() => drawUniformIndices(1, 1, randomBytes)).toThrow(RangeError);
    expect(() => drawUniformIndices(257, 1, randomBytes)).toThrow(RangeError);
  });
});

describe('normalizePairCode', () => {
  test.each([
    ['VC-7M2K-91Q4', 'VC-7M2K-91Q4'],
    ['vc-7m2k-91q4', 'VC-7M2K-91Q4'],
    ['7M2K91Q4', 'VC-7M2K-91Q4'],
    ['7m2k-91q4', 'VC-7M2K-91Q4'],
    ['  VC 7M2K 91Q4\n', 'VC-7M2K-91Q4'],
    ['VC7M2K91Q4', 'VC-7M2K-91Q4'],
    ['vc_7m2k.91q4', 'VC-7M2K-91Q4'],
    ['VC\u20137M2K\u201391Q4', 'VC-7M2K-91Q4'], // en dashes, as autocorrect writes them
    ['\uff36\uff23-7M2K-91Q4', 'VC-7M2K-91Q4'], // full-width VC
    ['VC-7M2K-9IQ4', 'VC-7M2K-91Q4'], // I read as 1
    ['VC-7M2K-9lQ4', 'VC-7M2K-91Q4'], // l read as 1
    ['VC-7M2K-9LQ4', 'VC-7M2K-91Q4'],
    ['VC-OOOO-oooo', 'VC-0000-0000'], // O read as 0
    ['VC-UUUU-VVVV', 'VC-VVVV-VVVV'], // U read as V
    ['VCVC-VC-VC', 'VC-VCVC-VCVC'], // eight symbols are the body even when it starts with VC
  ])('%j → %s', (input, expected) => {
    expect(normalizePairCode(input)).toBe(expected);
  });

  test.each([
    ['', 'empty'],
    ['VC-7M2K-91Q', 'seven symbols'],
    ['VC-7M2K-91Q44', 'nine symbols'],
    ['XX-7M2K-91Q4', 'ten symbols without the prefix'],
    ['VC-7M2K-91Q!', 'a symbol outside the alphabet'],
    ['VC-7M2K-91Q\u00e9', 'a letter outside ASCII'],
    [' '.repeat(60) + '7M2K91Q4', 'longer than 64 characters'],
  ])('%j is refused (%s)', (input) => {
    expect(normalizePairCode(input)).toBeNull();
  });

  test('anything but a string is refused', () => {
    for (const v of [undefined, null, 12345678, { code: 'VC-7M2K-91Q4' }, ['VC-7M2K-91Q4']]) {
      expect(normalizePairCode(v)).toBeNull();
    }
  });
});

describe('isPairCode', () => {
  test('canonical form only', () => {
    expect(isPairCode('VC-0123-4567')).toBe(true);
    expect(isPairCode('vc-0123-4567')).toBe(false);
    expect(isPairCode('VC-0123-456O')).toBe(false);
    expect(isPairCode('VC-01234567')).toBe(false);
    expect(isPairCode(' VC-0123-4567')).toBe(false);
    expect(isPairCode(undefined)).toBe(false);
  });
});
