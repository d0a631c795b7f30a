import { mkdir, rm, symlink, unlink, readlink } from 'node:fs/promises';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import type { Client } from '@temporalio/client';
import type { Logger } from 'pino';
import { z } from 'zod';
import {
  agentNotifySignal,
  containerWorkflowId,
  secretsAckedSignal,
  type AgentNotification,
} from '../workflows/definitions';
import { publicEvent, type MatrixInbox } from '../matrix/inbox';
import type { LeakGuard } from '../services/leak-guard';
import type { MatrixStore } from '../services/matrix-store';
import { registerAgentBudgetMethods, type AgentBudgetDeps } from './methods/budget';
import { registerAgentApprovalMethods, type AgentApprovalDeps } from './methods/approvals';
import { AgentAudioError, AgentAudioErrorCode, ContainerAudioChannel } from './container-audio';
import { RpcDispatcher } from './dispatcher';
import { ErrorCode, RpcError } from './errors';
import { parseParams } from './params';
import { PeerRequestError, RpcSocketServer } from './socket-server';

/** Where a container's socket lives on the host; the directory is what gets mounted. */
export interface ContainerSocketPaths {
  /** Bind-mounted into the container at /run/armorclaw (a directory: docs/architecture.md, rule 8). */
  dir: string;
  socket: string;
  /** The agent's audio channel (PCM frames of one call at a time); see rpc/container-audio.ts. */
  audioSocket: string;
  /** The spec's `endpoint`: `containers/<name>.sock`, a link to the socket in the directory. */
  endpoint: string;
}

export function containerSocketPaths(
  bridgeSocketPath: string,
  containerName: string,
): ContainerSocketPaths {
  const base = path.join(path.dirname(bridgeSocketPath), 'containers');
  const dir = path.join(base, containerName);
  return {
    dir,
    socket: path.join(dir, 'bridge.sock'),
    audioSocket: path.join(dir, 'audio.sock'),
    endpoint: path.join(base, `${containerName}.sock`),
  };
}

/** What the hub needs to bind agents to Matrix rooms (absent when Matrix is off). */
export interface AgentMatrixDeps {
  store: MatrixStore;
  inbox: MatrixInbox;
  /** Sends into a room exactly once (through matrixSendWorkflow). */
  send(
    roomId: string,
    body: string,
    msgtype: string,
    idempotencyKey?: string,
  ): Promise<{ event_id: string; room_id: string }>;
}

export interface ContainerSocketHubDeps {
  bridgeSocketPath: string;
  matrix?: AgentMatrixDeps;
  agentGid: number;
  client: Client;
  /** Usage reports (`budget.report`); absent: the method is not offered. */
  budget?: AgentBudgetDeps;
  /** Approval requests and grants (`approval.*`); absent: the methods are not offered. */
  approvals?: Omit<AgentApprovalDeps, 'audit' | 'refuseLeaks' | 'log'>;
  /** Writes an audit entry (errors from agents, for instance). */
  audit(entry: { event_type: string; session_id: string; details: Record<string, unknown> }): void;
  /**
   * The guard over the stored credentials: what an agent sends out (`matrix.send`, `notify`)
   * is refused when it holds one. Absent: nothing is checked.
   */
  leakGuard?(): LeakGuard;
  /** Tells the operators (the admin room) of a blocked leak; the text names no secret. */
  reportViolation?(text: string): void;
  log: Logger;
}

const notifyParams = z.strictObject({
  kind: z.enum(['status', 'progress', 'error']),
  message: z.string().max(1024),
  data: z.record(z.string(), z.unknown()).optional(),
});
const ackParams = z.strictObject({ key_id: z.string().max(128).optional() });
const heartbeatParams = z.strictObject({
  seq: z.number().int().optional(),
  uptime_ms: z.number().optional(),
});
const matrixAckParams = z.strictObject({ seq: z.number().int().positive() });
const matrixSendParams = z.strictObject({
  message: z
    .string()
    .min(1)
    .max(32 * 1024),
  msgtype: z.enum(['m.text', 'm.notice']).optional(),
  /** The same key always means the same message: a retry returns the first send's receipt. */
  idempotency_key: z
    .string()
    .regex(/^[A-Za-z0-9._:$=+-]{1,128}$/)
    .optional(),
});

