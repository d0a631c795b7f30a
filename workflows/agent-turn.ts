import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  allHandlersFinished,
  condition,
  isCancellation,
  proxyActivities,
  setHandler,
  startChild,
  upsertSearchAttributes,
  workflowInfo,
  ParentClosePolicy,
} from '@temporalio/workflow';
import type { SnapshotFrom } from 'xstate';
import { agentTurnMachine } from '../machines/agent-turn.machine';
import type { SharedActivities } from '../activities/container-types';
import type { BoundAgent, TurnHostActivities, TurnSharedActivities } from '../activities/turn';
import { shortHash } from '../formats/short-hash';
import {
  hostTaskQueue,
  TURN_COLLECTED,
  TURN_WORKFLOW_PREFIX,
  turnCollectUpdate,
  turnStatusQuery,
  type AgentTurnInput,
  type TurnEvent,
  type TurnResult,
} from './definitions';
import { MachineDriver } from './machine-driver';
import { turnAttributes } from './search-attributes';

type Snapshot = SnapshotFrom<typeof agentTurnMachine>;

/** Binding may start an agent: OpenClaw takes about 20 s to be ready, more on a busy host. */
const BIND_TIMEOUT = '5m';

/**
 * One gateway agent turn (workflow id `turn-<runId>`): binds an agent container, delivers the
 * conversation to it and holds its answer until `agent.wait` collects it (`turn-collect`, once),
 * or for `retentionMs`, then completes. The XState machine decides the lifecycle (Pending →
 * Active → Ended | Failed | Expired); this function acts through the MachineDriver. A bridge
 * killed mid-turn loses only the delivery attempt in flight: Temporal retries it (after the
 * heartbeat timeout) on the host's queue once the bridge is back and the agent has reconnected,
 * and the agent answers a turn id it has seen from its first answer.
 */
