import {
  ActivityCancellationType,
  ApplicationFailure,
  CancellationScope,
  ActivityFailure,
  condition,
  isCancellation,
  patched,
  proxyActivities,
  setHandler,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { SnapshotFrom } from 'xstate';
import { containerRunMachine } from '../machines/container-run.machine';
import type { LifecycleState } from '../machines/lifecycle';
import type { HostContainerActivities, SharedActivities } from '../activities/container-types';
import {
  agentNotifySignal,
  budgetExceededSignal,
  ContainerFailureType,
  containerExitedSignal,
  containerStatusQuery,
  HOST_GRACE_DEFAULT_MS,
  hostReapedSignal,
  hostTaskQueue,
  runUsageSignal,
  secretsAckedSignal,
  stopUpdate,
  waitActiveUpdate,
  type AgentNotification,
  type ContainerRunInput,
  type ContainerRunResult,
  type ContainerRunStatus,
} from './definitions';
import { toUsd } from '../services/budget';
import { containerRunAttributes } from './search-attributes';
import { MachineDriver } from './machine-driver';
import { hostDidNotAnswer, hostLostDetail } from './host-loss';

const MAX_NOTIFICATIONS = 50;

/**
 * Runs started since this patch launch their container in one activity (`launchContainer`:
 * secrets file, container, started audit entry) and do not upsert the search attributes their
 * start already set. Older runs, still in flight or replayed, keep their three activities.
 */
export const ONE_LAUNCH_PATCH = 'container-run-one-launch';

type Snapshot = SnapshotFrom<typeof containerRunMachine>;

/**
 * One agent container run (workflow id `container-<name>`). The XState machine decides; this
 * function acts, through the MachineDriver: signals, updates, timer fires and activity results
 * become the machine's events, and the actions that come back are performed here.
 */
export async function containerRunWorkflow(input: ContainerRunInput): Promise<ContainerRunResult> {
  // A host gone longer than this loses the run (rule 5): its start and health checks wait that
  // long for a worker on its queue; its teardown waits for it without end (or for `hosts.reap`).
  const graceMs = input.hostGraceMs ?? HOST_GRACE_DEFAULT_MS;
  const hostLost = () => hostLostDetail(input.hostId, graceMs);
  const host = proxyActivities<HostContainerActivities>({
    taskQueue: hostTaskQueue(input.hostId),
    scheduleToStartTimeout: graceMs,
    // A launch takes well under a second (seconds in a burst); a bridge killed in the middle of
    // one is retried this long after, by its next start. (Was 60 s; not part of replay.)
    startToCloseTimeout: '30s',
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
  // The machine waits for the removal (an unlink), so a host killed in the middle of one is lost
  // this long plus its grace after (was 60 s; not part of replay).
  const secrets = proxyActivities<HostContainerActivities>({
    taskQueue: hostTaskQueue(input.hostId),
    scheduleToStartTimeout: graceMs,
    startToCloseTimeout: '10s',
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s' },
  });
  const health = proxyActivities<HostContainerActivities>({
    taskQueue: hostTaskQueue(input.hostId),
    scheduleToStartTimeout: graceMs,
    startToCloseTimeout: '10s',
    retry: { initialInterval: '1s', maximumAttempts: 5 },
  });
  const shared = proxyActivities<SharedActivities>({
    startToCloseTimeout: '30s',
    retry: { initialInterval: '1s', maximumInterval: '30s' },
  });

  const workflowId = workflowInfo().workflowId;
  const oneLaunch = patched(ONE_LAUNCH_PATCH);
  const secretsMode = input.secretsMode ?? 'file';
  const notifications: AgentNotification[] = [];
  let endpoint: string | undefined;
  let startFailureType: string = ContainerFailureType.StartFailed;
  // The file's actual state, for the status query: the machine marks it removed when it decides
  // to remove it, before the activity has done so.
  let secretsFileRemoved = false;
  // Pending's work (secrets file, container start). A run that ends while it is in flight
  // cancels it and waits for it before the teardown: Docker could otherwise create the container
  // after the teardown, an orphan.
  const startScope = new CancellationScope();
  let startSettled: Promise<void> = Promise.resolve();
  let startInFlight = true;
  const healthScope = new CancellationScope();
  // Set by `hosts.reap`: the host is given up, so is the teardown waiting for it.
  let reapedDetail: string | undefined;
  const teardownScope = new CancellationScope();

  const publishState = (snapshot: Snapshot) =>
    upsertSearchAttributes(
      containerRunAttributes(input, snapshot.value, snapshot.context.containerId),
    );

  const cleanup = async (snapshot: Snapshot) => {
    healthScope.cancel();
    if (startInFlight) {
      startScope.cancel();
      await startSettled;
    }
    // Removes the container and the secrets file, whenever the host answers again.
    if (reapedDetail === undefined) {
      await teardownScope
        .run(async () => {
          await hostCleanup.teardownContainer({ containerName: input.containerName });
          secretsFileRemoved = true;
        })
        .catch((err) => {
          if (!isCancellation(err) || reapedDetail === undefined) throw err;
        });
    }
    await shared.recordAudit({
      event_type: `container_${snapshot.value.toLowerCase()}`,
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
        ...(reapedDetail === undefined ? {} : { reaped: reapedDetail }),
      },
    });
  };

  const startedAudit = {
    event_type: 'container_started',
    dedupe_key: `${workflowId}/started`,
    session_id: input.containerName,
    room_id: input.roomId,
    details: { agent_type: input.agentType, key_id: input.keyId, image: input.image },
  };

  const driver = new MachineDriver({
    machine: containerRunMachine,
    input: {
      ttlMs: input.ttlMs,
      secretsDeadlineMs: input.secretsDeadlineMs,
      limitMicroUsd: input.limitMicroUsd ?? 0,
    },
    publishKey: (s) => `${s.value}/${s.context.containerId ?? ''}`,
    // Every start sets a Pending run's attributes (startRunUntilActive, startRunWorkflow).
    publishedAtStart: oneLaunch,
    publish: publishState,
    async perform(action) {
      if (action.type === 'removeSecrets') {
        try {
          await CancellationScope.nonCancellable(() =>
            secrets.removeSecretsFile({ containerName: input.containerName }),
          );
          secretsFileRemoved = true;
        } catch (err) {
          // The teardown removes it when the host is back.
          if (!hostDidNotAnswer(err)) throw err;
          driver.push({ type: 'HOST_LOST', detail: hostLost() });
        }
      }
    },
    cleanup,
    // Audited after the step's actions: the TTL and secrets timers must not wait for an audit
    // store that is down (its activity retries without end).
    async afterStep(before, after) {
      if (oneLaunch || before.value !== 'Pending' || after.value !== 'Active') return;
      await shared.recordAudit({ ...startedAudit, container_id: after.context.containerId });
    },
  });
  const state = (): LifecycleState => driver.snapshot.value;
  const context = () => driver.snapshot.context;

  const status = (): ContainerRunStatus => ({
    state: state(),
    container_name: input.containerName,
    container_id: context().containerId,
    agent_type: input.agentType,
    key_id: input.keyId,
    image: input.image,
    endpoint,
    secrets_removed: secretsFileRemoved,
    end_reason: context().endReason,
    end_detail: context().endDetail,
    exit_code: context().exitCode,
    cleanup_done: driver.cleanupDone,
    notifications: [...notifications],
    secrets_mode: secretsMode,
    usage: {
      requests: context().spend.requests,
      input_tokens: context().spend.inputTokens,
      output_tokens: context().spend.outputTokens,
      cost_usd: toUsd(context().spend.costMicroUsd),
      limit_usd: input.limitMicroUsd ? toUsd(input.limitMicroUsd) : null,
    },
  });

  setHandler(containerStatusQuery, status);
  setHandler(containerExitedSignal, (exit) => {
    driver.push({ type: 'CONTAINER_EXITED', ...exit });
  });
  setHandler(hostReapedSignal, ({ detail }) => {
    reapedDetail = detail;
    driver.push({ type: 'HOST_LOST', detail });
    teardownScope.cancel();
  });
  setHandler(secretsAckedSignal, () => {
    driver.push({ type: 'SECRETS_ACKED' });
  });
  setHandler(budgetExceededSignal, () => {
    driver.push({ type: 'BUDGET_EXCEEDED' });
  });
  setHandler(runUsageSignal, (u) => {
    driver.push({
      type: 'USAGE',
      inputTokens: u.input_tokens,
      outputTokens: u.output_tokens,
      costMicroUsd: u.cost_micro_usd,
    });
  });
  setHandler(agentNotifySignal, (n) => {
    notifications.push(n);
    if (notifications.length > MAX_NOTIFICATIONS) notifications.shift();
  });
  setHandler(waitActiveUpdate, async () => {
    await condition(() => state() !== 'Pending');
    if (state() !== 'Active' && context().endReason === 'start_failed') {
      throw ApplicationFailure.nonRetryable(
        context().endDetail ?? 'container start failed',
        startFailureType,
      );
    }
    if (state() !== 'Active') {
      throw ApplicationFailure.nonRetryable(
        `container run ended: ${context().endReason}`,
        'RunEnded',
      );
    }
    return {
      container_id: context().containerId!,
      container_name: input.containerName,
      status: 'running' as const,
      endpoint: endpoint!,
    };
  });
  setHandler(stopUpdate, async ({ reason, until }) => {
    driver.push({ type: 'STOP_REQUESTED', reason });
    await condition(() => (until === 'ended' ? driver.done : driver.cleanupDone));
    return {
      status: 'stopped' as const,
      container_id: context().containerId ?? '',
      container_name: input.containerName,
    };
  });

  await driver.start();

  // Pending: the secrets file, then the container. Cancelled if the run ends first (stop).
  const containerArgs = {
    containerName: input.containerName,
    workflowId,
    image: input.image,
    agentType: input.agentType,
    keyId: input.keyId,
    hostId: input.hostId,
    network: input.network,
    roomId: input.roomId,
    memoryBytes: input.memoryBytes,
    secretsMode,
    limitMicroUsd: input.limitMicroUsd ?? 0,
  };
  startSettled = startScope
    .run(async () => {
      let started;
      if (oneLaunch) {
        started = await host.launchContainer({ ...containerArgs, audit: startedAudit });
      } else {
        await host.writeSecretsFile({
          containerName: input.containerName,
          keyId: input.keyId,
          secretsMode,
        });
        started = await host.startContainer(containerArgs);
      }
      endpoint = started.endpoint;
      startInFlight = false;
      driver.push({ type: 'STARTED', containerId: started.containerId });
    })
    .catch((err) => {
      startInFlight = false;
      if (isCancellation(err)) return;
      if (hostDidNotAnswer(err)) {
        driver.push({ type: 'HOST_LOST', detail: hostLost() });
        return;
      }
      const cause = err instanceof ActivityFailure ? err.cause : err;
      if (cause instanceof ApplicationFailure && cause.type) startFailureType = cause.type;
      driver.push({
        type: 'START_FAILED',
        message: cause instanceof Error ? cause.message : String(cause),
      });
    });

  // Active: Docker events arrive as signals; this periodic inspect is the guarantee.
  healthScope
    .run(async () => {
      await condition(() => state() !== 'Pending');
      while (state() === 'Active') {
        await sleep(input.healthCheckIntervalMs);
        if (state() !== 'Active') break;
        try {
          const seen = await health.inspectContainer({ containerName: input.containerName });
          if (!seen.running) {
            driver.push({
              type: 'CONTAINER_EXITED',
              exitCode: seen.exitCode,
              oomKilled: seen.oomKilled,
            });
          }
        } catch (err) {
          if (isCancellation(err)) throw err;
          if (hostDidNotAnswer(err)) {
            driver.push({ type: 'HOST_LOST', detail: hostLost() });
            break;
          }
          driver.push({
            type: 'HEALTH_FAILED',
            message: 'container inspection failed',
          });
        }
      }
    })
    .catch((err) => {
      if (!isCancellation(err)) throw err;
    });

  const end = await driver.run();
  return {
    state: end.value,
    end_reason: end.context.endReason,
    end_detail: end.context.endDetail,
    exit_code: end.context.exitCode,
  };
}
