/**
 * The signaling protocol's messages and what the signaling server needs of the bridge's call
 * media (`CallMediaHub` implements `SignalingBackend`). One WebSocket speaks for one session: the
 * session is the one its call token names; messages are routed to that session only.
 *
 * Every message is a JSON object `{ type, session_id, payload }` (docs/signaling.md).
 */
import type { RTCIceCandidateInit } from 'werift';
import type { UserCallState } from '../machines/voice-call.machine';

/** Client → bridge. */
export type ClientMessage =
  /**
   * First message on every socket, within 5 s: the call session token from `webrtc.start`
   * (never in the URL, where proxies log it). The server answers with `state`.
   */
  | { type: 'hello'; session_id: string; payload: { token: string } }
  /** The caller's offer; the bridge replies `answer`. A re-offer (ICE restart) is allowed once. */
  | { type: 'offer'; session_id: string; payload: { sdp: string } }
  /** The caller's answer to a bridge offer (the bridge restarts ICE with an offer). */
  | { type: 'answer'; session_id: string; payload: { sdp: string } }
  /** A trickled candidate; `null` or `{}` payload: end of candidates. */
  | { type: 'ice'; session_id: string; payload: RTCIceCandidateInit | null }
  /** The caller hangs up. */
  | { type: 'bye'; session_id: string; payload: { reason?: string } };

/** Bridge → client. */
export type ServerMessage =
  | { type: 'answer'; session_id: string; payload: { sdp: string } }
  | { type: 'offer'; session_id: string; payload: { sdp: string } }
  | { type: 'ice'; session_id: string; payload: RTCIceCandidateInit }
  /** The call ended; `state` is Ended or Failed. The server closes the socket after it. */
  | { type: 'bye'; session_id: string; payload: { reason: string; state: UserCallState } }
  /** The user-visible state changed (Connecting, Live, Reconnecting, Ended, Failed). */
  | { type: 'state'; session_id: string; payload: { state: UserCallState } }
  | { type: 'error'; session_id: string | null; payload: { code: string; message: string } };

/** Outbound messages of one session's signaling client. */
export type SignalingSink = (message: ServerMessage) => void;

/** What the signaling server asks of the call media on this bridge. */
export interface SignalingBackend {
  /** Whether the session is live on this bridge (prepared and not ended). */
  has(sessionId: string): boolean;
  /** Applies the caller's offer; resolves with the bridge's answer SDP. */
  offer(sessionId: string, sdp: string): Promise<string>;
  /** Applies the caller's answer to the bridge's (ICE restart) offer. */
  answer(sessionId: string, sdp: string): Promise<void>;
  addIceCandidate(sessionId: string, candidate: RTCIceCandidateInit): Promise<void>;
  /** The caller hung up (signaling `bye`): the call workflow ends the call. */
  hangup(sessionId: string, reason: string): Promise<void>;
  /**
   * Routes the session's outbound messages (trickled bridge candidates, a restart offer, state,
   * bye) to `sink`, replacing an earlier sink; the current state is sent at once. Returns detach.
   */
  attach(sessionId: string, sink: SignalingSink): () => void;
}

/** One audit record the server asks its owner to write (the bridge's audit log). */
export interface SignalingAuditEntry {
  event_type: 'security_violation';
  session_id?: string;
  room_id?: string;
  details: Record<string, unknown>;
}
