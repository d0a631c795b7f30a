import { proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { MatrixActivities } from '../activities/matrix';
import { hostTaskQueue, type MatrixSendInput } from './definitions';

/**
 * One outbound Matrix message (workflow id `matrix-send-<uuid>`). Its transaction id is the
 * workflow id, so however often the send is retried — after a timeout, a homeserver outage or
 * a crash of the bridge — the room gets the message once. The result is the delivery receipt.
 */
export async function matrixSendWorkflow(
  input: MatrixSendInput,
): Promise<{ event_id: string; room_id: string }> {
  const { sendMatrixMessage } = proxyActivities<MatrixActivities>({
    taskQueue: hostTaskQueue(input.hostId),
    startToCloseTimeout: '30s',
    retry: {
      initialInterval: '500ms',
      backoffCoefficient: 2,
      maximumInterval: '10s',
      maximumAttempts: 10,
      nonRetryableErrorTypes: ['NotLoggedIn', 'MatrixSendRejected'],
    },
  });
  const { event_id } = await sendMatrixMessage({
    roomId: input.roomId,
    msgtype: input.msgtype,
    body: input.body,
    ...(input.threadId === undefined ? {} : { threadId: input.threadId }),
    txnId: workflowInfo().workflowId,
  });
  return { event_id, room_id: input.roomId };
}
