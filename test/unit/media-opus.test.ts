import {
  OpusCodec,
  OpusDecoder,
  OpusEncoder,
  opusBackend,
  preferOpusBackend,
  type OpusBackend,
} from '../../media/opus';
import { ToneGenerator } from '../../media/echo';
import { rms, tonePurity, zeroCrossingFrequency } from '../../media/audio-analysis';
import { FRAME_BYTES, FRAME_SAMPLES } from '../../media/pcm';

/** Encodes and decodes `frames` frames of a tone; returns the decoded PCM after warm-up. */
function roundTrip(
  codec: { encode(p: Buffer): Buffer; decode(p: Buffer): Buffer },
  hz: number,
  amplitude: number,
  frames = 50,
) {
  const tone = new ToneGenerator(hz, amplitude);
  const out: Buffer[] = [];
  for (let i = 0; i < frames; i++) out.push(codec.decode(codec.encode(tone.next())));
  return Buffer.concat(out.slice(10)); // skip the codec's start-up
}

test('the native libopus build is used when it is installed, else the WASM build', () => {
  let installed = true;
  try {
    require.resolve('@discordjs/opus');
  } catch {
    installed = false;
  }
  expect(opusBackend()).toBe(installed ? 'native' : 'wasm');
  preferOpusBackend('wasm');
  expect(opusBackend()).toBe('wasm');
  preferOpusBackend('native');
});

describe.each(['native', 'wasm'] as OpusBackend[])('Opus wrappers (%s build)', (backend) => {
  beforeAll(() => preferOpusBackend(backend));
  afterAll(() => preferOpusBackend('native'));

  it.each([
    ['voip', 440],
    ['audio', 440],
    ['voip', 1000],
  ] as const)(
    'a %s-mode %d Hz tone survives encode/decode: frequency and level within 2%%',
    (application, hz) => {
      const codec = new OpusCodec({ application });
      try {
        const pcm = roundTrip(codec, hz, 0.5);
        const expected = 0.5 / Math.SQRT2;
        expect(Math.abs(zeroCrossingFrequency(pcm) - hz) / hz).toBeLessThan(0.02);
        expect(Math.abs(rms(pcm) - expected) / expected).toBeLessThan(0.02);
        expect(tonePurity(pcm, hz)).toBeGreaterThan(0.95);
        expect(tonePurity(pcm, hz * 1.5)).toBeLessThan(0.05);
      } finally {
        codec.close();
      }
    },
  );

  it('decodes a stereo stream (as negotiated by browsers) to mono frames', () => {
    // The browser case: a mono encoder's packets through the 2-channel decoder.
    const enc = new OpusEncoder();
    const dec = new OpusDecoder();
    const pcm = dec.decode(enc.encode(Buffer.alloc(FRAME_BYTES)));
    expect(pcm.length).toBe(FRAME_BYTES);
    enc.close();
    dec.close();
  });

  it('keeps silence silent', () => {
    const codec = new OpusCodec();
    const out: Buffer[] = [];
    for (let i = 0; i < 20; i++) out.push(codec.decode(codec.encode(Buffer.alloc(FRAME_BYTES))));
    expect(rms(Buffer.concat(out))).toBeLessThan(1e-3);
    codec.close();
  });

  it('honours a bitrate: 24 kbit/s gives about 60-byte packets', () => {
    const enc = new OpusEncoder({ bitrate: 24_000 });
    const tone = new ToneGenerator(440);
    const sizes = Array.from({ length: 30 }, () => enc.encode(tone.next()).length).slice(5);
    const mean = sizes.reduce((a, b) => a + b, 0) / sizes.length;
    expect(mean).toBeGreaterThan(40);
    expect(mean).toBeLessThan(80);
    enc.close();
  });

  it('rejects wrong frame sizes, empty and corrupt packets', () => {
    const codec = new OpusCodec();
    expect(() => codec.encode(Buffer.alloc(FRAME_BYTES - 2))).toThrow(RangeError);
    expect(() => codec.decode(Buffer.alloc(0))).toThrow(RangeError);
    // TOC byte for a code-3 packet with an impossible frame count.
    expect(() => codec.decode(Buffer.from([0x03, 0x00]))).toThrow(/decode error: invalid packet/);
    codec.close();
  });

  it('close() frees the codecs: idempotent, and later use throws', () => {
    const codec = new OpusCodec();
    codec.close();
    codec.close();
    expect(() => codec.encode(Buffer.alloc(FRAME_BYTES))).toThrow(/closed/);
    expect(() => codec.decode(Buffer.from([0xf8, 0xff, 0xfe]))).toThrow(/closed/);
  });

  it('many codecs opened and closed do not exhaust the WASM heap', () => {
    for (let i = 0; i < 300; i++) {
      const codec = new OpusCodec();
      codec.decode(codec.encode(Buffer.alloc(FRAME_BYTES)));
      codec.close();
    }
  });

  it('encodes and decodes a frame in well under real time', () => {
    const codec = new OpusCodec();
    const tone = new ToneGenerator(440);
    // WASM starts in a baseline tier: the first few hundred frames run several times slower.
    for (let i = 0; i < 500; i++) codec.decode(codec.encode(tone.next()));
    const n = 500;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) codec.decode(codec.encode(tone.next()));
    const perFrame = (performance.now() - t0) / n;
    console.log(
      `opus encode+decode (warm): ${perFrame.toFixed(3)} ms per ${FRAME_SAMPLES}-sample frame`,
    );
    expect(perFrame).toBeLessThan(10);
    codec.close();
  });
});
