/**
 * A real media `SignalingBackend` without Temporal, for browser tests of the signaling server:
 * each session gets a werift `AudioPeer` (answering the caller's offer) linked over a real Unix
 * socket to an in-process echo agent, so the caller hears its own microphone back. It records
 * what the bridge decoded and every hangup, so a test can check both directions of audio.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { RTCIceCandidateInit } from 'werift';
import { linkAgent, type AgentLink } from '../../media/agent-link';
import { runEchoAgent, type EchoAgentHandle } from '../../media/echo';
import { AudioPeer, type AudioPeerOptions, type CallUserState } from '../../media/peer';
import type { SignalingBackend, SignalingSink } from '../../media/signaling-types';

interface Session {
  peer?: AudioPeer;
  link?: AgentLink;
  agent?: EchoAgentHandle;
  closeSockets?: () => void;
  sink?: SignalingSink;
  state: CallUserState;
  /** Caller PCM frames the bridge decoded (what the agent hears). */
  decoded: Buffer[];
  /** Candidates that arrived before the offer. */
  early: RTCIceCandidateInit[];
}

/** Keeps at most this many decoded frames per session (60 s). */
const MAX_DECODED_FRAMES = 3000;

export class EchoMediaBackend implements SignalingBackend {
  private readonly sessions = new Map<string, Session>();
  readonly hangups: { sessionId: string; reason: string }[] = [];

  constructor(
    private readonly peerOptions: AudioPeerOptions = {
      iceServers: [],
      additionalHostAddresses: ['127.0.0.1'],
    },
  ) {}

  /** Prepares a session, as `webrtc.start` would. */
  addSession(sessionId: string): void {
    this.sessions.set(sessionId, { state: 'Connecting', decoded: [], early: [] });
  }

  /** The caller's audio as the bridge decoded it (48 kHz mono s16le, concatenated). */
  decodedAudio(sessionId: string, lastFrames = 100): Buffer {
    return Buffer.concat(this.get(sessionId).decoded.slice(-lastFrames));
  }

  /** Frames the echo agent received. */
  agentFrames(sessionId: string): number {
    return this.get(sessionId).agent?.received() ?? 0;
  }

  has(sessionId: string): boolean {
    return this.sessions.has(sessionId);
  }

  async offer(sessionId: string, sdp: string): Promise<string> {
    const session = this.get(sessionId);
    if (session.peer) return session.peer.acceptOffer(sdp);
    const { peer, answerSdp } = await AudioPeer.answer(sdp, this.peerOptions);
    session.peer = peer;
    peer.onStateChange(({ userState }) => this.setState(sessionId, userState));
    peer.onIceCandidate((candidate) =>
      session.sink?.({ type: 'ice', session_id: sessionId, payload: candidate }),
    );
    peer.onAudioFrame(({ pcm }) => {
      session.decoded.push(pcm);
      if (session.decoded.length > MAX_DECODED_FRAMES) session.decoded.shift();
    });
    const { bridgeEnd, agentEnd, close } = await unixSocketPair();
    session.closeSockets = close;
    session.agent = runEchoAgent(agentEnd);
    session.link = linkAgent(peer, bridgeEnd);
    for (const c of session.early.splice(0)) await peer.addIceCandidate(c);
    return answerSdp;
  }

  async answer(sessionId: string, sdp: string): Promise<void> {
    const peer = this.get(sessionId).peer;
    if (!peer) throw new Error('no offer was made');
    await peer.acceptAnswer(sdp);
  }

  async addIceCandidate(sessionId: string, candidate: RTCIceCandidateInit): Promise<void> {
    const session = this.get(sessionId);
    if (session.peer) await session.peer.addIceCandidate(candidate);
    else session.early.push(candidate);
  }

  async hangup(sessionId: string, reason: string): Promise<void> {
    this.hangups.push({ sessionId, reason });
    await this.end(sessionId, reason);
  }

  attach(sessionId: string, sink: SignalingSink): () => void {
    const session = this.get(sessionId);
    session.sink = sink;
    sink({ type: 'state', session_id: sessionId, payload: { state: session.state } });
    return () => {
      if (session.sink === sink) session.sink = undefined;
    };
  }

  /** Ends the call from the bridge side: `bye` to the caller, then media torn down. */
  async end(sessionId: string, reason: string, state: 'Ended' | 'Failed' = 'Ended'): Promise<void> {
    const session = this.sessions.get(sessionId);
    if (!session) return;
    this.sessions.delete(sessionId);
    session.sink?.({ type: 'bye', session_id: sessionId, payload: { reason, state } });
    session.link?.close();
    await session.peer?.close();
    session.closeSockets?.();
  }

  /** Ends every call. */
  async close(): Promise<void> {
    for (const id of [...this.sessions.keys()]) await this.end(id, 'test over');
  }

  private setState(sessionId: string, state: CallUserState): void {
    const session = this.sessions.get(sessionId);
    if (!session || session.state === state) return;
    session.state = state;
    session.sink?.({ type: 'state', session_id: sessionId, payload: { state } });
  }

  private get(sessionId: string): Session {
    const session = this.sessions.get(sessionId);
    if (!session) throw new Error(`no session ${sessionId}`);
    return session;
  }
}

/** A connected pair of Unix sockets (the agent's audio socket is one in production). */
async function unixSocketPair(): Promise<{
  bridgeEnd: Socket;
  agentEnd: Socket;
  close: () => void;
}> {
  const dir = mkdtempSync(path.join(tmpdir(), 'echo-agent-'));
  const socketPath = path.join(dir, 'audio.sock');
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
  const bridgeEnd = connect(socketPath);
  await new Promise<void>((resolve) => bridgeEnd.once('connect', () => resolve()));
  const agentEnd = await accepted;
  return {
    bridgeEnd,
    agentEnd,
    close: () => {
      bridgeEnd.destroy();
      agentEnd.destroy();
      server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
