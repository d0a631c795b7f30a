/**
 * The bridge-side WebRTC peer of one voice call: audio only, Opus only, on werift.
 *
 * It turns the remote's Opus RTP into 20 ms frames of 48 kHz mono s16le PCM
 * (`onAudioFrame`) and sends PCM frames back as Opus RTP (`sendAudioFrame`). It never writes
 * audio anywhere but to its listeners and the network. Signaling is the owner's job: the peer
 * takes and returns SDP strings and ICE candidate objects.
 *
 * Negotiation, either way round:
 * - the remote offers: `AudioPeer.answer(offerSdp)` → `{ peer, answerSdp }`;
 * - the bridge offers: `AudioPeer.offer()` → `{ peer, offerSdp }`, then `peer.acceptAnswer(sdp)`.
 * werift gathers candidates before it returns a description, so the SDP already carries the
 * bridge's candidates (vanilla ICE); `onIceCandidate` reports them too for trickle signaling.
 */
import {
  MediaStreamTrack,
  RTCPeerConnection,
  RTCRtpCodecParameters,
  RtpHeader,
  RtpPacket,
  type RTCIceCandidateInit,
  type RTCIceServer,
  type RTCRtpTransceiver,
} from 'werift';
import {
  MAX_ICE_RESTARTS,
  userStateOf,
  type PeerConnectionState,
  type UserCallState,
} from '../machines/voice-call.machine';
import { OpusDecoder, OpusEncoder, type OpusEncoderOptions } from './opus';
import { FRAME_BYTES, FRAME_MS, FRAME_SAMPLES, FrameChunker } from './pcm';

// The voice machine's module owns what a caller sees and how many ICE restarts a call gets.
export type { PeerConnectionState } from '../machines/voice-call.machine';
export { userStateOf } from '../machines/voice-call.machine';

/** TURN server and its (short-lived, REST-scheme) credentials. */
export interface TurnServer {
  urls: string | string[];
  username: string;
  credential: string;
}

export interface AudioPeerOptions {
  /** STUN/TURN servers. Default `[]`: werift's own default names a public STUN server. */
  iceServers?: RTCIceServer[];
  /** TURN servers appended to `iceServers`. */
  turn?: TurnServer | TurnServer[];
  /** `relay` uses TURN relay candidates only (needs `turn`). Default `all`. */
  iceTransportPolicy?: 'all' | 'relay';
  /** Extra host addresses to gather, e.g. `['127.0.0.1']` on a loopback-only host. */
  additionalHostAddresses?: string[];
  /** UDP port range for host candidates, e.g. to match a firewall rule. */
  icePortRange?: [number, number];
  /** Use IPv6 host candidates too. Default false (loopback and docker hosts rarely route it). */
  ipv6?: boolean;
  /** ICE restarts allowed in the call's life. Default: the voice machine's MAX_ICE_RESTARTS. */
  maxIceRestarts?: number;
  /**
   * No RTP from the remote for this long while connected reports `disconnected`
   * (Reconnecting); werift itself only notices a dead path when ICE consent expires (30 s).
   * Browsers send 50 packets/s even in silence. Default 4000 ms; 0 turns it off.
   */
  mediaTimeoutMs?: number;
  /** Opus encoder settings for audio sent to the remote. */
  opus?: OpusEncoderOptions;
}

/** One decoded 20 ms frame from the remote. */
export interface AudioFrameIn {
  /** 1920 bytes: 960 samples of 48 kHz mono s16le. */
  pcm: Buffer;
  /** Stream position in samples since the first packet (jumps over lost audio). */
  timestamp: number;
}

/** Counters for one peer. */
export interface AudioPeerStats {
  packetsReceived: number;
  /** Estimated from sequence-number gaps. */
  packetsLost: number;
  /** Duplicates and packets older than one already decoded (dropped). */
  packetsLate: number;
  decodeErrors: number;
  framesDecoded: number;
  framesSent: number;
  /** Frames passed to `sendAudioFrame` while not connected (dropped). */
  framesDropped: number;
  iceRestarts: number;
}

