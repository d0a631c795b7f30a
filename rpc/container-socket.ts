import { mkdir, rm, symlink, unlink, readlink } from 'node:fs/promises';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import type { Logger } from 'pino';
import { z } from 'zod';
import {
  agentNotifySignal,
  containerWorkflowId,
  secretsAckedSignal,
  type AgentNotification,
} from '../workflows/definitions';
import { RpcDispatcher } from './dispatcher';
import { ErrorCode, RpcError } from './errors';
import { parseParams } from './params';
import { RpcSocketServer } from './socket-server';

/** Where a container's socket lives on the host; the directory is what gets mounted. */
export interface ContainerSocketPaths {
  /** Bind-mounted into the container at /run/armorclaw (a directory, architecture rule 8). */
  dir: string;
  socket: string;
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
    endpoint: path.join(base, `${containerName}.sock`),
  };
}

export interface ContainerSocketHubDeps {
  bridgeSocketPath: string;
  agentGid: number;
  client: Client;
  /** Writes an audit entry (errors from agents, for instance). */
  audit(entry: { event_type: string; session_id: string; details: Record<string, unknown> }): void;
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

/** Notifications one container may send per second; more are refused (they become history). */
const NOTIFY_PER_SECOND = 10;

interface Served {
  server: RpcSocketServer;
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

  /** Opens (or keeps) the socket of `containerName`; idempotent across retries and restarts. */
  async open(containerName: string): Promise<ContainerSocketPaths> {
    const paths = containerSocketPaths(this.deps.bridgeSocketPath, containerName);
    if (this.served.has(containerName)) return paths;
    const log = this.deps.log.child({ containerName });
    const dispatcher = new RpcDispatcher(log);
    const served: Served = { server: undefined as never, notifyWindowStart: 0, notifyCount: 0 };
    this.registerAgentMethods(dispatcher, containerName, served, log);
    await mkdir(path.dirname(paths.dir), { recursive: true, mode: 0o751 });
    served.server = new RpcSocketServer(
      dispatcher,
      {
        socketPath: paths.socket,
        maxMessageBytes: 256 * 1024,
        idleTimeoutMs: 10 * 60_000,
        maxConnections: 8,
        maxInFlightPerConnection: 16,
        groupId: this.deps.agentGid,
      },
      log,
    );
    await served.server.listen();
    this.served.set(containerName, served);
    await ensureLink(paths.endpoint, paths.socket);
    return paths;
  }

  /** Closes the socket and removes its directory and link. */
  async close(containerName: string): Promise<void> {
    const paths = containerSocketPaths(this.deps.bridgeSocketPath, containerName);
    const served = this.served.get(containerName);
    this.served.delete(containerName);
    await served?.server.close(1_000);
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

  /** Stops serving every socket but leaves their directories: the runs outlive this process. */
  async closeAll(): Promise<void> {
    const all = [...this.served.values()];
    this.served.clear();
    await Promise.all(all.map((s) => s.server.close(1_000)));
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
