/**
 * The agent's audio channel: `<dir>/audio.sock` next to a container's `bridge.sock`, seen by the
 * agent at /run/armorclaw/audio.sock. A voice call borrows it with `attach`: the bridge tells the
 * agent over its control connection (`audio.start`), and the agent's next connection on
 * audio.sock carries the call's PCM frames (media/pcm-framing.ts, media/README.md). One call at a
 * time per container; the call gives the channel back with `detach` (`audio.end`).
 */
import { chmod, chown, lstat, unlink } from 'node:fs/promises';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { FRAME_MS, SAMPLE_RATE } from '../media/pcm';
import type { RpcSocketServer } from './socket-server';

/** Why `attachAudio` refused; the codes are what callers (the voice call) map to their errors. */
export const AgentAudioErrorCode = {
  /** The container has no open socket on this bridge (unknown, or already closed). */
  Unavailable: 'agent_unavailable',
  /** Another call holds the container's audio channel. */
  Busy: 'agent_busy',
  /** The agent did not connect to audio.sock in time after `audio.start`. */
  Timeout: 'agent_audio_timeout',
  /** `detachAudio` was called for the session while its attach was still waiting. */
  Cancelled: 'agent_audio_cancelled',
} as const;
export type AgentAudioErrorCode = (typeof AgentAudioErrorCode)[keyof typeof AgentAudioErrorCode];

export class AgentAudioError extends Error {
  override readonly name = 'AgentAudioError';
  constructor(
    readonly code: AgentAudioErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** The `format` of `audio.start`: the only one the framing carries (media/pcm.ts). */
export const AGENT_AUDIO_FORMAT = {
  sample_rate: SAMPLE_RATE,
  channels: 1,
  sample_format: 's16le',
  frame_ms: FRAME_MS,
} as const;

export const DEFAULT_AUDIO_ATTACH_TIMEOUT_MS = 5_000;

export interface AudioChannelOptions {
  socketPath: string;
  /** The agent's gid: it gets the socket (0660), as for bridge.sock. Applied only as root. */
  groupId?: number;
  /** The container's control socket, where `audio.start` / `audio.end` go. */
  control: RpcSocketServer;
  log: Logger;
}

interface Attachment {
  sessionId: string;
  /** Set while waiting for the agent's connection. */
  waiting?: {
    resolve(stream: Duplex): void;
    reject(err: AgentAudioError): void;
    timer: NodeJS.Timeout;
  };
  socket?: net.Socket;
}

/** One container's audio.sock and the call (if any) that holds it. */
export class ContainerAudioChannel {
  private server?: net.Server;
  private current?: Attachment;
  private closed = false;

  constructor(private readonly options: AudioChannelOptions) {
    // An agent that (re)connects its control socket while an attach waits must still hear
    // `audio.start`: it may have missed the first one (not yet connected, or reconnecting).
    options.control.onConnection((ctx) => {
      const waiting = this.current?.waiting ? this.current : undefined;
      if (waiting) ctx.notify('audio.start', startParams(waiting.sessionId));
    });
  }

  async listen(): Promise<void> {
    const { socketPath, groupId } = this.options;
    // bridge.sock's server has just claimed the directory, so a socket here is a dead bridge's.
    const stale = await lstat(socketPath).catch(() => undefined);
    if (stale?.isSocket()) await unlink(socketPath);
    const server = net.createServer((socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.options.log.error({ err }, 'audio socket error'));
    await chmod(socketPath, 0o660);
    if (groupId !== undefined && process.getuid?.() === 0) await chown(socketPath, 0, groupId);
    this.server = server;
  }

  /** Asks the agent to connect for `sessionId` and resolves with its audio connection. */
  attach(sessionId: string, timeoutMs = DEFAULT_AUDIO_ATTACH_TIMEOUT_MS): Promise<Duplex> {
    if (this.closed || !this.server) {
      return Promise.reject(
        new AgentAudioError(AgentAudioErrorCode.Unavailable, 'the agent socket is closed'),
      );
    }
    if (this.current) {
      return Promise.reject(
        new AgentAudioError(AgentAudioErrorCode.Busy, 'the agent is already in a call'),
      );
    }
    const attachment: Attachment = { sessionId };
    this.current = attachment;
    return new Promise<Duplex>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.current !== attachment) return;
        this.current = undefined;
        // The agent may still be on its way: tell it the call is off, so it does not connect.
        this.options.control.notifyAll('audio.end', { session_id: sessionId });
        this.options.log.warn({ sessionId, timeoutMs }, 'agent did not connect its audio');
        reject(
          new AgentAudioError(
            AgentAudioErrorCode.Timeout,
            `the agent did not connect its audio within ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      attachment.waiting = { resolve, reject, timer };
      const told = this.options.control.notifyAll('audio.start', startParams(sessionId));
      this.options.log.info({ sessionId, controlConnections: told }, 'audio.start sent');
    });
  }

  /** Ends `sessionId`'s hold on the channel: `audio.end`, its connection closed. Idempotent. */
  detach(sessionId: string): void {
    const attachment = this.current;
    if (!attachment || attachment.sessionId !== sessionId) return;
    this.current = undefined;
    this.options.control.notifyAll('audio.end', { session_id: sessionId });
    this.release(
      attachment,
      new AgentAudioError(
        AgentAudioErrorCode.Cancelled,
        'the call ended before the agent connected',
      ),
    );
    this.options.log.info({ sessionId }, 'audio detached');
  }

  /** Stops serving audio.sock and removes it; a waiting attach fails as `agent_unavailable`. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const attachment = this.current;
    this.current = undefined;
    if (attachment) {
      this.release(
        attachment,
        new AgentAudioError(AgentAudioErrorCode.Unavailable, 'the agent socket closed'),
      );
    }
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    await unlink(this.options.socketPath).catch(() => undefined);
  }

  private release(attachment: Attachment, reason: AgentAudioError): void {
    if (attachment.waiting) {
      clearTimeout(attachment.waiting.timer);
      attachment.waiting.reject(reason);
      attachment.waiting = undefined;
    }
    attachment.socket?.destroy();
  }

  private accept(socket: net.Socket): void {
    const attachment = this.current;
    const waiting = attachment?.waiting;
    // Only the connection an attach is waiting for carries audio; anything else is refused.
    if (this.closed || !attachment || !waiting) {
      this.options.log.debug('audio connection without a waiting call closed');
      socket.destroy();
      return;
    }
    clearTimeout(waiting.timer);
    attachment.waiting = undefined;
    attachment.socket = socket;
    // The call's own listeners report errors; this one keeps a reset from crashing the process.
    socket.on('error', (err) =>
      this.options.log.debug({ err, sessionId: attachment.sessionId }, 'audio connection error'),
    );
    this.options.log.info({ sessionId: attachment.sessionId }, 'agent audio connected');
    waiting.resolve(socket);
  }
}

function startParams(sessionId: string) {
  return { session_id: sessionId, format: AGENT_AUDIO_FORMAT };
}
