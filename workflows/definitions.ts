/**
 * Every signal, query and update of the bridge's workflows, with their payload types: shared by
 * workflows, the RPC layer, the worker and tests. Wire names are stable kebab-case. Payloads
 * carry ids, never secrets: Temporal persists them in history and shows them in the Web UI.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { EndReason, LifecycleState } from '../machines/lifecycle';
import type { SecretsMode } from '../formats/secrets-file';
import type { BudgetLedger } from '../services/budget';
import type { UserCallState, VoiceEndReason } from '../machines/voice-call.machine';

export const SHARED_TASK_QUEUE = 'armorclaw';
/** Docker and media activities run on the host that owns the container (docs/architecture.md, rule 5). */
export const hostTaskQueue = (hostId: string): string => `armorclaw-host-${hostId}`;

export const containerWorkflowId = (containerName: string): string => `container-${containerName}`;

// --- container runs ------------------------------------------------------------------------

/** Failure types that activities raise and the workflow and RPC layer tell apart. */
export const ContainerFailureType = {
  KeyNotFound: 'KeyNotFound',
  KeyExpired: 'KeyExpired',
  ImageNotFound: 'ImageNotFound',
  InvalidSpec: 'InvalidSpec',
  StartFailed: 'StartFailed',
} as const;

export interface ContainerRunInput {
  containerName: string;
  keyId: string;
  agentType: string;
  image: string;
  hostId: string;
  ttlMs: number;
  secretsDeadlineMs: number;
  healthCheckIntervalMs: number;
  /** Optional Matrix room the agent is bound to. */
  roomId?: string;
  /** Docker network for egress; 'none' unless configured. */
  network: string;
  /** The container's memory limit when its agent type sets one (else the host's default). */
  memoryBytes?: number;
  /** How the agent reaches its model (absent in runs started before the proxy: `file`). */
  secretsMode?: SecretsMode;
  /** The run's spending limit in micro-dollars, metered by the provider proxy; 0/absent: none. */
  limitMicroUsd?: number;
  /**
   * How long the run's host may be gone (no worker on its queue) before the run is marked lost
   * (`host_grace`; absent in runs started before it: HOST_GRACE_DEFAULT_MS).
   */
  hostGraceMs?: number;
}

/** The grace of runs and calls whose input names none. */
export const HOST_GRACE_DEFAULT_MS = 60_000;

/** What `start` answers once the run is Active (the API spec's fields). */
export interface ContainerStarted {
  container_id: string;
  container_name: string;
  status: 'running';
  endpoint: string;
}

export interface ContainerStopped {
  status: 'stopped';
  container_id: string;
  container_name: string;
}

export type AgentNotificationKind = 'status' | 'progress' | 'error';

export interface AgentNotification {
  kind: AgentNotificationKind;
  message: string;
  /** Bridge clock when the notification arrived (ISO 8601). */
  at: string;
}

export interface ContainerExit {
  exitCode: number;
  oomKilled: boolean;
}

export interface ContainerRunStatus {
  state: LifecycleState;
  container_name: string;
  container_id?: string;
  agent_type: string;
  key_id: string;
  image: string;
  endpoint?: string;
  secrets_removed: boolean;
  end_reason?: EndReason;
  end_detail?: string;
  exit_code?: number;
  cleanup_done: boolean;
  /** The most recent agent notifications, oldest first. */
  notifications: AgentNotification[];
  secrets_mode: SecretsMode;
  /** What the provider proxy metered for this run. */
  usage: RunUsageStatus;
}

/** A run's metered usage (its `status` field `usage`). */
export interface RunUsageStatus {
  requests: number;
  input_tokens: number;
  output_tokens: number;
  cost_usd: number;
  /** null: no per-run limit. */
  limit_usd: number | null;
}

/** One provider response the proxy metered for a run, priced when it ended. */
export interface RunUsage {
  model: string;
  input_tokens: number;
  output_tokens: number;
  cost_micro_usd: number;
}

export interface ContainerRunResult {
  state: LifecycleState;
  end_reason?: EndReason;
  end_detail?: string;
  exit_code?: number;
}

/** Waits until the run is Active (returns its start result) or failed to start (throws). */
export const waitActiveUpdate = defineUpdate<ContainerStarted>('wait-active');
/**
 * Asks the run to end and waits until it has, cleanup included; with `until: 'ended'` only until
 * it has ended (its teardown may still wait for a host that is away).
 */