export async function agentTurnWorkflow(input: AgentTurnInput): Promise<TurnResult> {
  const runId = workflowInfo().workflowId.slice(TURN_WORKFLOW_PREFIX.length);
  const shared = proxyActivities<TurnSharedActivities & SharedActivities>({
    startToCloseTimeout: BIND_TIMEOUT,
    // A bridge killed while binding is noticed this fast, and the binding tried again.
    heartbeatTimeout: '30s',
    retry: {
      initialInterval: '1s',
      backoffCoefficient: 2,
      maximumInterval: '10s',
      maximumAttempts: 3,
    },
  });
  // Stopping an isolated turn's agent must happen whatever else fails: retried without end.
  const sharedCleanup = proxyActivities<TurnSharedActivities & SharedActivities>({
    startToCloseTimeout: '2m',
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s' },
  });
  const host = proxyActivities<TurnHostActivities>({
    taskQueue: hostTaskQueue(input.run.hostId),
    // Retries never outlive the turn.
    scheduleToCloseTimeout: input.timeoutMs,
    // A bridge killed mid-delivery is noticed this fast, and the delivery tried again.
    heartbeatTimeout: '10s',
    retry: {
      initialInterval: Math.max(1, input.backoffMs),
      backoffCoefficient: 2,
      maximumInterval: '30s',
      maximumAttempts: input.maxRetries + 1,
      nonRetryableErrorTypes: ['AgentRefused', 'BadAnswer'],
    },
  });

  const isolatedName =
    input.binding === 'isolated'
      ? `armorclaw-${input.run.agentType}-turn-${shortHash(runId)}`
      : undefined;
  const events: TurnEvent[] = [];
  const note = (type: TurnEvent['type'], detail?: string) =>
    events.push({ type, at: new Date().toISOString(), ...(detail ? { detail } : {}) });
  let collected = false;
  // Binding may start an agent; an isolated turn that ends meanwhile waits for it, then stops it.
  let binding: Promise<unknown> = Promise.resolve();
  const deliveryScope = new CancellationScope();

  const result = (): TurnResult => {
    const c = driver.snapshot.context;
    return {
      runId,
      assistantText: c.assistantText ?? '',
      events: [...events],
      state: driver.snapshot.value,
      ...(c.model ? { model: c.model } : {}),
      ...(c.containerName ? { containerName: c.containerName } : {}),
      ...(c.endReason ? { endReason: c.endReason } : {}),
      ...(c.endDetail ? { endDetail: c.endDetail } : {}),
    };
  };

  const driver = new MachineDriver({
    machine: agentTurnMachine,
    input: { timeoutMs: input.timeoutMs },
    publishKey: (s: Snapshot) => `${s.value}/${s.context.containerId ?? ''}`,
    publish: (s: Snapshot) =>
      upsertSearchAttributes(turnAttributes(input.run, s.value, s.context.containerId)),
    perform(action) {
      if (action.type === 'bind') {
        binding = shared
          .bindTurnAgent({
            binding: input.binding,
            sessionId: input.session.sessionId,
            containerName: isolatedName,
            run: input.run,
          })
          .then(
            (bound: BoundAgent) => {
              note('bound', bound.containerName);
              driver.push({ type: 'BOUND', ...bound });
            },
            (err: unknown) => driver.push({ type: 'BIND_FAILED', message: failureMessage(err) }),
          );
      } else if (action.type === 'deliver') {
        const c = driver.snapshot.context;
        note('delivering', c.containerName);
        deliveryScope
          .run(() =>
            host.deliverTurn({
              containerName: c.containerName!,
              turnId: runId,
              sessionId: input.session.sessionId,
              messages: input.messages,
              answerTimeoutMs: input.timeoutMs,
            }),
          )
          .then(
            (answer) => driver.push({ type: 'ANSWERED', text: answer.text, model: answer.model }),
            (err: unknown) => {
              if (isCancellation(err)) return;
              driver.push({ type: 'DELIVERY_FAILED', message: failureMessage(err) });
            },
          );
      }
    },
    async cleanup(s: Snapshot) {
      deliveryScope.cancel();
      note(
        s.value === 'Ended' ? 'answered' : s.value === 'Expired' ? 'expired' : 'failed',
        s.context.endDetail,
      );
      if (isolatedName) {
        await binding;
        await sharedCleanup.stopTurnAgent({ containerName: isolatedName });
      }
      await sharedCleanup.recordAudit({
        event_type: `turn_${s.value.toLowerCase()}`,
        dedupe_key: `${workflowInfo().workflowId}/end`,
        session_id: input.session.sessionId,
        container_id: s.context.containerId,
        details: {
          run_id: runId,
          container_name: s.context.containerName,
          binding: input.binding,
          channel_kind: input.session.channelKind,
          job_id: input.jobId,
          reason: s.context.endReason,
          detail: s.context.endDetail,
        },
      });
    },
  });

  setHandler(turnStatusQuery, () => ({ ...result(), collected }));
  setHandler(turnCollectUpdate, async ({ waitMs }) => {
    if (collected) throw ApplicationFailure.nonRetryable('the turn was collected', TURN_COLLECTED);
    const over = await condition(() => driver.cleanupDone, Math.max(0, waitMs));
    if (!over) return { status: 'running' as const, state: driver.snapshot.value };
    // Two waits may have been waiting: the first one served takes it.
    if (collected) throw ApplicationFailure.nonRetryable('the turn was collected', TURN_COLLECTED);
    collected = true;
    return { status: 'done' as const, result: result() };
  });

  note('queued');
  await driver.start();
  const end = await driver.run();

  if (end.value === 'Ended' && input.postToRoomId) {
    await postAnswer(input, runId, end.context.assistantText ?? '');
    note('posted', input.postToRoomId);
  }
  // The lifecycle is over; the answer waits for its one collection, at most the retention time.
  await condition(() => collected, input.retentionMs);
  await condition(allHandlersFinished);
  return result();
}

/** Posts the answer to the job's room through the one-send workflow (its id makes it once). */
async function postAnswer(input: AgentTurnInput, runId: string, text: string): Promise<void> {
  await startChild('matrixSendWorkflow', {
    workflowId: `matrix-send-key-turn-${runId}`,
    args: [
      { hostId: input.run.hostId, roomId: input.postToRoomId!, msgtype: 'm.text', body: text },
    ],
    parentClosePolicy: ParentClosePolicy.ABANDON,
  }).catch((err: unknown) => {
    // Started by an earlier attempt of this workflow task: the send is under way already.
    if (!(err instanceof Error && err.name === 'WorkflowExecutionAlreadyStartedError')) throw err;
  });
}

/** The message of an activity's failure (its cause's), for the turn's endDetail. */
function failureMessage(err: unknown): string {
  const cause = err instanceof ActivityFailure && err.cause ? err.cause : err;
  return cause instanceof Error ? cause.message : String(cause);
}
