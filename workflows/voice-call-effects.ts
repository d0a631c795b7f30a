import {
  ActivityFailure,
  CancellationScope,
  ParentClosePolicy,
  executeChild,
  isCancellation,
  log,
  proxyActivities,
  sleep,
} from '@temporalio/workflow';
import type { SnapshotFrom } from 'xstate';
import type { VoiceCallEvent, voiceCallMachine } from '../machines/voice-call.machine';
import type { AdmissionActivities } from '../activities/admission';
import type { SharedActivities } from '../activities/container-types';
import type { AgentRunActivities, VoiceHostActivities } from '../activities/voice';
import {
  CallFailureType,
  HOST_GRACE_DEFAULT_MS,
  hostTaskQueue,
  type AdmitCallResult,
  type VoiceCallInput,
} from './definitions';
import { hostLostDetail } from './host-loss';

/** The longest a call waits for its host's media check. */
const MEDIA_GRACE_MS = 20_000;
import type { MachineAction } from './machine-driver';
import { InFlight } from './machine-driver';
import type { matrixSendWorkflow } from './matrix-send';

type Snapshot = SnapshotFrom<typeof voiceCallMachine>;

const REFUSAL_TYPE: Record<Extract<AdmitCallResult, { admitted: false }>['reason'], string> = {
  rate_limited: CallFailureType.RateLimited,
  max_concurrent: CallFailureType.MaxConcurrent,
  budget_exceeded: CallFailureType.BudgetExceeded,
};

/**
 * What the voice machine's actions do, short of cleanup. Pending's steps, the watches on the
 * agent and the media, an ICE restart and the budget notice run beside the event loop, in one
 * scope the call's cleanup cancels; what they learn comes back to the machine as events
 * (`push`). The admission and the agent start are never cancelled (an ending that overtakes
 * them lets them settle, then undoes them): their handles are kept for the cleanup.
 */
