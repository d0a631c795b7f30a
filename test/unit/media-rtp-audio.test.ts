import { FRAME_BYTES, FRAME_MS, FRAME_SAMPLES } from '../../media/pcm';
import { RtpAudioReceiver, RtpAudioSender, seqDelta } from '../../media/rtp-audio';

function tone(frameIndex: number): Buffer {
  const pcm = Buffer.alloc(FRAME_BYTES);
  for (let i = 0; i < FRAME_SAMPLES; i++) {
    const t = (frameIndex * FRAME_SAMPLES + i) / 48_000;
    pcm.writeInt16LE(Math.round(Math.sin(2 * Math.PI * 440 * t) * 8000), i * 2);
  }
  return pcm;
}

describe('RTP audio', () => {
  let sender: RtpAudioSender;
  let receiver: RtpAudioReceiver;
  beforeEach(() => {
    sender = new RtpAudioSender();
    receiver = new RtpAudioReceiver();
  });
  afterEach(() => {
    sender.close();
    receiver.close();
  });

  test('sequence distance wraps at 16 bits', () => {
    expect(seqDelta(1, 0xffff)).toBe(2);
    expect(seqDelta(0xffff, 1)).toBe(-2);
    expect(seqDelta(5, 5)).toBe(0);
  });

  test('frames sent every 20 ms come out one each, numbered in samples', () => {
    const packets = [0, 1, 2].map((i) => sender.packetFor(tone(i), i * FRAME_MS));
    expect(packets[0]!.header.marker).toBe(true);
    expect(packets[1]!.header.marker).toBe(false);
    const out = packets.map((p) => receiver.receive(p));
    expect(out.map((r) => r.frames.map((f) => f.timestamp))).toEqual([
      [0],
      [FRAME_SAMPLES],
      [2 * FRAME_SAMPLES],
    ]);
    expect(out.every((r) => !r.late && r.lost === 0 && !r.decodeError)).toBe(true);
  });

  test('a duplicate or an older packet is late and dropped; a gap counts as lost', () => {
    const packets = [0, 1, 2, 3].map((i) => sender.packetFor(tone(i), i * FRAME_MS));
    receiver.receive(packets[0]!);
    receiver.receive(packets[1]!);
    expect(receiver.receive(packets[1]!)).toMatchObject({ late: true, frames: [] });
    expect(receiver.receive(packets[0]!)).toMatchObject({ late: true, frames: [] });
    const afterGap = receiver.receive(packets[3]!);
    expect(afterGap.lost).toBe(1);
    // The stream position jumps over the lost frame.
    expect(afterGap.frames.map((f) => f.timestamp)).toEqual([3 * FRAME_SAMPLES]);
  });

  test('after a pause the clock advances by the time that passed and a talkspurt starts', () => {
    const a = sender.packetFor(tone(0), 0);
    const b = sender.packetFor(tone(1), 1_000);
    expect(b.header.marker).toBe(true);
    expect((b.header.timestamp - a.header.timestamp) >>> 0).toBe(
      (1_000 / FRAME_MS) * FRAME_SAMPLES,
    );
  });

  test('a payload that is not Opus is a decode error, not a crash', () => {
    const p = sender.packetFor(tone(0), 0);
    p.payload = Buffer.from([0xff, 0xff, 0xff]);
    expect(receiver.receive(p).decodeError).toBe(true);
  });
});
