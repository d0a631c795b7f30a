/**
 * The calls whose media this bridge process holds: one `CallPeer` per call (a werift peer on a
 * media thread, or on this one), linked to its agent's audio socket. Durable state lives in
 * `voiceCallWorkflow`; this is the live, process-bound part it drives through the host's
 * activities (prepare, restart ICE, check, close) and that the signaling server and `webrtc.*`
 * RPCs negotiate with.
 *
 * Peer facts flow back to the workflow through `events` (signals): connected, disconnected,
 * failed, hangup. SDP, candidates and the agent's audio never leave this process except to the
 * caller and the agent; nothing here is written to disk.
 */
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { RTCIceCandidateInit } from 'werift';
import type { PeerConnectionState, UserCallState } from '../machines/voice-call.machine';
import type { CallPeer, CallPeers } from './call-peer';
import type { ServerMessage, SignalingBackend, SignalingSink } from './signaling-types';

/** The agent end of a call: its audio socket, handed over by the container socket hub. */
export interface AgentAudio {
  attachAudio(
    containerName: string,
    sessionId: string,
    opts?: { timeoutMs?: number },
  ): Promise<Duplex>;
  detachAudio(containerName: string, sessionId: string): void;
}

/** How peer facts reach the call's workflow. */
export interface CallEvents {
  peer(sessionId: string, event: 'connected' | 'disconnected' | 'failed'): Promise<void>;
  hangup(sessionId: string, reason: string): Promise<void>;
}

export interface CallMediaHubDeps {
  agents: AgentAudio;
  events: CallEvents;
  /** Where the calls' peers run: this thread or media threads. */
  peers: CallPeers;
  log: Logger;
}

/** A failure the workflow tells apart (`code`), e.g. the agent is on another call. */
export class CallMediaError extends Error {
  constructor(
    readonly code: 'agent_busy' | 'agent_unavailable' | 'not_found' | 'no_signaling' | 'bad_sdp',
    message: string,
  ) {
    super(message);
  }
}

interface Call {
  sessionId: string;
  containerName: string;
  agent: Duplex;
  peer?: CallPeer;
  sink?: SignalingSink;
  /** Candidates that arrived before the offer. */
  early: RTCIceCandidateInit[];
  state: UserCallState;
  negotiating?: Promise<unknown>;
}

export class CallMediaHub implements SignalingBackend {
  private readonly calls = new Map<string, Call>();
  private readonly preparing = new Map<string, Promise<void>>();

  constructor(private readonly deps: CallMediaHubDeps) {}

  /** Binds the call to its agent's audio (idempotent: a retried activity finds it done). */
  prepare(sessionId: string, containerName: string): Promise<void> {
    if (this.calls.has(sessionId)) return Promise.resolve();
    let pending = this.preparing.get(sessionId);
    if (!pending) {
      pending = this.attachAgent(sessionId, containerName).finally(() =>
        this.preparing.delete(sessionId),
      );
      this.preparing.set(sessionId, pending);
    }
    return pending;
  }

  private async attachAgent(sessionId: string, containerName: string): Promise<void> {
    let agent: Duplex;
    try {
      agent = await this.deps.agents.attachAudio(containerName, sessionId);
    } catch (err) {
      const code = (err as { code?: string }).code;
      throw new CallMediaError(
        code === 'agent_busy' ? 'agent_busy' : 'agent_unavailable',
        `agent ${containerName}: ${(err as Error).message}`,
      );
    }
    this.calls.set(sessionId, { sessionId, containerName, agent, early: [], state: 'Connecting' });
    this.deps.log.info({ sessionId, containerName }, 'call media prepared');
  }

  has(sessionId: string): boolean {
    return this.calls.has(sessionId);
  }

  /** The live call an agent is on, if any. */
  sessionOfAgent(containerName: string): string | undefined {
    for (const call of this.calls.values())
      if (call.containerName === containerName) return call.sessionId;
    return undefined;
  }

  get size(): number {
    return this.calls.size;
  }

  async offer(sessionId: string, sdp: string): Promise<string> {
    const call = this.get(sessionId);
    return this.serially(call, async () => {
      if (call.peer) return call.peer.acceptOffer(sdp); // a re-offer: the caller restarts ICE
      let created: { peer: CallPeer; answerSdp: string };
      try {
        created = await this.deps.peers.answer(sdp, call.agent);
      } catch (err) {
        throw new CallMediaError('bad_sdp', `offer refused: ${(err as Error).message}`);
      }
      if (!this.calls.has(sessionId)) {
        // Ended while the answer was being made.
        await created.peer.close();
        throw new CallMediaError('not_found', `call ${sessionId} has ended`);
      }
      this.wire(call, created.peer);
      this.deps.log.info({ sessionId, media: this.deps.peers.describe() }, 'call media answered');
      return created.answerSdp;
    });
  }