export function callEffects(call: {
  input: VoiceCallInput;
  workflowId: string;
  startedAtMs: number;
  expiresAtMs: number;
  connectedAtMs(): number | undefined;
  auditBase(): { session_id: string; room_id: string; user_id?: string };
  push(event: VoiceCallEvent): void;
}) {
  const { input, workflowId, push } = call;
  const hostQueue = hostTaskQueue(input.hostId);
  const media = proxyActivities<VoiceHostActivities>({
    taskQueue: hostQueue,
    startToCloseTimeout: '30s',
    retry: { initialInterval: '500ms', maximumAttempts: 3 },
  });
  // The peer dies with its host, so a call gives its host less time than a run does: at most
  // 20 s, and the check's period plus its wait stay within the host's grace.
  const graceMs = Math.min(MEDIA_GRACE_MS, input.hostGraceMs ?? HOST_GRACE_DEFAULT_MS);
  const mediaWaitMs = Math.max(1_000, graceMs - input.mediaCheckIntervalMs);
  const mediaCheck = proxyActivities<VoiceHostActivities>({
    taskQueue: hostQueue,
    startToCloseTimeout: '5s',
    scheduleToCloseTimeout: mediaWaitMs,
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
  const scope = new CancellationScope();
  let admission: InFlight<AdmitCallResult> | undefined;
  let agentStart: InFlight<{ containerName: string }> | undefined;

  /** Its failure is logged, never thrown (the call goes on). */
  const launch = (what: string, effect: () => Promise<void>) => {
    scope.run(effect).catch((err) => {
      if (!isCancellation(err)) log.warn(`call: ${what} failed`, { error: String(err) });
    });
  };

  /** One of Pending's steps: its activity's answer is the machine's next event. */
  const attempt = (effect: () => Promise<VoiceCallEvent>) => {
    scope
      .run(effect)
      .then(push)
      .catch((err) => {
        if (isCancellation(err)) return;
        const cause = err instanceof ActivityFailure ? err.cause : err;
        push({
          type: 'START_FAILED',
          message: cause instanceof Error ? cause.message : String(cause),
        });
      });
  };

  const checkRoom = () =>
    attempt(async () => {
      const room = await media.checkCallRoom({
        roomId: input.roomId,
        userId: input.userId,
        policy: input.policy,
      });
      if (room.ok) return { type: 'ROOM_OK' };
      const { type: failureType, reason, message } = room;
      return { type: 'REJECTED', failureType, reason, message };
    });

  const admit = () => {
    const admitting = new InFlight(
      CancellationScope.nonCancellable(() =>
        shared.admitCall({
          sessionId: input.sessionId,
          roomId: input.roomId,
          userKey: input.userId ?? `room:${input.roomId}`,
          hostId: input.hostId,
          // The admission workflow keeps an unreleased slot for a grace period past this.
          expiresAtMs: call.expiresAtMs,
          limits: {
            rateLimitCalls: input.policy.rateLimitCalls,
            rateLimitWindowMs: input.policy.rateLimitWindowMs,
            maxConcurrentCalls: input.policy.maxConcurrentCalls,
          },
        }),
      ),
    );
    admission = admitting;
    attempt(async () => {
      const answer = await admitting.promise;
      if (answer.admitted) return { type: 'ADMITTED' };
      const { reason, message } = answer;
      return { type: 'REJECTED', failureType: REFUSAL_TYPE[reason], reason, message };
    });
  };

  const startAgent = () => {
    if (input.agent.kind !== 'start') return;
    const run = input.agent.run;
    const starting = new InFlight(
      CancellationScope.nonCancellable(() => shared.startAgentRun({ run })),
    );
    agentStart = starting;
    attempt(async () => ({
      type: 'AGENT_STARTED',
      containerName: (await starting.promise).containerName,
    }));
  };

  const checkAgent = (containerName: string) =>
    attempt(async () => {
      await shared.checkAgentRun({ containerName });
      return { type: 'AGENT_OK' };
    });

  const prepareMedia = (containerName: string) =>
    attempt(async () => {
      await media.prepareCallMedia({ sessionId: input.sessionId, containerName });
      await shared.recordAudit({
        event_type: 'call_created',
        dedupe_key: `${workflowId}/created`,
        ...call.auditBase(),
        container_id: containerName,
        details: {
          ttl_s: input.ttlMs / 1000,
          host_id: input.hostId,
          agent: containerName,
          agent_started_for_call: input.agent.kind === 'start',
        },
      });
      return { type: 'MEDIA_READY' };
    });

  const auditRejection = async ({ rejection, endDetail }: Snapshot['context']) => {
    await shared.recordAudit({
      event_type:
        rejection?.type === CallFailureType.SecurityViolation
          ? 'security_violation'
          : 'call_rejected',
      dedupe_key: `${workflowId}/rejected`,
      ...call.auditBase(),
      details: { reason: endDetail, message: rejection?.message, code: rejection?.type },
    });
  };

  /** The agent's run ending ends the call (Failed: agent_died). */
  const watchAgent = (containerName: string) =>
    launch('agent watch', async () => {
      const end = await watch.awaitAgentRunEnd({ containerName });
      push({
        type: 'AGENT_DIED',
        detail: `agent run ${end.state}${end.end_reason ? ` (${end.end_reason})` : ''}`,
      });
    });

  /** The peer lives in one process: a bridge restart or a dead host loses it. */
  const watchMedia = () =>
    launch('media check', async () => {
      for (;;) {
        await sleep(input.mediaCheckIntervalMs);
        let alive: boolean;
        try {
          ({ alive } = await mediaCheck.checkCallMedia({ sessionId: input.sessionId }));
        } catch (err) {
          if (isCancellation(err)) throw err;
          push({ type: 'MEDIA_LOST', detail: hostLostDetail(input.hostId, graceMs) });
          return;
        }
        if (!alive) {
          push({ type: 'MEDIA_LOST', detail: `host ${input.hostId} no longer holds the call` });
          return;
        }
      }
    });

  const restartIce = () =>
    launch('ICE restart', async () => {
      try {
        await media.restartCallIce({ sessionId: input.sessionId });
      } catch (err) {
        if (isCancellation(err)) throw err;
        push({ type: 'PEER_FAILED' });
      }
    });

  const warnBudget = (tokensUsed: number) =>
    launch('budget warning', async () => {
      await shared.recordAudit({
        event_type: 'budget_warning',
        dedupe_key: `${workflowId}/budget-warning`,
        ...call.auditBase(),
        details: {
          fraction: input.budget.warningFraction,
          max_duration_s: input.budget.maxDurationMs / 1000,
          max_tokens: input.budget.maxTokens,
          tokens_used: tokensUsed,
          elapsed_s: Math.floor((Date.now() - (call.connectedAtMs() ?? call.startedAtMs)) / 1000),
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

  return {
    scope,
    /** The admission asked for, if any (it may still be in flight when the call ends). */
    admission: () => admission,
    /** The agent start asked for, if any (likewise). */
    agentStart: () => agentStart,

    /** Performs one of the machine's actions; only the rejection audit is waited for. */
    async perform(action: MachineAction, s: Snapshot): Promise<void> {
      const containerName = s.context.containerName!;
      switch (action.type) {
        case 'checkRoom':
          return checkRoom();
        case 'admit':
          return admit();
        case 'startAgent':
          return startAgent();
        case 'checkAgent':
          return checkAgent(containerName);
        case 'prepareMedia':
          return prepareMedia(containerName);
        case 'auditRejection':
          return auditRejection(s.context);
        case 'watchAgent':
          return watchAgent(containerName);
        case 'watchMedia':
          return watchMedia();
        case 'startIceRestart':
          return restartIce();
        case 'warnBudget':
          return warnBudget(s.context.tokensUsed);
      }
    },
  };
}
