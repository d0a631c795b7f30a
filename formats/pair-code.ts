/**
 * Device pairing codes (VoiceClaw bridge spec, "Pairing Flow"): `VC-XXXX-XXXX`, eight symbols of
 * Crockford's base32 alphabet, so 8 × 5 = 40 bits. Pure: the random bytes come from the caller.
 *
 * The alphabet is the 36 digits and capital letters minus I, L, O and U. With eight symbols and
 * the spec's shape, 40 bits need 32 symbols, so at most four of the 36 can go; dropping every
 * member of the 0/O and 1/I/L families (six) leaves 30 symbols and 39.3 bits. Crockford's answer
 * is to keep one member of each family (the digits 0 and 1, which the spec's own example
 * `VC-7M2K-91Q4` uses) and to read the others as that member on input: a code read aloud or
 * copied off a screen as `O` or `I` or `l` still works, so no reading of a printed code names a
 * different code. U goes so that no code spells a common English obscenity and is read as V.
 */

/** The 32 symbols, in value order. */
export const PAIR_CODE_ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
export const PAIR_CODE_PREFIX = 'VC';
export const PAIR_CODE_SYMBOLS = 8;
/** Entropy of a generated code: symbols × log2(alphabet size). */
export const PAIR_CODE_BITS = PAIR_CODE_SYMBOLS * Math.log2(PAIR_CODE_ALPHABET.length);
/** Longest input `normalizePairCode` looks at: a pasted code with generous spacing. */
export const PAIR_CODE_MAX_INPUT = 64;

const CANONICAL = /^VC-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$/;

/** Letters people type for a symbol that is not in the alphabet. */
const CONFUSIONS: Readonly<Record<string, string>> = { O: '0', I: '1', L: '1', U: 'V' };

/** Separators a person or a phone keyboard may put inside a code. */
const SEPARATORS = /[\s\-_.\u2010-\u2015\u2212]/g;

/** A source of uniformly random bytes: `crypto.randomBytes` in production, a seeded one in tests. */
export type RandomBytes = (size: number) => Uint8Array;

/**
 * `count` indices below `alphabetSize`, each uniform: a byte is used only if it is below the
 * largest multiple of `alphabetSize` that fits in a byte, else drawn again (a plain `byte % n`
 * favours the low symbols whenever n does not divide 256). With 32 symbols nothing is rejected;
 * the loop keeps a change of alphabet from quietly biasing codes.
 */
export function drawUniformIndices(
  alphabetSize: number,
  count: number,
  randomBytes: RandomBytes,
): number[] {
  if (!Number.isInteger(alphabetSize) || alphabetSize < 2 || alphabetSize > 256) {
    throw new RangeError('alphabetSize: an integer from 2 to 256');
  }
  const limit = 256 - (256 % alphabetSize);
  const out: number[] = [];
  while (out.length < count) {
    const bytes = randomBytes(count - out.length);
    if (bytes.length === 0) throw new Error('randomBytes returned no bytes');
    for (const b of bytes) {
      if (b < limit && out.length < count) out.push(b % alphabetSize);
    }
  }
  return out;
}

/** A fresh code in canonical form, `VC-XXXX-XXXX`. */
export function generatePairCode(randomBytes: RandomBytes): string {
  const symbols = drawUniformIndices(PAIR_CODE_ALPHABET.length, PAIR_CODE_SYMBOLS, randomBytes)
    .map((i) => PAIR_CODE_ALPHABET[i])
    .join('');
  return `${PAIR_CODE_PREFIX}-${symbols.slice(0, 4)}-${symbols.slice(4)}`;
}

/**
 * What a person typed, in canonical form, or null if it cannot be a code. Accepts any case,
 * full-width characters, spaces and dashes anywhere or none, the `VC` prefix or not, and reads
 * O as 0, I and L as 1, U as V. Input longer than `PAIR_CODE_MAX_INPUT` is refused unread.
 */
export function normalizePairCode(input: unknown): string | null {
  if (typeof input !== 'string' || input.length > PAIR_CODE_MAX_INPUT) return null;
  let s = input.normalize('NFKC').toUpperCase().replace(SEPARATORS, '');
  if (s.length === PAIR_CODE_SYMBOLS + PAIR_CODE_PREFIX.length && s.startsWith(PAIR_CODE_PREFIX)) {
    s = s.slice(PAIR_CODE_PREFIX.length);
  }
  if (s.length !== PAIR_CODE_SYMBOLS) return null;
  let body = '';
  for (const ch of s) {
    const symbol = CONFUSIONS[ch] ?? ch;
    if (!PAIR_CODE_ALPHABET.includes(symbol)) return null;
    body += symbol;
  }
  return `${PAIR_CODE_PREFIX}-${body.slice(0, 4)}-${body.slice(4)}`;
}

/** Whether `code` is a code in canonical form (what `generatePairCode` returns). */
export function isPairCode(code: unknown): code is string {
  return typeof code === 'string' && CANONICAL.test(code);
}