export const stopUpdate = defineUpdate<
  ContainerStopped,
  [{ reason?: string; until?: 'cleaned_up' | 'ended' }]
>('stop');
export const containerExitedSignal = defineSignal<[ContainerExit]>('container-exited');
export const secretsAckedSignal = defineSignal('secrets-acked');
export const agentNotifySignal = defineSignal<[AgentNotification]>('agent-notify');
export const budgetExceededSignal = defineSignal('budget-exceeded');
/** Usage the provider proxy metered for the run; its total is held against the run's limit. */
export const runUsageSignal = defineSignal<[RunUsage]>('run-usage');
/**
 * The operator gave the run's host up (`hosts.reap`): the run ends as lost if it has not, and its
 * cleanup stops waiting for the host to tear the container down.
 */
export const hostReapedSignal = defineSignal<[{ detail: string }]>('host-reaped');
export const containerStatusQuery = defineQuery<ContainerRunStatus>('status');

// --- budget ---------------------------------------------------------------------------------

/** The one budget entity workflow of a Temporal namespace. */
export const BUDGET_WORKFLOW_ID = 'budget';

/** What the budget enforces; sent by each bridge at start (`budget-configure`). */
export interface BudgetPolicy {
  /** USD per UTC day; 0 means no limit. */
  dailyLimitUsd: number;
  /** USD per UTC month; 0 means no limit. */
  monthlyLimitUsd: number;
  /** Fractions of each limit in (0, 1), each announced once per period. */
  alertThresholds: number[];
  /** Room for alerts; none: alerts are audited only. */
  adminRoomId?: string;
  /** The host whose Matrix session sends alerts (`matrixSendWorkflow` runs on its queue). */
  hostId: string;
}

/** One usage report of an agent, priced by the bridge when it arrived (its socket). */
export interface BudgetReport {
  container_name: string;
  model: string;
  input_tokens: number;
  output_tokens: number;
  /** Integer micro-dollars (1 µUSD = $0.000001), priced from `budget.models`. */
  cost_micro_usd: number;
  /** Who counted it: the provider proxy, or the agent itself (`budget.report`; the default). */
  source?: UsageSource;
}

/** Metered by the bridge's provider proxy, or self-reported by the agent (`budget.report`). */
export type UsageSource = 'proxy' | 'agent';

export interface BudgetPeriodStatus {
  /** `YYYY-MM-DD` (day) or `YYYY-MM` (month), UTC. */
  period: string;
  spent_usd: number;
  /** null: no limit for this period. */
  limit_usd: number | null;
  exceeded: boolean;
  /** Thresholds already announced (or passed over) in this period, ascending. */
  thresholds_alerted: number[];
  reports: number;
  /** The part of `spent_usd` the provider proxy metered. */
  metered_usd: number;
  /** The part agents reported themselves (`budget.report`): their word, not the bridge's count. */
  self_reported_usd: number;
}

/** The `budget.status` result. */
export interface BudgetStatus {
  day: BudgetPeriodStatus;
  month: BudgetPeriodStatus;
  /** Either period reached its limit: `start` is refused and running agents were stopped. */
  exceeded: boolean;
  alert_thresholds: number[];
  admin_room: string | null;
}

export interface BudgetWorkflowInput {
  policy: BudgetPolicy;
  /** Totals of the current periods, carried across continue-as-new. */
  ledger?: BudgetLedger;
  /** Container runs already told to end while the budget is exceeded, carried too. */
  stopped?: string[];
  /** History length past which the workflow continues as new (default 2000; tests lower it). */
  maxHistoryEvents?: number;
}

export const budgetReportSignal = defineSignal<[BudgetReport]>('budget-report');
export const budgetStatusQuery = defineQuery<BudgetStatus>('budget-status');
/** Replaces the policy (limits may rise or fall mid-period); answers the status under it. */
export const budgetConfigureUpdate = defineUpdate<BudgetStatus, [BudgetPolicy]>('budget-configure');

// --- voice calls ----------------------------------------------------------------------------

export const callWorkflowId = (sessionId: string): string => `call-${sessionId}`;

/** The agent a call talks to: a run started for the call, or one already running. */
export type CallAgent =
  { kind: 'existing'; containerName: string } | { kind: 'start'; run: ContainerRunInput };

