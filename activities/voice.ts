/**
 * Voice-call activities. Those of the host's queue touch this process's media (the call's
 * werift peer lives here) and its Matrix session; those of the shared queue drive the agent's
 * container run through Temporal. Arguments and results carry ids only: SDP, call tokens and
 * TURN passwords never pass through here (they would land in history).
 */
import { ApplicationFailure, Context, CancelledFailure } from '@temporalio/activity';
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  type Client,
} from '@temporalio/client';
import type { Logger } from 'pino';
import type { UserCallState } from '../machines/voice-call.machine';
import { CallMediaError, type CallMediaHub } from '../media/call-hub';
import type { MatrixConnection } from '../matrix/client';
import { roomVerdict } from '../services/call-policy';
import { startRunWorkflow } from '../sessions/containers';
import { isClosedWorkflowError } from '../sessions/workflow-errors';
import {
  CallFailureType,
  containerStatusQuery,
  containerWorkflowId,
  stopUpdate,
  waitActiveUpdate,
  type ContainerRunInput,
  type ContainerRunResult,
  type VoiceCallInput,
} from '../workflows/definitions';

export interface RoomCheckArgs {
  roomId: string;
  userId?: string;
  policy: VoiceCallInput['policy'];
}

/** Passed, or why not (the failure type the RPC layer maps to a code, and the audit event). */
export type RoomCheck =
  | { ok: true; encrypted: boolean }
  | {
      ok: false;
      type: typeof CallFailureType.RoomDenied | typeof CallFailureType.SecurityViolation;
      reason: string;
      message: string;
    };

export interface VoiceHostActivities {
  checkCallRoom(args: RoomCheckArgs): Promise<RoomCheck>;
  prepareCallMedia(args: { sessionId: string; containerName: string }): Promise<void>;
  restartCallIce(args: { sessionId: string }): Promise<void>;
  checkCallMedia(args: { sessionId: string }): Promise<{ alive: boolean }>;
  closeCallMedia(args: { sessionId: string; reason: string; state: UserCallState }): Promise<void>;
}

export interface AgentRunActivities {
  startAgentRun(args: { run: ContainerRunInput }): Promise<{ containerName: string }>;
  checkAgentRun(args: { containerName: string }): Promise<void>;
  /** Resolves when the run ends (heartbeats while it waits; cancelled when the call ends). */
  awaitAgentRunEnd(args: { containerName: string }): Promise<ContainerRunResult>;
  stopAgentRun(args: { containerName: string }): Promise<void>;
}

export function createVoiceHostActivities(deps: {
  hub: CallMediaHub;
  matrix: MatrixConnection;
  log: Logger;
}): VoiceHostActivities {
  return {
    async checkCallRoom({ roomId, userId, policy }) {
      const verdict = roomVerdict(roomId, policy);
      if (!verdict.allowed) {
        return {
          ok: false,
          type: CallFailureType.RoomDenied,
          reason: verdict.reason,
          message:
            verdict.reason === 'room_blocked'
              ? `Room access denied: ${roomId} is blocked`
              : `Room access denied: ${roomId} is not in the allowed list`,
        };
      }
      if (!deps.matrix.loggedIn) {
        throw ApplicationFailure.nonRetryable('Matrix adapter not configured', 'NotLoggedIn');
      }
      const client = deps.matrix.requireClient();
      const state = async (type: string, key: string) => {
        try {
          return (await client.getStateEvent(roomId, type, key)) as Record<string, unknown>;
        } catch (err) {
          const status = (err as { httpStatus?: number }).httpStatus;
          if (status === 404 || status === 403) return undefined;
          throw err;
        }
      };
      const violation = (reason: string, message: string): RoomCheck => ({
        ok: false,
        type: CallFailureType.SecurityViolation,
        reason,
        message: `Security policy violation: ${message}`,
      });
      const encryption = await state('m.room.encryption', '');
      const encrypted = typeof encryption?.algorithm === 'string';
      if (policy.requireEncryptedRoom && !encrypted) {
        return violation('room_not_encrypted', `${roomId} is not end-to-end encrypted`);
      }
      if (policy.requireMembership) {
        if (!userId) return violation('caller_unknown', 'user_id is required to check membership');
        const member = await state('m.room.member', userId);
        if (member?.membership !== 'join') {
          return violation('caller_not_member', `${userId} has not joined ${roomId}`);
        }
      }
      return { ok: true, encrypted };
    },

    async prepareCallMedia({ sessionId, containerName }) {
      try {
        await deps.hub.prepare(sessionId, containerName);
      } catch (err) {
        if (err instanceof CallMediaError) {
          throw ApplicationFailure.nonRetryable(err.message, CallFailureType.AgentUnavailable);
        }
        throw err;
      }
    },

    async restartCallIce({ sessionId }) {
      try {
        await deps.hub.restartIce(sessionId);
      } catch (err) {
        if (err instanceof CallMediaError) {
          throw ApplicationFailure.nonRetryable(err.message, 'IceRestartFailed');
        }
        throw err;
      }
    },

    async checkCallMedia({ sessionId }) {
      return { alive: deps.hub.has(sessionId) };
    },

    async closeCallMedia({ sessionId, reason, state }) {
      await deps.hub.close(sessionId, { reason, state });
    },
  };
}

