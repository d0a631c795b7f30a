/**
 * Opus encode/decode for one call: on native libopus (`@discordjs/opus`, an optional dependency
 * built from source at install) when it loaded, else on opusscript (libopus compiled to WASM).
 *
 * Encoding is always 48 kHz mono, 20 ms. Decoding always uses a 2-channel decoder and
 * downmixes: browsers negotiate `opus/48000/2` and in practice send mono (which a stereo
 * decoder duplicates into both channels), but a real stereo sender is handled too.
 * Each instance owns WASM heap memory: call `close()` when the call ends.
 */
import { FRAME_BYTES, FRAME_SAMPLES, SAMPLE_RATE, downmixStereo } from './pcm';

/**
 * libopus from opusscript's WASM build, used directly instead of opusscript's `index.js`.
 * That wrapper caches typed-array views of the WASM heap taken when each codec is created,
 * so once the shared heap grows (after enough codecs exist, i.e. enough concurrent calls)
 * every older codec throws "detached ArrayBuffer"; it also indexes its HEAPU16 views with
 * byte addresses, touching memory at twice the allocated address. Here views are taken
 * fresh on every call and the buffers are sized for the native code's layout.
 */
interface WasmHandler {
  _encode(inPtr: number, bytes: number, outPtr: number, frameSize: number): number;
  _decode(inPtr: number, bytes: number, outPtr: number): number;
  _encoder_ctl(ctl: number, arg: number): number;
  _decoder_ctl(ctl: number, arg: number): number;
}
interface WasmModule {
  HEAPU8: Uint8Array;
  HEAPU16: Uint16Array;
  _malloc(bytes: number): number;
  _free(ptr: number): void;
  OpusScriptHandler: {
    new (rate: number, channels: number, application: number): WasmHandler;
    destroy_handler(h: WasmHandler): void;
  };
}

let wasmModule: WasmModule | undefined;
function wasm(): WasmModule {
  // The Emscripten factory instantiates synchronously in Node (it reads the .wasm beside it).
  wasmModule ??= (require('opusscript/build/opusscript_native_wasm.js') as () => WasmModule)();
  return wasmModule;
}

export type OpusApplicationName = 'voip' | 'audio' | 'lowdelay';

/** One libopus encoder or decoder, whichever build runs it. */
interface Codec {
  encode(pcm: Buffer, frameSize: number): Buffer;
  /** Returns interleaved s16le PCM. */
  decode(packet: Buffer): Buffer;
  encoderCtl(ctl: number, arg: number): void;
  close(): void;
  readonly closed: boolean;
}

/** `@discordjs/opus`: one libopus encoder and decoder per object, its own copy of the data. */
interface DiscordOpus {
  OpusEncoder: new (
    rate: number,
    channels: number,
  ) => {
    encode(pcm: Buffer): Buffer;
    decode(packet: Buffer): Buffer;
    applyEncoderCTL(ctl: number, value: number): void;
  };
}

let discord: DiscordOpus | null | undefined;
function loadDiscordOpus(): DiscordOpus | null {
  if (discord === undefined) {
    try {
      discord = require('@discordjs/opus') as DiscordOpus;
    } catch {
      discord = null; // not installed (its build from source failed): the WASM build serves
    }
  }
  return discord;
}

let preferred: OpusBackend = 'native';

/** Which libopus build the codecs created now use. */
export type OpusBackend = 'native' | 'wasm';

export function opusBackend(): OpusBackend {
  return preferred === 'native' && loadDiscordOpus() ? 'native' : 'wasm';
}

/** Chooses the build for codecs created from now on (the bench compares both); 'native' falls back. */
export function preferOpusBackend(backend: OpusBackend): void {
  preferred = backend;
}

const OPUS_SET_APPLICATION = 4000;

/**
 * libopus built natively: the same numbers and frames, about 1.5× faster than the WASM build.
 * Its binding aborts the process on a PCM buffer of the wrong size, so only OpusEncoder (which
 * checks the frame size) encodes with it; an empty packet would decode as concealment, and
 * OpusDecoder refuses it first.
 */
class NativeCodec implements Codec {
  private codec: ReturnType<typeof makeNative> | undefined;