  async answer(sessionId: string, sdp: string): Promise<void> {
    const call = this.get(sessionId);
    if (!call.peer) throw new CallMediaError('bad_sdp', 'no offer of the bridge to answer');
    await this.serially(call, () => call.peer!.acceptAnswer(sdp));
  }

  async addIceCandidate(sessionId: string, candidate: RTCIceCandidateInit): Promise<void> {
    const call = this.get(sessionId);
    if (!call.peer) {
      if (call.early.length < 100) call.early.push(candidate);
      return;
    }
    await call.peer.addIceCandidate(candidate);
  }

  async hangup(sessionId: string, reason: string): Promise<void> {
    this.get(sessionId);
    await this.deps.events.hangup(sessionId, reason);
  }

  attach(sessionId: string, sink: SignalingSink): () => void {
    const call = this.get(sessionId);
    call.sink = sink;
    sink({ type: 'state', session_id: sessionId, payload: { state: call.state } });
    return () => {
      if (call.sink === sink) call.sink = undefined;
    };
  }

  /** The workflow's one ICE restart: a new offer to the caller over signaling. */
  async restartIce(sessionId: string): Promise<void> {
    const call = this.get(sessionId);
    if (!call.peer) throw new CallMediaError('not_found', 'the call has no peer yet');
    if (!call.sink)
      throw new CallMediaError('no_signaling', 'no signaling client to renegotiate with');
    const sdp = await this.serially(call, () => call.peer!.restartIce());
    call.sink({ type: 'offer', session_id: sessionId, payload: { sdp } });
  }

  /** Tears the call's media down; tells the signaling client how it ended. Idempotent. */
  async close(sessionId: string, end: { reason: string; state: UserCallState }): Promise<void> {
    await this.preparing.get(sessionId)?.catch(() => undefined);
    const call = this.calls.get(sessionId);
    if (!call) return;
    this.calls.delete(sessionId);
    call.state = end.state;
    this.send(call, { type: 'bye', session_id: sessionId, payload: end });
    await call.peer?.close().catch(() => undefined);
    this.deps.agents.detachAudio(call.containerName, sessionId);
    call.agent.destroy();
    this.deps.log.info({ sessionId, reason: end.reason, state: end.state }, 'call media closed');
  }

  /** Shutdown: drops every peer without telling workflows (they learn it from the media check). */
  async closeAll(): Promise<void> {
    const ids = [...this.calls.keys()];
    await Promise.all(
      ids.map((id) => this.close(id, { reason: 'bridge_stopped', state: 'Failed' })),
    );
    await this.deps.peers.close();
  }

  private wire(call: Call, peer: CallPeer): void {
    call.peer = peer;
    const { sessionId } = call;
    peer.onIceCandidate((candidate) =>
      this.send(call, { type: 'ice', session_id: sessionId, payload: candidate }),
    );
    peer.onStateChange(({ connectionState, userState }) => {
      if (!this.calls.has(sessionId)) return;
      if (userState !== call.state && userState !== 'Ended') {
        call.state = userState;
        this.send(call, { type: 'state', session_id: sessionId, payload: { state: userState } });
      }
      const event = PEER_EVENTS[connectionState];
      if (event) {
        this.deps.events
          .peer(sessionId, event)
          .catch((err) =>
            this.deps.log.warn({ err, sessionId, event }, 'could not tell the call workflow'),
          );
      }
    });
    peer.agentDone.catch((err) =>
      this.deps.log.warn({ err: (err as Error).message, sessionId }, 'agent audio stream broke'),
    );
    for (const candidate of call.early.splice(0)) {
      peer.addIceCandidate(candidate).catch(() => undefined);
    }
  }

  private send(call: Call, message: ServerMessage): void {
    try {
      call.sink?.(message);
    } catch (err) {
      this.deps.log.warn({ err, sessionId: call.sessionId }, 'signaling send failed');
    }
  }

  /** One negotiation step at a time per call (offer, answer, restart). */
  private serially<T>(call: Call, step: () => Promise<T>): Promise<T> {
    const run = (call.negotiating ?? Promise.resolve()).catch(() => undefined).then(step);
    call.negotiating = run;
    return run;
  }

  private get(sessionId: string): Call {
    const call = this.calls.get(sessionId);
    if (!call) throw new CallMediaError('not_found', `no live call ${sessionId} on this bridge`);
    return call;
  }
}

const PEER_EVENTS: Partial<Record<PeerConnectionState, 'connected' | 'disconnected' | 'failed'>> = {
  connected: 'connected',
  disconnected: 'disconnected',
  failed: 'failed',
};