/** Stats of a peer that has seen nothing yet (also the start of a sum over peers). */
export function emptyAudioPeerStats(): AudioPeerStats {
  return {
    packetsReceived: 0,
    packetsLost: 0,
    packetsLate: 0,
    decodeErrors: 0,
    framesDecoded: 0,
    framesSent: 0,
    framesDropped: 0,
    iceRestarts: 0,
  };
}

export interface PeerStateChange {
  connectionState: PeerConnectionState;
  userState: UserCallState;
}

/** Builds werift's iceServers list from the options (no servers unless asked for). */
export function iceServersOf(options: AudioPeerOptions): RTCIceServer[] {
  const turn =
    options.turn === undefined ? [] : Array.isArray(options.turn) ? options.turn : [options.turn];
  const servers = [...(options.iceServers ?? []), ...turn.map((t) => ({ ...t }))];
  if (options.iceTransportPolicy === 'relay' && !servers.some((s) => hasTurnUrl(s.urls))) {
    throw new Error('iceTransportPolicy "relay" needs a TURN server');
  }
  return servers;
}

function hasTurnUrl(urls: string | string[]): boolean {
  return (Array.isArray(urls) ? urls : [urls]).some((u) => /^turns?:/i.test(u));
}

/** Opus only: the one codec the bridge decodes. 111 is the payload type browsers use. */
function opusCodec(): RTCRtpCodecParameters {
  return new RTCRtpCodecParameters({
    mimeType: 'audio/opus',
    clockRate: 48_000,
    channels: 2,
    payloadType: 111,
    parameters: 'minptime=10;useinbandfec=1',
  });
}

/** Signed distance a − b between two 16-bit sequence numbers. */
function seqDelta(a: number, b: number): number {
  return ((a - b + 0x8000) & 0xffff) - 0x8000;
}

/** Extracts `a=ice-ufrag` values (one per bundle) to detect a remote ICE restart. */
function iceUfrags(sdp: string): string {
  return [...sdp.matchAll(/^a=ice-ufrag:(\S+)/gm)].map((m) => m[1]).join(',');
}

type Listener<T> = (value: T) => void;

class Listeners<T> {
  private readonly set = new Set<Listener<T>>();
  add(fn: Listener<T>): () => void {
    this.set.add(fn);
    return () => this.set.delete(fn);
  }
  emit(value: T): void {
    for (const fn of [...this.set]) fn(value);
  }
  clear(): void {
    this.set.clear();
  }
}

/** One audio-only WebRTC peer of the bridge (one per call). */
export class AudioPeer {
  /** The underlying werift connection (for stats and tests; prefer the methods). */
  readonly pc: RTCPeerConnection;
  private readonly track = new MediaStreamTrack({ kind: 'audio' });
  private readonly transceiver: RTCRtpTransceiver;
  private readonly encoder: OpusEncoder;
  private readonly decoder = new OpusDecoder();
  private readonly chunker = new FrameChunker();
  private readonly maxIceRestarts: number;

  private readonly audioListeners = new Listeners<AudioFrameIn>();
  private readonly stateListeners = new Listeners<PeerStateChange>();
  private readonly candidateListeners = new Listeners<RTCIceCandidateInit>();
  private readonly subscribedTracks = new WeakSet<MediaStreamTrack>();

  private readonly mediaTimeoutMs: number;
  private readonly relayOnly: boolean;
  private watchdog: NodeJS.Timeout | undefined;
  private lastRtpAt = 0;
  private lastSendAt = 0;

  private state: PeerConnectionState = 'new';
  private everConnected = false;
  private closed = false;
  private remoteUfrags: string | undefined;

  // Outgoing RTP numbering (werift adds its own offsets, initially 0, and sets SSRC and PT).
  private outSeq = Math.floor(Math.random() * 0x10000);
  private outTs = Math.floor(Math.random() * 0x100000000);
  private firstOut = true;

  // Incoming RTP bookkeeping.
  private lastSeq: number | undefined;
  private lastTs: number | undefined;
  private position = 0; // samples since the first packet, at the start of the last packet
  private chunkPos = 0; // position of the chunker's first buffered sample