/** Failure types of `call-ready`: the RPC layer maps them to the spec's error codes. */
export const CallFailureType = {
  RoomDenied: 'RoomDenied', // -32001
  RateLimited: 'RateLimited', // -32002
  MaxConcurrent: 'MaxConcurrent', // -32003
  SecurityViolation: 'SecurityViolation', // -32005
  BudgetExceeded: 'BudgetExceeded', // -32006
  AgentUnavailable: 'AgentUnavailable', // -32000
  CallEnded: 'CallEnded',
} as const;

/** A call's input: ids and limits only (tokens, TURN passwords and SDP never enter history). */
export interface VoiceCallInput {
  sessionId: string;
  roomId: string;
  /** The Matrix user placing the call, when the client says. */
  userId?: string;
  hostId: string;
  ttlMs: number;
  connectTimeoutMs: number;
  agent: CallAgent;
  /** Stop the agent's run when the call ends (always for runs started for the call). */
  stopAgentOnEnd: boolean;
  policy: {
    allowedRooms: string[];
    blockedRooms: string[];
    trustedRooms: string[];
    emptyListAllowsAll: boolean;
    requireEncryptedRoom: boolean;
    requireMembership: boolean;
    rateLimitCalls: number;
    rateLimitWindowMs: number;
    maxConcurrentCalls: number;
  };
  budget: { maxDurationMs: number; maxTokens: number; warningFraction: number };
  /** Media health check period (the peer lives in one bridge process). */
  mediaCheckIntervalMs: number;
  /** How long the call's host may not answer before the call ends Failed (media lost). */
  hostGraceMs?: number;
}

/** What `call-ready` answers once the call's media is prepared on its host. */
export interface CallReady {
  session_id: string;
  room_id: string;
  container_name: string;
  host_id: string;
  /** Unix ms at which the call expires (its TTL). */
  expires_at_ms: number;
}

export interface VoiceCallStatus {
  session_id: string;
  room_id: string;
  user_id?: string;
  state: LifecycleState;
  user_state: UserCallState;
  container_name?: string;
  host_id: string;
  created_at: string;
  connected_at?: string;
  ended_at?: string;
  end_reason?: VoiceEndReason;
  end_detail?: string;
  tokens_used: number;
  ice_restarts: number;
  cleanup_done: boolean;
}

export interface VoiceCallResult {
  state: LifecycleState;
  end_reason?: VoiceEndReason;
  end_detail?: string;
  /** Whole seconds from start to end, and the spec's "5m23s" rendering. */
  duration_s: number;
  duration: string;
}

/** Peer facts from the host's media hub. */
export type CallPeerEvent = 'connected' | 'disconnected' | 'failed';

/** Waits until the call is admitted and its media prepared (or throws a CallFailureType). */
export const callReadyUpdate = defineUpdate<CallReady>('call-ready');
/** Ends the call and waits until it has, cleanup included. */
export const endCallUpdate = defineUpdate<VoiceCallResult, [{ reason?: string }]>('end-call');
export const callPeerSignal = defineSignal<[{ event: CallPeerEvent }]>('call-peer');
export const callHangupSignal = defineSignal<[{ reason: string }]>('call-hangup');
export const callMediaLostSignal = defineSignal<[{ detail: string }]>('call-media-lost');
export const callUsageSignal = defineSignal<[{ tokens: number }]>('call-usage');
export const callStatusQuery = defineQuery<VoiceCallStatus>('call-status');

// --- voice admission ------------------------------------------------------------------------

/** The one call-admission entity workflow of a Temporal namespace (every bridge shares it). */
export const CALL_ADMISSION_WORKFLOW_ID = 'call-admission';

/** The configured limits (`voice.rate_limit_calls`, `…_window`, `…max_concurrent_calls`). */
export interface CallAdmissionLimits {
  /** Admissions one user key may have in any sliding window of `rateLimitWindowMs`. */
  rateLimitCalls: number;
  rateLimitWindowMs: number;
  /** Calls admitted and not yet released (or expired) across every bridge. */
  maxConcurrentCalls: number;
}

export interface AdmitCallArgs {
  /** The call's session id (its workflow is `call-<sessionId>`); admitting it twice counts once. */
  sessionId: string;
  roomId: string;
  /** Who the rate limit counts against: the Matrix user id, or `room:<roomId>` when unknown. */
  userKey: string;
  hostId: string;
  /**
   * When the call's TTL ends (epoch ms). A slot never released is dropped at the first admit
   * after `expiresAtMs + CALL_ADMISSION_EXPIRY_GRACE_MS`.
   */
  expiresAtMs: number;
  limits: CallAdmissionLimits;
}

