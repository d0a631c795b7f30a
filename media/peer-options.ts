/**
 * What an AudioPeer is given and what it reports: its options (ICE and TURN servers, timeouts,
 * Opus settings), the frames it hands out, its counters and its state changes.
 */
import type { RTCIceServer } from 'werift';
import type { PeerConnectionState, UserCallState } from '../machines/voice-call.machine';
import type { OpusEncoderOptions } from './opus';

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