  private readonly _stats = emptyAudioPeerStats();

  private constructor(options: AudioPeerOptions) {
    this.maxIceRestarts = options.maxIceRestarts ?? MAX_ICE_RESTARTS;
    this.mediaTimeoutMs = options.mediaTimeoutMs ?? 4000;
    this.relayOnly = options.iceTransportPolicy === 'relay';
    this.encoder = new OpusEncoder(options.opus);
    this.pc = new RTCPeerConnection({
      iceServers: iceServersOf(options),
      iceTransportPolicy: options.iceTransportPolicy ?? 'all',
      iceAdditionalHostAddresses: options.additionalHostAddresses,
      icePortRange: options.icePortRange,
      iceUseIpv6: options.ipv6 ?? false,
      codecs: { audio: [opusCodec()], video: [] },
      headerExtensions: { audio: [], video: [] },
    });
    this.transceiver = this.pc.addTransceiver(this.track, { direction: 'sendrecv' });
    this.transceiver.onTrack.subscribe((remote) => this.subscribeRemote(remote));
    this.pc.connectionStateChange.subscribe((s) => this.setState(s));
    if (this.mediaTimeoutMs > 0) {
      this.watchdog = setInterval(() => this.checkMedia(), Math.min(1000, this.mediaTimeoutMs / 2));
      this.watchdog.unref();
    }
    this.pc.onIceCandidate.subscribe((c) => {
      if (c) this.candidateListeners.emit(c.toJSON());
    });
  }

  /** Creates a peer from the remote's SDP offer and returns it with the SDP answer. */
  static async answer(
    offerSdp: string,
    options: AudioPeerOptions = {},
  ): Promise<{ peer: AudioPeer; answerSdp: string }> {
    const peer = new AudioPeer(options);
    try {
      const answerSdp = await peer.acceptOffer(offerSdp);
      return { peer, answerSdp };
    } catch (err) {
      await peer.close();
      throw err;
    }
  }

  /** Creates a peer that offers; pass the remote's answer to `acceptAnswer`. */
  static async offer(
    options: AudioPeerOptions = {},
  ): Promise<{ peer: AudioPeer; offerSdp: string }> {
    const peer = new AudioPeer(options);
    try {
      await peer.pc.setLocalDescription(await peer.pc.createOffer());
      return { peer, offerSdp: peer.localSdp() };
    } catch (err) {
      await peer.close();
      throw err;
    }
  }

  /**
   * Applies a remote offer (the first, or a renegotiation such as the remote's ICE restart,
   * which counts against `maxIceRestarts`) and returns the SDP answer.
   */
  async acceptOffer(offerSdp: string): Promise<string> {
    this.assertOpen();
    const ufrags = iceUfrags(offerSdp);
    const isRestart = this.remoteUfrags !== undefined && ufrags !== this.remoteUfrags;
    if (isRestart) this.takeRestart();
    await this.negotiate(() => this.pc.setRemoteDescription({ type: 'offer', sdp: offerSdp }));
    this.remoteUfrags = ufrags;
    await this.pc.setLocalDescription(await this.pc.createAnswer());
    if (isRestart) this.resumeIce();
    return this.localSdp();
  }

  /** Applies the remote's SDP answer to an offer from `offer()` or `restartIce()`. */
  async acceptAnswer(answerSdp: string): Promise<void> {
    this.assertOpen();
    const restarting = this.remoteUfrags !== undefined;
    await this.negotiate(() => this.pc.setRemoteDescription({ type: 'answer', sdp: answerSdp }));
    this.remoteUfrags = iceUfrags(answerSdp);
    if (restarting) this.resumeIce();
  }

  /** Adds a trickled remote ICE candidate (an empty candidate means end of candidates). */
  async addIceCandidate(candidate: RTCIceCandidateInit): Promise<void> {
    this.assertOpen();
    await this.pc.addIceCandidate(candidate);
  }

  /**
   * Starts the call's ICE restart (at most `maxIceRestarts`, default one) and returns the
   * offer to send to the remote; apply its answer with `acceptAnswer`. Throws when used up.
   */
  async restartIce(): Promise<string> {
    this.assertOpen();
    this.takeRestart();
    await this.pc.setLocalDescription(await this.pc.createOffer({ iceRestart: true }));
    return this.localSdp();
  }