/** How long past its `expiresAtMs` an unreleased call keeps its slot (its cleanup's time). */
export const CALL_ADMISSION_EXPIRY_GRACE_MS = 60_000;

export interface CallAdmitted {
  admitted: true;
  /** Calls holding a slot now, this one included. */
  active: number;
}

export interface CallRefused<Reason extends string> {
  admitted: false;
  reason: Reason;
  message: string;
}

/** What the admission workflow answers (`admit-call`). */
export type CallAdmissionDecision = CallAdmitted | CallRefused<'rate_limited' | 'max_concurrent'>;
/** What the `admitCall` activity answers: the workflow's decision, or the budget gate's. */
export type AdmitCallResult = CallAdmissionDecision | CallRefused<'budget_exceeded'>;

/** A call holding a slot. */
export interface ActiveCall {
  sessionId: string;
  roomId: string;
  userKey: string;
  hostId: string;
  /** Workflow time of the admission. */
  admittedAtMs: number;
  expiresAtMs: number;
}

/** The admission workflow's durable state, carried across continue-as-new. */
export interface CallAdmissionState {
  /** By session id. */
  active: Record<string, ActiveCall>;
  /** Admission times (workflow ms, ascending) per user key within the last rate window. */
  recent: Record<string, number[]>;
  /** The rate window of the latest admit: what `recent` is counted over in the status. */
  rateLimitWindowMs: number;
}

export interface CallAdmissionWorkflowInput {
  state?: CallAdmissionState;
  /** History length past which the workflow continues as new (default 2000; tests lower it). */
  maxHistoryEvents?: number;
}

/** The `admission-status` query: slots held and admissions per user in the current window. */
export interface CallAdmissionStatus {
  /** Oldest admission first. */
  active: ActiveCall[];
  /** Admissions per user key within the latest rate window (users with none are left out). */
  recent: Record<string, number>;
}

export const admitCallUpdate = defineUpdate<CallAdmissionDecision, [AdmitCallArgs]>('admit-call');
/** Frees the session's slot; an unknown session id is ignored. */
export const releaseCallSignal = defineSignal<[{ sessionId: string }]>('release-call');
export const admissionStatusQuery = defineQuery<CallAdmissionStatus>('admission-status');

/** One outbound Matrix message, as `matrixSendWorkflow` takes it. */
export interface MatrixSendInput {
  hostId: string;
  roomId: string;
  msgtype: string;
  body: string;
  /** The thread root's event id: the message goes into that thread. */
  threadId?: string;
}

// --- Matrix sync ------------------------------------------------------------------------------

/** The sync of one Matrix account: `matrix-sync-<user id>`, one for every bridge logged in as it. */
export const matrixSyncWorkflowId = (userId: string): string => `matrix-sync-${userId}`;

/** An event the bridge accepted (trusted, of a delivered type, decrypted when it could). */
export interface MatrixAcceptedEvent {
  event_id: string;
  type: string;
  room_id: string;
  sender: string;
  content: Record<string, unknown>;
  origin_server_ts: number;
}

/** An accepted event in the account's shared queue, numbered in arrival order. */
export interface MatrixQueuedEvent extends MatrixAcceptedEvent {
  seq: number;
}

/** What the sync of an account carries over `continueAsNew`, and starts from. */
export interface MatrixSyncInput {
  userId: string;
  /** How long the owner's host may leave a sync unanswered before another host takes over. */
  hostGraceMs: number;
  /** The long poll of each /sync. */
  syncTimeoutMs: number;
  /** Hosts logged in as the account, in the order they joined. */
  hosts?: string[];
  owner?: string;
  /** The `next_batch` every event before which is in `queue` (null: not synced yet). */
  since?: string | null;
  queue?: MatrixQueuedEvent[];
  nextSeq?: number;
  /** Consumers of the queue (`matrix.receive`'s) and the last seq each has taken. */
  cursors?: Record<string, number>;
  /** Times the sync moved to another host, for status. */
  moves?: number;
}

export interface MatrixSyncStatus {
  user_id: string;
  owner: string | null;
  hosts: string[];
  synced: boolean;
  last_seq: number;
  moves: number;
  /** Why the sync last moved or paused, if it did. */
  last_problem: string | null;
}

