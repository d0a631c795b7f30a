import fc from 'fast-check';
import {
  FRAME_MAGIC,
  FrameType,
  HEADER_BYTES,
  PcmFrameDecoder,
  PcmFrameWriter,
  PcmFramingError,
  encodeFrame,
  type PcmFrame,
} from '../../media/pcm-framing';
import { FRAME_BYTES, FRAME_SAMPLES, FrameChunker, downmixStereo } from '../../media/pcm';

/** Splits `buf` at the given cut points. */
function splitAt(buf: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let last = 0;
  for (const p of points) {
    out.push(buf.subarray(last, p));
    last = p;
  }
  out.push(buf.subarray(last));
  return out;
}

/** Field-by-field equality (toEqual on 1920-byte Buffers is slow). */
function same(a: PcmFrame[], b: PcmFrame[]): boolean {
  return (
    a.length === b.length &&
    a.every((x, i) => {
      const y = b[i] as PcmFrame;
      return (
        x.type === y.type &&
        x.sequence === y.sequence &&
        x.timestamp === y.timestamp &&
        x.payload.equals(y.payload)
      );
    })
  );
}

const frameArb: fc.Arbitrary<PcmFrame> = fc.oneof(
  fc.record({
    type: fc.constant(FrameType.AUDIO),
    sequence: fc.nat({ max: 0xffffffff }),
    timestamp: fc.maxSafeNat(),
    // A random 16-byte pattern tiled over the frame: varied bytes without generating 1920 of them.
    payload: fc
      .uint8Array({ minLength: 16, maxLength: 16 })
      .map((a) => Buffer.alloc(FRAME_BYTES, Buffer.from(a))),
  }),
  fc.record({
    type: fc.constantFrom(FrameType.END, FrameType.FLUSH),
    sequence: fc.nat({ max: 0xffffffff }),
    timestamp: fc.maxSafeNat(),
    payload: fc.constant(Buffer.alloc(0)),
  }),
);

