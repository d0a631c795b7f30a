/**
 * The text side of the leak guard (leak-guard.ts): the decoded views of a text in which stored
 * tokens are looked for, and the Aho–Corasick automaton that finds every token form in one pass
 * over a view.
 *
 * A view keeps, for each of its UTF-16 code units, the span of the original text it came from,
 * so a match found after decoding `%41` or `\u0041`, or after dropping a zero-width space, can be
 * redacted in the original. Views are code-unit arrays rather than strings because the automaton
 * reads code units and the spans are per unit.
 */

/** Decoding layers, named as the guard reports them. */
export type Layer = 'url' | 'json';

/** A text as code units, each mapped to the span [start, end) of the original text. */
interface Mapped {
  units: Uint16Array;
  start: Int32Array;
  end: Int32Array;
}

/** What the automaton runs over: a decoded, invisible-free text and how it was made. */
export interface View extends Mapped {
  /** Layers decoded to reach this view, in the order they were applied to the secret. */
  layers: Layer[];
  /** `dropped[i]`: invisible characters removed before `units[i]`; says a match was split. */
  dropped: Int32Array;
}

// Decoding is repeated at most this many times: a JSON string inside a JSON string (tool call
// arguments) or a double percent-encoding is common; deeper nesting is a deliberate
// transformation, which no scanner can follow in general.
const MAX_DECODE_DEPTH = 2;

// Whitespace (what JS `\s` matches) and the invisible formatting characters a text renders
// without: soft hyphen, combining grapheme joiner, zero-width spaces and joiners, bidirectional
// marks, word joiner and invisible operators. A table over all code units: one lookup each.
const INVISIBLE_RANGES: Array<[number, number]> = [
  [0x09, 0x0d],
  [0x20, 0x20],
  [0xa0, 0xa0],
  [0xad, 0xad],
  [0x34f, 0x34f],
  [0x61c, 0x61c],
  [0x1680, 0x1680],
  [0x180e, 0x180e],
  [0x2000, 0x200f],
  [0x2028, 0x202f],
  [0x205f, 0x2064],
  [0x2066, 0x2069],
  [0x3000, 0x3000],
  [0xfeff, 0xfeff],
];
const INVISIBLE = new Uint8Array(0x10000);
for (const [from, to] of INVISIBLE_RANGES) INVISIBLE.fill(1, from, to + 1);

/** Whether a code unit is whitespace or an invisible formatting character. */
export function isInvisible(unit: number): boolean {
  return INVISIBLE[unit] === 1;
}

/** `text` without whitespace and invisible characters, as the views hold it. */
export function stripInvisible(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; i++) if (!isInvisible(text.charCodeAt(i))) out += text[i];
  return out;
}

/**
 * The typed arrays of one `decodedViews` call, cut from shared buffers. V8 takes a couple of
 * microseconds for each new backing store, longer than scanning a log line, so a call allocates
 * one buffer that holds the common case (the text and its one view: 7 arrays) and one more for
 * each decoding. Every array has the text's length, which decoding never exceeds. A buffer lives
 * as long as the views cut from it: nothing is reused across calls.
 */
class Arena {
  static readonly #ARRAYS_PER_BUFFER = 7;
  #buffer = new ArrayBuffer(0);
  #used = 0;

  constructor(readonly length: number) {}

  uint16(): Uint16Array {
    const offset = this.#take();
    return new Uint16Array(this.#buffer, offset, this.length);
  }

  int32(): Int32Array {
    const offset = this.#take();
    return new Int32Array(this.#buffer, offset, this.length);
  }

  /** The offset of a fresh slot, in a new buffer when this one is full; 4 bytes a unit keeps Int32Arrays aligned. */
  #take(): number {
    const slot = 4 * this.length;
    if (this.#used + slot > this.#buffer.byteLength) {
      this.#buffer = new ArrayBuffer(Arena.#ARRAYS_PER_BUFFER * slot);
      this.#used = 0;
    }
    this.#used += slot;
    return this.#used - slot;
  }
}

/** Appends code units with their spans; never grows past the capacity decoding needs. */
class MappedBuilder {
  readonly units: Uint16Array;
  readonly start: Int32Array;
  readonly end: Int32Array;
  length = 0;

  constructor(arena: Arena) {
    this.units = arena.uint16();
    this.start = arena.int32();
    this.end = arena.int32();
  }

  push(unit: number, start: number, end: number): void {
    this.units[this.length] = unit;
    this.start[this.length] = start;
    this.end[this.length] = end;
    this.length++;
  }

