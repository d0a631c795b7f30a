/**
 * Media test helpers: a werift peer standing in for a browser, a paced sender, and a connected
 * Unix socket pair for an agent's audio stream.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  MediaStreamTrack,
  RTCPeerConnection,
  RTCRtpCodecParameters,
  RtpHeader,
  RtpPacket,
} from 'werift';
import { OpusDecoder, OpusEncoder } from '../../media/opus';
import { FRAME_MS, FRAME_SAMPLES } from '../../media/pcm';

/** A werift peer connection as a browser caller's: loopback host candidates, Opus only. */
export function callerPeerConnection(): RTCPeerConnection {
  return new RTCPeerConnection({
    iceServers: [],
    iceAdditionalHostAddresses: ['127.0.0.1'],
    iceUseIpv6: false,
    codecs: {
      audio: [
        new RTCRtpCodecParameters({
          mimeType: 'audio/opus',
          clockRate: 48_000,
          channels: 2,
          payloadType: 111,
        }),
      ],
      video: [],
    },
  });
}

/** A werift peer standing in for the browser: sends frames you give it, decodes what it gets. */
export class Client {
  readonly pc = callerPeerConnection();
  private readonly track = new MediaStreamTrack({ kind: 'audio' });
  private readonly encoder = new OpusEncoder();
  private readonly decoder = new OpusDecoder();
  private seq = 1000;
  private ts = 5000;
  /** Decoded frames with their arrival time. */
  readonly received: { at: number; pcm: Buffer }[] = [];

  constructor() {
    const transceiver = this.pc.addTransceiver(this.track, { direction: 'sendrecv' });
    transceiver.onTrack.subscribe((remote) =>
      remote.onReceiveRtp.subscribe((rtp) => {
        this.received.push({ at: performance.now(), pcm: this.decoder.decode(rtp.payload) });
      }),
    );
  }

  async offer(): Promise<string> {
    await this.pc.setLocalDescription(await this.pc.createOffer());
    return this.pc.localDescription?.sdp ?? '';
  }

  async answer(offerSdp: string): Promise<string> {
    await this.pc.setRemoteDescription({ type: 'offer', sdp: offerSdp });
    await this.pc.setLocalDescription(await this.pc.createAnswer());
    // werift (unlike a browser) does not start its checks after an ICE restart while DTLS is
    // up; AudioPeer works around it on the bridge side, this client has to do the same.
    for (const t of this.pc.iceTransports)
      if (!t.connection.nominated && t.connection.remoteUsername) void t.start().catch(() => {});
    return this.pc.localDescription?.sdp ?? '';
  }

  /** RTP packets written so far. */
  packetsSent = 0;

  async connected(): Promise<void> {
    if (this.pc.connectionState !== 'connected')
      await this.pc.connectionStateChange.watch((s) => s === 'connected', 10_000);
  }

  send(pcm: Buffer): void {
    const header = new RtpHeader({
      payloadType: 111,
      sequenceNumber: this.seq,
      timestamp: this.ts,
    });
    this.seq = (this.seq + 1) & 0xffff;
    this.ts = (this.ts + FRAME_SAMPLES) >>> 0;
    this.track.writeRtp(new RtpPacket(header, this.encoder.encode(pcm)));
    this.packetsSent++;
  }

  async close(): Promise<void> {
    await this.pc.close();
    this.encoder.close();
    this.decoder.close();
  }
}

/** Sends `frames(i)` every 20 ms on a drift-free grid; resolves with each frame's send time. */
export async function sendPaced(
  client: Client,
  count: number,
  frame: (i: number) => Buffer,
): Promise<number[]> {
  const times: number[] = [];
  const start = performance.now();
  for (let i = 0; i < count; i++) {
    const due = start + i * FRAME_MS;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    times.push(performance.now());
    client.send(frame(i));
  }
  return times;
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/** A connected Unix socket pair through a listening server in a temp dir. */
export async function socketPair(): Promise<{
  bridgeEnd: Socket;
  agentEnd: Socket;
  cleanup: () => void;
}> {
  const dir = mkdtempSync(join(tmpdir(), 'media-loopback-'));
  const path = join(dir, 'agent-audio.sock');
  const server: Server = createServer();
  await new Promise<void>((r) => server.listen(path, r));
  const accepted = new Promise<Socket>((r) => server.once('connection', r));
  const bridgeEnd = connect(path);
  await new Promise<void>((r) => bridgeEnd.once('connect', () => r()));
  const agentEnd = await accepted;
  bridgeEnd.setNoDelay?.(true);
  return {
    bridgeEnd,
    agentEnd,
    cleanup: () => {
      bridgeEnd.destroy();
      agentEnd.destroy();
      server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
