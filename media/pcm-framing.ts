/**
 * The binary framing of PCM audio between the bridge and an agent over a byte stream
 * (the per-container Unix socket). Documented for agent authors in media/README.md.
 *
 * Every frame is a fixed 20-byte header followed by its payload; all integers big-endian:
 *
 * | offset | size | field                                                            |
 * | -----: | ---: | ---------------------------------------------------------------- |
 * |      0 |    1 | magic `0xAC`                                                     |
 * |      1 |    1 | version `1`                                                      |
 * |      2 |    1 | type: `1` AUDIO, `2` END, `3` FLUSH                              |
 * |      3 |    1 | flags, `0` (reserved)                                            |
 * |      4 |    4 | sequence (uint32, per direction, from 0, +1 per frame, wraps)    |
 * |      8 |    8 | timestamp (uint64): stream position in samples at 48 kHz         |
 * |     16 |    4 | payload length (uint32): 1920 for AUDIO, 0 for END and FLUSH     |
 * |     20 |    n | payload: AUDIO = 960 samples of 48 kHz mono s16le (20 ms)        |
 */
import { FRAME_BYTES, FRAME_SAMPLES } from './pcm';

/** First byte of every frame. */
export const FRAME_MAGIC = 0xac;
/** Framing version this code speaks. */
export const FRAME_VERSION = 1;
/** Bytes in a frame header. */
export const HEADER_BYTES = 20;

