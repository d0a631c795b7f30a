/**
 * What the voice bench (bench/voice.ts) and its caller processes (bench/voice-callers.ts) share:
 * the frame schedule, the burst that is timed, and the requests over the IPC pipe.
 */
import type { AudioPeerStats } from '../../media/peer';

export const FRAME_MS = 20;
/** A burst cycle: this many silent frames, then this many tone frames. */
export const SILENCE_FRAMES = 25;
export const TONE_FRAMES = 10;
/** A frame heard back louder than this is the burst's onset. */
export const ONSET_RMS = 0.05;
/** A send tick later than this after the previous one is a gap in the sender's schedule. */
export const SENDER_GAP_MS = 3 * FRAME_MS;

export type Mode = 'silence' | 'tone' | 'bursts' | 'pause';

export type CallerRequest =
  | { op: 'offer' }
  | { op: 'connect'; caller: number; answerSdp: string }
  | { op: 'direct' }
  | { op: 'bursts'; caller: number; n: number }
  | { op: 'mode'; mode: Mode }
  | { op: 'stats' }
  | { op: 'driver'; reset: boolean }
  | { op: 'close'; caller: number };

export interface CallerStats {
  caller: number;
  state: string;
  stats: AudioPeerStats;
}