/** Unacknowledged room events are pushed again this often while the agent is connected. */
const REDELIVER_MS = 5_000;
const BACKLOG_LIMIT = 100;
const bindingKey = (name: string) => `room-binding:${name}`;
const consumerOf = (name: string) => `agent:${name}`;

/** Notifications one container may send per second; more are refused (they become history). */
const NOTIFY_PER_SECOND = 10;

interface Served {
  server: RpcSocketServer;
  audio: ContainerAudioChannel;
  cleanup: Array<() => void>;
  lastHeartbeatMs?: number;
  notifyWindowStart: number;
  notifyCount: number;
}

/**
 * The per-container JSON-RPC sockets. Each agent reaches only its own run: the socket it talks
 * on names the container, so its calls can never touch another run.
 */
export class ContainerSocketHub {
  private readonly served = new Map<string, Served>();

  constructor(private readonly deps: ContainerSocketHubDeps) {}

  /**
   * Opens (or keeps) the socket of `containerName`; idempotent across retries and restarts.
   * With `roomId` the agent is bound to that Matrix room: its events are pushed to the agent and
   * the agent may send there (the binding is remembered for restarts).
   */
  async open(containerName: string, opts: { roomId?: string } = {}): Promise<ContainerSocketPaths> {
    const paths = containerSocketPaths(this.deps.bridgeSocketPath, containerName);
    if (this.served.has(containerName)) return paths;
    const log = this.deps.log.child({ containerName });
    const dispatcher = new RpcDispatcher(log);
    const served: Served = {
      server: undefined as never,
      audio: undefined as never,
      cleanup: [],
      notifyWindowStart: 0,
      notifyCount: 0,
    };
    this.registerAgentMethods(dispatcher, containerName, served, log);
    if (this.deps.budget) registerAgentBudgetMethods(dispatcher, containerName, this.deps.budget);
    if (this.deps.approvals) {
      registerAgentApprovalMethods(dispatcher, containerName, {
        ...this.deps.approvals,
        audit: this.deps.audit,
        refuseLeaks: (method, p) => this.refuseLeaks(containerName, method, p),
        log,
      });
    }
    const matrix = this.deps.matrix;
    let roomId = opts.roomId;
    if (matrix && roomId) {
      matrix.store.set(bindingKey(containerName), roomId);
      // A new agent sees only what arrives after it starts, never the room's past.
      matrix.store.startConsumerAtEnd(consumerOf(containerName));
    } else if (matrix) {
      roomId = matrix.store.get(bindingKey(containerName));
    }
    if (matrix && roomId) this.registerRoomMethods(dispatcher, containerName, roomId, matrix);
    await mkdir(path.dirname(paths.dir), { recursive: true, mode: 0o751 });
    served.server = new RpcSocketServer(
      dispatcher,
      {
        socketPath: paths.socket,
        maxMessageBytes: 256 * 1024,
        idleTimeoutMs: 10 * 60_000,
        // Agents hold their connection between requests.
        quietCloseMs: 0,
        maxConnections: 8,
        maxInFlightPerConnection: 16,
        groupId: this.deps.agentGid,
        // The bridge asks agents too (`agent.turn`): their answers come back on this socket.
        peerRequests: true,
      },
      log,
    );
    await served.server.listen();
    served.audio = new ContainerAudioChannel({
      socketPath: paths.audioSocket,
      groupId: this.deps.agentGid,
      control: served.server,
      log,
    });
    try {
      await served.audio.listen();
    } catch (err) {
      await served.server.close(0);
      throw err;
    }
    this.served.set(containerName, served);
    if (matrix && roomId) this.bindRoom(containerName, roomId, served, matrix);
    await ensureLink(paths.endpoint, paths.socket);
    return paths;
  }

  /** The host directory of `containerName`'s sockets (bind-mounted at /run/armorclaw). */
  dirFor(containerName: string): string {
    return containerSocketPaths(this.deps.bridgeSocketPath, containerName).dir;
  }

  /** Closes the socket and removes its directory and link. */
  async close(containerName: string): Promise<void> {
    const paths = containerSocketPaths(this.deps.bridgeSocketPath, containerName);
    const served = this.served.get(containerName);
    this.served.delete(containerName);
    for (const fn of served?.cleanup ?? []) fn();
    await served?.audio.close();
    await served?.server.close(1_000);
    this.deps.matrix?.store.delete(bindingKey(containerName));
    await unlink(paths.endpoint).catch(() => undefined);
    await rm(paths.dir, { recursive: true, force: true });
  }

