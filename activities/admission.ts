import {
  WithStartWorkflowOperation,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type Client,
} from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { Logger } from 'pino';
import type { callAdmissionWorkflow } from '../workflows/admission';
import {
  admitCallUpdate,
  BUDGET_WORKFLOW_ID,
  budgetStatusQuery,
  CALL_ADMISSION_WORKFLOW_ID,
  releaseCallSignal,
  type AdmitCallArgs,
  type AdmitCallResult,
  type CallRefused,
} from '../workflows/definitions';

export interface AdmissionActivityDeps {
  client: Client;
  /** The shared task queue, where `callAdmissionWorkflow` runs when an admit has to start it. */
  taskQueue: string;
  log: Logger;
}

/** What the call workflow calls (`proxyActivities<AdmissionActivities>`, shared queue). */
export interface AdmissionActivities {
  /**
   * Admits the call or says why not: `budget_exceeded` (the budget workflow's gate),
   * `rate_limited` or `max_concurrent` (the admission workflow's). Idempotent by session id.
   */
  admitCall(args: AdmitCallArgs): Promise<AdmitCallResult>;
  /** Frees the call's slot; a session without one, or no admission workflow, is fine. */
  releaseCall(args: { sessionId: string }): Promise<void>;
}

/** Failure type of an admit the admission workflow's validator refused: a bug, never retried. */
export const INVALID_ADMISSION = 'InvalidAdmission';

/**
 * Voice-call admission for the shared task queue: the budget gate, then one `admit-call` update
 * to the namespace's `callAdmissionWorkflow`, started by whichever bridge needs it first.
 */
export function createAdmissionActivities(deps: AdmissionActivityDeps): AdmissionActivities {
  const admission = () => deps.client.workflow.getHandle(CALL_ADMISSION_WORKFLOW_ID);

  /** The budget's verdict: a refusal when it is exceeded; none when no budget runs. */
  async function budgetRefusal(): Promise<CallRefused<'budget_exceeded'> | undefined> {
    try {
      const status = await deps.client.workflow
        .getHandle(BUDGET_WORKFLOW_ID)
        .query(budgetStatusQuery);
      if (!status.exceeded) return undefined;
      const which = status.day.exceeded ? 'daily' : 'monthly';
      return {
        admitted: false,
        reason: 'budget_exceeded',
        message: `the ${which} budget is spent; calls are refused until it resets or is raised`,
      };
    } catch (err) {
      // No budget workflow on this namespace: no budget gate. Anything else fails the attempt
      // (and is retried): admitting blind would let calls past a spent budget.
      if (err instanceof WorkflowNotFoundError) return undefined;
      throw err;
    }
  }

  async function admitCall(args: AdmitCallArgs): Promise<AdmitCallResult> {
    const log = deps.log.child({ sessionId: args.sessionId });
    const refusal = await budgetRefusal();
    if (refusal) {
      log.info({ reason: refusal.reason }, 'call refused');
      return refusal;
    }
    // One round trip that starts the entity if no bridge has yet (or an operator ended it):
    // two bridges racing both land on the same run (USE_EXISTING).
    const startWorkflowOperation = new WithStartWorkflowOperation<typeof callAdmissionWorkflow>(
      'callAdmissionWorkflow',
      {
        workflowId: CALL_ADMISSION_WORKFLOW_ID,
        taskQueue: deps.taskQueue,
        workflowIdConflictPolicy: 'USE_EXISTING',
        args: [{}],
      },
    );
    try {
      const result = await deps.client.workflow.executeUpdateWithStart(admitCallUpdate, {
        args: [args],
        startWorkflowOperation,
      });
      if (result.admitted) log.info({ active: result.active }, 'call admitted');
      else log.info({ reason: result.reason }, 'call refused');
      return result;
    } catch (err) {
      if (err instanceof WorkflowUpdateFailedError) {
        throw ApplicationFailure.nonRetryable(
          `admit-call refused its arguments: ${err.cause?.message ?? err.message}`,
          INVALID_ADMISSION,
        );
      }
      throw err;
    }
  }

  async function releaseCall({ sessionId }: { sessionId: string }): Promise<void> {
    try {
      await admission().signal(releaseCallSignal, { sessionId });
    } catch (err) {
      // No admission workflow: nothing holds a slot to free.
      if (err instanceof WorkflowNotFoundError) return;
      throw err;
    }
    deps.log.info({ sessionId }, 'call released');
  }

  return { admitCall, releaseCall };
}
