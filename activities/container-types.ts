/**
 * The container-run activities as the workflow sees them: names, arguments and results only
 * (workflows import this file's types, never the implementations). No argument or result carries
 * a secret: the activity that needs a token reads it from the keystore itself.
 */
import type { SecretsMode } from '../formats/secrets-file';

export interface StartContainerArgs {
  containerName: string;
  workflowId: string;
  image: string;
  agentType: string;
  keyId: string;
  hostId: string;
  network: string;
  roomId?: string;
  /** Absent: the host's containers.memory_bytes. */
  memoryBytes?: number;
  /** `proxy`: the run's provider proxy socket is opened beside its bridge socket. */
  secretsMode: SecretsMode;
  /** The run's spending limit (micro-dollars; 0: none), for the proxy to refuse past it. */
  limitMicroUsd: number;
}

export interface WriteSecretsArgs {
  containerName: string;
  keyId: string;
  secretsMode: SecretsMode;
}

/**
 * The secrets file, the container and the run's `container_started` audit entry in one activity:
 * a start then costs the workflow one round trip to its host instead of three (writeSecretsFile,
 * startContainer, recordAudit). The entry's container id is the one started.
 */
export interface LaunchContainerArgs extends StartContainerArgs {
  audit: AuditArgs;
}

export interface StartContainerResult {
  containerId: string;
  /** Host path of the per-container JSON-RPC socket (the spec's `endpoint`). */
  endpoint: string;
}

export interface ContainerInspection {
  exists: boolean;
  running: boolean;
  exitCode: number;
  oomKilled: boolean;
}

export interface AuditArgs {
  event_type: string;
  dedupe_key: string;
  session_id?: string;
  container_id?: string;
  room_id?: string;
  /** The Matrix user an entry is about (an approval answered in the admin room). */
  user_id?: string;
  details?: Record<string, unknown>;
}

/** Run on the host's task queue: they touch Docker, the secrets tmpfs and the container socket. */
export interface HostContainerActivities {
  launchContainer(args: LaunchContainerArgs): Promise<StartContainerResult>;
  writeSecretsFile(args: WriteSecretsArgs): Promise<void>;
  startContainer(args: StartContainerArgs): Promise<StartContainerResult>;
  removeSecretsFile(args: { containerName: string }): Promise<void>;
  inspectContainer(args: { containerName: string }): Promise<ContainerInspection>;
  teardownContainer(args: { containerName: string }): Promise<void>;
}

/** Run on the shared task queue. */
export interface SharedActivities {
  recordAudit(args: AuditArgs): Promise<void>;
}
