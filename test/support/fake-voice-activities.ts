/**
 * In-memory voice-call activities for workflow tests and history recording: the host's media hub
 * (room checks, peers, ICE restarts, media health, close), the agent's run, the audit log and the
 * Matrix send of the budget notice. Admission is the REAL one by default
 * (`createAdmissionActivities` against the test server, with `callAdmissionWorkflow` on the same
 * worker); a test may override any activity's behaviour. Every call is recorded.
 */
import { CancelledFailure, Context } from '@temporalio/activity';
import { recordActivity, settleAbandonedChecks, type RecordedActivity } from './activity-recorder';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import pino from 'pino';
import { createAdmissionActivities, type AdmissionActivities } from '../../activities/admission';
import type { AuditArgs, SharedActivities } from '../../activities/container-types';
import type { SendMatrixMessageArgs } from '../../activities/matrix';
import type {
  AgentRunActivities,
  RoomCheck,
  RoomCheckArgs,
  VoiceHostActivities,
} from '../../activities/voice';
import type { voiceCallWorkflow } from '../../workflows/voice-call';
import {
  callWorkflowId,
  hostTaskQueue,
  SHARED_TASK_QUEUE,
  type AdmitCallArgs,
  type AdmitCallResult,
  type ContainerRunInput,
  type ContainerRunResult,
  type VoiceCallInput,
} from '../../workflows/definitions';
import { createTimeSkippingEnv } from './temporal';

export type VoiceActivityName =
  | keyof VoiceHostActivities
  | keyof AgentRunActivities
  | keyof AdmissionActivities
  | 'recordAudit'
  | 'sendMatrixMessage';

export type RecordedVoiceCall = RecordedActivity<VoiceActivityName>;

/** Behaviour overrides (given the attempt number): answer or throw something else. */
export interface VoiceFakeBehaviour {
  checkCallRoom?: (attempt: number, args: RoomCheckArgs) => Promise<RoomCheck> | RoomCheck;
  /** Replaces the real admission's answer (e.g. a `budget_exceeded` refusal). */
  admitCall?: (
    attempt: number,
    args: AdmitCallArgs,
  ) => Promise<AdmitCallResult | undefined> | AdmitCallResult | undefined;
  startAgentRun?: (attempt: number, run: ContainerRunInput) => Promise<void> | void;
  checkAgentRun?: (attempt: number, containerName: string) => Promise<void> | void;
  prepareCallMedia?: (attempt: number) => Promise<void> | void;
  restartCallIce?: (attempt: number) => Promise<void> | void;
  checkCallMedia?: (attempt: number) => Promise<{ alive: boolean }> | { alive: boolean };
  sendMatrixMessage?: (attempt: number) => Promise<void> | void;
  /**
   * Wall time one `awaitAgentRunEnd` attempt holds before it fails retryably (default 250 ms),
   * so the test server can skip time between attempts; Infinity holds like the real one.
   */
  agentWatchHoldMs?: number;
}

/** What `sendMatrixMessage` answers: an event id derived from the transaction id. */
export const eventIdOf = (txnId: string): string => `$event-${txnId}`;

export class FakeVoiceHost {
  readonly calls: RecordedVoiceCall[] = [];
  readonly audit: AuditArgs[] = [];
  /** Sessions whose media the fake hub holds (prepared, not yet closed). */
  readonly media = new Set<string>();
  /** Agent runs that "run", by container name. */
  readonly agents = new Set<string>();
  /** Matrix messages sent, once per transaction id (like the homeserver). */
  readonly sent = new Map<string, SendMatrixMessageArgs>();
  /** How agent runs ended, by container name (what a later `awaitAgentRunEnd` answers). */
  readonly deadAgents = new Map<string, ContainerRunResult>();
  /** `awaitAgentRunEnd` attempts that ended by cancellation (the call ended first). */
  watchesCancelled = 0;
  /** Resolvers of the pending `awaitAgentRunEnd` attempts, by container name. */
  private readonly agentWaiters = new Map<string, Set<(r: ContainerRunResult) => void>>();
  private readonly admission?: AdmissionActivities;