/** Frame types. */
export const FrameType = {
  /** 20 ms of 48 kHz mono s16le PCM (1920 bytes). */
  AUDIO: 1,
  /** End of this direction's audio: no more frames follow. */
  END: 2,
  /** Agent → bridge: discard audio queued for playback and not yet sent (barge-in). */
  FLUSH: 3,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

const KNOWN_TYPES: ReadonlySet<number> = new Set(Object.values(FrameType));

/** One decoded (or to-be-encoded) frame. */
export interface PcmFrame {
  type: FrameType;
  /** uint32, wraps at 2^32. */
  sequence: number;
  /** Stream position of the first sample, in samples at 48 kHz (a gap means lost audio). */
  timestamp: number;
  /** PCM for AUDIO; empty otherwise. */
  payload: Buffer;
}

/** A stream that breaks the framing; the stream cannot be resynchronised after one. */
export class PcmFramingError extends Error {
  override readonly name = 'PcmFramingError';
}

function expectedPayload(type: number): number {
  return type === FrameType.AUDIO ? FRAME_BYTES : 0;
}

/** Encodes one frame (header + payload) into a new buffer; throws on an invalid frame. */
export function encodeFrame(frame: PcmFrame): Buffer {
  if (!KNOWN_TYPES.has(frame.type)) throw new PcmFramingError(`unknown frame type ${frame.type}`);
  const want = expectedPayload(frame.type);
  if (frame.payload.length !== want) {
    throw new PcmFramingError(
      `type ${frame.type} needs a ${want}-byte payload, got ${frame.payload.length}`,
    );
  }
  if (!Number.isInteger(frame.sequence) || frame.sequence < 0 || frame.sequence > 0xffffffff) {
    throw new PcmFramingError(`sequence ${frame.sequence} is not a uint32`);
  }
  if (!Number.isSafeInteger(frame.timestamp) || frame.timestamp < 0) {
    throw new PcmFramingError(`timestamp ${frame.timestamp} is not a non-negative safe integer`);
  }
  const out = Buffer.allocUnsafe(HEADER_BYTES + frame.payload.length);
  out[0] = FRAME_MAGIC;
  out[1] = FRAME_VERSION;
  out[2] = frame.type;
  out[3] = 0;
  out.writeUInt32BE(frame.sequence, 4);
  out.writeBigUInt64BE(BigInt(frame.timestamp), 8);
  out.writeUInt32BE(frame.payload.length, 16);
  frame.payload.copy(out, HEADER_BYTES);
  return out;
}

/**
 * Numbers outgoing frames for one direction of one stream: sequence +1 per frame, timestamp
 * +960 per AUDIO frame.
 */
export class PcmFrameWriter {
  private sequence = 0;
  private timestamp = 0;

  /** Encodes one 20 ms PCM frame (1920 bytes of 48 kHz mono s16le). */
  audio(pcm: Buffer): Buffer {
    const buf = encodeFrame({
      type: FrameType.AUDIO,
      sequence: this.sequence,
      timestamp: this.timestamp,
      payload: pcm,
    });
    this.advance(FRAME_SAMPLES);
    return buf;
  }

  /** Encodes an AUDIO frame at an explicit timestamp (e.g. after lost packets), then continues after it. */
  audioAt(timestamp: number, pcm: Buffer): Buffer {
    this.timestamp = timestamp;
    return this.audio(pcm);
  }

  /** Encodes an END frame. */
  end(): Buffer {
    return this.control(FrameType.END);
  }

  /** Encodes a FLUSH frame. */
  flush(): Buffer {
    return this.control(FrameType.FLUSH);
  }

  private control(type: FrameType): Buffer {
    const buf = encodeFrame({
      type,
      sequence: this.sequence,
      timestamp: this.timestamp,
      payload: Buffer.alloc(0),
    });
    this.advance(0);
    return buf;
  }

  private advance(samples: number): void {
    this.sequence = (this.sequence + 1) >>> 0;
    this.timestamp += samples;
  }
}

/**
 * Streaming decoder: feed it chunks split anywhere, get whole frames back. After a
 * PcmFramingError it stays failed (a byte stream has no resync point).
 */
export class PcmFrameDecoder {
  private pending: Buffer = Buffer.alloc(0);
  private failed: PcmFramingError | undefined;

  /** Adds bytes from the stream; returns every frame completed by them, in order. */
  push(chunk: Buffer): PcmFrame[] {
    if (this.failed) throw this.failed;
    const buf = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const frames: PcmFrame[] = [];
    let off = 0;
    try {
      while (buf.length - off >= HEADER_BYTES) {
        const length = this.checkHeader(buf, off);
        if (buf.length - off < HEADER_BYTES + length) break;
        const timestamp = buf.readBigUInt64BE(off + 8);
        if (timestamp > BigInt(Number.MAX_SAFE_INTEGER))
          throw new PcmFramingError(`timestamp ${timestamp} too large`);
        frames.push({
          type: buf[off + 2] as FrameType,
          sequence: buf.readUInt32BE(off + 4),
          timestamp: Number(timestamp),
          // Copy: the caller may keep the payload while we reuse `buf`'s memory.
          payload: Buffer.from(buf.subarray(off + HEADER_BYTES, off + HEADER_BYTES + length)),
        });
        off += HEADER_BYTES + length;
      }
    } catch (err) {
      this.failed = err instanceof PcmFramingError ? err : new PcmFramingError(String(err));
      this.pending = Buffer.alloc(0);
      throw this.failed;
    }
    // Keep at most one partial frame; copy so the caller's chunk is not retained.
    this.pending = off === buf.length ? Buffer.alloc(0) : Buffer.from(buf.subarray(off));
    return frames;
  }

  /** Declares the end of the stream; throws if it stopped inside a frame. */
  end(): void {
    if (this.failed) throw this.failed;
    if (this.pending.length > 0) {
      throw new PcmFramingError(
        `stream ended inside a frame (${this.pending.length} bytes pending)`,
      );
    }
  }

  /** Bytes of an incomplete frame held back. */
  get buffered(): number {
    return this.pending.length;
  }

  /** Validates the header at `off` (as far as it is present) and returns its payload length. */
  private checkHeader(buf: Buffer, off: number): number {
    if (buf[off] !== FRAME_MAGIC)
      throw new PcmFramingError(`bad magic 0x${buf[off]?.toString(16)}`);
    if (buf[off + 1] !== FRAME_VERSION)
      throw new PcmFramingError(`unsupported version ${buf[off + 1]}`);
    const type = buf[off + 2] ?? 0;
    if (!KNOWN_TYPES.has(type)) throw new PcmFramingError(`unknown frame type ${type}`);
    if (buf[off + 3] !== 0) throw new PcmFramingError(`reserved flags ${buf[off + 3]} set`);
    const length = buf.readUInt32BE(off + 16);
    const want = expectedPayload(type);
    if (length !== want)
      throw new PcmFramingError(`type ${type} needs a ${want}-byte payload, header says ${length}`);
    return length;
  }
}
