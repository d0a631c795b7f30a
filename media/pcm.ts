/**
 * PCM constants and small sample helpers shared by the media layer.
 *
 * Everything here is 48 kHz, mono, signed 16-bit little-endian ("s16le"), in 20 ms frames:
 * 960 samples = 1920 bytes. That is the one audio format between the bridge and an agent.
 */

/** Samples per second of every PCM frame in the media layer. */
export const SAMPLE_RATE = 48_000;
/** Duration of one frame in milliseconds. */
export const FRAME_MS = 20;
/** Samples in one 20 ms mono frame (also the RTP timestamp increment per Opus packet). */
export const FRAME_SAMPLES = (SAMPLE_RATE * FRAME_MS) / 1000; // 960
/** Bytes in one 20 ms mono s16le frame. */
export const FRAME_BYTES = FRAME_SAMPLES * 2; // 1920

/** Returns a zero-filled (silent) 20 ms frame. */
export function silentFrame(): Buffer {
  return Buffer.alloc(FRAME_BYTES);
}

/** Views an s16le buffer as Int16 samples (copying only when the buffer is unaligned). */
export function samplesOf(pcm: Buffer): Int16Array {
  if (pcm.length % 2 !== 0)
    throw new RangeError(`PCM length ${pcm.length} is not a whole number of samples`);
  if (pcm.byteOffset % 2 === 0) return new Int16Array(pcm.buffer, pcm.byteOffset, pcm.length / 2);
  const copy = Buffer.from(pcm);
  return new Int16Array(copy.buffer, copy.byteOffset, copy.length / 2);
}

/** Averages interleaved stereo s16le into mono s16le (half the length). */
export function downmixStereo(stereo: Buffer): Buffer {
  if (stereo.length % 4 !== 0)
    throw new RangeError(`stereo PCM length ${stereo.length} is not a multiple of 4`);
  const src = samplesOf(stereo);
  const out = Buffer.allocUnsafe(stereo.length / 2);
  const dst = new Int16Array(out.buffer, out.byteOffset, out.length / 2);
  for (let i = 0, j = 0; i < dst.length; i++, j += 2)
    dst[i] = ((src[j] as number) + (src[j + 1] as number)) >> 1;
  return out;
}

/**
 * Re-cuts a stream of mono s16le PCM of any lengths into exact 20 ms frames, e.g. when the
 * remote sends 10, 40 or 60 ms Opus packets.
 */
export class FrameChunker {
  private pending: Buffer = Buffer.alloc(0);

  /** Adds PCM and returns every complete 1920-byte frame now available. */
  push(pcm: Buffer): Buffer[] {
    if (this.pending.length === 0 && pcm.length === FRAME_BYTES) return [pcm];
    const all = this.pending.length === 0 ? pcm : Buffer.concat([this.pending, pcm]);
    const frames: Buffer[] = [];
    let off = 0;
    while (all.length - off >= FRAME_BYTES) {
      frames.push(all.subarray(off, off + FRAME_BYTES));
      off += FRAME_BYTES;
    }
    this.pending = Buffer.from(all.subarray(off));
    return frames;
  }

  /** Bytes held back waiting for the rest of a frame. */
  get buffered(): number {
    return this.pending.length;
  }

  /** Drops any partial frame. */
  reset(): void {
    this.pending = Buffer.alloc(0);
  }
}