  /** Encodes one 20 ms PCM frame (1920 bytes, 48 kHz mono s16le) and sends it; false if not connected. */
  sendAudioFrame(pcm: Buffer): boolean {
    if (pcm.length !== FRAME_BYTES)
      throw new RangeError(`audio frames are ${FRAME_BYTES} bytes, got ${pcm.length}`);
    if (this.closed || this.state !== 'connected') {
      this._stats.framesDropped++;
      return false;
    }
    const payload = this.encoder.encode(pcm);
    const now = performance.now();
    // After a pause in sending, advance the RTP clock by the time that passed (as senders
    // with DTX do) and mark a new talkspurt, so the remote's jitter buffer sees a gap, not
    // late packets.
    const pausedMs = now - this.lastSendAt;
    if (!this.firstOut && pausedMs > 3 * FRAME_MS) {
      this.outTs = (this.outTs + Math.round(pausedMs / FRAME_MS - 1) * FRAME_SAMPLES) >>> 0;
      this.firstOut = true;
    }
    this.lastSendAt = now;
    const header = new RtpHeader({
      payloadType: 111,
      sequenceNumber: this.outSeq,
      timestamp: this.outTs,
      marker: this.firstOut, // RFC 7587: marks the first packet of a talkspurt
    });
    this.outSeq = (this.outSeq + 1) & 0xffff;
    this.outTs = (this.outTs + FRAME_SAMPLES) >>> 0;
    this.firstOut = false;
    this.track.writeRtp(new RtpPacket(header, payload));
    this._stats.framesSent++;
    return true;
  }

  /** Calls `fn` with every decoded 20 ms frame from the remote; returns an unsubscribe function. */
  onAudioFrame(fn: (frame: AudioFrameIn) => void): () => void {
    return this.audioListeners.add(fn);
  }

  /** Calls `fn` on every connection-state change, with the mapped user state; returns an unsubscribe function. */
  onStateChange(fn: (change: PeerStateChange) => void): () => void {
    return this.stateListeners.add(fn);
  }

  /** Calls `fn` with each local ICE candidate (for trickle signaling); returns an unsubscribe function. */
  onIceCandidate(fn: (candidate: RTCIceCandidateInit) => void): () => void {
    return this.candidateListeners.add(fn);
  }

  /** Current werift connection state. */
  get connectionState(): PeerConnectionState {
    return this.state;
  }

  /** Current user-visible state. */
  get userState(): UserCallState {
    return userStateOf(this.state, {
      everConnected: this.everConnected,
      iceRestartsLeft: this.iceRestartsLeft,
    });
  }

  /** ICE restarts still allowed. */
  get iceRestartsLeft(): number {
    return Math.max(0, this.maxIceRestarts - this._stats.iceRestarts);
  }

  /** A copy of the counters. */
  get stats(): AudioPeerStats {
    return { ...this._stats };
  }