  /** Pushes a code point (two units when astral), both units spanning the same source. */
  pushCodePoint(cp: number, start: number, end: number): void {
    if (cp < 0x10000) return this.push(cp, start, end);
    this.push(0xd800 + ((cp - 0x10000) >> 10), start, end);
    this.push(0xdc00 + ((cp - 0x10000) & 0x3ff), start, end);
  }

  done(): Mapped {
    const n = this.length;
    return {
      units: this.units.subarray(0, n),
      start: this.start.subarray(0, n),
      end: this.end.subarray(0, n),
    };
  }
}

function fromText(text: string, arena: Arena): Mapped {
  const n = text.length;
  const units = arena.uint16();
  const start = arena.int32();
  const end = arena.int32();
  for (let i = 0; i < n; i++) {
    units[i] = text.charCodeAt(i);
    start[i] = i;
    end[i] = i + 1;
  }
  return { units, start, end };
}

function hexValue(unit: number | undefined): number {
  if (unit === undefined) return -1;
  if (unit >= 0x30 && unit <= 0x39) return unit - 0x30;
  const lower = unit | 0x20;
  return lower >= 0x61 && lower <= 0x66 ? lower - 0x61 + 10 : -1;
}

// Smallest code point each UTF-8 sequence length may encode: anything below is an overlong form.
const UTF8_MIN = [0, 0, 0x80, 0x800, 0x10000];

function utf8Length(lead: number): number {
  if (lead < 0x80) return 1;
  if (lead >= 0xc2 && lead <= 0xdf) return 2;
  if (lead >= 0xe0 && lead <= 0xef) return 3;
  if (lead >= 0xf0 && lead <= 0xf4) return 4;
  return 0;
}

/**
 * Percent-escapes decoded as UTF-8, any subset of characters may be escaped; an escape that does
 * not start a valid UTF-8 sequence stays as it is, as `decodeURIComponent` would refuse it. `+`
 * stays `+`: base64 uses it. Null when nothing was decoded.
 */
function percentDecode(m: Mapped, arena: Arena): Mapped | null {
  const { units, start, end } = m;
  // Most texts (log lines above all) hold no escape: no decoded copy to build.
  if (!units.includes(0x25)) return null;
  const n = units.length;
  const byteAt = (p: number): number => {
    if (p + 2 >= n || units[p] !== 0x25) return -1;
    const hi = hexValue(units[p + 1]);
    const lo = hexValue(units[p + 2]);
    return hi < 0 || lo < 0 ? -1 : (hi << 4) | lo;
  };
  const out = new MappedBuilder(arena);
  let decoded = false;
  let i = 0;
  while (i < n) {
    const lead = byteAt(i);
    const len = lead < 0 ? 0 : utf8Length(lead);
    let cp = len === 1 ? lead : lead & (0xff >> (len + 1));
    for (let k = 1; k < len && cp >= 0; k++) {
      const next = byteAt(i + 3 * k);
      cp = next < 0 || (next & 0xc0) !== 0x80 ? -1 : (cp << 6) | (next & 0x3f);
    }
    const valid =
      len > 0 && cp >= UTF8_MIN[len]! && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff);
    if (!valid) {
      out.push(units[i]!, start[i]!, end[i]!);
      i++;
      continue;
    }
    out.pushCodePoint(cp, start[i]!, end[i + 3 * len - 1]!);
    i += 3 * len;
    decoded = true;
  }
  return decoded ? out.done() : null;
}

// JSON's two-character escapes: `"`, `\`, `/`, b, f, n, r, t.
const JSON_SHORT = new Map<number, number>([
  [0x22, 0x22],
  [0x5c, 0x5c],
  [0x2f, 0x2f],
  [0x62, 0x08],
  [0x66, 0x0c],
  [0x6e, 0x0a],
  [0x72, 0x0d],
  [0x74, 0x09],
]);

/** JSON string escapes decoded (`\uXXXX` per code unit, `\/`, `\"`, ...); null when none. */
function jsonDecode(m: Mapped, arena: Arena): Mapped | null {
  const { units, start, end } = m;
  if (!units.includes(0x5c)) return null;
  const n = units.length;
  const out = new MappedBuilder(arena);
  let decoded = false;
  let i = 0;
  while (i < n) {
    if (units[i] === 0x5c && i + 1 < n) {
      const short = JSON_SHORT.get(units[i + 1]!);
      if (short !== undefined) {
        out.push(short, start[i]!, end[i + 1]!);
        i += 2;
        decoded = true;
        continue;
      }
      if (units[i + 1] === 0x75 && i + 5 < n) {
        let unit = 0;
        for (let k = 2; k < 6 && unit >= 0; k++) {
          const h = hexValue(units[i + k]);
          unit = h < 0 ? -1 : (unit << 4) | h;
        }
        if (unit >= 0) {
          out.push(unit, start[i]!, end[i + 5]!);
          i += 6;
          decoded = true;
          continue;
        }
      }
    }
    out.push(units[i]!, start[i]!, end[i]!);
    i++;
  }
  return decoded ? out.done() : null;
}

