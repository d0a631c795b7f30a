/**
 * A call's media as the call hub sees it: the caller's WebRTC peer joined to the agent's audio
 * stream, wherever it runs. `InProcessPeers` runs it on the calling thread (an `AudioPeer` and
 * `linkAgent`); `MediaThreads` (media-threads.ts) runs it on a worker thread, so SRTP, Opus and
 * play-out pacing stay off the bridge's main event loop.
 */
import type { Duplex } from 'node:stream';
import type { RTCIceCandidateInit } from 'werift';
import type { AudioPeerOptions, PeerStateChange } from './peer-options';
import type { OpusBackend } from './opus';

/** One call's peer and agent link. */
export interface CallPeer {
  /** A re-offer from the caller (an ICE restart): the answer SDP. */
  acceptOffer(sdp: string): Promise<string>;
  /** The caller's answer to an offer of the bridge (its ICE restart). */
  acceptAnswer(sdp: string): Promise<void>;
  addIceCandidate(candidate: RTCIceCandidateInit): Promise<void>;
  /** The bridge's ICE restart: the offer to signal to the caller. */
  restartIce(): Promise<string>;
  onStateChange(fn: (change: PeerStateChange) => void): void;
  onIceCandidate(fn: (candidate: RTCIceCandidateInit) => void): void;
  /** Settles when the agent's stream ends (END or closed); rejects when it broke. */
  readonly agentDone: Promise<void>;
  /** Sends END to the agent and closes the peer. Idempotent. */
  close(): Promise<void>;
}

/** Where calls' media runs. */
export interface CallPeers {
  /** A peer for the caller's offer, linked to the agent's stream: the peer and the SDP answer. */
  answer(offerSdp: string, agent: Duplex): Promise<{ peer: CallPeer; answerSdp: string }>;
  /** Where the media runs, for logs and `status`. */
  describe(): { threads: number; opus?: OpusBackend };
  /** Drops every peer and stops any threads. */
  close(): Promise<void>;
}

/**
 * werift and the Opus codec load with the first call, not with the bridge: an idle bridge does
 * not hold them (tens of MB).
 */
let loaded: { peer: typeof import('./peer'); link: typeof import('./agent-link') } | undefined;
const media = () =>
  (loaded ??= {
    peer: require('./peer') as typeof import('./peer'),
    link: require('./agent-link') as typeof import('./agent-link'),
  });

/** Media on this thread. */
export class InProcessPeers implements CallPeers {
  private readonly live = new Set<CallPeer>();

  constructor(private readonly options: AudioPeerOptions) {}

  async answer(offerSdp: string, agent: Duplex): Promise<{ peer: CallPeer; answerSdp: string }> {
    const { peer, answerSdp } = await media().peer.AudioPeer.answer(offerSdp, this.options);
    const link = media().link.linkAgent(peer, agent);
    const live = this.live;
    const call: CallPeer = {
      acceptOffer: (sdp) => peer.acceptOffer(sdp),
      acceptAnswer: (sdp) => peer.acceptAnswer(sdp),
      addIceCandidate: (candidate) => peer.addIceCandidate(candidate),
      restartIce: () => peer.restartIce(),
      onStateChange: (fn) => void peer.onStateChange(fn),
      onIceCandidate: (fn) => void peer.onIceCandidate(fn),
      agentDone: link.done,
      async close() {
        live.delete(call);
        link.close();
        await peer.close().catch(() => undefined);
      },
    };
    live.add(call);
    return { peer: call, answerSdp };
  }

  describe(): { threads: number; opus?: OpusBackend } {
    if (!loaded) return { threads: 0 };
    return { threads: 0, opus: (require('./opus') as typeof import('./opus')).opusBackend() };
  }

  async close(): Promise<void> {
    await Promise.all([...this.live].map((peer) => peer.close()));
  }
}