  constructor(
    private readonly behaviour: VoiceFakeBehaviour = {},
    opts: { client?: Client; taskQueue?: string } = {},
  ) {
    if (opts.client && opts.taskQueue) {
      this.admission = createAdmissionActivities({
        client: opts.client,
        taskQueue: opts.taskQueue,
        log: pino({ level: 'silent' }),
      });
    }
  }

  callsOf(name: VoiceActivityName): RecordedVoiceCall[] {
    return this.calls.filter((c) => c.name === name);
  }

  auditTypes(): string[] {
    return this.audit.map((a) => a.event_type);
  }

  /** The agent's run ends behind the call's back (its container died). */
  killAgent(containerName: string, result: Partial<ContainerRunResult> = {}): void {
    this.agents.delete(containerName);
    const end: ContainerRunResult = {
      state: 'Failed',
      end_reason: 'container_exited',
      ...result,
    };
    this.deadAgents.set(containerName, end);
    for (const resolve of this.agentWaiters.get(containerName) ?? []) resolve(end);
    this.agentWaiters.delete(containerName);
  }

  /** Attempts of `awaitAgentRunEnd` still waiting (not cancelled, not resolved). */
  pendingAgentWatches(containerName: string): number {
    return this.agentWaiters.get(containerName)?.size ?? 0;
  }

  private record<T>(name: VoiceActivityName, args: unknown, body: () => Promise<T>) {
    return recordActivity(this.calls, name, args, body);
  }

  private attempt(): number {
    return Context.current().info.attempt;
  }

  readonly hostActivities: VoiceHostActivities & {
    sendMatrixMessage(args: SendMatrixMessageArgs): Promise<{ event_id: string }>;
  } = {
    checkCallRoom: (args) =>
      this.record('checkCallRoom', args, async (): Promise<RoomCheck> => {
        const verdict = await this.behaviour.checkCallRoom?.(this.attempt(), args);
        return verdict ?? { ok: true, encrypted: true };
      }),
    prepareCallMedia: (args) =>
      this.record('prepareCallMedia', args, async () => {
        await this.behaviour.prepareCallMedia?.(this.attempt());
        if (!this.agents.has(args.containerName)) {
          throw ApplicationFailure.nonRetryable(
            `agent ${args.containerName} has no audio socket`,
            'AgentUnavailable',
          );
        }
        this.media.add(args.sessionId);
      }),
    restartCallIce: (args) =>
      this.record('restartCallIce', args, async () => {
        await this.behaviour.restartCallIce?.(this.attempt());
      }),
    checkCallMedia: (args) =>
      this.record('checkCallMedia', args, async () => {
        const answer = await this.behaviour.checkCallMedia?.(this.attempt());
        return answer ?? { alive: this.media.has(args.sessionId) };
      }),
    // Like the hub: closing a session it does not hold is a no-op.
    closeCallMedia: (args) =>
      this.record('closeCallMedia', args, async () => {
        this.media.delete(args.sessionId);
      }),
    sendMatrixMessage: (args) =>
      this.record('sendMatrixMessage', args, async () => {
        await this.behaviour.sendMatrixMessage?.(this.attempt());
        if (!this.sent.has(args.txnId)) this.sent.set(args.txnId, args);
        return { event_id: eventIdOf(args.txnId) };
      }),
  };

