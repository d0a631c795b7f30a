import type { Client } from '@temporalio/client';
import type Docker from 'dockerode';
import type { Logger } from 'pino';
import { MANAGED_LABEL } from '../activities/docker';
import { isClosedWorkflowError } from '../sessions/workflow-errors';

/**
 * Removes this host's managed containers whose run is over. A run's own cleanup tears its
 * container down, retrying until the host answers; the one case it cannot is a run whose host
 * the operator gave up (`hosts.reap`) while the host was only away. When that host's bridge
 * starts again, this finds what those runs left behind. Returns the containers removed.
 */
export async function reapOrphans(opts: {
  docker: Docker;
  client: Client;
  hostId: string;
  teardown(args: { containerName: string }): Promise<void>;
  log: Logger;
}): Promise<string[]> {
  const { docker, client, hostId, log } = opts;
  const found = await docker.listContainers({
    all: true,
    filters: { label: [`${MANAGED_LABEL}=true`, `armorclaw.host=${hostId}`] },
  });
  const removed: string[] = [];
  for (const c of found) {
    const workflowId = c.Labels['armorclaw.workflow-id'];
    const name = c.Names[0]?.replace(/^\//, '');
    if (!workflowId || !name) continue;
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