  constructor(channels: number, application: number) {
    this.codec = makeNative(channels);
    this.codec.applyEncoderCTL(OPUS_SET_APPLICATION, application);
  }

  encode(pcm: Buffer): Buffer {
    return this.live().encode(pcm);
  }

  decode(packet: Buffer): Buffer {
    const codec = this.live();
    if (packet.length > MAX_PACKET_BYTES)
      throw new Error(`Opus packet of ${packet.length} bytes is too large`);
    try {
      return codec.decode(packet);
    } catch (err) {
      const message = (err as Error).message;
      throw new Error(
        `Opus decode error: ${/corrupt/i.test(message) ? 'invalid packet' : message}`,
      );
    }
  }

  encoderCtl(ctl: number, arg: number): void {
    this.live().applyEncoderCTL(ctl, arg);
  }

  close(): void {
    this.codec = undefined;
  }

  get closed(): boolean {
    return this.codec === undefined;
  }

  private live() {
    if (!this.codec) throw new Error('Opus codec is closed');
    return this.codec;
  }
}

const makeNative = (channels: number) =>
  new (loadDiscordOpus()!.OpusEncoder)(SAMPLE_RATE, channels);

function createCodec(channels: number, application: number): Codec {
  return opusBackend() === 'native'
    ? new NativeCodec(channels, application)
    : new WasmCodec(channels, application);
}

/** libopus numbers (opus_defines.h). */
const APPLICATIONS: Record<OpusApplicationName, number> = {
  voip: 2048,
  audio: 2049,
  lowdelay: 2051,
};
const OPUS_SET_BITRATE = 4002;
const OPUS_SET_INBAND_FEC = 4012;
const OPUS_SET_PACKET_LOSS_PERC = 4014;
const MAX_PACKET_BYTES = 1276 * 3;
/** libopus' largest frame: 120 ms at 48 kHz, per channel. */
const MAX_FRAME_SAMPLES = 5760;
const ERRORS: Record<number, string> = {
  [-1]: 'bad argument',
  [-2]: 'buffer too small',
  [-3]: 'internal error',
  [-4]: 'invalid packet',
  [-5]: 'unimplemented',
  [-6]: 'invalid state',
  [-7]: 'memory allocation failed',
};

/**
 * One native handler (libopus encoder + decoder pair) and its heap buffers. The native code
 * takes PCM as one byte per 16-bit slot and compacts it in place (reading up to 4× the byte
 * count), and returns PCM the same way: so the buffers are 4× the byte counts they carry.
 */
class WasmCodec implements Codec {
  private handler: WasmHandler | undefined;
  private readonly pcmPtr: number;
  private readonly pcmBytes: number;
  private readonly packetPtr: number;
  private readonly outPtr: number;

  constructor(
    private readonly channels: number,
    application: number,
  ) {
    const m = wasm();
    this.handler = new m.OpusScriptHandler(SAMPLE_RATE, channels, application);
    this.pcmBytes = MAX_FRAME_SAMPLES * channels * 2;
    this.pcmPtr = m._malloc(this.pcmBytes * 4);
    this.packetPtr = m._malloc(MAX_PACKET_BYTES);
    this.outPtr = m._malloc(MAX_PACKET_BYTES);
  }

  encode(pcm: Buffer, frameSize: number): Buffer {
    const h = this.live();
    const m = wasm();
    m.HEAPU16.set(pcm, this.pcmPtr >> 1); // one byte per 16-bit slot
    const n = h._encode(this.pcmPtr, pcm.length, this.outPtr, frameSize);
    if (n < 0) throw new Error(`Opus encode error: ${ERRORS[n] ?? n}`);
    return Buffer.from(m.HEAPU8.subarray(this.outPtr, this.outPtr + n));
  }

  /** Returns interleaved s16le PCM (`channels` channels). */
  decode(packet: Buffer): Buffer {
    const h = this.live();
    if (packet.length > MAX_PACKET_BYTES)
      throw new Error(`Opus packet of ${packet.length} bytes is too large`);
    const m = wasm();
    m.HEAPU8.set(packet, this.packetPtr);
    const samples = h._decode(this.packetPtr, packet.length, this.pcmPtr);
    if (samples < 0) throw new Error(`Opus decode error: ${ERRORS[samples] ?? samples}`);
    const bytes = samples * this.channels * 2;
    const out = Buffer.allocUnsafe(bytes);
    out.set(wasm().HEAPU16.subarray(this.pcmPtr >> 1, (this.pcmPtr >> 1) + bytes)); // slots → bytes
    return out;
  }

