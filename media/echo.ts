/**
 * A tiny agent-side audio helper for tests and the reference agent's echo/tone mode: it reads
 * framed PCM from a stream (see pcm-framing.ts) and writes frames back — either the same
 * audio (echo) or a generated sine tone, one frame out per frame in (so the bridge paces it).
 */
import type { Duplex } from 'node:stream';
import { FRAME_SAMPLES, SAMPLE_RATE } from './pcm';
import { FrameType, PcmFrameDecoder, PcmFrameWriter, type PcmFrame } from './pcm-framing';

/** Generates a continuous sine tone as 20 ms frames of 48 kHz mono s16le. */
export class ToneGenerator {
  private phase = 0;

  /** `amplitude` is a fraction of full scale (0.5 ≈ RMS 0.354). */
  constructor(
    readonly frequency: number,
    readonly amplitude = 0.5,
  ) {
    if (!(frequency > 0 && frequency < SAMPLE_RATE / 2))
      throw new RangeError(`frequency ${frequency} out of range`);
    if (!(amplitude >= 0 && amplitude <= 1))
      throw new RangeError(`amplitude ${amplitude} out of range`);
  }

  /** Returns the next 20 ms frame, phase-continuous with the previous one. */
  next(): Buffer {
    const out = Buffer.allocUnsafe(FRAME_SAMPLES * 2);
    const samples = new Int16Array(out.buffer, out.byteOffset, FRAME_SAMPLES);
    const step = (2 * Math.PI * this.frequency) / SAMPLE_RATE;
    const scale = this.amplitude * 32767;
    for (let i = 0; i < FRAME_SAMPLES; i++)
      samples[i] = Math.round(scale * Math.sin(this.phase + i * step));
    this.phase = (this.phase + FRAME_SAMPLES * step) % (2 * Math.PI);
    return out;
  }
}

export type EchoMode = { kind: 'echo' } | { kind: 'tone'; frequency: number; amplitude?: number };

export interface EchoAgentHandle {
  /** Frames received so far. */
  readonly received: () => number;
  /** Resolves when the bridge's END arrives or the stream closes (rejects on a framing error). */
  readonly done: Promise<void>;
  /** Sends END and stops answering. */
  stop(): void;
}

/** Runs an echo (or tone) agent on one end of a byte stream carrying the PCM framing. */
export function runEchoAgent(stream: Duplex, mode: EchoMode = { kind: 'echo' }): EchoAgentHandle {
  const decoder = new PcmFrameDecoder();
  const writer = new PcmFrameWriter();
  const tone = mode.kind === 'tone' ? new ToneGenerator(mode.frequency, mode.amplitude) : undefined;
  let received = 0;
  let stopped = false;

  const stop = (): void => {
    if (stopped) return;
    stopped = true;
    if (!stream.destroyed && stream.writable) stream.end(writer.end());
  };

  const done = new Promise<void>((resolve, reject) => {
    const onFrame = (frame: PcmFrame): void => {
      if (frame.type === FrameType.END) {
        stop();
        resolve();
        return;
      }
      if (frame.type !== FrameType.AUDIO || stopped) return;
      received++;
      stream.write(writer.audioAt(frame.timestamp, tone ? tone.next() : frame.payload));
    };
    stream.on('data', (chunk: Buffer) => {
      try {
        for (const frame of decoder.push(chunk)) onFrame(frame);
      } catch (err) {
        reject(err);
        stream.destroy();
      }
    });
    stream.on('error', reject);
    stream.on('close', () => resolve());
  });

  done.catch(() => undefined); // a caller that never awaits `done` must not crash the process
  return { received: () => received, done, stop };
}
