import { ActivityFailure, TimeoutFailure } from '@temporalio/workflow';

/**
 * Host loss, as workflows see it (docs/architecture.md, rule 5). An activity on a host's task
 * queue that no worker takes within the host's grace fails with a schedule-to-start timeout:
 * the host's bridge has been gone that long, so its containers and media are out of reach.
 * Temporal enforces that timeout on each attempt and never retries it, so a host that comes back
 * within the grace takes the waiting attempt and its sessions go on.
 */
export function hostDidNotAnswer(err: unknown): boolean {
  return (
    err instanceof ActivityFailure &&
    err.cause instanceof TimeoutFailure &&
    err.cause.timeoutType === 'SCHEDULE_TO_START'
  );
}

/** The end detail of a session whose host did not come back in time. */
export function hostLostDetail(hostId: string, graceMs: number): string {
  return `host ${hostId} did not come back within ${Math.round(graceMs / 1000)}s`;
}
