import {
  ActivityCancellationType,
  ApplicationFailure,
  CancellationScope,
  ActivityFailure,
  allHandlersFinished,
  condition,
  isCancellation,
  patched,
  proxyActivities,
  setHandler,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { initialTransition, transition, type SnapshotFrom } from 'xstate';
import { containerRunMachine, type ContainerRunEvent } from '../machines/container-run.machine';
import { isTerminal, type LifecycleState } from '../machines/lifecycle';
import type { HostContainerActivities, SharedActivities } from '../activities/container-types';
import {
  agentNotifySignal,
  budgetExceededSignal,
  ContainerFailureType,
  containerExitedSignal,
  containerStatusQuery,
  hostTaskQueue,
  secretsAckedSignal,
  stopUpdate,
  waitActiveUpdate,
  type AgentNotification,
  type ContainerRunInput,
  type ContainerRunResult,
  type ContainerRunStatus,
} from './definitions';
import {
  ArmorclawAgentType,
  ArmorclawContainerId,
  ArmorclawHost,
  ArmorclawKeyId,
  ArmorclawKind,
  ArmorclawState,
} from './search-attributes';
import { MachineTimers } from './machine-timers';

const MAX_NOTIFICATIONS = 50;

/**
 * One agent container run (workflow id `container-<name>`). The XState machine decides; this
 * function acts: it feeds the machine signals, updates, timer fires and activity results through
 * XState's pure `transition`, then performs the actions that come back.
 */
export async function containerRunWorkflow(input: ContainerRunInput): Promise<ContainerRunResult> {
  const host = proxyActivities<HostContainerActivities>({
    taskQueue: hostTaskQueue(input.hostId),
    startToCloseTimeout: '60s',
    // A stop during Pending cancels the start, and cleanup must not tear down while a Docker
    // create is still in flight (it would create the container after the teardown: an orphan).
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: {
      initialInterval: '500ms',
      backoffCoefficient: 2,
      maximumInterval: '10s',
      maximumAttempts: 5,
    },
  });
  // Cleanup must finish whatever happens: retried until the host answers again.
  const hostCleanup = proxyActivities<HostContainerActivities>({
    taskQueue: hostTaskQueue(input.hostId),
    startToCloseTimeout: '60s',
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s' },
  });
  const health = proxyActivities<HostContainerActivities>({
    taskQueue: hostTaskQueue(input.hostId),
    scheduleToCloseTimeout: '60s',
    startToCloseTimeout: '10s',
    retry: { initialInterval: '1s', maximumAttempts: 5 },
  });
  const shared = proxyActivities<SharedActivities>({
    startToCloseTimeout: '30s',
    retry: { initialInterval: '1s', maximumInterval: '30s' },
  });

  const workflowId = workflowInfo().workflowId;
  const [initialSnapshot, initialActions] = initialTransition(containerRunMachine, {
    ttlMs: input.ttlMs,
    secretsDeadlineMs: input.secretsDeadlineMs,
    honourEarlyAck: patched('early-secrets-ack'),
  });
  let snapshot = initialSnapshot;
  const queue: ContainerRunEvent[] = [];
  const timers = new MachineTimers<ContainerRunEvent>((event) => queue.push(event));
  const notifications: AgentNotification[] = [];
  let endpoint: string | undefined;
  let startFailureType: string = ContainerFailureType.StartFailed;
  let cleanupDone = false;
  // The file's actual state, for the status query: the machine marks it removed when it decides
  // to remove it, before the activity has done so.
  let secretsFileRemoved = false;
  // Pending's work (secrets file, container start). A run that ends while it is in flight
  // cancels it and waits for it before the teardown: Docker could otherwise create the container
  // after the teardown, an orphan.
  const startScope = new CancellationScope();
  let startSettled: Promise<void> = Promise.resolve();
  let startInFlight = true;

  const state = (): LifecycleState => snapshot.value as LifecycleState;
  const status = (): ContainerRunStatus => ({
    state: state(),
    container_name: input.containerName,
    container_id: snapshot.context.containerId,
    agent_type: input.agentType,
    key_id: input.keyId,
    image: input.image,
    endpoint,
    secrets_removed: secretsFileRemoved,
    end_reason: snapshot.context.endReason,
    end_detail: snapshot.context.endDetail,
    exit_code: snapshot.context.exitCode,
    cleanup_done: cleanupDone,
    notifications: [...notifications],
  });

  setHandler(containerStatusQuery, status);
  setHandler(containerExitedSignal, (exit) => {
    queue.push({ type: 'CONTAINER_EXITED', ...exit });
  });
  setHandler(secretsAckedSignal, () => {
    queue.push({ type: 'SECRETS_ACKED' });
  });
  setHandler(budgetExceededSignal, () => {
    queue.push({ type: 'BUDGET_EXCEEDED' });
  });
  setHandler(agentNotifySignal, (n) => {
    notifications.push(n);
    if (notifications.length > MAX_NOTIFICATIONS) notifications.shift();
  });
  setHandler(waitActiveUpdate, async () => {
    await condition(() => state() !== 'Pending');
    if (state() !== 'Active' && snapshot.context.endReason === 'start_failed') {
      throw ApplicationFailure.nonRetryable(
        snapshot.context.endDetail ?? 'container start failed',
        startFailureType,
      );
    }
    if (state() !== 'Active') {
      throw ApplicationFailure.nonRetryable(
        `container run ended: ${snapshot.context.endReason}`,
        'RunEnded',
      );
    }
    return {
      container_id: snapshot.context.containerId!,
      container_name: input.containerName,
      status: 'running' as const,
      endpoint: endpoint!,
    };
  });
  setHandler(stopUpdate, async ({ reason }) => {
    if (!isTerminal(state())) queue.push({ type: 'STOP_REQUESTED', reason });
    await condition(() => cleanupDone);
    return {
      status: 'stopped' as const,
      container_id: snapshot.context.containerId ?? '',
      container_name: input.containerName,
    };
  });

  const publishState = () =>
    upsertSearchAttributes([
      { key: ArmorclawKind, value: 'container' },
      { key: ArmorclawState, value: state() },
      { key: ArmorclawAgentType, value: input.agentType },
      { key: ArmorclawKeyId, value: input.keyId },
      { key: ArmorclawHost, value: input.hostId },
      ...(snapshot.context.containerId
        ? [{ key: ArmorclawContainerId, value: snapshot.context.containerId }]
        : []),
    ]);

  const cleanup = async () => {
    await CancellationScope.nonCancellable(async () => {
      timers.cancelAll();
      // Only while the start is in flight: an `await` here reorders commands, and runs recorded
      // before this patch (test/replay) scheduled the teardown first.
      if (startInFlight && patched('cleanup-awaits-start')) {
        startScope.cancel();
        await startSettled;
      }
      // Removes the container and the secrets file.
      await hostCleanup.teardownContainer({ containerName: input.containerName });
      secretsFileRemoved = true;
      const terminal = state();
      await shared.recordAudit({
        event_type: `container_${terminal.toLowerCase()}`,
        dedupe_key: `${workflowId}/end`,
        session_id: input.containerName,
        container_id: snapshot.context.containerId,
        room_id: input.roomId,
        details: {
          agent_type: input.agentType,
          key_id: input.keyId,
          image: input.image,
          reason: snapshot.context.endReason,
          detail: snapshot.context.endDetail,
          exit_code: snapshot.context.exitCode,
        },
      });
    });
    cleanupDone = true;
  };

  /** Performs what the machine asked for, in order. */
  const perform = async (actions: typeof initialActions) => {
    for (const action of actions) {
      // XState's own raise/cancel (delayed events) first, then the machine's actions.
      const type = action.type as string;
      if (timers.handle(action)) continue;
      if (type === 'removeSecrets') {
        await CancellationScope.nonCancellable(() =>
          hostCleanup.removeSecretsFile({ containerName: input.containerName }),
        );
        secretsFileRemoved = true;
      } else if (type === 'cleanup') {
        await cleanup();
      }
    }
  };

  const step = async (event: ContainerRunEvent) => {
    const before = state();
    const [next, actions] = transition(containerRunMachine, snapshot, event);
    snapshot = next as SnapshotFrom<typeof containerRunMachine>;
    if (state() !== before) publishState();
    const audit = () =>
      shared.recordAudit({
        event_type: 'container_started',
        dedupe_key: `${workflowId}/started`,
        session_id: input.containerName,
        container_id: snapshot.context.containerId,
        room_id: input.roomId,
        details: { agent_type: input.agentType, key_id: input.keyId, image: input.image },
      });
    const started = state() === 'Active' && before === 'Pending';
    // The TTL and secrets timers start before the audit write: an audit store that is down
    // (its activity retries without end) must not postpone them. Older runs audited first.
    if (started && !timersBeforeAudit) await audit();
    await perform(actions);
    if (started && timersBeforeAudit) await audit();
  };

  const timersBeforeAudit = patched('timers-before-audit');
  publishState();
  await perform(initialActions);

  // Pending: the secrets file, then the container. Cancelled if the run ends first (stop).
  startSettled = startScope
    .run(async () => {
      await host.writeSecretsFile({ containerName: input.containerName, keyId: input.keyId });
      const started = await host.startContainer({
        containerName: input.containerName,
        workflowId,
        image: input.image,
        agentType: input.agentType,
        keyId: input.keyId,
        hostId: input.hostId,
        network: input.network,
        roomId: input.roomId,
      });
      endpoint = started.endpoint;
      startInFlight = false;
      queue.push({ type: 'STARTED', containerId: started.containerId });
    })
    .catch((err) => {
      startInFlight = false;
      if (isCancellation(err)) return;
      const cause = err instanceof ActivityFailure ? err.cause : err;
      if (cause instanceof ApplicationFailure && cause.type) startFailureType = cause.type;
      queue.push({
        type: 'START_FAILED',
        message: cause instanceof Error ? cause.message : String(cause),
      });
    });

  // Active: Docker events arrive as signals; this periodic inspect is the guarantee.
  const healthScope = new CancellationScope();
  healthScope
    .run(async () => {
      await condition(() => state() !== 'Pending');
      while (state() === 'Active') {
        await sleep(input.healthCheckIntervalMs);
        if (state() !== 'Active') break;
        try {
          const seen = await health.inspectContainer({ containerName: input.containerName });
          if (!seen.running) {
            queue.push({
              type: 'CONTAINER_EXITED',
              exitCode: seen.exitCode,
              oomKilled: seen.oomKilled,
            });
          }
        } catch (err) {
          if (isCancellation(err)) throw err;
          queue.push({
            type: 'HEALTH_FAILED',
            message: 'container inspection failed (host unreachable?)',
          });
        }
      }
    })
    .catch((err) => {
      if (!isCancellation(err)) throw err;
    });

  while (!isTerminal(state())) {
    await condition(() => queue.length > 0);
    await step(queue.shift()!);
  }
  if (state() !== 'Active') startScope.cancel();
  healthScope.cancel();
  // Whatever is still queued (a late exit signal) changes nothing now.
  queue.length = 0;
  await condition(() => cleanupDone && allHandlersFinished());
  return {
    state: state(),
    end_reason: snapshot.context.endReason,
    end_detail: snapshot.context.endDetail,
    exit_code: snapshot.context.exitCode,
  };
}
