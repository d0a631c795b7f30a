/**
 * Splits a byte stream into JSON texts without waiting for a newline.
 *
 * Clients differ: `nc`/`socat` end a request with a newline, a Python client using
 * `sock.sendall(json.dumps(req))` sends one object and waits with no newline, others pipeline
 * `{...}{...}`.
 * A line splitter fails two of those, so this tracks brace depth and string state instead:
 * an object or array is complete the moment its closing bracket arrives. A top-level scalar
 * (`42`, `true`, garbage) is complete at the next whitespace or bracket, or at end of input.
 */

export type Frame =
  | { kind: 'json'; text: string }
  /** The frame grew past the byte limit before it ended; the caller should close the connection. */
  | { kind: 'too-large'; bytes: number };

const OPEN_BRACE = 0x7b; // {
const OPEN_BRACKET = 0x5b; // [
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

const isWhitespace = (b: number): boolean => b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;

/** A streaming framer for one connection. Feed it chunks; it returns the frames they complete. */
export class JsonStreamFramer {
  private parts: Buffer[] = [];
  private partBytes = 0;
  private depth = 0;
  private inString = false;
  private escaped = false;
  /** Inside a top-level scalar (not an object or array). */
  private inScalar = false;
  private overflowed = false;

  constructor(private readonly maxFrameBytes: number) {}

  /** Bytes held for a frame that has not ended yet. */
  get pendingBytes(): number {
    return this.partBytes;
  }

  push(chunk: Buffer): Frame[] {
    if (this.overflowed) return [];
    const frames: Frame[] = [];
    let start = -1; // where the current frame begins inside this chunk, -1 if before it
    if (this.partBytes > 0) start = 0;

    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (this.depth === 0 && !this.inScalar) {
        if (isWhitespace(b)) continue;
        start = i;
        if (b === OPEN_BRACE || b === OPEN_BRACKET) {
          this.depth = 1;
        } else if (b === QUOTE) {
          this.inScalar = true;
          this.inString = true;
        } else {
          this.inScalar = true;
        }
        continue;
      }
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (b === BACKSLASH) this.escaped = true;
        else if (b === QUOTE) {
          this.inString = false;
        }
        continue;
      }
      if (this.inScalar) {
        if (isWhitespace(b) || b === OPEN_BRACE || b === OPEN_BRACKET) {
          frames.push(this.take(chunk, start, i));
          start = -1;
          i--; // let the delimiter be seen again at top level
        } else if (b === QUOTE) {
          this.inString = true;
        }
        continue;
      }
      if (b === QUOTE) this.inString = true;
      else if (b === OPEN_BRACE || b === OPEN_BRACKET) this.depth++;
      else if (b === CLOSE_BRACE || b === CLOSE_BRACKET) {
        this.depth--;
        if (this.depth === 0) {
          frames.push(this.take(chunk, start, i + 1));
          start = -1;
        }
      }
    }

    if (start >= 0) {
      const rest = chunk.subarray(start);
      this.parts.push(rest);
      this.partBytes += rest.length;
      if (this.partBytes > this.maxFrameBytes) {
        this.overflowed = true;
        frames.push({ kind: 'too-large', bytes: this.partBytes });
        this.parts = [];
        this.partBytes = 0;
      }
    }
    return frames;
  }

  /** End of input: whatever is pending becomes a last frame (it will fail to parse if cut off). */
  end(): Frame[] {
    if (this.overflowed || this.partBytes === 0) return [];
    const text = Buffer.concat(this.parts).toString('utf8');
    this.reset();
    return text.trim() === '' ? [] : [{ kind: 'json', text }];
  }

  private take(chunk: Buffer, start: number, endExclusive: number): Frame {
    const piece = chunk.subarray(Math.max(start, 0), endExclusive);
    const total = this.partBytes + piece.length;
    if (total > this.maxFrameBytes) {
      this.overflowed = true;
      this.reset();
      return { kind: 'too-large', bytes: total };
    }
    const text =
      this.parts.length === 0
        ? piece.toString('utf8')
        : Buffer.concat([...this.parts, piece]).toString('utf8');
    this.reset();
    return { kind: 'json', text };
  }

  private reset(): void {
    this.parts = [];
    this.partBytes = 0;
    this.depth = 0;
    this.inString = false;
    this.escaped = false;
    this.inScalar = false;
  }
}
