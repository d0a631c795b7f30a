/**
 * The voice bench's callers, in a process of their own (`bench/voice.ts` forks one or more), so
 * the load generator never shares an event loop, or a CPU's worth of Opus and SRTP, with the
 * suite's bookkeeping: werift AudioPeers fed a frame every 20 ms on a drift-free schedule, with
 * the round-trip and lateness measurements taken where the frames are sent and heard.
 *
 * The parent asks over Node's IPC pipe: `{id, op, ...}` → `{id, ok, result}` or `{id, ok: false,
 * error}` (the ops: `CallerRequest` in lib/voice-callers-protocol.ts).
 */
import { rms } from '../media/audio-analysis';
import { ToneGenerator } from '../media/echo';
import { AudioPeer } from '../media/peer';
import { silentFrame } from '../media/pcm';
import {
  FRAME_MS,
  ONSET_RMS,
  SENDER_GAP_MS,
  SILENCE_FRAMES,
  TONE_FRAMES,
  type CallerRequest,
  type CallerStats,
  type Mode,
} from './lib/voice-callers-protocol';

const ICE = { additionalHostAddresses: ['127.0.0.1'] };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const now = () => performance.now();

/** One caller (or the near end of a direct pair), fed a frame every 20 ms by the Driver. */
class Caller {
  mode: Mode = 'silence';
  private readonly tone = new ToneGenerator(440, 0.5);
  private readonly silence = silentFrame();
  private frame = 0;
  private pendingBurstAt: number | undefined;
  roundTrips: number[] = [];
  missed = 0;
  /** The far end of a direct pair. */
  far: AudioPeer | undefined;

  constructor(readonly peer: AudioPeer) {
    peer.onAudioFrame((f) => {
      if (this.pendingBurstAt !== undefined && rms(f.pcm) > ONSET_RMS) {
        this.roundTrips.push(now() - this.pendingBurstAt);
        this.pendingBurstAt = undefined;
      }
    });
  }

  /** `n` burst cycles; resolves with their round trips when they are done. */
  async bursts(n: number): Promise<{ roundTrips: number[]; missed: number }> {
    this.frame = 0;
    this.roundTrips = [];
    this.missed = 0;
    this.mode = 'bursts';
    await sleep(n * (SILENCE_FRAMES + TONE_FRAMES) * FRAME_MS + 500);
    if (this.pendingBurstAt !== undefined) this.missed++;
    this.pendingBurstAt = undefined;
    this.mode = 'silence';
    return { roundTrips: this.roundTrips, missed: this.missed };
  }

  tick(): void {
    if (this.mode === 'pause' || this.peer.connectionState !== 'connected') return;
    if (this.mode === 'silence' || this.mode === 'tone') {
      this.peer.sendAudioFrame(this.mode === 'tone' ? this.tone.next() : this.silence);
      return;
    }
    const pos = this.frame++ % (SILENCE_FRAMES + TONE_FRAMES);
    if (pos < SILENCE_FRAMES) {
      this.peer.sendAudioFrame(this.silence);
      return;
    }
    if (pos === SILENCE_FRAMES) {
      if (this.pendingBurstAt !== undefined) this.missed++;
      this.pendingBurstAt = now();
    }
    this.peer.sendAudioFrame(this.tone.next());
  }

  async close(): Promise<void> {
    await this.peer.close().catch(() => undefined);
    await this.far?.close().catch(() => undefined);
  }
}

/**
 * Sends one frame for every connected caller every 20 ms, on a drift-free schedule (browsers
 * send 50 packets a second, silence included). Records how late each tick ran.
 */
class Driver {
  readonly callers = new Map<number, Caller>();
  lateMs: number[] = [];
  gaps = 0;

  constructor() {
    void (async () => {
      let due = now();
      let last = due;
      for (;;) {
        const t = now();
        this.lateMs.push(t - due);
        if (t - last > SENDER_GAP_MS) this.gaps++;
        last = t;
        for (const c of this.callers.values()) c.tick();
        due += FRAME_MS;
        // More than 10 frames behind: this process cannot keep up; do not burst to catch up.
        if (now() - due > 10 * FRAME_MS) due = now();
        await sleep(Math.max(0, due - now()));
      }
    })();
  }
}

const driver = new Driver();
/** Offered but not yet connected. */
const pending = new Map<number, Caller>();
let nextCaller = 1;

const callerOf = (id: number): Caller => {
  const c = driver.callers.get(id) ?? pending.get(id);
  if (!c) throw new Error(`no caller ${id}`);
  return c;
};

async function handle(req: CallerRequest): Promise<unknown> {
  switch (req.op) {
    case 'offer': {
      const { peer, offerSdp } = await AudioPeer.offer(ICE);
      const caller = nextCaller++;
      pending.set(caller, new Caller(peer));
      return { caller, offerSdp };
    }
    case 'connect': {
      const c = callerOf(req.caller);
      await c.peer.acceptAnswer(req.answerSdp);
      await c.peer.waitConnected(30_000);
      pending.delete(req.caller);
      driver.callers.set(req.caller, c);
      return {};
    }
    case 'direct': {
      // The baseline: a second peer in this process sends every decoded frame straight back.
      const { peer, offerSdp } = await AudioPeer.offer(ICE);
      const c = new Caller(peer);
      const t0 = now();
      const { peer: far, answerSdp } = await AudioPeer.answer(offerSdp, ICE);
      c.far = far;
      far.onAudioFrame((f) => far.sendAudioFrame(f.pcm));
      const rpcMs = now() - t0;
      await peer.acceptAnswer(answerSdp);
      await peer.waitConnected(30_000);
      const connectMs = now() - t0;
      const caller = nextCaller++;
      driver.callers.set(caller, c);
      return { caller, rpcMs, connectMs };
    }
    case 'bursts':
      return callerOf(req.caller).bursts(req.n);
    case 'mode':
      for (const c of driver.callers.values()) c.mode = req.mode;
      return {};
    case 'stats':
      return [...driver.callers].map(([caller, c]): CallerStats => ({
        caller,
        state: c.peer.connectionState,
        stats: c.peer.stats,
      }));
    case 'driver': {
      const out = { lateMs: driver.lateMs, gaps: driver.gaps };
      if (req.reset) {
        driver.lateMs = [];
        driver.gaps = 0;
      }
      return out;
    }
    case 'close': {
      const c = callerOf(req.caller);
      driver.callers.delete(req.caller);
      pending.delete(req.caller);
      await c.close();
      return {};
    }
  }
}

process.on('message', (msg: { id: number } & CallerRequest) => {
  handle(msg).then(
    (result) => process.send!({ id: msg.id, ok: true, result }),
    (err: Error) => process.send!({ id: msg.id, ok: false, error: err.message }),
  );
});
process.on('disconnect', () => process.exit(0));