describe('PCM framing', () => {
  it('lays out the documented 20-byte header', () => {
    const pcm = Buffer.alloc(FRAME_BYTES, 7);
    const buf = encodeFrame({
      type: FrameType.AUDIO,
      sequence: 0x01020304,
      timestamp: 0x0506070809,
      payload: pcm,
    });
    expect(buf.length).toBe(HEADER_BYTES + FRAME_BYTES);
    expect([...buf.subarray(0, HEADER_BYTES)]).toEqual([
      0xac, 1, 1, 0, 0x01, 0x02, 0x03, 0x04, 0, 0, 0, 0x05, 0x06, 0x07, 0x08, 0x09, 0, 0, 0x07,
      0x80,
    ]);
    expect(buf.subarray(HEADER_BYTES).equals(pcm)).toBe(true);
  });

  it('writer numbers frames: sequence +1, timestamp +960 per AUDIO frame', () => {
    const w = new PcmFrameWriter();
    const d = new PcmFrameDecoder();
    const frames = d.push(
      Buffer.concat([
        w.audio(Buffer.alloc(FRAME_BYTES)),
        w.audio(Buffer.alloc(FRAME_BYTES)),
        w.flush(),
        w.end(),
      ]),
    );
    expect(frames.map((f) => [f.type, f.sequence, f.timestamp])).toEqual([
      [FrameType.AUDIO, 0, 0],
      [FrameType.AUDIO, 1, FRAME_SAMPLES],
      [FrameType.FLUSH, 2, 2 * FRAME_SAMPLES],
      [FrameType.END, 3, 2 * FRAME_SAMPLES],
    ]);
    d.end();
  });

  it('property: any frames, split anywhere, decode to the same frames', () => {
    fc.assert(
      fc.property(
        fc.array(frameArb, { maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 40 }),
        (frames, cuts) => {
          const stream = Buffer.concat(frames.map(encodeFrame));
          const d = new PcmFrameDecoder();
          const out = splitAt(stream, cuts).flatMap((c) => d.push(c));
          d.end();
          expect(same(out, frames)).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('property: a stream cut short is reported at end(), never as a frame', () => {
    fc.assert(
      fc.property(frameArb, fc.nat(), (frame, cut) => {
        const buf = encodeFrame(frame);
        const at = 1 + (cut % (buf.length - 1));
        const d = new PcmFrameDecoder();
        expect(d.push(buf.subarray(0, at))).toEqual([]);
        expect(d.buffered).toBe(at);
        expect(() => d.end()).toThrow(PcmFramingError);
      }),
    );
  });

  it('property: byte-at-a-time feeding equals one push', () => {
    fc.assert(
      fc.property(fc.array(frameArb, { minLength: 1, maxLength: 3 }), (frames) => {
        const stream = Buffer.concat(frames.map(encodeFrame));
        const d = new PcmFrameDecoder();
        const out: PcmFrame[] = [];
        for (let i = 0; i < stream.length; i++) out.push(...d.push(stream.subarray(i, i + 1)));
        expect(same(out, frames)).toBe(true);
      }),
      { numRuns: 30 },
    );
  });

  it('does not keep references to the caller’s chunks', () => {
    const stream = new PcmFrameWriter().audio(Buffer.alloc(FRAME_BYTES, 1));
    const d = new PcmFrameDecoder();
    const [frame] = d.push(stream);
    stream.fill(0);
    expect(frame?.payload.every((b) => b === 1)).toBe(true);
  });

  it.each([
    ['bad magic', (b: Buffer) => (b[0] = 0x00), /magic/],
    ['bad version', (b: Buffer) => (b[1] = 2), /version/],
    ['unknown type', (b: Buffer) => (b[2] = 9), /type 9/],
    ['reserved flags', (b: Buffer) => (b[3] = 1), /flags/],
    ['wrong AUDIO length', (b: Buffer) => b.writeUInt32BE(1000, 16), /1920-byte/],
    ['huge length', (b: Buffer) => b.writeUInt32BE(0xffffffff, 16), /1920-byte/],
    ['timestamp beyond 2^53', (b: Buffer) => b.writeBigUInt64BE(2n ** 60n, 8), /too large/],
  ])('rejects %s and stays failed', (_name, corrupt, message) => {
    const buf = new PcmFrameWriter().audio(Buffer.alloc(FRAME_BYTES));
    corrupt(buf);
    const d = new PcmFrameDecoder();
    expect(() => d.push(buf)).toThrow(message);
    expect(() => d.push(new PcmFrameWriter().end())).toThrow(PcmFramingError);
  });

  it('rejects invalid frames on encode', () => {
    expect(() =>
      encodeFrame({ type: FrameType.AUDIO, sequence: 0, timestamp: 0, payload: Buffer.alloc(10) }),
    ).toThrow(PcmFramingError);
    expect(() =>
      encodeFrame({ type: FrameType.END, sequence: 0, timestamp: 0, payload: Buffer.alloc(1) }),
    ).toThrow(PcmFramingError);
    expect(() =>
      encodeFrame({ type: FrameType.END, sequence: -1, timestamp: 0, payload: Buffer.alloc(0) }),
    ).toThrow(/uint32/);
    expect(() =>
      encodeFrame({ type: FrameType.END, sequence: 0, timestamp: 1.5, payload: Buffer.alloc(0) }),
    ).toThrow(/timestamp/);
    expect(() =>
      encodeFrame({ type: 7 as FrameType, sequence: 0, timestamp: 0, payload: Buffer.alloc(0) }),
    ).toThrow(/type 7/);
  });

  it('wraps the sequence at 2^32', () => {
    const buf = encodeFrame({
      type: FrameType.END,
      sequence: 0xffffffff,
      timestamp: 0,
      payload: Buffer.alloc(0),
    });
    expect(buf[0]).toBe(FRAME_MAGIC);
    expect(new PcmFrameDecoder().push(buf)[0]?.sequence).toBe(0xffffffff);
  });
});

describe('PCM helpers', () => {
  it('property: FrameChunker re-cuts any lengths into exact frames, losing nothing', () => {
    fc.assert(
      fc.property(fc.array(fc.nat({ max: 3000 }), { maxLength: 20 }), (lengths) => {
        const total = lengths.reduce((a, b) => a + b * 2, 0);
        const src = Buffer.alloc(total);
        for (let i = 0; i < total; i++) src[i] = i & 0xff;
        const c = new FrameChunker();
        let off = 0;
        const out: Buffer[] = [];
        for (const n of lengths) {
          out.push(...c.push(src.subarray(off, off + n * 2)));
          off += n * 2;
        }
        expect(out.every((f) => f.length === FRAME_BYTES)).toBe(true);
        expect(out.length).toBe(Math.floor(total / FRAME_BYTES));
        expect(c.buffered).toBe(total % FRAME_BYTES);
        expect(Buffer.concat(out).equals(src.subarray(0, out.length * FRAME_BYTES))).toBe(true);
      }),
    );
  });

  it('downmixes stereo by averaging', () => {
    const st = Buffer.alloc(8);
    st.writeInt16LE(1000, 0);
    st.writeInt16LE(3000, 2);
    st.writeInt16LE(-32768, 4);
    st.writeInt16LE(-32768, 6);
    const mono = downmixStereo(st);
    expect([mono.readInt16LE(0), mono.readInt16LE(2)]).toEqual([2000, -32768]);
  });
});