  readonly agentActivities: AgentRunActivities = {
    startAgentRun: (args) =>
      this.record('startAgentRun', args, async () => {
        await this.behaviour.startAgentRun?.(this.attempt(), args.run);
        this.agents.add(args.run.containerName);
        return { containerName: args.run.containerName };
      }),
    checkAgentRun: (args) =>
      this.record('checkAgentRun', args, async () => {
        await this.behaviour.checkAgentRun?.(this.attempt(), args.containerName);
        if (!this.agents.has(args.containerName)) {
          throw ApplicationFailure.nonRetryable(
            `no agent run ${args.containerName}`,
            'AgentUnavailable',
          );
        }
      }),
    // Waits for `killAgent`, heartbeating; a cancelled call ends the wait (CancelledFailure).
    //
    // The time-skipping test server does not skip time while an activity is running (seen
    // here: a 30 s connect timeout took 30 s of wall time while the real-shaped watch held its
    // attempt). So by default an attempt holds for `agentWatchHoldMs` of wall time only, then
    // fails retryably: between attempts (the workflow's retry backoff, up to 10 s) the server
    // skips time again. The workflow sees the same thing: one activity that ends when the run
    // does. `agentWatchHoldMs: Infinity` holds like the real activity.
    awaitAgentRunEnd: (args) =>
      this.record('awaitAgentRunEnd', args, async (): Promise<ContainerRunResult> => {
        const ctx = Context.current();
        const dead = this.deadAgents.get(args.containerName);
        if (dead) return dead;
        if (!this.agents.has(args.containerName)) return { state: 'Failed', end_detail: 'gone' };
        let resolve!: (r: ContainerRunResult) => void;
        const ended = new Promise<ContainerRunResult>((r) => (resolve = r));
        const waiters = this.agentWaiters.get(args.containerName) ?? new Set();
        waiters.add(resolve);
        this.agentWaiters.set(args.containerName, waiters);
        ctx.heartbeat();
        const beat = setInterval(() => ctx.heartbeat(), 200);
        const hold = this.behaviour.agentWatchHoldMs ?? 250;
        let timer: NodeJS.Timeout | undefined;
        const yielded = new Promise<never>((_, reject) => {
          if (Number.isFinite(hold)) {
            timer = setTimeout(
              () => reject(ApplicationFailure.retryable('still running', 'AgentStillRunning')),
              hold,
            );
          }
        });
        try {
          // ctx.cancelled rejects with a CancelledFailure when the call's scope is cancelled.
          return await Promise.race([ended, ctx.cancelled, yielded]);
        } catch (err) {
          if (err instanceof CancelledFailure) this.watchesCancelled += 1;
          throw err;
        } finally {
          clearInterval(beat);
          clearTimeout(timer);
          waiters.delete(resolve);
        }
      }),
    // Like the real one: stopping a run that is gone (or never began) is a no-op.
    stopAgentRun: (args) =>
      this.record('stopAgentRun', args, async () => {
        this.killAgent(args.containerName, { state: 'Ended', end_reason: 'stop_requested' });
      }),
  };

  readonly admissionActivities: AdmissionActivities = {
    admitCall: (args) =>
      this.record('admitCall', args, async (): Promise<AdmitCallResult> => {
        const override = await this.behaviour.admitCall?.(this.attempt(), args);
        if (override) return override;
        if (this.admission) return this.admission.admitCall(args);
        return { admitted: true, active: 1 };
      }),
    releaseCall: (args) =>
      this.record('releaseCall', args, async () => {
        if (this.admission) await this.admission.releaseCall(args);
      }),
  };

  readonly sharedActivities: SharedActivities = {
    recordAudit: (args) =>
      this.record('recordAudit', args, async () => {
        // Like the audit log: a retried entry (same dedupe key) is written once.
        if (!this.audit.some((a) => a.dedupe_key === args.dedupe_key)) this.audit.push(args);
      }),
  };

  /** Everything the shared queue's worker registers. */
  get sharedQueueActivities(): SharedActivities & AgentRunActivities & AdmissionActivities {
    return { ...this.sharedActivities, ...this.agentActivities, ...this.admissionActivities };
  }
}

// --- a test server with the call's two workers ------------------------------------------------

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

let seq = 0;

/** A call's input for tests: a 10-minute TTL, an agent run started for the call, no limits hit. */
/** A permissive call policy (no room rules, 10 calls a minute, 10 at once), with overrides. */
export function testPolicy(over: Partial<VoiceCallInput['policy']> = {}): VoiceCallInput['policy'] {
  return {
    allowedRooms: [],
    blockedRooms: [],
    trustedRooms: [],
    emptyListAllowsAll: true,
    requireEncryptedRoom: false,
    requireMembership: false,
    rateLimitCalls: 10,
    rateLimitWindowMs: MINUTE,
    maxConcurrentCalls: 10,
    ...over,
  };
}

