import { PassThrough, Duplex } from 'node:stream';
import { FramePacer, linkAgent, type AudioEndpoint } from '../../media/agent-link';
import { iceServersOf, userStateOf } from '../../media/peer';
import { FrameType, PcmFrameDecoder, PcmFrameWriter } from '../../media/pcm-framing';
import { FRAME_BYTES } from '../../media/pcm';
import type { AudioFrameIn } from '../../media/peer';

describe('FramePacer', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  /** A pacer on a fake clock; `tick(ms)` advances both the clock and the timers. */
  function clocked(options = {}) {
    let now = 0;
    const sent: number[] = [];
    const pacer = new FramePacer((b) => sent.push(now * 1000 + (b[0] as number)), {
      now: () => now,
      slackMs: 0,
      ...options,
    });
    const tick = (ms: number) => {
      for (let i = 0; i < ms; i++) {
        now++;
        jest.advanceTimersByTime(1);
      }
    };
    return { pacer, sent, tick, frame: (id: number) => Buffer.from([id]) };
  }
  const at = (sent: number[]) => sent.map((v) => Math.floor(v / 1000));

  it('sends an on-time frame at once and spreads a burst by timestamps', () => {
    const { pacer, sent, tick, frame } = clocked();
    pacer.push(frame(0), 0);
    expect(at(sent)).toEqual([0]);
    for (let i = 1; i <= 4; i++) pacer.push(frame(i), i * 960); // a TTS burst
    expect(pacer.queued).toBe(4);
    tick(100);
    expect(at(sent)).toEqual([0, 20, 40, 60, 80]);
    // A 3 s sentence written at once is played over 3 s, never resynced into a burst.
    for (let i = 5; i < 155; i++) pacer.push(frame(i % 256), i * 960);
    tick(1000);
    expect(sent.length).toBe(56); // due at 100, 120, … 1100
    tick(2000);
    expect(sent.length).toBe(155);
    expect(pacer.resyncs).toBe(0);
  });

  it('catches up after a stall instead of adding latency, and restarts the clock after idling', () => {
    const { pacer, sent, tick, frame } = clocked();
    pacer.push(frame(0), 0);
    tick(100); // frames 1..5 were due at 20..100 but arrive late together
    for (let i = 1; i <= 5; i++) pacer.push(frame(i), i * 960);
    expect(at(sent)).toEqual([0, 100, 100, 100, 100, 100]);
    pacer.push(frame(6), 6 * 960); // back on the grid: due at 120
    tick(30);
    expect(at(sent).at(-1)).toBe(120);
    tick(2000); // idle beyond maxLag: the clock restarts, no burst
    pacer.push(frame(7), 7 * 960);
    pacer.push(frame(8), 8 * 960);
    expect(at(sent).slice(-1)).toEqual([2130]);
    tick(20);
    expect(at(sent).slice(-2)).toEqual([2130, 2150]);
  });

  it('sheds the latency of a clock started late once the agent is seen to send at real time', () => {
    const { pacer, sent, tick, frame } = clocked();
    // The first frame arrives on time; the next 20 were stalled 400 ms upstream and come together.
    pacer.push(frame(0), 0);
    tick(400);
    for (let i = 1; i <= 20; i++) pacer.push(frame(i % 256), i * 960);
    // From now on the agent answers in real time, but the clock is right: no hold, no resync.
    for (let i = 21; i < 120; i++) {
      tick(20);
      pacer.push(frame(i % 256), i * 960);
    }
    expect(pacer.resyncs).toBe(0);
    expect(pacer.queued).toBe(0);

    // Now the opposite: a clock started by a frame that was itself 400 ms late.
    const late = clocked();
    late.tick(400);
    late.pacer.push(late.frame(0), 0);
    for (let i = 1; i <= 20; i++) late.pacer.push(late.frame(i), i * 960); // the stalled backlog
    let maxQueued = 0;
    for (let i = 21; i < 200; i++) {
      late.tick(20);
      late.pacer.push(late.frame(i % 256), i * 960);
      maxQueued = Math.max(maxQueued, late.pacer.queued);
    }
    expect(maxQueued).toBeGreaterThan(15); // held ~400 ms at first…
    expect(late.pacer.resyncs).toBe(1); // …until a second of real-time arrivals shows the clock is late
    expect(late.pacer.queued).toBeLessThanOrEqual(1);
    void sent;
  });

  it('follows timestamp gaps, numbers frames without timestamps, and restarts on flush', () => {
    const { pacer, sent, tick, frame } = clocked();
    pacer.push(frame(0));
    pacer.push(frame(1), 960 * 5); // 80 ms of silence left by the agent
    pacer.push(frame(2)); // no timestamp: right after the previous
    tick(200);
    expect(at(sent)).toEqual([0, 100, 120]);
    pacer.push(frame(3), 0); // going backwards is treated as "next"
    tick(30);
    expect(at(sent).at(-1)).toBe(200);
    pacer.push(frame(4), 20 * 960); // due at 400: queued
    pacer.push(frame(5));
    expect(pacer.queued).toBe(2);
    pacer.flush();
    tick(300);
    expect(sent.length).toBe(4);
    pacer.push(frame(6), 10 * 960); // a new clock: at once, though "earlier" than frame 4
    expect(at(sent).at(-1)).toBe(530);
  });

  it('drops the oldest frames beyond maxQueue and nothing after stop()', () => {
    const sent: Buffer[] = [];
    const pacer = new FramePacer((b) => sent.push(b), { now: () => 0, maxQueue: 2 });
    for (let i = 0; i < 5; i++) pacer.push(Buffer.from([i]), i * 960);
    expect(sent.map((b) => b[0])).toEqual([0]);
    expect(pacer.dropped).toBe(2);
    pacer.stop();
    pacer.push(Buffer.from([9]));
    expect(pacer.queued).toBe(0);
  });
});

