/**
 * Bridge side of the agent audio interface: joins a call's AudioPeer to the agent's byte
 * stream (a Unix socket) using the PCM framing. Caller audio goes to the agent as AUDIO
 * frames; the agent's AUDIO frames are played out to the peer at real time, by their
 * timestamps (see FramePacer), and FLUSH drops what is still queued.
 */
import type { Duplex } from 'node:stream';
import { FRAME_BYTES, FRAME_SAMPLES, SAMPLE_RATE } from './pcm';
import { FrameType, HEADER_BYTES, PcmFrameDecoder, PcmFrameWriter } from './pcm-framing';
import type { AudioFrameIn } from './peer';

/** What the link needs of a peer (AudioPeer satisfies it). */
export interface AudioEndpoint {
  onAudioFrame(fn: (frame: AudioFrameIn) => void): () => void;
  sendAudioFrame(pcm: Buffer): boolean;
}

export interface PacerOptions {
  /** How early a frame may leave before its due time, absorbing timer jitter (ms). Default 5. */
  slackMs?: number;
  /**
   * A frame later than this behind its due time restarts the clock at now; frames less late
   * leave at once (catching up). Default 1000 ms.
   */
  maxLagMs?: number;
  /** A frame due further ahead than this restarts the clock instead of waiting (ms). Default 1000. */
  maxLeadMs?: number;
  /**
   * When the agent has sent at real time (40–55 frames in the last second) and every one of
   * those frames was held longer than this, the clock was started late (the first frames were
   * delayed by a stall, e.g. Opus warming up): move it earlier so that the hold drops to
   * `slackMs`. Default 10 ms: a late start would otherwise stay in the call's latency for good.
   */
  resyncAboveMs?: number;
  /** Most frames queued; the oldest are dropped beyond it. Default 1500 (30 s). */
  maxQueue?: number;
  /** Clock, for tests. */
  now?: () => number;
}

interface Queued {
  pcm: Buffer;
  /** Position on the agent's output timeline, in samples (made strictly increasing). */
  ts: number;
}

/**
 * Plays frames out at real time, following their timestamps: a frame is due at
 * `anchor + (timestamp − anchorTimestamp) / 48` ms. A frame that arrives after its due time
 * leaves at once (catching up after a stall, so a stall adds no lasting latency); one more
 * than `maxLagMs` late (the agent was idle) or due more than `maxLeadMs` ahead restarts the
 * clock at now. A burst — a TTS sentence written in one go — is spread out at one frame per
 * 20 ms. An agent that pauses should advance its timestamps by the pause; otherwise up to
 * `maxLagMs` of the audio after a short pause leaves at once.
 */
export class FramePacer {
  private readonly queue: Queued[] = [];
  private anchor: { time: number; ts: number } | undefined;
  private lastTs: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly slack: number;
  private readonly maxLag: number;
  private readonly maxLead: number;
  private readonly maxQueue: number;
  private readonly resyncAbove: number;
  private readonly now: () => number;
  /** Arrivals in the last second, with how far ahead of their due time they came. */
  private arrivals: { at: number; lead: number }[] = [];
  private stopped = false;
  /** Frames dropped because the queue was full. */
  dropped = 0;
  /** Times the clock was moved earlier to shed latency. */
  resyncs = 0;

  constructor(
    private readonly send: (pcm: Buffer) => void,
    options: PacerOptions = {},
  ) {
    this.slack = options.slackMs ?? 5;
    this.maxLag = options.maxLagMs ?? 1000;
    this.maxLead = options.maxLeadMs ?? 1000;
    this.maxQueue = options.maxQueue ?? 1500;
    this.resyncAbove = options.resyncAboveMs ?? 10;
    this.now = options.now ?? (() => performance.now());
  }

  /** Queues one 20 ms frame; `timestamp` (samples) defaults to right after the previous frame. */
  push(pcm: Buffer, timestamp?: number): void {
    if (this.stopped) return;
    const next = this.lastTs === undefined ? 0 : this.lastTs + FRAME_SAMPLES;
    const ts =
      timestamp === undefined || this.lastTs === undefined
        ? (timestamp ?? next)
        : Math.max(timestamp, next);
    this.lastTs = ts;
    this.observe(ts);
    this.queue.push({ pcm, ts });
    while (this.queue.length > this.maxQueue) {
      this.queue.shift();
      this.dropped++;
    }
    this.pump();
  }