  encoderCtl(ctl: number, arg: number): void {
    const r = this.live()._encoder_ctl(ctl, arg);
    if (r < 0) throw new Error(`Opus encoder ctl ${ctl} error: ${ERRORS[r] ?? r}`);
  }

  close(): void {
    if (!this.handler) return;
    const m = wasm();
    m.OpusScriptHandler.destroy_handler(this.handler);
    m._free(this.pcmPtr);
    m._free(this.packetPtr);
    m._free(this.outPtr);
    this.handler = undefined;
  }

  get closed(): boolean {
    return this.handler === undefined;
  }

  private live(): WasmHandler {
    if (!this.handler) throw new Error('Opus codec is closed');
    return this.handler;
  }
}

export interface OpusEncoderOptions {
  /** libopus application; `voip` (default) favours speech intelligibility. */
  application?: OpusApplicationName;
  /** Target bitrate in bit/s; libopus picks one when unset. */
  bitrate?: number;
  /** Expected packet loss in percent; > 0 turns on in-band FEC. */
  packetLossPercent?: number;
}

/** Encodes 20 ms frames of 48 kHz mono s16le PCM into Opus packets. */
export class OpusEncoder {
  private readonly codec: Codec;

  constructor(options: OpusEncoderOptions = {}) {
    this.codec = createCodec(1, APPLICATIONS[options.application ?? 'voip']);
    try {
      if (options.bitrate !== undefined)
        this.codec.encoderCtl(OPUS_SET_BITRATE, Math.round(options.bitrate));
      if (options.packetLossPercent !== undefined && options.packetLossPercent > 0) {
        this.codec.encoderCtl(OPUS_SET_INBAND_FEC, 1);
        this.codec.encoderCtl(OPUS_SET_PACKET_LOSS_PERC, Math.round(options.packetLossPercent));
      }
    } catch (err) {
      this.codec.close();
      throw err;
    }
  }

  /** Encodes one 1920-byte PCM frame into one Opus packet. */
  encode(pcm: Buffer): Buffer {
    if (pcm.length !== FRAME_BYTES)
      throw new RangeError(`Opus encoder takes ${FRAME_BYTES}-byte frames, got ${pcm.length}`);
    return this.codec.encode(pcm, FRAME_SAMPLES);
  }

  /** Frees the encoder's WASM memory; further use throws. Idempotent. */
  close(): void {
    this.codec.close();
  }
}

/** Decodes Opus packets (mono or stereo, any packet duration) into 48 kHz mono s16le PCM. */
export class OpusDecoder {
  private readonly codec = createCodec(2, APPLICATIONS.voip);

  /** Decodes one packet to mono PCM (1920 bytes for a 20 ms packet); throws on a corrupt packet. */
  decode(packet: Buffer): Buffer {
    if (packet.length === 0) throw new RangeError('empty Opus packet');
    return downmixStereo(this.codec.decode(packet));
  }

  /** Frees the decoder's WASM memory; further use throws. Idempotent. */
  close(): void {
    this.codec.close();
  }
}

/** An encoder and a decoder for one call, closed together. */
export class OpusCodec {
  readonly encoder: OpusEncoder;
  readonly decoder: OpusDecoder;

  constructor(options: OpusEncoderOptions = {}) {
    this.encoder = new OpusEncoder(options);
    this.decoder = new OpusDecoder();
  }

  /** Encodes one 20 ms mono PCM frame. */
  encode(pcm: Buffer): Buffer {
    return this.encoder.encode(pcm);
  }

  /** Decodes one Opus packet to mono PCM. */
  decode(packet: Buffer): Buffer {
    return this.decoder.decode(packet);
  }

  /** Frees both codecs' WASM memory. Idempotent. */
  close(): void {
    this.encoder.close();
    this.decoder.close();
  }
}
