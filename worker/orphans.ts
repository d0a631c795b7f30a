import type { Client } from '@temporalio/client';
import type Docker from 'dockerode';
import type { Logger } from 'pino';
import { MANAGED_LABEL, POOL_LABEL } from '../activities/docker';
import { isPoolName } from '../activities/warm-pool';
import { containerWorkflowId } from '../workflows/definitions';
import { isClosedWorkflowError } from '../sessions/workflow-errors';

/**
 * Removes this host's managed containers whose run is over. A run's own cleanup tears its
 * container down, retrying until the host answers; the one case it cannot is a run whose host
 * the operator gave up (`hosts.reap`) while the host was only away. When that host's bridge
 * starts again, this finds what those runs left behind. Returns the containers removed. The warm
 * pool's unclaimed containers are the pool's own (WarmPool.start adopts or removes them), or,
 * with the pool off, removed here.
 */
export async function reapOrphans(opts: {
  docker: Docker;
  client: Client;
  hostId: string;
  teardown(args: { containerName: string }): Promise<void>;
  /** Whether containers.warm_pool is on (its unclaimed containers are then the pool's). */
  poolOn: boolean;
  log: Logger;
}): Promise<string[]> {
  const { docker, client, hostId, log } = opts;
  const found = await docker.listContainers({
    all: true,
    filters: { label: [`${MANAGED_LABEL}=true`, `armorclaw.host=${hostId}`] },
  });
  const removed: string[] = [];
  for (const c of found) {
    const name = c.Names[0]?.replace(/^\//, '');
    if (!name) continue;
    if (isPoolName(name)) {
      // The pool's own, unless it is off now: then what it left is nobody's.
      if (!opts.poolOn) {
        await opts.teardown({ containerName: name });
        removed.push(name);
      }
      continue;
    }
    // A container taken from the warm pool was created before its run: its name says whose it is.
    const workflowId =
      c.Labels['armorclaw.workflow-id'] ??
      (c.Labels[POOL_LABEL] === 'true' ? containerWorkflowId(name) : undefined);
    if (!workflowId) continue;
    if (await runIsOpen(client, workflowId)) continue;
    await opts.teardown({ containerName: name });
    removed.push(name);
  }
  if (removed.length > 0)
    log.warn({ containers: removed }, 'removed containers of runs that had ended');
  return removed;
}

async function runIsOpen(client: Client, workflowId: string): Promise<boolean> {
  try {
    const desc = await client.workflow.getHandle(workflowId).describe();
    return desc.status.name === 'RUNNING';
  } catch (err) {
    if (isClosedWorkflowError(err)) return false;
    throw err;
  }
}
