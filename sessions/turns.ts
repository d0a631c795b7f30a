/**
 * Gateway agent turns in Temporal: starting one (`agentTurnWorkflow`, id `turn-<runId>`) and
 * collecting its answer once. Used by the gateway's `agent.run` / `agent.wait` and by status.
 */
import { WorkflowNotFoundError, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { ApplicationFailure, WorkflowIdReusePolicy } from '@temporalio/common';
import type { agentTurnWorkflow } from '../workflows/agent-turn';
import {
  TURN_COLLECTED,
  turnCollectUpdate,
  turnWorkflowId,
  type AgentTurnInput,
  type TurnCollectResult,
} from '../workflows/definitions';
import { turnAttributes } from '../workflows/search-attributes';
import { isClosedWorkflowError } from './workflow-errors';

/** Starts a turn's workflow; a run id is never reused. */
export function startTurnWorkflow(
  client: Client,
  taskQueue: string,
  runId: string,
  input: AgentTurnInput,
) {
  return client.workflow.start<typeof agentTurnWorkflow>('agentTurnWorkflow', {
    taskQueue,
    workflowId: turnWorkflowId(runId),
    args: [input],
    workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
    typedSearchAttributes: turnAttributes(input.run, 'Pending'),
  });
}

/**
 * Waits up to `waitMs` for the turn and takes its result (once). `gone`: no such turn, or it was
 * collected already, or it completed past its retention.
 */
export async function collectTurn(
  client: Client,
  runId: string,
  waitMs: number,
): Promise<TurnCollectResult | { status: 'gone' }> {
  try {
    return await client.workflow
      .getHandle(turnWorkflowId(runId))
      .executeUpdate(turnCollectUpdate, { args: [{ waitMs }] });
  } catch (err) {
    if (err instanceof WorkflowNotFoundError || isClosedWorkflowError(err)) {
      return { status: 'gone' };
    }
    if (
      err instanceof WorkflowUpdateFailedError &&
      err.cause instanceof ApplicationFailure &&
      err.cause.type === TURN_COLLECTED
    ) {
      return { status: 'gone' };
    }
    throw err;
  }
}

/** Visibility query of turns; `open` keeps those whose workflow still runs. */
export function turnsQuery(opts: { open: boolean; state?: string }): string {
  return (
    `ArmorclawKind = 'turn'` +
    (opts.open ? ` AND ExecutionStatus = 'Running'` : '') +
    (opts.state ? ` AND ArmorclawState = '${opts.state}'` : '')
  );
}
