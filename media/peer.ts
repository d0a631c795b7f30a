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
  type RtpPacket,
  type RTCIceCandidateInit,
  type RTCRtpTransceiver,
} from 'werift';
import {
  MAX_ICE_RESTARTS,
  userStateOf,
  type PeerConnectionState,
  type UserCallState,
} from '../machines/voice-call.machine';
import { FRAME_BYTES } from './pcm';
import {
  emptyAudioPeerStats,
  iceServersOf,
  type AudioFrameIn,
  type AudioPeerOptions,
  type AudioPeerStats,
  type PeerStateChange,
} from './peer-options';
import { OPUS_PAYLOAD_TYPE, RtpAudioReceiver, RtpAudioSender } from './rtp-audio';

// The voice machine's module owns what a caller sees and how many ICE restarts a call gets.
export type { PeerConnectionState } from '../machines/voice-call.machine';
export { userStateOf } from '../machines/voice-call.machine';
export * from './peer-options';

/** Opus only: the one codec the bridge decodes, at the payload type browsers use. */
function opusCodec(): RTCRtpCodecParameters {
  return new RTCRtpCodecParameters({
    mimeType: 'audio/opus',
    clockRate: 48_000,
    channels: 2,
    payloadType: OPUS_PAYLOAD_TYPE,
    parameters: 'minptime=10;useinbandfec=1',
  });
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
  private readonly sender: RtpAudioSender;
  private readonly receiver = new RtpAudioReceiver();
  private readonly maxIceRestarts: number;

  private readonly audioListeners = new Listeners<AudioFrameIn>();
  private readonly stateListeners = new Listeners<PeerStateChange>();
  private readonly candidateListeners = new Listeners<RTCIceCandidateInit>();
  private readonly subscribedTracks = new WeakSet<MediaStreamTrack>();

  private readonly mediaTimeoutMs: number;
  private readonly relayOnly: boolean;
  private watchdog: NodeJS.Timeout | undefined;
  private lastRtpAt = 0;

  private state: PeerConnectionState = 'new';
  private everConnected = false;
  private closed = false;
  private remoteUfrags: string | undefined;

  private readonly _stats = emptyAudioPeerStats();

  private constructor(options: AudioPeerOptions) {
    this.maxIceRestarts = options.maxIceRestarts ?? MAX_ICE_RESTARTS;
    this.mediaTimeoutMs = options.mediaTimeoutMs ?? 4000;
    this.relayOnly = options.iceTransportPolicy === 'relay';
    this.sender = new RtpAudioSender(options.opus);
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
    this.track.writeRtp(this.sender.packetFor(pcm, performance.now()));
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
      this.sender.close();
      this.receiver.close();
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
    this._stats.packetsReceived++;
    this.lastRtpAt = performance.now();
    if (this.state === 'disconnected' && this.pc.connectionState === 'connected')
      this.setState('connected');
    const got = this.receiver.receive(rtp);
    if (got.late) this._stats.packetsLate++;
    if (got.decodeError) this._stats.decodeErrors++;
    this._stats.packetsLost += got.lost;
    for (const frame of got.frames) {
      this._stats.framesDecoded++;
      this.audioListeners.emit(frame);
    }
  }
}