export function callInput(hostId: string, over: Partial<VoiceCallInput> = {}): VoiceCallInput {
  seq += 1;
  const sessionId = over.sessionId ?? `sess-${process.pid}-${seq}`;
  return {
    sessionId,
    roomId: '!voice-room:test.local',
    userId: '@alice:test.local',
    hostId,
    ttlMs: 10 * MINUTE,
    connectTimeoutMs: 30_000,
    agent: {
      kind: 'start',
      run: {
        containerName: `armorclaw-voice-${seq}`,
        keyId: 'key-anthropic-test',
        agentType: 'voice',
        image: 'armorclaw/agent:v1',
        hostId,
        ttlMs: 10 * MINUTE,
        secretsDeadlineMs: 10_000,
        healthCheckIntervalMs: HOUR,
        network: 'none',
      },
    },
    stopAgentOnEnd: true,
    policy: testPolicy(),
    // Past the TTL unless a test is about the budget.
    budget: { maxDurationMs: HOUR, maxTokens: 0, warningFraction: 0.8 },
    // Longer than the TTL unless a test is about media health: no checks to wade through.
    mediaCheckIntervalMs: 2 * HOUR,
    ...over,
  };
}

/** The agent's container name of a call's input (started for it, or existing). */
export const agentNameOf = (input: VoiceCallInput): string =>
  input.agent.kind === 'start' ? input.agent.run.containerName : input.agent.containerName;

export type CallHandle = WorkflowHandle<typeof voiceCallWorkflow>;

export interface VoiceEnv {
  /** This test's own server: time skipping is global to a server. */
  env: TestWorkflowEnvironment;
  fake: FakeVoiceHost;
  hostId: string;
  /** Starts a call (workflow id `call-<sessionId>`) on the shared queue. */
  start(over?: Partial<VoiceCallInput>): Promise<{ handle: CallHandle; input: VoiceCallInput }>;
}

/**
 * A fresh time-skipping server with a worker on the shared queue (the real workflow bundle:
 * the call, the admission entity, the Matrix send child; shared, agent and admission activities)
 * and one on the host's queue (media and Matrix activities), as the bridge runs them. Admission
 * is the real one unless `realAdmission` is false.
 */
export async function withVoiceEnv<T>(
  opts: {
    workflowBundle: WorkflowBundleWithSourceMap;
    behaviour?: VoiceFakeBehaviour;
    hostId?: string;
    realAdmission?: boolean;
  },
  fn: (v: VoiceEnv) => Promise<T>,
): Promise<T> {
  const hostId = opts.hostId ?? `host${process.pid}x${seq}`;
  const env = await createTimeSkippingEnv();
  try {
    const fake = new FakeVoiceHost(
      opts.behaviour,
      opts.realAdmission === false ? {} : { client: env.client, taskQueue: SHARED_TASK_QUEUE },
    );
    const shared = await Worker.create({
      connection: env.nativeConnection,
      taskQueue: SHARED_TASK_QUEUE,
      workflowBundle: opts.workflowBundle,
      activities: fake.sharedQueueActivities,
    });
    const host = await Worker.create({
      connection: env.nativeConnection,
      taskQueue: hostTaskQueue(hostId),
      activities: fake.hostActivities,
    });
    const start: VoiceEnv['start'] = async (over = {}) => {
      const input = callInput(hostId, over);
      // An existing agent runs before the call begins.
      if (input.agent.kind === 'existing') fake.agents.add(input.agent.containerName);
      const handle = await env.client.workflow.start<typeof voiceCallWorkflow>(
        'voiceCallWorkflow',
        {
          taskQueue: SHARED_TASK_QUEUE,
          workflowId: callWorkflowId(input.sessionId),
          args: [input],
        },
      );
      return { handle, input };
    };
    // runUntil shuts each worker down when fn settles; nested so both stop.
    return await shared.runUntil(host.runUntil(() => fn({ env, fake, hostId, start })));
  } finally {
    await settleAbandonedChecks();
    await env.teardown();
  }
}

export { eventually } from './activity-recorder';

/**
 * History as text with every payload decoded, so a token or SDP in any payload would show:
 * `fetchHistory` gives payload data as base64 strings (bytes on other paths; both handled).
 */
export async function historyText(handle: CallHandle): Promise<string> {
  const history = await handle.fetchHistory();
  return JSON.stringify(history, function (this: Record<string, unknown>, key, value) {
    const raw = this[key];
    if (raw instanceof Uint8Array) return Buffer.from(raw).toString('utf8');
    if (key === 'data' && typeof raw === 'string')
      return Buffer.from(raw, 'base64').toString('utf8');
    return value;
  });
}
