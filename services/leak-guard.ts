/**
 * The credential leak guard (docs/leak-guard.md): finds the keystore's tokens in text an agent
 * sends out of its container, raw or in the encodings a careless or curious agent would use
 * (base64 at any alignment, hex, percent-encoding, JSON escapes, split by invisible characters),
 * and redacts them from text bound for logs.
 *
 * It never returns, throws or holds in a visible property the tokens it guards: results carry
 * key ids and encoding names only, and its state lives in `#private` fields, which neither
 * `JSON.stringify` nor `util.inspect` shows, so logging the guard itself leaks nothing.
 *
 * Cost: building is linear in the tokens' total length (about 13 needle characters per token
 * character), so the guard is rebuilt whenever a key is added or removed rather than updated.
 * A scan builds at most 7 views of the text (leak-guard-text.ts), each one linear pass, and runs
 * one Aho–Corasick automaton over each: linear in the text whatever the number of keys.
 */
import { Automaton, decodedViews, stripInvisible, type View } from './leak-guard-text';

/**
 * Tokens with fewer significant characters are not guarded: 7 characters or fewer turn up in
 * ordinary text (a word, a number, an id) often enough that flagging them would block honest
 * messages, and no provider issues keys that short.
 */
export const MIN_GUARDED_CHARS = 8;

/** A stored key as the guard needs it: the keystore's id and its token. */
export interface GuardedKey {
  readonly id: string;
  readonly token: string;
}

/** What a scan found: which keys leaked and in which encodings, never the tokens themselves. */
export type LeakScan = { leaked: false } | { leaked: true; keyIds: string[]; encodings: string[] };

/** The form of a token a needle is: itself, base64 (standard or URL-safe) or hex. */
type Form = 'raw' | 'base64' | 'base64url' | 'hex';

interface NeedleOwner {
  key: number;
  form: Form;
}

/** The base64 characters that depend on `bytes` alone when they start `offset` bytes into a stream. */
function alignedBase64(bytes: Buffer, offset: number): string {
  // Zero bytes stand in for the unknown neighbours; the characters that mix their bits with
  // the token's are cut off below, so the result matches whatever the neighbours are.
  const b64 = Buffer.concat([Buffer.alloc(offset), bytes, Buffer.alloc(2)]).toString('base64');
  const from = Math.ceil((8 * offset) / 6);
  const to = Math.floor((8 * (offset + bytes.length)) / 6);
  return b64.slice(from, to);
}