  /** Drops every queued frame (barge-in); the next frame starts a new clock. */
  flush(): void {
    this.queue.length = 0;
    this.anchor = undefined;
    this.arrivals = [];
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Frames waiting. */
  get queued(): number {
    return this.queue.length;
  }

  /** Stops sending and drops the queue. */
  stop(): void {
    this.stopped = true;
    this.flush();
  }

  /** Tells a real-time producer held back by a late clock from a burst, and resyncs the former. */
  private observe(ts: number): void {
    if (!this.anchor) return;
    const now = this.now();
    const lead = this.anchor.time + ((ts - this.anchor.ts) * 1000) / SAMPLE_RATE - now;
    this.arrivals.push({ at: now, lead });
    while (this.arrivals.length > 0 && now - (this.arrivals[0] as { at: number }).at >= 1000)
      this.arrivals.shift();
    const n = this.arrivals.length;
    // A real-time producer: a whole second of arrivals (not a burst and its tail), 40–55 frames.
    if (now - (this.arrivals[0] as { at: number }).at < 900 || n < 40 || n > 55) return;
    const minLead = Math.min(...this.arrivals.map((a) => a.lead));
    if (minLead <= this.resyncAbove) return;
    this.anchor.time -= minLead - this.slack;
    this.arrivals = [];
    this.resyncs++;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private pump(): void {
    if (this.timer) return;
    while (this.queue.length > 0 && !this.stopped) {
      const frame = this.queue[0] as Queued;
      const now = this.now();
      let due = this.anchor
        ? this.anchor.time + ((frame.ts - this.anchor.ts) * 1000) / SAMPLE_RATE
        : now;
      if (!this.anchor || now - due > this.maxLag || due - now > this.maxLead) {
        this.anchor = { time: now, ts: frame.ts };
        this.arrivals = [];
        due = now;
      }
      if (due - now > this.slack) {
        this.timer = setTimeout(
          () => {
            this.timer = undefined;
            this.pump();
          },
          due - now - this.slack,
        );
        return;
      }
      this.queue.shift();
      this.send(frame.pcm);
    }
  }
}

export interface AgentLink {
  /** Frames sent to / received from the agent. */
  readonly counters: () => {
    toAgent: number;
    /** Caller frames dropped because the agent was not reading (its socket buffer was full). */
    toAgentDropped: number;
    fromAgent: number;
    /** Agent frames dropped because the play-out queue was full. */
    dropped: number;
    resyncs: number;
    queued: number;
  };
  /** Resolves when the agent sends END or the stream closes; rejects on a framing error. */
  readonly done: Promise<void>;
  /** Sends END to the agent, stops forwarding and closes the stream's write side. */
  close(): void;
}

/** Bytes buffered for an agent that is not reading before caller frames are dropped: ≈1 s. */
export const MAX_BUFFERED_TO_AGENT = 50 * (HEADER_BYTES + FRAME_BYTES);

export interface LinkOptions extends PacerOptions {
  /** Bytes buffered for an agent that is not reading before caller frames are dropped. Default MAX_BUFFERED_TO_AGENT. */
  maxBufferedToAgent?: number;
}

/** Pipes a peer's decoded audio to the agent stream and the agent's audio back to the peer. */
export function linkAgent(
  peer: AudioEndpoint,
  stream: Duplex,
  options: LinkOptions = {},
): AgentLink {
  const maxBuffered = options.maxBufferedToAgent ?? MAX_BUFFERED_TO_AGENT;
  const writer = new PcmFrameWriter();
  const decoder = new PcmFrameDecoder();
  const out = new FramePacer((pcm) => peer.sendAudioFrame(pcm), options);
  let toAgent = 0;
  let toAgentDropped = 0;
  let fromAgent = 0;
  let closed = false;

  const unsubscribe = peer.onAudioFrame(({ pcm, timestamp }) => {
    if (closed || !stream.writable) return;
    // Real-time audio: an agent that does not keep up loses frames rather than growing memory.
    if (stream.writableLength > maxBuffered) {
      toAgentDropped++;
      return;
    }
    toAgent++;
    stream.write(writer.audioAt(timestamp, pcm));
  });

  const close = (): void => {
    if (closed) return;
    closed = true;
    unsubscribe();
    out.stop();
    if (!stream.destroyed && stream.writable) stream.end(writer.end());
  };

  const done = new Promise<void>((resolve, reject) => {
    stream.on('data', (chunk: Buffer) => {
      try {
        for (const frame of decoder.push(chunk)) {
          if (frame.type === FrameType.AUDIO) {
            fromAgent++;
            out.push(frame.payload, frame.timestamp);
          } else if (frame.type === FrameType.FLUSH) {
            out.flush();
          } else if (frame.type === FrameType.END) {
            resolve();
          }
        }
      } catch (err) {
        reject(err);
        close();
        stream.destroy();
      }
    });
    stream.on('error', (err) => {
      close();
      reject(err);
    });
    stream.on('close', () => {
      close();
      resolve();
    });
  });

  done.catch(() => undefined); // a caller that never awaits `done` must not crash the process
  return {
    counters: () => ({
      toAgent,
      toAgentDropped,
      fromAgent,
      dropped: out.dropped,
      resyncs: out.resyncs,
      queued: out.queued,
    }),
    done,
    close,
  };
}
