/**
 * The spec's voice methods. `webrtc.start` starts the call's workflow and waits until it is
 * admitted and its media prepared (`call-ready`); the SDP answer, the call token and the TURN
 * credentials are made here, in the bridge process, and go to the client only — never into
 * Temporal history. Negotiation beyond an optional offer in `start` runs over the signaling
 * server (docs/voice.md).
 */
import { randomUUID } from 'node:crypto';
import { WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';
import type { Logger } from 'pino';
import { agentTypeRun, type BridgeConfig } from '../../config/load';
import { formatElapsed } from '../../machines/lifecycle';
import type { UserCallState } from '../../machines/voice-call.machine';
import { CallMediaError, type CallMediaHub } from '../../media/call-hub';
import type { AuditLog } from '../../services/audit-log';
import { toMicroUsd } from '../../services/budget';
import { signCallToken } from '../../services/call-tokens';
import { parseDuration } from '../../formats/duration';
import type { Keystore } from '../../services/keystore';
import { isRoomId } from '../../services/matrix-trust';
import { issueTurnCredentials } from '../../services/turn-credentials';
import {
  callReadyUpdate,
  callWorkflowId,
  endCallUpdate,
  type CallAgent,
  type VoiceCallInput,
} from '../../workflows/definitions';
import {
  ArmorclawHost,
  ArmorclawKind,
  ArmorclawRoom,
  ArmorclawState,
  ArmorclawUserState,
} from '../../workflows/search-attributes';
import type { RpcDispatcher } from '../dispatcher';
import { ErrorCode, RpcError, workflowFailureError, invalidParams } from '../errors';
import { noParams, parseParams } from '../params';
import { AGENT_TYPE, checkCredential } from './containers';
import type { voiceCallWorkflow } from '../../workflows/voice-call';
import { isClosedWorkflowError } from '../../sessions/workflow-errors';

/** The audit events of voice calls (`webrtc.get_audit_log`). */
export const VOICE_AUDIT_EVENTS = [
  'call_created',
  'call_ended',
  'call_rejected',
  'budget_warning',
  'security_violation',
] as const;

export interface WebrtcMethodsDeps {
  client: Client;
  taskQueue: string;
  hostId: string;
  hub: CallMediaHub;
  auditLog: AuditLog;
  keystore: Keystore;
  matrixReady(): boolean;
  /** Signs call tokens; lives in the keystore, never in history. */
  tokenKey: Buffer;
  voice: BridgeConfig['voice'];
  matrixPolicy: { trustedRooms: string[]; emptyListAllowsAll: boolean };
  containers: BridgeConfig['containers'];
  /** The per-run limit a call's own agent gets (proxy mode only; 0: none). */
  runLimitUsd: number;
  /** Where callers reach the signaling server (known once it listens). */
  signalingUrl(): string;
  /** The browser call page (`…/call`). */
  callPageUrl(): string;
  mediaCheckIntervalMs?: number;
  /** `host_grace`, for the call and the agent run started for it. */
  hostGraceMs: number;
  log: Logger;
}

const SESSION_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const USER_ID = /^@[^\s:]{1,255}:[^\s]{1,255}$/;
const CONTAINER_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

const startParams = z.strictObject({
  room_id: z.string().max(255),
  ttl: z.string().max(32).optional(),
  /** The caller's SDP offer; without it, the caller offers over signaling. */
  sdp_offer: z
    .string()
    .max(64 * 1024)
    .optional(),
  user_id: z.string().max(511).optional(),
  /** A running agent (container name) to talk to... */
  container_name: z.string().max(128).optional(),
  /** ...or a credential to start one for the call. */
  key_id: z.string().max(128).optional(),
  agent_type: z.string().max(32).optional(),
});
const endParams = z.strictObject({
  session_id: z.string().max(64),
  reason: z.string().max(256).optional(),
});
const iceParams = z.strictObject({
  session_id: z.string().max(64),
  candidate: z.strictObject({
    candidate: z.string().max(1024),
    sdpMid: z.string().max(64).nullable().optional(),
    sdpMLineIndex: z.number().int().min(0).max(64).nullable().optional(),
    usernameFragment: z.string().max(256).nullable().optional(),
  }),
});
const auditParams = z.strictObject({
  limit: z.number().int().min(1).max(1000).optional(),
  session_id: z.string().max(64).optional(),
});

/** The spec's session states: connecting, connected, failed (and reconnecting, ours). */
const LIST_STATE: Record<UserCallState, string> = {
  Connecting: 'connecting',
  Live: 'connected',
  Reconnecting: 'reconnecting',
  Ended: 'ended',
  Failed: 'failed',
};

export function registerWebrtcMethods(dispatcher: RpcDispatcher, deps: WebrtcMethodsDeps): void {
  const { voice } = deps;

  dispatcher.addMethod('webrtc.start', async (params) => {
    const p = parseParams(startParams, params);
    if (!isRoomId(p.room_id))
      throw invalidParams('Invalid params: room_id must be a room id (!opaque)');
    if (p.user_id !== undefined && !USER_ID.test(p.user_id)) {
      throw invalidParams('Invalid params: user_id must be a Matrix user id (@name:server)');
    }
    let ttlMs = voice.defaultTtlMs;
    if (p.ttl !== undefined) {
      const parsed = parseDuration(p.ttl);
      if (parsed === null || parsed <= 0) {
        throw invalidParams('Invalid params: ttl must be a duration such as "30s", "10m" or "1h"');
      }
      if (parsed > voice.maxTtlMs) {
        throw invalidParams(
          `Invalid params: ttl exceeds the maximum of ${formatElapsed(voice.maxTtlMs)}`,
        );
      }
      ttlMs = parsed;
    }
    if (!deps.matrixReady()) {
      throw new RpcError(ErrorCode.VoiceInternal, 'Internal error: Matrix adapter not configured');
    }
    const sessionId = randomUUID();
    const agent = agentFor(p, sessionId, ttlMs);
    if (p.sdp_offer !== undefined && !/^v=0\r?\n/.test(p.sdp_offer)) {
      throw invalidParams('Invalid params: sdp_offer must be an SDP offer (v=0...)');
    }

    const input: VoiceCallInput = {
      sessionId,
      roomId: p.room_id,
      userId: p.user_id,
      hostId: deps.hostId,
      ttlMs,
      connectTimeoutMs: voice.connectTimeoutMs,
      agent,
      stopAgentOnEnd: agent.kind === 'start' || voice.stopExistingAgentOnEnd,
      policy: {
        allowedRooms: voice.allowedRooms,
        blockedRooms: voice.blockedRooms,
        trustedRooms: deps.matrixPolicy.trustedRooms,
        emptyListAllowsAll: deps.matrixPolicy.emptyListAllowsAll,
        requireEncryptedRoom: voice.requireEncryptedRoom,
        requireMembership: voice.requireMembership,
        rateLimitCalls: voice.rateLimitCalls,
        rateLimitWindowMs: voice.rateLimitWindowMs,
        maxConcurrentCalls: voice.maxConcurrentCalls,
      },
      budget: {
        maxDurationMs: voice.maxCallDurationMs,
        maxTokens: voice.maxCallTokens,
        warningFraction: voice.budgetWarningFraction,
      },
      mediaCheckIntervalMs: deps.mediaCheckIntervalMs ?? 5_000,
      hostGraceMs: deps.hostGraceMs,
    };
    const handle = await deps.client.workflow.start<typeof voiceCallWorkflow>('voiceCallWorkflow', {
      taskQueue: deps.taskQueue,
      workflowId: callWorkflowId(sessionId),
      args: [input],
      typedSearchAttributes: [
        { key: ArmorclawKind, value: 'call' },
        { key: ArmorclawState, value: 'Pending' },
        { key: ArmorclawUserState, value: 'Connecting' },
        { key: ArmorclawRoom, value: p.room_id },
        { key: ArmorclawHost, value: deps.hostId },
      ],
    });
    let ready;
    try {
      ready = await handle.executeUpdate(callReadyUpdate);
    } catch (err) {
      throw startFailure(err);
    }

    let sdpAnswer: string | null = null;
    if (p.sdp_offer !== undefined) {
      try {
        sdpAnswer = await deps.hub.offer(sessionId, p.sdp_offer);
      } catch (err) {
        await handle
          .executeUpdate(endCallUpdate, { args: [{ reason: 'bad_offer' }] })
          .catch(() => undefined);
        if (err instanceof CallMediaError && err.code === 'bad_sdp') {
          throw invalidParams(`Invalid params: ${err.message}`);
        }
        throw err;
      }
    }
    const ttlSeconds = Math.ceil(ttlMs / 1000);
    const token = signCallToken(deps.tokenKey, {
      session_id: sessionId,
      room_id: p.room_id,
      expires_at: Math.floor(ready.expires_at_ms / 1000),
    });
    const turn =
      voice.turnSecret && voice.turnUrls.length > 0
        ? {
            ...issueTurnCredentials({ secret: voice.turnSecret, sessionId, ttlSeconds }),
            urls: voice.turnUrls,
          }
        : null;
    const fragment = new URLSearchParams({ session: sessionId, token });
    return {
      session_id: sessionId,
      sdp_answer: sdpAnswer,
      turn_credentials: turn,
      signaling_url: deps.signalingUrl(),
      token,
      call_url: `${deps.callPageUrl()}#${fragment.toString()}`,
      expires_at: new Date(ready.expires_at_ms).toISOString(),
      container_name: ready.container_name,
    };
  });

  dispatcher.addMethod('webrtc.end', async (params) => {
    const p = parseParams(endParams, params);
    const handle = deps.client.workflow.getHandle(callWorkflowId(sessionIdOf(p.session_id)));
    try {
      const end = await handle.executeUpdate(endCallUpdate, {
        args: [{ reason: p.reason ?? 'user_hangup' }],
      });
      return {
        session_id: p.session_id,
        status: 'terminated',
        duration: end.duration,
        state: end.state,
        end_reason: end.end_reason,
      };
    } catch (err) {
      if (isClosedWorkflowError(err)) {
        throw sessionNotFound(p.session_id);
      }
      throw err;
    }
  });

  dispatcher.addMethod('webrtc.ice_candidate', async (params) => {
    const p = parseParams(iceParams, params);
    const sessionId = sessionIdOf(p.session_id);
    if (!deps.hub.has(sessionId)) throw sessionNotFound(sessionId);
    try {
      await deps.hub.addIceCandidate(sessionId, {
        candidate: p.candidate.candidate,
        sdpMid: p.candidate.sdpMid ?? undefined,
        sdpMLineIndex: p.candidate.sdpMLineIndex ?? undefined,
      });
    } catch (err) {
      if (err instanceof CallMediaError && err.code === 'not_found')
        throw sessionNotFound(sessionId);
      throw invalidParams(`Invalid params: candidate refused: ${(err as Error).message}`);
    }
    return { session_id: sessionId, status: 'candidate_accepted' };
  });

  dispatcher.addMethod('webrtc.list', async (params) => {
    parseParams(noParams, params);
    const sessions = [];
    const query = `${ArmorclawKind.name} = 'call' AND ExecutionStatus = 'Running'`;
    const now = Date.now();
    for await (const wf of deps.client.workflow.list({ query })) {
      const userState = (wf.typedSearchAttributes.get(ArmorclawUserState) ??
        'Connecting') as UserCallState;
      sessions.push({
        session_id: wf.workflowId.slice('call-'.length),
        room_id: wf.typedSearchAttributes.get(ArmorclawRoom) ?? null,
        state: LIST_STATE[userState] ?? 'connecting',
        user_state: userState,
        duration: formatElapsed(now - wf.startTime.getTime()),
        created_at: wf.startTime.toISOString(),
        host_id: wf.typedSearchAttributes.get(ArmorclawHost) ?? null,
      });
    }
    sessions.sort((a, b) => a.created_at.localeCompare(b.created_at));
    return { active_sessions: sessions.length, sessions };
  });

  dispatcher.addMethod('webrtc.get_audit_log', async (params) => {
    const p = parseParams(auditParams, params);
    const entries = deps.auditLog.list({
      limit: p.limit ?? 100,
      event_types: VOICE_AUDIT_EVENTS,
      session_id: p.session_id,
    });
    return {
      entries: entries.map((e) => ({
        timestamp: e.timestamp,
        event_type: e.event_type,
        session_id: e.session_id,
        room_id: e.room_id,
        user_id: e.user_id,
        details: e.details,
        seq: e.seq,
        hash: e.hash,
        prev_hash: e.prev_hash,
      })),
    };
  });

  /** The agent the call talks to: named, or started for the call from a credential. */
  function agentFor(p: z.infer<typeof startParams>, sessionId: string, ttlMs: number): CallAgent {
    if (p.container_name !== undefined && p.key_id !== undefined) {
      throw invalidParams('Invalid params: give container_name or key_id, not both');
    }
    if (p.container_name !== undefined) {
      if (!CONTAINER_NAME.test(p.container_name)) {
        throw invalidParams('Invalid params: container_name is not a container name');
      }
      return { kind: 'existing', containerName: p.container_name };
    }
    if (p.key_id === undefined) {
      throw invalidParams(
        'Invalid params: name the agent: container_name (a running agent) or key_id (start one for the call)',
      );
    }
    const agentType = p.agent_type ?? 'openclaw';
    if (!AGENT_TYPE.test(agentType)) {
      throw invalidParams('Invalid params: agent_type must match [a-z0-9][a-z0-9_.-]{0,31}');
    }
    checkCredential(deps.keystore, p.key_id);
    const c = deps.containers;
    const { image, memoryBytes } = agentTypeRun(c, agentType);
    return {
      kind: 'start',
      run: {
        containerName: `armorclaw-${agentType}-call-${sessionId.replace(/-/g, '').slice(0, 12)}`,
        keyId: p.key_id,
        agentType,
        image,
        memoryBytes,
        hostId: deps.hostId,
        // The call stops its agent; this is the backstop should everything else fail.
        ttlMs: ttlMs + 60_000,
        secretsDeadlineMs: c.secretsDeadlineMs,
        healthCheckIntervalMs: c.healthCheckIntervalMs,
        hostGraceMs: deps.hostGraceMs,
        network: c.network,
        roomId: p.room_id,
        secretsMode: c.secretsMode,
        limitMicroUsd: c.secretsMode === 'proxy' ? toMicroUsd(deps.runLimitUsd) : 0,
      },
    };
  }
}

function sessionIdOf(raw: string): string {
  if (!SESSION_ID.test(raw)) throw sessionNotFound(raw);
  return raw;
}

const sessionNotFound = (id: string) =>
  new RpcError(ErrorCode.SessionNotFound, `Session not found: ${id.slice(0, 64)}`);

function startFailure(err: unknown): RpcError {
  const cause = err instanceof WorkflowUpdateFailedError ? err.cause : undefined;
  const fallback = new RpcError(
    ErrorCode.VoiceInternal,
    'Internal error: the call could not start',
  );
  if (!(cause instanceof ApplicationFailure)) return fallback;
  return workflowFailureError(cause.type, cause.message, fallback);
}