  /** Milliseconds since the agent's last heartbeat, if it has sent one since this bridge started. */
  heartbeatAgeMs(containerName: string): number | undefined {
    const last = this.served.get(containerName)?.lastHeartbeatMs;
    return last === undefined ? undefined : Date.now() - last;
  }

  isOpen(containerName: string): boolean {
    return this.served.has(containerName);
  }

  /** Whether the agent of `containerName` holds a connection to its socket now. */
  isConnected(containerName: string): boolean {
    return (this.served.get(containerName)?.server.connectionCount ?? 0) > 0;
  }

  /**
   * Asks the agent of `containerName` (a JSON-RPC request on its newest connection) and resolves
   * with its result. Rejects with a PeerRequestError: `no_peer` (no such open socket, or no
   * agent connected), `timeout` (default 60 s), `closed` (the connection went away before the
   * answer: a retry on the agent's next connection may succeed) or `error` (the agent's own
   * error, its code in `rpcCode`). An answer holding a stored credential is what the agent sends
   * out too: it is refused like a `matrix.send` of one (audited and reported; an `error` with
   * SecurityPolicyViolation as `rpcCode`), so it reaches neither a client nor history.
   */
  async request(
    containerName: string,
    method: string,
    params: unknown,
    opts: { timeoutMs?: number } = {},
  ): Promise<unknown> {
    const served = this.served.get(containerName);
    if (!served) throw new PeerRequestError('no_peer', `no open socket for ${containerName}`);
    const answer = await served.server.request(method, params, opts.timeoutMs ?? 60_000);
    try {
      this.refuseLeaks(containerName, `the answer to ${method}`, answer);
    } catch (err) {
      const e = err as RpcError;
      throw new PeerRequestError('error', `${method}: ${e.message}`, e.code);
    }
    return answer;
  }

  /** Stops serving every socket but leaves their directories: the runs outlive this process. */
  async closeAll(): Promise<void> {
    const all = [...this.served.values()];
    this.served.clear();
    for (const s of all) for (const fn of s.cleanup) fn();
    await Promise.all(all.map((s) => Promise.all([s.audio.close(), s.server.close(1_000)])));
  }

  /**
   * Lends the agent's audio channel to the call `sessionId`: sends `audio.start` to the agent and
   * resolves with the connection it opens on audio.sock. Rejects with an `AgentAudioError` whose
   * `code` is `agent_unavailable` (no such open container), `agent_busy` (another call holds it)
   * or `agent_audio_timeout` (the agent did not connect within `timeoutMs`, default 5 s).
   */
  attachAudio(
    containerName: string,
    sessionId: string,
    opts: { timeoutMs?: number } = {},
  ): Promise<Duplex> {
    const served = this.served.get(containerName);
    if (!served) {
      return Promise.reject(
        new AgentAudioError(AgentAudioErrorCode.Unavailable, 'no such running agent'),
      );
    }
    return served.audio.attach(sessionId, opts.timeoutMs);
  }

  /** Ends the call's hold on the agent's audio (`audio.end`, connection closed). Idempotent. */
  detachAudio(containerName: string, sessionId: string): void {
    this.served.get(containerName)?.audio.detach(sessionId);
  }

  /**
   * Pushes the room's events to the agent as `matrix.event` {seq, event} notifications: live as
   * they arrive, the backlog when it connects, and again until it answers `matrix.ack`.
   */
  private bindRoom(name: string, roomId: string, served: Served, matrix: AgentMatrixDeps): void {
    const consumer = consumerOf(name);
    const push = (notify: (method: string, params: unknown) => unknown) => {
      for (const e of matrix.store.pending(consumer, { roomId, limit: BACKLOG_LIMIT })) {
        notify('matrix.event', { seq: e.seq, event: publicEvent(e) });
      }
    };
    served.cleanup.push(
      matrix.inbox.subscribe({ roomIds: [roomId] }, (events) => {
        for (const e of events)
          served.server.notifyAll('matrix.event', { seq: e.seq, event: publicEvent(e) });
      }),
    );
    served.server.onConnection((ctx) => push((m, p) => ctx.notify(m, p)));
    const timer = setInterval(() => {
      if (served.server.connectionCount > 0) push((m, p) => served.server.notifyAll(m, p));
    }, REDELIVER_MS);
    timer.unref();
    served.cleanup.push(() => clearInterval(timer));
  }

