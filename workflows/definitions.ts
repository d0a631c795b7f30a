/**
 * Every signal, query and update of the bridge's workflows, with their payload types: shared by
 * workflows, the RPC layer, the worker and tests. Wire names are stable kebab-case. Payloads
 * carry ids, never secrets: Temporal persists them in history and shows them in the Web UI.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { EndReason, LifecycleState } from '../machines/lifecycle';

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
