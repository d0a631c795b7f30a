import { WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';

/**
 * Whether an update or signal failed because its workflow is over: Temporal answers an update to
 * a closed workflow with NOT_FOUND ("workflow execution already completed", a
 * WorkflowNotFoundError), and one accepted just before the workflow closed with an
 * `AcceptedUpdateCompletedWorkflow` failure. Both mean "nothing left to do", never a fault.
 */
export function isClosedWorkflowError(err: unknown): boolean {
  if (err instanceof WorkflowNotFoundError) return true;
  return (
    err instanceof WorkflowUpdateFailedError &&
    err.cause instanceof ApplicationFailure &&
    err.cause.type === 'AcceptedUpdateCompletedWorkflow'
  );
}