/** A bridge logged in as the account offers its host to run the sync. */
export const matrixSyncJoinSignal = defineSignal<[{ hostId: string }]>('matrix-sync-join');
/**
 * Moves `consumer`'s cursor past up to `limit` more queued events and answers the span taken:
 * the events with seq in (after, upTo], which bridges read from their copy of the queue.
 */
/** The failure type of a `matrix-take` refused because the consumer has taken everything. */
export const NOTHING_TO_TAKE = 'NothingToTake';
export const matrixTakeUpdate = defineUpdate<
  { after: number; upTo: number },
  [{ consumer: string; limit: number }]
>('matrix-take');
/** Events after `after` (a seq), oldest first: how each bridge copies the queue into its store. */
export const matrixEventsQuery = defineQuery<
  MatrixQueuedEvent[],
  [{ after: number; limit: number }]
>('matrix-events');
export const matrixSyncStatusQuery = defineQuery<MatrixSyncStatus>('matrix-sync-status');

// --- approvals ------------------------------------------------------------------------------

/** A request's workflow id: `approval-<request id>` (12 hex digits, made by the bridge). */
export const approvalWorkflowId = (requestId: string): string => `approval-${requestId}`;
/** The memo key under which a request's record is kept for visibility lists. */
export const APPROVAL_MEMO_KEY = 'approval';

/** What an approval request starts with: ids, the capability and limits; never a secret. */
export interface ApprovalWorkflowInput {
  requestId: string;
  capability: string;
  /** The agent's own words on why it needs the capability (shown to operators). */
  reason: string;
  /** The run that asked; only it may use the grant. */
  containerName: string;
  /** The host whose Matrix session posts to the admin room. */
  hostId: string;
  /** Where the request is announced; absent: audited only, answered over the gateway. */
  adminRoomId?: string;
  requestTimeoutMs: number;
  defaultGrantTtlMs: number;
  defaultGrantUses: number;
  maxGrantTtlMs: number;
  maxGrantUses: number;
}

export type ApprovalStatusName = 'pending' | 'approved' | 'denied' | 'expired';

/** A grant as the API shows it. */
export interface ApprovalGrantView {
  ttlMs: number;
  uses: number;
  usesLeft: number;
  /** ISO 8601. */
  expiresAt: string;
  /** Usable now: approved, uses left, not expired. */
  active: boolean;
  /** How it ended, once it has. */
  endReason?: 'exhausted' | 'expired';
}

/** An approval request as `approval.list`, `approval.resolve` and `approval.status` show it. */
export interface ApprovalRecord {
  requestId: string;
  capability: string;
  reason: string;
  containerName: string;
  status: ApprovalStatusName;
  /** The workflow's state: Pending, Approved, Spent (grant over), Denied, Expired. */
  state: string;
  createdAt: string;
  resolvedAt?: string;
  /** `gateway:<subject>` or `matrix:<user id>`. */
  resolvedBy?: string;
  resolutionReason?: string;
  grant?: ApprovalGrantView;
  endedAt?: string;
}

export interface ApprovalResolution {
  decision: 'approve' | 'deny';
  by: string;
  reason?: string;
  grantTtlMs?: number;
  grantUses?: number;
}

/** The answer to one use of a grant. */
export type ApprovalUseResult =
  { allowed: true; usesLeft: number } | { allowed: false; reason: string };

/** Resolves a pending request (rejected, not recorded, when it is not pending). */
export const approvalResolveUpdate = defineUpdate<ApprovalRecord, [ApprovalResolution]>(
  'approval-resolve',
);
/** Takes one use of the grant, atomically (rejected when `containerName` is not the requester). */
export const approvalUseUpdate = defineUpdate<ApprovalUseResult, [{ containerName: string }]>(
  'approval-use',
);
export const approvalStatusQuery = defineQuery<ApprovalRecord>('approval-status');

// --- incident containment -------------------------------------------------------------------

/** The one incident entity workflow of a Temporal namespace. */
export const INCIDENT_WORKFLOW_ID = 'incident';
/** The memo key of the incident's flags: readable with no worker running (after a crash). */
export const INCIDENT_MEMO_KEY = 'incident';

/** What the incident workflow keeps in its memo on every change of state. */
export interface IncidentFlags {
  active: boolean;
  since: string | null;
  liftedAt: string | null;
}

