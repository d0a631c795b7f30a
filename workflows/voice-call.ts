import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  ParentClosePolicy,
  allHandlersFinished,
  condition,
  executeChild,
  isCancellation,
  log,
  patched,
  proxyActivities,
  setHandler,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { initialTransition, transition, type SnapshotFrom } from 'xstate';
import { formatElapsed, isTerminal, type LifecycleState } from '../machines/lifecycle';
import { callStates, voiceCallMachine, type VoiceCallEvent } from '../machines/voice-call.machine';
import type { AdmissionActivities } from '../activities/admission';
import type { SharedActivities } from '../activities/container-types';
import type { AgentRunActivities, VoiceHostActivities } from '../activities/voice';
import {
  budgetExceededSignal,
  CallFailureType,
  callHangupSignal,
  callMediaLostSignal,
  callPeerSignal,
  callReadyUpdate,
  callStatusQuery,
  callUsageSignal,
  endCallUpdate,
  hostTaskQueue,
  type CallReady,
  type VoiceCallInput,
  type VoiceCallResult,
  type VoiceCallStatus,
} from './definitions';
import type { matrixSendWorkflow } from './matrix-send';
import {
  ArmorclawContainerId,
  ArmorclawHost,
  ArmorclawKind,
  ArmorclawRoom,
  ArmorclawState,
  ArmorclawUserState,
} from './search-attributes';
import { MachineTimers } from './machine-timers';

/** How long cleanup waits for an admission or an agent start still in flight. */
const SETTLE_WAIT_MS = 60_000;

const PEER_EVENT: Record<string, VoiceCallEvent['type']> = {
  connected: 'PEER_CONNECTED',
  disconnected: 'PEER_DISCONNECTED',
  failed: 'PEER_FAILED',
};

/**
 * One voice call (workflow id `call-<session_id>`), on the shared lifecycle: the voice machine
 * decides, this function acts. Pending: room policy, admission (rate, concurrency, budget),
 * the agent's run, the media on the call's host; then `call-ready` answers and the caller
 * negotiates with the host's media hub (signaling, never through history). Peer facts, hangups
 * and usage arrive as signals. Every ending closes the peer, releases the admission slot, stops
 * the agent's run as configured and writes `call_ended`, whatever killed what.
 */