/** Every form of `token` the guard looks for, the raw one first. */
function formsOf(token: string): Array<[string, Form]> {
  const bytes = Buffer.from(token, 'utf8');
  const forms: Array<[string, Form]> = [[stripInvisible(token), 'raw']];
  for (let offset = 0; offset < 3; offset++) {
    const standard = alignedBase64(bytes, offset);
    forms.push(
      [standard, 'base64'],
      [standard.replace(/\+/g, '-').replace(/\//g, '_'), 'base64url'],
    );
  }
  const hex = bytes.toString('hex');
  forms.push([hex, 'hex'], [hex.toUpperCase(), 'hex']);
  return forms;
}

/** Found occurrences, each counted once: in the least-decoded view that shows it. */
class Findings {
  readonly keys = new Set<number>();
  readonly encodings = new Set<string>();
  readonly spans: Array<[number, number]> = [];
  readonly #seen = new Set<string>();

  add(owner: NeedleOwner, view: View, start: number, end: number): void {
    const from = view.start[start]!;
    const to = view.end[end - 1]!;
    // The raw view comes first, so a token written plainly in a text that also holds unrelated
    // escapes is reported as 'raw', not again as 'url' or 'json'.
    const id = `${owner.key}:${owner.form}:${from}:${to}`;
    if (this.#seen.has(id)) return;
    this.#seen.add(id);
    const split = view.dropped[end - 1]! - view.dropped[start]! > 0;
    const parts: string[] = owner.form === 'raw' ? [] : [owner.form];
    parts.push(...view.layers);
    if (split) parts.push('split');
    this.keys.add(owner.key);
    this.encodings.add(parts.length === 0 ? 'raw' : parts.join('+'));
    this.spans.push([from, to]);
  }
}

/**
 * Finds stored tokens in outgoing text and values. Encoding names in results: `raw`, `base64`,
 * `base64url`, `hex`, then `+url` / `+json` for each decoding layer applied on top, and `+split`
 * when whitespace or invisible characters were inserted (`base64+json`, `url`, `hex+split`).
 */
export class LeakGuard {
  readonly #ids: string[] = [];
  readonly #owners: NeedleOwner[][] = [];
  readonly #automaton: Automaton;
  /** Ids of keys whose tokens are too short to guard (MIN_GUARDED_CHARS). */
  readonly unguardedKeyIds: readonly string[];

  /** Builds a guard for `keys`; linear in their tokens' total length. */
  constructor(keys: Iterable<GuardedKey>) {
    const needles = new Map<string, number>();
    const unguarded: string[] = [];
    const listed = new Set<string>();
    for (const { id, token } of keys) {
      if (listed.has(id)) throw new TypeError(`leak guard: key ${id} is listed twice`);
      if (typeof token !== 'string') throw new TypeError(`leak guard: key ${id} has no token`);
      listed.add(id);
      const key = this.#ids.push(id) - 1;
      const forms = formsOf(token);
      if (forms[0]![0].length < MIN_GUARDED_CHARS) {
        unguarded.push(id);
        continue;
      }
      for (const [needle, form] of forms) {
        let n = needles.get(needle);
        if (n === undefined) {
          n = this.#owners.push([]) - 1;
          needles.set(needle, n);
        }
        const owners = this.#owners[n]!;
        // Identical forms (hex without letters, base64 without + or /) count once per key.
        if (!owners.some((o) => o.key === key)) owners.push({ key, form });
      }
    }
    this.#automaton = new Automaton([...needles.keys()]);
    this.unguardedKeyIds = unguarded;
  }

  /** Whether `text` holds a guarded token in any encoding the guard knows; ids and encodings only. */
  scan(text: string): LeakScan {
    const findings = new Findings();
    this.#find(text, findings);
    return this.#result(findings);
  }

  /**
   * `scan` over a JSON-like value: every string, object key and number in it, through arrays,
   * objects, Maps and Sets (cycles visited once); byte arrays are read as UTF-8 text.
   */
  scanValue(value: unknown): LeakScan {
    const findings = new Findings();
    const seen = new Set<object>();
    // A stack rather than recursion: a deeply nested value must not overflow the call stack.
    const stack: unknown[] = [value];
    while (stack.length > 0) {
      const v = stack.pop();
      if (typeof v === 'string') this.#find(v, findings);
      else if (typeof v === 'number' || typeof v === 'bigint') this.#find(String(v), findings);
      else if (typeof v === 'object' && v !== null && !seen.has(v)) {
        seen.add(v);
        if (ArrayBuffer.isView(v)) {
          this.#find(Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('utf8'), findings);
        } else if (v instanceof Map) {
          for (const [k, x] of v) stack.push(k, x);
        } else if (Array.isArray(v) || v instanceof Set) {
          for (const x of v) stack.push(x);
        } else {
          for (const [k, x] of Object.entries(v)) stack.push(k, x);
        }
      }
    }
    return this.#result(findings);
  }

  /**
   * `text` with every occurrence `scan` finds replaced by `[redacted]`, in place: the original
   * characters a decoded match came from (escapes, inserted whitespace) go with it.
   */
  redact(text: string): string {
    const findings = new Findings();
    this.#find(text, findings);
    if (findings.spans.length === 0) return text;
    const spans = findings.spans.sort((a, b) => a[0] - b[0]);
    let out = '';
    let at = 0;
    for (let i = 0; i < spans.length;) {
      const from = spans[i]![0];
      let to = spans[i]![1];
      // Overlapping or touching occurrences become one marker.
      for (i++; i < spans.length && spans[i]![0] <= to; i++) to = Math.max(to, spans[i]![1]);
      out += text.slice(at, from) + '[redacted]';
      at = to;
    }
    return out + text.slice(at);
  }

  #find(text: string, findings: Findings): void {
    if (this.#owners.length === 0) return;
    for (const view of decodedViews(text)) {
      this.#automaton.search(view.units, (needle, start, end) => {
        for (const owner of this.#owners[needle]!) findings.add(owner, view, start, end);
      });
    }
  }

  #result(findings: Findings): LeakScan {
    if (findings.keys.size === 0) return { leaked: false };
    return {
      leaked: true,
      keyIds: [...findings.keys].sort((a, b) => a - b).map((k) => this.#ids[k]!),
      encodings: [...findings.encodings].sort(),
    };
  }
}

/** Where the guard's keys come from: the keystore, which may change under the bridge. */
export interface GuardedKeySource {
  /** Cheap: ids and creation times only, no decryption. */
  list(): Array<{ id: string; created_at: number }>;
  tokensForLeakGuard(): GuardedKey[];
}

/**
 * A leak guard that follows its key source: rebuilt when the stored keys change, which another
 * process (the CLI's add-key) may do too, so the change is seen by listing, not by a callback.
 */
export class LiveLeakGuard {
  #fingerprint: string | undefined;
  #guard: LeakGuard | undefined;

  constructor(private readonly source: GuardedKeySource) {}

  /** The guard over the keys stored now. */
  current(): LeakGuard {
    const fingerprint = this.source
      .list()
      .map((k) => `${k.id}@${k.created_at}`)
      .join('\n');
    if (this.#guard === undefined || fingerprint !== this.#fingerprint) {
      this.#guard = new LeakGuard(this.source.tokensForLeakGuard());
      this.#fingerprint = fingerprint;
    }
    return this.#guard;
  }
}