/** One policy event of the forensic record; ids and reasons only. */
export interface IncidentPolicyLog {
  at: string;
  kind: string;
  detail?: Record<string, string | number | boolean>;
}

export interface IncidentStatus {
  active: boolean;
  /** When the current (or last) incident began; ISO 8601. */
  since: string | null;
  bundledBy: string | null;
  liftedAt: string | null;
  liftedBy: string | null;
  proactiveDisabled: boolean;
  toolIsolation: boolean;
  /** SHA-256 (hex) of the gateway tokens revoked by the current incident. */
  revokedTokenHashes: string[];
  policyLogs: IncidentPolicyLog[];
}

export interface IncidentWorkflowInput {
  /** The machine's context, carried across continue-as-new. */
  context?: {
    sinceMs?: number;
    bundledBy?: string;
    liftedAtMs?: number;
    liftedBy?: string;
    revokedTokenHashes: string[];
    policyLogs: IncidentPolicyLog[];
  };
  /** History length past which the workflow continues as new (default 2000; tests lower it). */
  maxHistoryEvents?: number;
}

export const incidentBundleUpdate = defineUpdate<
  IncidentStatus,
  [{ tokenHashes: string[]; by: string }]
>('incident-bundle');
export const incidentLiftUpdate = defineUpdate<IncidentStatus, [{ by: string }]>('incident-lift');
export const incidentPolicyLogSignal =
  defineSignal<[Omit<IncidentPolicyLog, 'at'>]>('incident-policy-log');
export const incidentStatusQuery = defineQuery<IncidentStatus>('incident-status');

// --- gateway agent turns --------------------------------------------------------------------

/** A turn's workflow id: `turn-<runId>` (a uuid for `agent.run`, `cron-<job>-<time>` for a cron firing). */
export const turnWorkflowId = (runId: string): string => `turn-${runId}`;
export const TURN_WORKFLOW_PREFIX = turnWorkflowId('');

/** One message of a turn, as `agent.run` takes them. */
export interface TurnMessage {
  role: string;
  content: string;
}

/** Where a gateway turn comes from (the spec's `session`). */
export interface TurnSession {
  sessionId: string;
  channelId: string;
  channelKind: 'dm' | 'group' | 'web' | 'mobile';
  userId?: string;
}

/**
 * A turn's input: what to ask, and how to find or start its agent. Ids only: the run template
 * names a key, never its token; the messages are the user's own words.
 */
export interface AgentTurnInput {
  session: TurnSession;
  messages: TurnMessage[];
  /** `session`: the session's own agent (started if none runs); `isolated`: a fresh one. */
  binding: 'session' | 'isolated';
  /** How to start an agent when one is needed: a container run without its name. */
  run: Omit<ContainerRunInput, 'containerName'>;
  /** The whole turn's limit. */
  timeoutMs: number;
  /** How long an answer waits for `agent.wait` before the workflow completes anyway. */
  retentionMs: number;
  /** Delivery retries after the first attempt, and the first pause between them. */
  maxRetries: number;
  backoffMs: number;
  /** A Matrix room the answer is also posted to (cron jobs with a channel). */
  postToRoomId?: string;
  /** The cron job that fired the turn, if any. */
  jobId?: string;
}

/** One step of a turn, with the workflow's time (ISO 8601). */
export interface TurnEvent {
  type: 'queued' | 'bound' | 'delivering' | 'answered' | 'failed' | 'expired' | 'posted';
  at: string;
  detail?: string;
}

/** The spec's TurnResult, plus how the turn ended (the gateway answers a failure as an error). */
export interface TurnResult {
  runId: string;
  assistantText: string;
  events: TurnEvent[];
  state: LifecycleState;
  model?: string;
  containerName?: string;
  endReason?: string;
  endDetail?: string;
}

/** `turn-collect`: the result once the turn is over (then the turn completes), or `running`. */
export type TurnCollectResult =
  { status: 'running'; state: LifecycleState } | { status: 'done'; result: TurnResult };

/** The failure type of a second `turn-collect` (the gateway answers NOT_FOUND). */
export const TURN_COLLECTED = 'TurnCollected';

/**
 * Waits up to `waitMs` for the turn to be over and hands its result out, once; a turn still
 * running answers `running`.
 */
export const turnCollectUpdate = defineUpdate<TurnCollectResult, [{ waitMs: number }]>(
  'turn-collect',
);
export const turnStatusQuery = defineQuery<TurnResult & { collected: boolean }>('turn-status');
