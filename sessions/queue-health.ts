/**
 * What Temporal knows of the bridge's task queues, for operators (`GET /status`'s
 * `queueWarnings`): a queue nobody polls (its workers are down, so its sessions stall) and tasks
 * waiting in a backlog (workers slower than the work).
 */
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';

const { TaskQueueType } = temporal.api.enums.v1;

export interface QueueToWatch {
  name: string;
  /** Which kinds of task the bridge's workers poll on it. */
  kinds: readonly ('workflow' | 'activity')[];
}

/** One line per problem; empty when every queue is polled and none has a backlog. */
export async function queueWarnings(
  client: Client,
  namespace: string,
  queues: readonly QueueToWatch[],
): Promise<string[]> {
  const checks = queues.flatMap((q) => q.kinds.map((kind) => ({ name: q.name, kind })));
  const answers = await Promise.all(
    checks.map(({ name, kind }) =>
      client.workflowService.describeTaskQueue({
        namespace,
        taskQueue: { name },
        taskQueueType:
          kind === 'workflow'
            ? TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
            : TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
        reportStats: true,
      }),
    ),
  );
  const warnings: string[] = [];
  answers.forEach((answer, i) => {
    const { name, kind } = checks[i]!;
    if ((answer.pollers ?? []).length === 0) {
      warnings.push(`${name} (${kind} tasks): no worker is polling; its sessions wait`);
    }
    const backlog = Number(answer.stats?.approximateBacklogCount ?? 0);
    if (backlog > 0) warnings.push(`${name} (${kind} tasks): ${backlog} waiting for a worker`);
  });
  return warnings;
}