export async function voiceCallWorkflow(input: VoiceCallInput): Promise<VoiceCallResult> {
  const hostQueue = hostTaskQueue(input.hostId);
  const media = proxyActivities<VoiceHostActivities>({
    taskQueue: hostQueue,
    startToCloseTimeout: '30s',
    retry: { initialInterval: '500ms', maximumAttempts: 3 },
  });
  // A host that is gone took its peers with it: closing is tried for a while, then given up.
  const mediaClose = proxyActivities<VoiceHostActivities>({
    taskQueue: hostQueue,
    startToCloseTimeout: '10s',
    scheduleToCloseTimeout: '60s',
    retry: { initialInterval: '1s', maximumInterval: '10s' },
  });
  const mediaCheck = proxyActivities<VoiceHostActivities>({
    taskQueue: hostQueue,
    startToCloseTimeout: '5s',
    scheduleToCloseTimeout: '20s',
    retry: { initialInterval: '1s', maximumAttempts: 3 },
  });
  const shared = proxyActivities<SharedActivities & AdmissionActivities & AgentRunActivities>({
    startToCloseTimeout: '90s',
    retry: { initialInterval: '1s', maximumInterval: '30s', maximumAttempts: 10 },
  });
  const watch = proxyActivities<AgentRunActivities>({
    startToCloseTimeout: input.ttlMs + 120_000,
    heartbeatTimeout: '30s',
    retry: { initialInterval: '1s', maximumInterval: '10s' },
  });

  const info = workflowInfo();
  const workflowId = info.workflowId;
  const startedAtMs = info.startTime.getTime();
  const expiresAtMs = startedAtMs + input.ttlMs;
  const [initialSnapshot, initialActions] = initialTransition(voiceCallMachine, {
    ttlMs: input.ttlMs,
    connectTimeoutMs: input.connectTimeoutMs,
    maxDurationMs: input.budget.maxDurationMs,
    budgetWarningMs: Math.round(input.budget.maxDurationMs * input.budget.warningFraction),
    maxTokens: input.budget.maxTokens,
    tokenWarningAt: Math.ceil(input.budget.maxTokens * input.budget.warningFraction),
  });
  let snapshot = initialSnapshot;
  const queue: VoiceCallEvent[] = [];
  const timers = new MachineTimers<VoiceCallEvent>((event) => queue.push(event));
  const background = new CancellationScope();
  let containerName = input.agent.kind === 'existing' ? input.agent.containerName : undefined;
  let ready = false;
  let rejection: { type: string; message: string } | undefined;
  let admitted = false;
  /** Set while `admitCall` runs: an admit the call's end overtook may still take a slot. */
  let admitting = false;
  /** Set while the agent's run is being started (not cancelled: see cleanup). */
  let startingAgent = false;
  let agentStartSettles = false;
  let connectedAtMs: number | undefined;
  let endedAtMs: number | undefined;
  let cleanupDone = false;

  const state = (): LifecycleState => callStates(snapshot.value).lifecycle;
  const userState = () => callStates(snapshot.value).user;
  const iso = (ms: number | undefined) =>
    ms === undefined ? undefined : new Date(ms).toISOString();
  const status = (): VoiceCallStatus => ({
    session_id: input.sessionId,
    room_id: input.roomId,
    user_id: input.userId,
    state: state(),
    user_state: userState(),
    container_name: containerName,
    host_id: input.hostId,
    created_at: new Date(startedAtMs).toISOString(),
    connected_at: iso(connectedAtMs),
    ended_at: iso(endedAtMs),
    end_reason: snapshot.context.endReason,
    end_detail: snapshot.context.endDetail,
    tokens_used: snapshot.context.tokensUsed,
    ice_restarts: snapshot.context.iceRestarts,
    cleanup_done: cleanupDone,
  });
  const result = (): VoiceCallResult => {
    const elapsed = (endedAtMs ?? Date.now()) - startedAtMs;
    return {
      state: state(),
      end_reason: snapshot.context.endReason,
      end_detail: snapshot.context.endDetail,
      duration_s: Math.floor(elapsed / 1000),
      duration: formatElapsed(elapsed),
    };
  };
  const auditBase = () => ({
    session_id: input.sessionId,
    room_id: input.roomId,
    user_id: input.userId,
  });

  setHandler(callStatusQuery, status);
  setHandler(callPeerSignal, ({ event }) => {
    const type = PEER_EVENT[event];
    if (type) queue.push({ type } as VoiceCallEvent);
  });
  setHandler(callHangupSignal, ({ reason }) => {
    queue.push({ type: 'HANGUP', reason });
  });
  setHandler(callMediaLostSignal, ({ detail }) => {
    queue.push({ type: 'MEDIA_LOST', detail });
  });
  setHandler(callUsageSignal, ({ tokens }) => {
    if (Number.isFinite(tokens) && tokens > 0) queue.push({ type: 'USAGE', tokens });
  });
  setHandler(budgetExceededSignal, () => {
    queue.push({ type: 'BUDGET_EXCEEDED' });
  });
  setHandler(callReadyUpdate, async (): Promise<CallReady> => {
    await condition(() => ready || isTerminal(state()));
    if (ready && !isTerminal(state())) {
      return {
        session_id: input.sessionId,
        room_id: input.roomId,
        container_name: containerName!,
        host_id: input.hostId,
        expires_at_ms: expiresAtMs,
      };
    }
    if (rejection) throw ApplicationFailure.nonRetryable(rejection.message, rejection.type);
    throw ApplicationFailure.nonRetryable(
      `call ended: ${snapshot.context.endReason}${snapshot.context.endDetail ? ` (${snapshot.context.endDetail})` : ''}`,
      snapshot.context.endReason === 'start_failed'
        ? CallFailureType.AgentUnavailable
        : CallFailureType.CallEnded,
    );
  });
  setHandler(endCallUpdate, async ({ reason }) => {
    if (!isTerminal(state())) queue.push({ type: 'HANGUP', reason: reason ?? 'rpc_end' });
    await condition(() => cleanupDone);
    return result();
  });

  const publishState = () =>
    upsertSearchAttributes([
      { key: ArmorclawKind, value: 'call' },
      { key: ArmorclawState, value: state() },
      { key: ArmorclawUserState, value: userState() },
      { key: ArmorclawRoom, value: input.roomId },
      { key: ArmorclawHost, value: input.hostId },
      ...(containerName ? [{ key: ArmorclawContainerId, value: containerName }] : []),
    ]);

  /** Runs beside the event loop; its failure is logged, never thrown (the call goes on). */
  const launch = (what: string, effect: () => Promise<void>) => {
    background.run(effect).catch((err) => {
      if (!isCancellation(err)) log.warn(`call: ${what} failed`, { error: String(err) });
    });
  };

  const warnBudget = () =>
    launch('budget warning', async () => {
      const key = `${workflowId}/budget-warning`;
      const used = snapshot.context.tokensUsed;
      await shared.recordAudit({
        event_type: 'budget_warning',
        dedupe_key: key,
        ...auditBase(),
        details: {
          fraction: input.budget.warningFraction,
          max_duration_s: input.budget.maxDurationMs / 1000,
          max_tokens: input.budget.maxTokens,
          tokens_used: used,
          elapsed_s: Math.floor((Date.now() - (connectedAtMs ?? startedAtMs)) / 1000),
        },
      });
      await executeChild<typeof matrixSendWorkflow>('matrixSendWorkflow', {
        workflowId: `${workflowId}-budget-warning`,
        args: [
          {
            hostId: input.hostId,
            roomId: input.roomId,
            msgtype: 'm.notice',
            body: `Voice call ${input.sessionId}: ${Math.round(input.budget.warningFraction * 100)}% of its budget is used; it ends when the budget runs out.`,
          },
        ],
        parentClosePolicy: ParentClosePolicy.ABANDON,
      });
    });

  const cleanup = async () => {
    await CancellationScope.nonCancellable(async () => {
      endedAtMs = Date.now();
      timers.cancelAll();
      background.cancel();
      const end = result();
      await mediaClose
        .closeCallMedia({
          sessionId: input.sessionId,
          reason: end.end_reason ?? 'ended',
          state: userState(),
        })
        .catch((err) => log.warn('call media not closed (host gone?)', { error: String(err) }));
      const stopAgent = input.agent.kind === 'start' || input.stopAgentOnEnd;
      // A run started for the call has a name known from the input: stopped even if its start
      // was cut short (stopping a run that never began is a no-op).
      const agentName =
        input.agent.kind === 'start' ? input.agent.run.containerName : containerName;
      if (stopAgent && agentName && snapshot.context.endReason !== 'rejected') {
        // A start in flight could create the run after the stop: let it settle first.
        if (startingAgent && agentStartSettles) {
          await condition(() => !startingAgent, SETTLE_WAIT_MS);
        }
        await shared.stopAgentRun({ containerName: agentName });
      }
      // An admit still in flight is not cancelled (it may land in the entity all the same):
      // wait for its answer, for a while, and release if it admitted or never answered.
      if (admitting) await condition(() => !admitting, SETTLE_WAIT_MS);
      if (admitted || admitting) await shared.releaseCall({ sessionId: input.sessionId });
      if (!rejection) {
        await shared.recordAudit({
          event_type: 'call_ended',
          dedupe_key: `${workflowId}/end`,
          ...auditBase(),
          container_id: containerName,
          details: {
            reason: end.end_reason,
            detail: end.end_detail,
            state: end.state,
            duration: end.duration,
            tokens_used: snapshot.context.tokensUsed,
            ice_restarts: snapshot.context.iceRestarts,
          },
        });
      }
    });
    cleanupDone = true;
  };

  const perform = async (actions: typeof initialActions) => {
    for (const action of actions) {
      const type = action.type as string;
      if (timers.handle(action)) continue;
      if (type === 'startIceRestart') {
        launch('ICE restart', async () => {
          try {
            await media.restartCallIce({ sessionId: input.sessionId });
          } catch (err) {
            if (isCancellation(err)) throw err;
            queue.push({ type: 'PEER_FAILED' });
          }
        });
      } else if (type === 'warnBudget') {
        warnBudget();
      } else if (type === 'cleanup') {
        await cleanup();
      }
    }
  };

  const step = async (event: VoiceCallEvent) => {
    const before = callStates(snapshot.value);
    const [next, actions] = transition(voiceCallMachine, snapshot, event);
    snapshot = next as SnapshotFrom<typeof voiceCallMachine>;
    const after = callStates(snapshot.value);
    if (after.lifecycle === 'Active' && before.lifecycle === 'Pending') connectedAtMs = Date.now();
    if (after.lifecycle !== before.lifecycle || after.user !== before.user) publishState();
    await perform(actions);
  };

  const reject = async (type: string, reason: string, message: string) => {
    rejection = { type, message };
    const violation = type === CallFailureType.SecurityViolation;
    await shared.recordAudit({
      event_type: violation ? 'security_violation' : 'call_rejected',
      dedupe_key: `${workflowId}/rejected`,
      ...auditBase(),
      details: { reason, message, code: type },
    });
    queue.push({ type: 'REJECTED', detail: reason });
  };

  /** Pending's work: policy, admission, agent, media. Ends in `ready` or an ending event. */
  const setup = async () => {
    const room = await media.checkCallRoom({
      roomId: input.roomId,
      userId: input.userId,
      policy: input.policy,
    });
    if (!room.ok) return reject(room.type, room.reason, room.message);
    admitting = true;
    const admission = await CancellationScope.nonCancellable(() =>
      shared.admitCall({
        sessionId: input.sessionId,
        roomId: input.roomId,
        userKey: input.userId ?? `room:${input.roomId}`,
        hostId: input.hostId,
        // The admission workflow keeps an unreleased slot for a grace period past this.
        expiresAtMs,
        limits: {
          rateLimitCalls: input.policy.rateLimitCalls,
          rateLimitWindowMs: input.policy.rateLimitWindowMs,
          maxConcurrentCalls: input.policy.maxConcurrentCalls,
        },
      }),
    ).finally(() => (admitting = false));
    if (isTerminal(state())) {
      // The call ended while admitting: its cleanup releases what was admitted.
      admitted = admission.admitted;
      return;
    }
    if (!admission.admitted) {
      const type =
        admission.reason === 'rate_limited'
          ? CallFailureType.RateLimited
          : admission.reason === 'max_concurrent'
            ? CallFailureType.MaxConcurrent
            : CallFailureType.BudgetExceeded;
      return reject(type, admission.reason, admission.message);
    }
    admitted = true;
    if (input.agent.kind === 'start') {
      const run = input.agent.run;
      agentStartSettles = patched('agent-start-settles');
      startingAgent = true;
      ({ containerName } = await (
        agentStartSettles
          ? CancellationScope.nonCancellable(() => shared.startAgentRun({ run }))
          : shared.startAgentRun({ run })
      ).finally(() => (startingAgent = false)));
      if (isTerminal(state())) return; // ended meanwhile: cleanup stops the run
    } else {
      await shared.checkAgentRun({ containerName: input.agent.containerName });
    }
    publishState();
    await media.prepareCallMedia({ sessionId: input.sessionId, containerName: containerName! });
    await shared.recordAudit({
      event_type: 'call_created',
      dedupe_key: `${workflowId}/created`,
      ...auditBase(),
      container_id: containerName,
      details: {
        ttl_s: input.ttlMs / 1000,
        host_id: input.hostId,
        agent: containerName,
        agent_started_for_call: input.agent.kind === 'start',
      },
    });
    ready = true;
    watchAgent();
    checkMedia();
  };

  /** The agent's run ending ends the call (Failed: agent_died). */
  const watchAgent = () =>
    launch('agent watch', async () => {
      const end = await watch.awaitAgentRunEnd({ containerName: containerName! });
      queue.push({
        type: 'AGENT_DIED',
        detail: `agent run ${end.state}${end.end_reason ? ` (${end.end_reason})` : ''}`,
      });
    });

  /** The peer lives in one process: a bridge restart or a dead host loses it. */
  const checkMedia = () =>
    launch('media check', async () => {
      for (;;) {
        await sleep(input.mediaCheckIntervalMs);
        let alive: boolean;
        try {
          ({ alive } = await mediaCheck.checkCallMedia({ sessionId: input.sessionId }));
        } catch (err) {
          if (isCancellation(err)) throw err;
          queue.push({ type: 'MEDIA_LOST', detail: `host ${input.hostId} unreachable` });
          return;
        }
        if (!alive) {
          queue.push({
            type: 'MEDIA_LOST',
            detail: `host ${input.hostId} no longer holds the call`,
          });
          return;
        }
      }
    });

  publishState();
  await perform(initialActions);
  background.run(setup).catch((err) => {
    if (isCancellation(err)) return;
    const cause = err instanceof ActivityFailure ? err.cause : err;
    queue.push({
      type: 'START_FAILED',
      message: cause instanceof Error ? cause.message : String(cause),
    });
  });

  while (!isTerminal(state())) {
    await condition(() => queue.length > 0);
    await step(queue.shift()!);
  }
  queue.length = 0;
  await condition(() => cleanupDone && allHandlersFinished());
  return result();
}