function strip(m: Mapped, layers: Layer[], arena: Arena): View {
  const n = m.units.length;
  const out = new MappedBuilder(arena);
  const dropped = arena.int32();
  let count = 0;
  for (let i = 0; i < n; i++) {
    const unit = m.units[i]!;
    if (isInvisible(unit)) {
      count++;
      continue;
    }
    dropped[out.length] = count;
    out.push(unit, m.start[i]!, m.end[i]!);
  }
  return { ...out.done(), layers, dropped: dropped.subarray(0, out.length) };
}

const DECODERS: Array<[Layer, (m: Mapped, arena: Arena) => Mapped | null]> = [
  ['url', percentDecode],
  ['json', jsonDecode],
];

/**
 * The views of `text` to scan, the undecoded one first: it stripped of invisible characters,
 * then every chain of up to MAX_DECODE_DEPTH decodings that changes something. At most
 * 1 + 2 + 4 views, each built in one linear pass.
 */
export function decodedViews(text: string): View[] {
  const views: View[] = [];
  const arena = new Arena(text.length);
  // Layers are kept in decoding order here; a view reports them outermost-last, as applied.
  let level: Array<{ mapped: Mapped; decoded: Layer[] }> = [
    { mapped: fromText(text, arena), decoded: [] },
  ];
  for (let depth = 0; ; depth++) {
    for (const { mapped, decoded } of level)
      views.push(strip(mapped, [...decoded].reverse(), arena));
    if (depth === MAX_DECODE_DEPTH) return views;
    const next: typeof level = [];
    for (const { mapped, decoded } of level) {
      for (const [layer, decode] of DECODERS) {
        const result = decode(mapped, arena);
        if (result) next.push({ mapped: result, decoded: [...decoded, layer] });
      }
    }
    if (next.length === 0) return views;
    level = next;
  }
}

/**
 * Aho–Corasick over UTF-16 code units: built in time linear in the needles' total length, it
 * reports every occurrence of every needle, overlapping ones included, in one pass over a text
 * (time linear in the text plus the matches).
 */
export class Automaton {
  readonly #next: Array<Map<number, number>> = [new Map()];
  readonly #fail: number[] = [0];
  /** Needles ending exactly at a state. */
  readonly #ends: Array<number[] | undefined> = [undefined];
  /** The nearest state on the fail chain with needles ending at it, or -1. */
  readonly #output: number[] = [-1];
  readonly #lengths: number[];

  constructor(needles: readonly string[]) {
    this.#lengths = needles.map((needle) => needle.length);
    needles.forEach((needle, id) => {
      let state = 0;
      for (let i = 0; i < needle.length; i++) {
        const unit = needle.charCodeAt(i);
        let child = this.#next[state]!.get(unit);
        if (child === undefined) {
          child = this.#next.length;
          this.#next.push(new Map());
          this.#fail.push(0);
          this.#ends.push(undefined);
          this.#output.push(-1);
          this.#next[state]!.set(unit, child);
        }
        state = child;
      }
      (this.#ends[state] ??= []).push(id);
    });
    // Breadth first, so a state's fail target (a shorter suffix) is complete before it is used.
    const queue = [...this.#next[0]!.values()];
    for (let q = 0; q < queue.length; q++) {
      const state = queue[q]!;
      for (const [unit, child] of this.#next[state]!) {
        let f = this.#fail[state]!;
        while (f !== 0 && !this.#next[f]!.has(unit)) f = this.#fail[f]!;
        const target = this.#next[f]!.get(unit);
        const fail = target !== undefined && target !== child ? target : 0;
        this.#fail[child] = fail;
        this.#output[child] = this.#ends[fail] ? fail : this.#output[fail]!;
        queue.push(child);
      }
    }
  }

  /** Calls `onMatch(needle, start, end)` for each occurrence in `units`, `end` exclusive. */
  search(units: Uint16Array, onMatch: (needle: number, start: number, end: number) => void): void {
    let state = 0;
    for (let i = 0; i < units.length; i++) {
      const unit = units[i]!;
      let child = this.#next[state]!.get(unit);
      while (child === undefined && state !== 0) {
        state = this.#fail[state]!;
        child = this.#next[state]!.get(unit);
      }
      state = child ?? 0;
      for (let s = this.#ends[state] ? state : this.#output[state]!; s !== -1;) {
        for (const id of this.#ends[s]!) onMatch(id, i + 1 - this.#lengths[id]!, i + 1);
        s = this.#output[s]!;
      }
    }
  }
}
