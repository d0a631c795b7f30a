import { proxyActivities, upsertSearchAttributes } from '@temporalio/workflow';
import type { MatrixActivities } from '../activities/matrix';
import { hostTaskQueue } from './definitions';
import { ArmorclawHost, ArmorclawKind, ArmorclawState } from './search-attributes';

/**
 * Owns the Matrix sync loop of one host (workflow id `matrix-sync-<host>`): the loop is a
 * heartbeating activity that Temporal restarts after a crash or an outage, for as long as the
 * bridge stays logged in. Its position lives with the events in the bridge's MatrixStore.
 */
export async function matrixSyncWorkflow(input: { hostId: string }): Promise<void> {
  const { runMatrixSync } = proxyActivities<MatrixActivities>({
    taskQueue: hostTaskQueue(input.hostId),
    startToCloseTimeout: '3650 days',
    heartbeatTimeout: '90s',
    retry: {
      initialInterval: '1s',
      backoffCoefficient: 2,
      maximumInterval: '30s',
      nonRetryableErrorTypes: ['NotLoggedIn'],
    },
  });
  upsertSearchAttributes([
    { key: ArmorclawKind, value: 'matrix-sync' },
    { key: ArmorclawState, value: 'Active' },
    { key: ArmorclawHost, value: input.hostId },
  ]);
  try {
    await runMatrixSync();
  } finally {
    upsertSearchAttributes([{ key: ArmorclawState, value: 'Ended' }]);
  }
}
