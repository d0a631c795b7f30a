/**
 * Every signal, query and update of the bridge's workflows, with their payload types: shared by
 * workflows, the RPC layer, the worker and tests. Wire names are stable kebab-case. Payloads
 * carry ids, never secrets: Temporal persists them in history and shows them in the Web UI.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { EndReason, LifecycleState } from '../machines/lifecycle';
import type { BudgetLedger } from '../services/budget';

export const SHARED_TASK_QUEUE = 'armorclaw';
/** Docker and media activities run on the host that owns the container (architecture rule 5). */
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
}

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
}

export interface ContainerRunResult {
  state: LifecycleState;
  end_reason?: EndReason;
  end_detail?: string;
  exit_code?: number;
}

/** Waits until the run is Active (returns its start result) or failed to start (throws). */
export const waitActiveUpdate = defineUpdate<ContainerStarted>('wait-active');
/** Asks the run to end and waits until it has, cleanup included. */
export const stopUpdate = defineUpdate<ContainerStopped, [{ reason?: string }]>('stop');
export const containerExitedSignal = defineSignal<[ContainerExit]>('container-exited');
export const secretsAckedSignal = defineSignal('secrets-acked');
export const agentNotifySignal = defineSignal<[AgentNotification]>('agent-notify');
export const budgetExceededSignal = defineSignal('budget-exceeded');
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
}

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