  /** Resolves when the connection reaches `connected`; rejects on failed/closed or after `timeoutMs`. */
  waitConnected(timeoutMs = 10_000): Promise<void> {
    if (this.state === 'connected') return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new Error(`not connected after ${timeoutMs} ms (state ${this.state})`));
      }, timeoutMs);
      const off = this.onStateChange(({ connectionState }) => {
        if (connectionState === 'connected') {
          clearTimeout(timer);
          off();
          resolve();
        } else if (connectionState === 'failed' || connectionState === 'closed') {
          clearTimeout(timer);
          off();
          reject(new Error(`connection ${connectionState}`));
        }
      });
    });
  }

  /** Closes the connection and frees the codecs; state becomes closed (Ended). Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.watchdog) clearInterval(this.watchdog);
    this.track.stop();
    try {
      await this.pc.close();
    } finally {
      this.setState('closed');
      this.encoder.close();
      this.decoder.close();
      this.chunker.reset();
      this.audioListeners.clear();
      this.stateListeners.clear();
      this.candidateListeners.clear();
    }
  }

  /** Runs one description step; says plainly when the remote has no Opus audio. */
  private async negotiate(step: () => Promise<void>): Promise<void> {
    try {
      await step();
    } catch (err) {
      // werift throws "negotiate codecs failed." when no codec matches.
      if (/codec/i.test(String(err))) throw new Error(`remote has no Opus audio (${String(err)})`);
      throw err;
    }
    if (this.transceiver.codecs.length === 0) throw new Error('remote has no Opus audio');
  }

  /**
   * werift 0.24 restarts the ICE agent on a restart negotiation but, its DTLS transport being
   * still connected, never starts the new connectivity checks, so media stops. Start them.
   */
  private resumeIce(): void {
    for (const transport of this.pc.iceTransports) {
      if (transport.connection.nominated) continue;
      transport
        .start()
        .then(() => {
          if (!this.closed && this.pc.connectionState !== 'closed') this.setState('connected');
        })
        .catch(() => {
          if (!this.closed) this.setState('failed');
        });
    }
  }

  /** Media watchdog: no RTP for `mediaTimeoutMs` while connected means the path is gone. */
  private checkMedia(): void {
    if (
      this.state === 'connected' &&
      this.lastRtpAt > 0 &&
      performance.now() - this.lastRtpAt > this.mediaTimeoutMs
    ) {
      this.setState('disconnected');
    }
  }

  private localSdp(): string {
    const sdp = this.pc.localDescription?.sdp;
    if (!sdp) throw new Error('no local description');
    // werift gathers before returning: relay-only with no relay candidate can never connect.
    if (this.relayOnly && !/^a=candidate:.* typ relay/m.test(sdp)) {
      throw new Error(
        'relay-only call has no TURN relay candidate (TURN unreachable or credentials rejected)',
      );
    }
    return sdp;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('peer is closed');
  }

  private takeRestart(): void {
    if (this.iceRestartsLeft <= 0)
      throw new Error(`ICE restart limit (${this.maxIceRestarts}) reached`);
    this._stats.iceRestarts++;
    if (this.pc.connectionState === 'failed') this.emitState();
  }

  private setState(next: PeerConnectionState): void {
    if (next === this.state) return;
    if (this.state === 'closed') return;
    this.state = next;
    if (next === 'connected') this.everConnected = true;
    this.emitState();
  }

  private emitState(): void {
    this.stateListeners.emit({ connectionState: this.state, userState: this.userState });
  }

  private subscribeRemote(remote: MediaStreamTrack): void {
    // werift re-fires onTrack with the same receiver track on renegotiation (ICE restart).
    if (this.subscribedTracks.has(remote)) return;
    this.subscribedTracks.add(remote);
    remote.onReceiveRtp.subscribe((rtp) => this.receiveRtp(rtp));
  }

  private receiveRtp(rtp: RtpPacket): void {
    if (this.closed) return;
    const { sequenceNumber, timestamp } = rtp.header;
    this._stats.packetsReceived++;
    this.lastRtpAt = performance.now();
    if (this.state === 'disconnected' && this.pc.connectionState === 'connected')
      this.setState('connected');
    if (this.lastSeq !== undefined && this.lastTs !== undefined) {
      const dSeq = seqDelta(sequenceNumber, this.lastSeq);
      if (dSeq <= 0) {
        this._stats.packetsLate++;
        return;
      }
      this._stats.packetsLost += dSeq - 1;
      const dTs = (timestamp - this.lastTs) | 0; // signed 32-bit difference
      this.position += Math.max(0, dTs);
    }
    this.lastSeq = sequenceNumber;
    this.lastTs = timestamp;
    if (rtp.payload.length === 0) return;

    let pcm: Buffer;
    try {
      pcm = this.decoder.decode(rtp.payload);
    } catch {
      this._stats.decodeErrors++;
      return;
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
      const timestampOut = this.chunkPos;
      this.chunkPos += FRAME_SAMPLES;
      this._stats.framesDecoded++;
      this.audioListeners.emit({ pcm: frame, timestamp: timestampOut });
    }
  }
}
