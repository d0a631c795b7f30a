/**
 * Container runs as sessions: starting one and finding runs in Temporal. Used by the RPC
 * methods, by the activities that start an agent for a call, and by the bridge's status, so it
 * sits below all three.
 */
import { WithStartWorkflowOperation, WorkflowNotFoundError, type Client } from '@temporalio/client';
import { WorkflowIdConflictPolicy, WorkflowIdReusePolicy } from '@temporalio/common';
import type { containerRunWorkflow } from '../workflows/container-run';
import {
  containerWorkflowId,
  waitActiveUpdate,
  type ContainerRunInput,
  type ContainerStarted,
} from '../workflows/definitions';
import {
  ArmorclawContainerId,
  containerRunAttributes,
  containerRunsQuery,
} from '../workflows/search-attributes';

const CONTAINER_PREFIX = containerWorkflowId('');

/** Starts a container run's workflow (throws WorkflowExecutionAlreadyStartedError if taken). */
export function startRunWorkflow(client: Client, taskQueue: string, input: ContainerRunInput) {
  return client.workflow.start<typeof containerRunWorkflow>('containerRunWorkflow', {
    taskQueue,
    workflowId: containerWorkflowId(input.containerName),
    args: [input],
    // Names are unique forever: a finished run's name is never reused.
    workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
    typedSearchAttributes: containerRunAttributes(input, 'Pending'),
  });
}

/**
 * Starts a container run and waits until it is Active, in one request (update-with-start): the
 * run's first workflow task takes the `wait-active` update along with the start, so a start
 * costs no task and no round trip of its own for the update. Throws
 * WorkflowExecutionAlreadyStartedError if the name is taken (by a live or a finished run), and
 * the update's failure (WorkflowUpdateFailedError) if the run does not become Active.
 */
export async function startRunUntilActive(
  client: Client,
  taskQueue: string,
  input: ContainerRunInput,
): Promise<ContainerStarted> {
  const start = new WithStartWorkflowOperation<typeof containerRunWorkflow>(
    'containerRunWorkflow',
    {
      taskQueue,
      workflowId: containerWorkflowId(input.containerName),
      args: [input],
      workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
      workflowIdConflictPolicy: WorkflowIdConflictPolicy.FAIL,
      typedSearchAttributes: containerRunAttributes(input, 'Pending'),
    },
  );
  return client.workflow.executeUpdateWithStart(waitActiveUpdate, {
    startWorkflowOperation: start,
  });
}

/**
 * How long a lookup by Docker id keeps looking when the visibility store has no run with it
 * yet: the store trails a run's first moments (the id is written when the run turns Active), so
 * a `stop` sent right after `start` answered could otherwise miss it. A Docker id no run has
 * costs this long before "not found".
 */
export const VISIBILITY_LAG_MS = 3_000;
const VISIBILITY_POLL_MS = 200;

/**
 * The workflow id of the run whose container name, Docker id or id prefix (at least 12
 * characters, as `docker ps` shows) is `idOrName`; `open` keeps to live runs. A name is found
 * by its workflow id, an id through the visibility store. Undefined when no run has it. Read
 * from Temporal, not process memory, so every bridge finds every host's runs.
 */
export async function findContainerRun(
  client: Client,
  idOrName: string,
  opts: { open: boolean } = { open: false },
): Promise<string | undefined> {
  if (idOrName.startsWith('armorclaw-')) {
    try {
      const desc = await client.workflow.getHandle(containerWorkflowId(idOrName)).describe();
      return !opts.open || desc.status.name === 'RUNNING' ? desc.workflowId : undefined;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return undefined;
      throw err;
    }
  }
  if (!/^[a-f0-9]{12,64}$/.test(idOrName)) return undefined;
  // Docker ids are unique, so the first match is the only one; the pattern above keeps the
  // value a plain hex literal inside the query.
  const query =
    containerRunsQuery(opts) + ` AND ${ArmorclawContainerId.name} STARTS_WITH '${idOrName}'`;
  for (const deadline = Date.now() + VISIBILITY_LAG_MS; ;) {
    for await (const wf of client.workflow.list({ query, pageSize: 1 })) return wf.workflowId;
    if (Date.now() >= deadline) return undefined;
    await new Promise((resolve) => setTimeout(resolve, VISIBILITY_POLL_MS));
  }
}

/** Container ids of the Active runs, from Temporal's visibility store. */
export async function listActiveContainerIds(client: Client): Promise<string[]> {
  const ids: string[] = [];
  const query = containerRunsQuery({ open: true, state: 'Active' });
  for await (const wf of client.workflow.list({ query })) {
    const id = wf.typedSearchAttributes.get(ArmorclawContainerId);
    if (id) ids.push(id);
  }
  return ids;
}

/** Names of the container runs whose workflow is still open (any state). */
export async function listOpenContainerNames(client: Client): Promise<string[]> {
  const names: string[] = [];
  const query = containerRunsQuery({ open: true });
  for await (const wf of client.workflow.list({ query })) {
    if (wf.workflowId.startsWith(CONTAINER_PREFIX))
      names.push(wf.workflowId.slice(CONTAINER_PREFIX.length));
  }
  return names;
}
