import {
  ApplicationFailure,
  condition,
  log,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { SnapshotFrom } from 'xstate';
import { formatElapsed } from '../machines/lifecycle';
import {
  callStates,
  isReady,
  voiceCallMachine,
  type VoiceCallEvent,
} from '../machines/voice-call.machine';
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
import {
  ArmorclawContainerId,
  ArmorclawHost,
  ArmorclawKind,
  ArmorclawRoom,
  ArmorclawState,
  ArmorclawUserState,
} from './search-attributes';
import { MachineDriver } from './machine-driver';
import { callEffects } from './voice-call-effects';

type Snapshot = SnapshotFrom<typeof voiceCallMachine>;

/** How long cleanup waits for an admission or an agent start still in flight. */
const SETTLE_WAIT_MS = 60_000;

const PEER_EVENT: Record<string, VoiceCallEvent['type']> = {
  connected: 'PEER_CONNECTED',
  disconnected: 'PEER_DISCONNECTED',
  failed: 'PEER_FAILED',
};

/**
 * One voice call (workflow id `call-<session_id>`), on the shared lifecycle: the voice machine
 * decides, this function acts (through the MachineDriver). Pending's steps (room policy,
 * admission, the agent's run, the media on the call's host) are the machine's states, each an
 * activity whose answer is the next event; then `call-ready` answers and the caller negotiates
 * with the host's media hub (signaling, never through history). Peer facts, hangups and usage
 * arrive as signals. Every ending closes the peer, releases the admission slot, stops the
 * agent's run as configured and writes `call_ended`, whatever killed what.
 */
export async function voiceCallWorkflow(input: VoiceCallInput): Promise<VoiceCallResult> {
  const hostQueue = hostTaskQueue(input.hostId);
  // A host that is gone took its peers with it: closing is tried for a while, then given up. A
  // live host takes the task at once, so a close nobody takes within seconds is not waited for:
  // the admission slot is released after it.
  const mediaClose = proxyActivities<VoiceHostActivities>({
    taskQueue: hostQueue,
    scheduleToStartTimeout: '10s',
    startToCloseTimeout: '10s',
    scheduleToCloseTimeout: '60s',
    retry: { initialInterval: '1s', maximumInterval: '10s' },
  });
  const shared = proxyActivities<SharedActivities & AdmissionActivities & AgentRunActivities>({
    startToCloseTimeout: '90s',
    retry: { initialInterval: '1s', maximumInterval: '30s', maximumAttempts: 10 },
  });

  const info = workflowInfo();
  const workflowId = info.workflowId;
  const startedAtMs = info.startTime.getTime();
  const expiresAtMs = startedAtMs + input.ttlMs;
  let connectedAtMs: number | undefined;
  let endedAtMs: number | undefined;

  const auditBase = () => ({
    session_id: input.sessionId,
    room_id: input.roomId,
    user_id: input.userId,
  });
  /** The agent's run, once known (a start the ending overtook names it when it settles). */
  const containerNameOf = (s: Snapshot) =>
    s.context.containerName ?? effects.agentStart()?.value?.containerName;
  const resultOf = (s: Snapshot): VoiceCallResult => {
    const elapsed = (endedAtMs ?? Date.now()) - startedAtMs;
    return {
      state: callStates(s.value).lifecycle,
      end_reason: s.context.endReason,
      end_detail: s.context.endDetail,
      duration_s: Math.floor(elapsed / 1000),
      duration: formatElapsed(elapsed),
    };
  };

  const effects = callEffects({
    input,
    workflowId,
    startedAtMs,
    expiresAtMs,
    connectedAtMs: () => connectedAtMs,
    auditBase,
    push: (event) => driver.push(event),
  });

  const cleanup = async (s: Snapshot) => {
    endedAtMs = Date.now();
    effects.scope.cancel();
    const { context } = s;
    const end = resultOf(s);
    await mediaClose
      .closeCallMedia({
        sessionId: input.sessionId,
        reason: end.end_reason ?? 'ended',
        state: callStates(s.value).user,
      })
      .catch((err) => log.warn('call media not closed (host gone?)', { error: String(err) }));
    const stopAgent = input.agent.kind === 'start' || input.stopAgentOnEnd;
    // A run started for the call has a name known from the input: stopped even if its start
    // was cut short (stopping a run that never began is a no-op).
    const agentName =
      input.agent.kind === 'start' ? input.agent.run.containerName : context.containerName;
    if (stopAgent && agentName && !context.rejection) {
      // A start in flight could create the run after the stop: let it settle first.
      if (context.agentStart === 'inFlight') await effects.agentStart()?.settle(SETTLE_WAIT_MS);
      await shared.stopAgentRun({ containerName: agentName });
    }
    // An admit in flight may land in the entity all the same: wait for its answer, for a
    // while, and release if it admitted or never answered.
    let holdsSlot = context.admission === 'done';
    const admission = effects.admission();
    if (context.admission === 'inFlight' && admission) {
      const settled = await admission.settle(SETTLE_WAIT_MS);
      holdsSlot = !settled || admission.value?.admitted === true;
    }
    if (holdsSlot) await shared.releaseCall({ sessionId: input.sessionId });
    if (!context.rejection) {
      await shared.recordAudit({
        event_type: 'call_ended',
        dedupe_key: `${workflowId}/end`,
        ...auditBase(),
        container_id: containerNameOf(s),
        details: {
          reason: end.end_reason,
          detail: end.end_detail,
          state: end.state,
          duration: end.duration,
          tokens_used: context.tokensUsed,
          ice_restarts: context.iceRestarts,
        },
      });
    }
  };

  const driver = new MachineDriver({
    machine: voiceCallMachine,
    input: {
      ttlMs: input.ttlMs,
      connectTimeoutMs: input.connectTimeoutMs,
      maxDurationMs: input.budget.maxDurationMs,
      budgetWarningMs: Math.round(input.budget.maxDurationMs * input.budget.warningFraction),
      maxTokens: input.budget.maxTokens,
      tokenWarningAt: Math.ceil(input.budget.maxTokens * input.budget.warningFraction),
      existingAgent: input.agent.kind === 'existing' ? input.agent.containerName : undefined,
    },
    publishKey: (s) => {
      const { lifecycle, user } = callStates(s.value);
      return `${lifecycle}/${user}/${s.context.containerName ?? ''}`;
    },
    publish: (s) => {
      const { lifecycle, user } = callStates(s.value);
      upsertSearchAttributes([
        { key: ArmorclawKind, value: 'call' },
        { key: ArmorclawState, value: lifecycle },
        { key: ArmorclawUserState, value: user },
        { key: ArmorclawRoom, value: input.roomId },
        { key: ArmorclawHost, value: input.hostId },
        ...(s.context.containerName
          ? [{ key: ArmorclawContainerId, value: s.context.containerName }]
          : []),
      ]);
    },
    perform: (action, s) => effects.perform(action, s),
    cleanup,
    afterStep(before, after) {
      const was = callStates(before.value).lifecycle;
      if (was === 'Pending' && callStates(after.value).lifecycle === 'Active') {
        connectedAtMs = Date.now();
      }
    },
  });

  const iso = (ms: number | undefined) =>
    ms === undefined ? undefined : new Date(ms).toISOString();
  setHandler(callStatusQuery, (): VoiceCallStatus => {
    const s = driver.snapshot;
    const { lifecycle, user } = callStates(s.value);
    return {
      session_id: input.sessionId,
      room_id: input.roomId,
      user_id: input.userId,
      state: lifecycle,
      user_state: user,
      container_name: containerNameOf(s),
      host_id: input.hostId,
      created_at: new Date(startedAtMs).toISOString(),
      connected_at: iso(connectedAtMs),
      ended_at: iso(endedAtMs),
      end_reason: s.context.endReason,
      end_detail: s.context.endDetail,
      tokens_used: s.context.tokensUsed,
      ice_restarts: s.context.iceRestarts,
      cleanup_done: driver.cleanupDone,
    };
  });
  setHandler(callPeerSignal, ({ event }) => {
    const type = PEER_EVENT[event];
    if (type) driver.push({ type } as VoiceCallEvent);
  });
  setHandler(callHangupSignal, ({ reason }) => {
    driver.push({ type: 'HANGUP', reason });
  });
  setHandler(callMediaLostSignal, ({ detail }) => {
    driver.push({ type: 'MEDIA_LOST', detail });
  });
  setHandler(callUsageSignal, ({ tokens }) => {
    if (Number.isFinite(tokens) && tokens > 0) driver.push({ type: 'USAGE', tokens });
  });
  setHandler(budgetExceededSignal, () => {
    driver.push({ type: 'BUDGET_EXCEEDED' });
  });
  setHandler(callReadyUpdate, async (): Promise<CallReady> => {
    await condition(() => isReady(driver.snapshot.value) || driver.done);
    const { context } = driver.snapshot;
    if (!driver.done) {
      return {
        session_id: input.sessionId,
        room_id: input.roomId,
        container_name: context.containerName!,
        host_id: input.hostId,
        expires_at_ms: expiresAtMs,
      };
    }
    const { rejection, endReason, endDetail } = context;
    if (rejection) throw ApplicationFailure.nonRetryable(rejection.message, rejection.type);
    throw ApplicationFailure.nonRetryable(
      `call ended: ${endReason}${endDetail ? ` (${endDetail})` : ''}`,
      endReason === 'start_failed' ? CallFailureType.AgentUnavailable : CallFailureType.CallEnded,
    );
  });
  setHandler(endCallUpdate, async ({ reason }) => {
    driver.push({ type: 'HANGUP', reason: reason ?? 'rpc_end' });
    await condition(() => driver.cleanupDone);
    return resultOf(driver.snapshot);
  });

  await driver.start();
  return resultOf(await driver.run());
}
