/**
 * A tiny agent-side audio helper for tests and the reference agent's echo/tone mode: it reads
 * framed PCM from a stream (see pcm-framing.ts) and writes frames back — either the same
 * audio (echo) or a generated sine tone, one frame out per frame in (so the bridge paces it),
 * or, with `pace: 'clock'`, a tone at real time whatever comes in.
 */
import type { Duplex } from 'node:stream';
import { FRAME_MS, FRAME_SAMPLES, SAMPLE_RATE } from './pcm';
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

export type EchoMode =
  | { kind: 'echo' }
  | {
      kind: 'tone';
      frequency: number;
      amplitude?: number;
      /** `input` (default): one tone frame per frame heard; `clock`: 50 frames a second from the start. */
      pace?: 'input' | 'clock';
    };

export interface EchoAgentOptions {
  /** Called with every AUDIO frame heard, before it is answered (to measure the input, say). */
  onAudio?(frame: PcmFrame): void;
}

/** Frames a clock-paced tone keeps written ahead of real time, absorbing timer jitter. */
const CLOCK_LEAD_FRAMES = 2;

export interface EchoAgentHandle {
  /** Frames received so far. */
  readonly received: () => number;
  /** Resolves when the bridge's END arrives or the stream closes (rejects on a framing error). */
  readonly done: Promise<void>;
  /** Sends END and stops answering. */
  stop(): void;
}

/** Runs an echo (or tone) agent on one end of a byte stream carrying the PCM framing. */
export function runEchoAgent(
  stream: Duplex,
  mode: EchoMode = { kind: 'echo' },
  options: EchoAgentOptions = {},
): EchoAgentHandle {
  const decoder = new PcmFrameDecoder();
  const writer = new PcmFrameWriter();
  const tone = mode.kind === 'tone' ? new ToneGenerator(mode.frequency, mode.amplitude) : undefined;
  const clocked = mode.kind === 'tone' && mode.pace === 'clock';
  let received = 0;
  let stopped = false;
  let clock: NodeJS.Timeout | undefined;

  const stop = (): void => {
    if (stopped) return;
    stopped = true;
    if (clock) clearInterval(clock);
    if (!stream.destroyed && stream.writable) stream.end(writer.end());
  };

  if (clocked && tone) {
    // Written by elapsed time, not per tick: a late timer catches up instead of drifting.
    const startMs = performance.now();
    let written = 0;
    const play = (): void => {
      const due = Math.floor((performance.now() - startMs) / FRAME_MS) + 1 + CLOCK_LEAD_FRAMES;
      while (!stopped && written < due && stream.writable) {
        stream.write(writer.audio(tone.next()));
        written++;
      }
    };
    play();
    clock = setInterval(play, FRAME_MS);
  }

  const done = new Promise<void>((resolve, reject) => {
    const onFrame = (frame: PcmFrame): void => {
      if (frame.type === FrameType.END) {
        stop();
        resolve();
        return;
      }
      if (frame.type !== FrameType.AUDIO || stopped) return;
      received++;
      options.onAudio?.(frame);
      if (clocked) return;
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
    stream.on('error', (err) => {
      if (clock) clearInterval(clock);
      reject(err);
    });
    stream.on('close', () => {
      if (clock) clearInterval(clock);
      resolve();
    });
  });

  done.catch(() => undefined); // a caller that never awaits `done` must not crash the process
  return { received: () => received, done, stop };
}