export function createAgentRunActivities(deps: {
  client: Client;
  taskQueue: string;
  log: Logger;
}): AgentRunActivities {
  const handleOf = (name: string) => deps.client.workflow.getHandle(containerWorkflowId(name));
  const unavailable = (message: string) =>
    ApplicationFailure.nonRetryable(message, CallFailureType.AgentUnavailable);

  return {
    /**
     * Heartbeats and yields to cancellation while the run starts: that run is a workflow this
     * bridge's own worker drives, so a bridge shutting down must not wait on it for the
     * activity's whole timeout.
     */
    async startAgentRun({ run }) {
      let handle;
      try {
        handle = await startRunWorkflow(deps.client, deps.taskQueue, run);
      } catch (err) {
        // A retried attempt: the run exists already, from the first one.
        if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
        handle = handleOf(run.containerName);
      }
      const ctx = Context.current();
      const beat = setInterval(() => ctx.heartbeat(), 2_000);
      try {
        await Promise.race([handle.executeUpdate(waitActiveUpdate), ctx.cancelled]);
      } catch (err) {
        if (err instanceof CancelledFailure) throw err;
        const cause = (err as { cause?: Error }).cause ?? (err as Error);
        throw unavailable(`the agent did not start: ${cause.message}`);
      } finally {
        clearInterval(beat);
      }
      return { containerName: run.containerName };
    },

    async checkAgentRun({ containerName }) {
      try {
        const status = await handleOf(containerName).query(containerStatusQuery);
        if (status.state !== 'Active') {
          throw unavailable(`agent ${containerName} is ${status.state}, not Active`);
        }
      } catch (err) {
        if (err instanceof WorkflowNotFoundError)
          throw unavailable(`no agent run ${containerName}`);
        throw err;
      }
    },

    async awaitAgentRunEnd({ containerName }) {
      const ctx = Context.current();
      const beat = setInterval(() => ctx.heartbeat(), 5_000);
      try {
        return await Promise.race([
          handleOf(containerName).result() as Promise<ContainerRunResult>,
          ctx.cancelled,
        ]);
      } catch (err) {
        if (err instanceof CancelledFailure) throw err;
        if (err instanceof WorkflowNotFoundError) return { state: 'Failed', end_detail: 'gone' };
        // The run failed or was terminated: for the call, the agent is gone either way.
        return { state: 'Failed', end_detail: (err as Error).message };
      } finally {
        clearInterval(beat);
      }
    },

    async stopAgentRun({ containerName }) {
      try {
        // Ended is enough: a call on a host that is gone must not wait for the host to return
        // to tear its agent down (the run does that itself, durably).
        await handleOf(containerName).executeUpdate(stopUpdate, {
          args: [{ reason: 'call_ended', until: 'ended' }],
        });
      } catch (err) {
        if (isClosedWorkflowError(err)) return;
        throw err;
      }
    },
  };
}