  private registerRoomMethods(
    dispatcher: RpcDispatcher,
    name: string,
    roomId: string,
    matrix: AgentMatrixDeps,
  ): void {
    dispatcher.addMethod('matrix.ack', (params) => {
      const { seq } = parseParams(matrixAckParams, params);
      matrix.store.advance(consumerOf(name), seq);
      return { status: 'ok' };
    });
    // An agent may speak only in the room it is bound to.
    dispatcher.addMethod('matrix.send', async (params) => {
      const p = parseParams(matrixSendParams, params);
      this.refuseLeaks(name, 'matrix.send', p);
      // Keys are scoped to the container: one agent cannot replay another's key.
      const key = p.idempotency_key
        ? `${name}-${p.idempotency_key}`.replace(/[^A-Za-z0-9._-]/g, '_')
        : undefined;
      return matrix.send(roomId, p.message, p.msgtype ?? 'm.text', key);
    });
  }

  /**
   * Refuses what an agent sends out when it holds a stored credential in any encoding the
   * guard knows: audited as a security violation, reported to the operators, never forwarded,
   * logged or echoed (the refusal names the keys, not their tokens).
   */
  private refuseLeaks(name: string, method: string, params: unknown): void {
    const found = this.deps.leakGuard?.().scanValue(params);
    if (!found?.leaked) return;
    const details = { method, key_ids: found.keyIds, encodings: found.encodings };
    this.deps.log.warn({ containerName: name, ...details }, 'agent tried to send a credential');
    this.deps.audit({ event_type: 'security_violation', session_id: name, details });
    this.deps.reportViolation?.(
      `Security: agent run ${name} tried to send stored credential ${found.keyIds.join(', ')} ` +
        `(${found.encodings.join(', ')}) through ${method}; it was blocked.`,
    );
    throw new RpcError(
      ErrorCode.SecurityPolicyViolation,
      'Security policy violation: the message holds a stored credential and was not sent',
    );
  }

  private registerAgentMethods(
    dispatcher: RpcDispatcher,
    name: string,
    served: Served,
    log: Logger,
  ): void {
    const handle = () => this.deps.client.workflow.getHandle(containerWorkflowId(name));
    dispatcher.addMethod('secrets.ack', async (params) => {
      parseParams(ackParams, params);
      await handle().signal(secretsAckedSignal);
      log.info('agent acknowledged its secrets');
      return { status: 'acknowledged' };
    });
    dispatcher.addMethod('heartbeat', (params) => {
      parseParams(heartbeatParams, params);
      served.lastHeartbeatMs = Date.now();
      return { status: 'ok' };
    });
    dispatcher.addMethod('notify', async (params) => {
      const p = parseParams(notifyParams, params);
      const now = Date.now();
      if (now - served.notifyWindowStart >= 1_000) {
        served.notifyWindowStart = now;
        served.notifyCount = 0;
      }
      if (++served.notifyCount > NOTIFY_PER_SECOND) {
        throw new RpcError(
          ErrorCode.RateLimitExceeded,
          `at most ${NOTIFY_PER_SECOND} notifications per second`,
        );
      }
      // Before anything logs, audits or forwards the message.
      this.refuseLeaks(name, 'notify', p);
      const notification: AgentNotification = {
        kind: p.kind,
        message: p.message,
        at: new Date(now).toISOString(),
      };
      log.info({ kind: p.kind, agentMessage: p.message }, 'agent notification');
      this.deps.audit({
        event_type: `agent_${p.kind}`,
        session_id: name,
        details: { message: p.message },
      });
      await handle().signal(agentNotifySignal, notification);
      return { status: 'delivered' };
    });
  }
}

async function ensureLink(linkPath: string, target: string): Promise<void> {
  const current = await readlink(linkPath).catch(() => undefined);
  if (current === target) return;
  if (current !== undefined) await unlink(linkPath);
  await symlink(target, linkPath).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err;
  });
}