/** A fake peer: frames "from the caller" are injected, frames "to the caller" recorded. */
function fakePeer() {
  const listeners: ((f: AudioFrameIn) => void)[] = [];
  const sent: Buffer[] = [];
  const peer: AudioEndpoint = {
    onAudioFrame: (fn) => {
      listeners.push(fn);
      return () => listeners.splice(listeners.indexOf(fn), 1);
    },
    sendAudioFrame: (pcm) => (sent.push(pcm), true),
  };
  return { peer, sent, inject: (f: AudioFrameIn) => listeners.forEach((l) => l(f)) };
}

/** Two PassThroughs crossed into a socket-like pair of Duplexes. */
function duplexPair(): [Duplex, Duplex] {
  const a2b = new PassThrough();
  const b2a = new PassThrough();
  const mk = (readable: PassThrough, writable: PassThrough) =>
    Duplex.from({ readable, writable }) as Duplex;
  return [mk(b2a, a2b), mk(a2b, b2a)];
}

describe('linkAgent', () => {
  it('frames caller audio to the agent, agent audio to the caller, honours FLUSH and END', async () => {
    const { peer, sent, inject } = fakePeer();
    const [bridgeEnd, agentEnd] = duplexPair();
    const link = linkAgent(peer, bridgeEnd, { now: () => 0, slackMs: 0 });

    const got: { type: number; timestamp: number }[] = [];
    const dec = new PcmFrameDecoder();
    agentEnd.on('data', (c: Buffer) =>
      dec.push(c).forEach((f) => got.push({ type: f.type, timestamp: f.timestamp })),
    );
    inject({ pcm: Buffer.alloc(FRAME_BYTES, 1), timestamp: 0 });
    inject({ pcm: Buffer.alloc(FRAME_BYTES, 2), timestamp: 1920 }); // one lost frame before it
    await new Promise((r) => setImmediate(r));
    expect(got).toEqual([
      { type: FrameType.AUDIO, timestamp: 0 },
      { type: FrameType.AUDIO, timestamp: 1920 },
    ]);

    const w = new PcmFrameWriter();
    agentEnd.write(
      Buffer.concat([
        w.audio(Buffer.alloc(FRAME_BYTES, 5)),
        w.audio(Buffer.alloc(FRAME_BYTES, 6)),
        w.flush(),
      ]),
    );
    agentEnd.write(w.end());
    await link.done;
    expect(sent.map((b) => b[0])).toEqual([5]); // 6 was queued by the pacer, then flushed
    expect(link.counters()).toMatchObject({ toAgent: 2, fromAgent: 2 });

    link.close();
    await new Promise((r) => setImmediate(r));
    expect(got.at(-1)?.type).toBe(FrameType.END);
  });

  it('drops caller frames, not memory, when the agent stops reading', () => {
    const { peer, inject } = fakePeer();
    const stuck = new Duplex({ read() {}, write() {} }); // never acknowledges a write
    const link = linkAgent(peer, stuck, { maxBufferedToAgent: 3 * 1940 });
    for (let i = 0; i < 10; i++) inject({ pcm: Buffer.alloc(FRAME_BYTES), timestamp: i * 960 });
    expect(link.counters()).toMatchObject({ toAgent: 4, toAgentDropped: 6 });
    link.close();
    stuck.destroy();
  });

  it('rejects a stream that breaks the framing', async () => {
    const { peer } = fakePeer();
    const [bridgeEnd, agentEnd] = duplexPair();
    const link = linkAgent(peer, bridgeEnd);
    agentEnd.on('error', () => {}); // the pair shares its streams: destroying one end aborts the other
    agentEnd.write(Buffer.from('GET / HTTP/1.1\r\n\r\nxxxxxxxxxxxxxxxxxx'));
    await expect(link.done).rejects.toThrow(/magic/);
  });
});

describe('peer helpers', () => {
  it('maps connection states to the user-visible call states', () => {
    const fresh = { everConnected: false, iceRestartsLeft: 1 };
    const live = { everConnected: true, iceRestartsLeft: 1 };
    const spent = { everConnected: true, iceRestartsLeft: 0 };
    expect(userStateOf('new', fresh)).toBe('Connecting');
    expect(userStateOf('connecting', fresh)).toBe('Connecting');
    expect(userStateOf('connected', fresh)).toBe('Live');
    expect(userStateOf('disconnected', live)).toBe('Reconnecting');
    expect(userStateOf('connecting', live)).toBe('Reconnecting');
    expect(userStateOf('failed', live)).toBe('Reconnecting');
    expect(userStateOf('failed', spent)).toBe('Failed');
    expect(userStateOf('failed', fresh)).toBe('Failed');
    expect(userStateOf('closed', live)).toBe('Ended');
  });

  it('builds ICE servers: none by default, TURN appended, relay needs TURN', () => {
    expect(iceServersOf({})).toEqual([]);
    const turn = {
      urls: 'turn:127.0.0.1:3478?transport=udp',
      username: '1700000000:s1',
      credential: 'pw',
    };
    expect(iceServersOf({ turn, iceTransportPolicy: 'relay' })).toEqual([turn]);
    expect(() => iceServersOf({ iceTransportPolicy: 'relay' })).toThrow(/TURN/);
    expect(() =>
      iceServersOf({ iceTransportPolicy: 'relay', iceServers: [{ urls: 'stun:x:3478' }] }),
    ).toThrow(/TURN/);
  });
});
