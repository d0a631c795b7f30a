/**
 * Opus RTP ⇄ 20 ms PCM frames, without the connection: the numbering and pacing of what a peer
 * sends, and the loss, reordering and framing of what it receives. AudioPeer owns one of each.
 */
import { RtpHeader, RtpPacket } from 'werift';
import { OpusDecoder, OpusEncoder, type OpusEncoderOptions } from './opus';
import { FRAME_MS, FRAME_SAMPLES, FrameChunker } from './pcm';

/** Opus's RTP payload type as browsers offer it (werift rewrites it to the negotiated one). */
export const OPUS_PAYLOAD_TYPE = 111;

/** Signed distance a − b between two 16-bit sequence numbers. */
export function seqDelta(a: number, b: number): number {
  return ((a - b + 0x8000) & 0xffff) - 0x8000;
}

/** Turns PCM frames into Opus RTP packets with a continuous sequence and an honest clock. */
export class RtpAudioSender {
  private readonly encoder: OpusEncoder;
  // werift adds its own offsets (initially 0) and sets SSRC and PT.
  private seq = Math.floor(Math.random() * 0x10000);
  private ts = Math.floor(Math.random() * 0x100000000);
  private first = true;
  private lastSendAt = 0;

  constructor(opus?: OpusEncoderOptions) {
    this.encoder = new OpusEncoder(opus);
  }

  /** The packet for one 20 ms frame sent at `nowMs` (a monotonic clock). */
  packetFor(pcm: Buffer, nowMs: number): RtpPacket {
    const payload = this.encoder.encode(pcm);
    // After a pause in sending, advance the RTP clock by the time that passed (as senders with
    // DTX do) and mark a new talkspurt, so the remote's jitter buffer sees a gap, not late
    // packets.
    const pausedMs = nowMs - this.lastSendAt;
    if (!this.first && pausedMs > 3 * FRAME_MS) {
      this.ts = (this.ts + Math.round(pausedMs / FRAME_MS - 1) * FRAME_SAMPLES) >>> 0;
      this.first = true;
    }
    this.lastSendAt = nowMs;
    const header = new RtpHeader({
      payloadType: OPUS_PAYLOAD_TYPE,
      sequenceNumber: this.seq,
      timestamp: this.ts,
      marker: this.first, // RFC 7587: marks the first packet of a talkspurt
    });
    this.seq = (this.seq + 1) & 0xffff;
    this.ts = (this.ts + FRAME_SAMPLES) >>> 0;
    this.first = false;
    return new RtpPacket(header, payload);
  }

  close(): void {
    this.encoder.close();
  }
}

/** What one received packet came to. */
export interface RtpAudioReceipt {
  /** A duplicate or a packet older than one already decoded: dropped. */
  late: boolean;
  /** Packets missing before this one, from the sequence gap. */
  lost: number;
  decodeError: boolean;
  /** Whole 20 ms frames completed, each with its position in samples since the first packet. */
  frames: Array<{ pcm: Buffer; timestamp: number }>;
}

/** Turns Opus RTP into 20 ms PCM frames, dropping late packets and reframing after a gap. */
export class RtpAudioReceiver {
  private readonly decoder = new OpusDecoder();
  private readonly chunker = new FrameChunker();
  private lastSeq: number | undefined;
  private lastTs: number | undefined;
  private position = 0; // samples since the first packet, at the start of the last packet
  private chunkPos = 0; // position of the chunker's first buffered sample

  receive(rtp: RtpPacket): RtpAudioReceipt {
    const receipt: RtpAudioReceipt = { late: false, lost: 0, decodeError: false, frames: [] };
    const { sequenceNumber, timestamp } = rtp.header;
    if (this.lastSeq !== undefined && this.lastTs !== undefined) {
      const dSeq = seqDelta(sequenceNumber, this.lastSeq);
      if (dSeq <= 0) return { ...receipt, late: true };
      receipt.lost = dSeq - 1;
      const dTs = (timestamp - this.lastTs) | 0; // signed 32-bit difference
      this.position += Math.max(0, dTs);
    }
    this.lastSeq = sequenceNumber;
    this.lastTs = timestamp;
    if (rtp.payload.length === 0) return receipt;

    let pcm: Buffer;
    try {
      pcm = this.decoder.decode(rtp.payload);
    } catch {
      return { ...receipt, decodeError: true };
    }
    // A gap (lost packets) drops any partial frame and restarts framing at this packet.
    if (
      this.chunker.buffered === 0 ||
      this.position !== this.chunkPos + this.chunker.buffered / 2
    ) {
      this.chunker.reset();
      this.chunkPos = this.position;
    }
    for (const frame of this.chunker.push(pcm)) {
      receipt.frames.push({ pcm: frame, timestamp: this.chunkPos });
      this.chunkPos += FRAME_SAMPLES;
    }
    return receipt;
  }

  close(): void {
    this.decoder.close();
    this.chunker.reset();
  }
}
