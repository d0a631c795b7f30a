/**
 * In-memory container-run activities for workflow tests: a fake keystore, secrets tmpfs, Docker
 * and audit log that record every call. Real Docker is exercised by the integration tier; here
 * the subject is the workflow's decisions, timers and retries.
 */
import { Context } from '@temporalio/activity';
import { recordActivity, type RecordedActivity } from './activity-recorder';
import { ApplicationFailure } from '@temporalio/common';
import type {
  AuditArgs,
  ContainerInspection,
  HostContainerActivities,
  SharedActivities,
  StartContainerArgs,
  StartContainerResult,
} from '../../activities/container-types';

/**
 * The token the fake keystore holds. It must never appear in workflow history: only the
 * activity that writes the secrets file reads it (docs/architecture.md, rule 7).
 */
export const SECRET_MARKER = 'sk-ant-SECRET-MARKER-5c1b7e2d9a';
export const KEY_ID = 'key-anthropic-test';

export type HostActivityName = keyof HostContainerActivities;

export type RecordedCall = RecordedActivity<HostActivityName | 'recordAudit'>;

/** Behaviour overrides: given the call's attempt number, do something other than succeed. */
export interface FakeBehaviour {
  writeSecretsFile?: (attempt: number) => Promise<void> | void;
  startContainer?: (attempt: number, args: StartContainerArgs) => Promise<void> | void;
  removeSecretsFile?: (attempt: number) => Promise<void> | void;
  inspectContainer?: (
    attempt: number,
    current: ContainerInspection,
  ) => Promise<ContainerInspection> | ContainerInspection;
}

export interface FakeContainer {
  id: string;
  running: boolean;
  exitCode: number;
  oomKilled: boolean;
}

export class FakeContainerHost {
  readonly calls: RecordedCall[] = [];
  /** Containers that "exist" on the fake Docker, by name. */
  readonly containers = new Map<string, FakeContainer>();
  /** The fake secrets tmpfs: container name → file content. */
  readonly secretsFiles = new Map<string, string>();
  readonly audit: AuditArgs[] = [];
  readonly keystore = new Map<string, string>([[KEY_ID, SECRET_MARKER]]);
  private nextId = 1;

  constructor(private readonly behaviour: FakeBehaviour = {}) {}

  callsOf(name: RecordedCall['name']): RecordedCall[] {
    return this.calls.filter((c) => c.name === name);
  }

  private record<T>(name: RecordedCall['name'], args: unknown, body: () => Promise<T>) {
    return recordActivity(this.calls, name, args, body);
  }

  readonly hostActivities: HostContainerActivities = {
    // As the real one: the two steps below (recorded as calls of their own, as an older run makes
    // them), then the started audit entry.
    launchContainer: ({ audit, ...args }) =>
      this.record('launchContainer', args, async (): Promise<StartContainerResult> => {
        await this.hostActivities.writeSecretsFile({
          containerName: args.containerName,
          keyId: args.keyId,
          secretsMode: args.secretsMode,
        });
        const started = await this.hostActivities.startContainer(args);
        if (!this.audit.some((a) => a.dedupe_key === audit.dedupe_key)) {
          this.audit.push({ ...audit, container_id: started.containerId });
        }
        return started;
      }),
    writeSecretsFile: (args) =>
      this.record('writeSecretsFile', args, async () => {
        await this.behaviour.writeSecretsFile?.(Context.current().info.attempt);
        const token = this.keystore.get(args.keyId);
        if (token === undefined) {
          throw ApplicationFailure.nonRetryable(`unknown key ${args.keyId}`, 'KeyNotFound');
        }
        this.secretsFiles.set(args.containerName, token);
      }),
    startContainer: (args) =>
      this.record('startContainer', args, async (): Promise<StartContainerResult> => {
        await this.behaviour.startContainer?.(Context.current().info.attempt, args);
        const id = `fakecontainer${String(this.nextId++).padStart(4, '0')}`;
        this.containers.set(args.containerName, {
          id,
          running: true,
          exitCode: 0,
          oomKilled: false,
        });
        return {
          containerId: id,
          endpoint: `/run/armorclaw/containers/${args.containerName}.sock`,
        };
      }),
    removeSecretsFile: (args) =>
      this.record('removeSecretsFile', args, async () => {
        await this.behaviour.removeSecretsFile?.(Context.current().info.attempt);
        this.secretsFiles.delete(args.containerName);
      }),
    inspectContainer: (args) =>
      this.record('inspectContainer', args, async (): Promise<ContainerInspection> => {
        const c = this.containers.get(args.containerName);
        // As the real activity reports a container that is gone: exit code -1.
        const current: ContainerInspection = c
          ? { exists: true, running: c.running, exitCode: c.exitCode, oomKilled: c.oomKilled }
          : { exists: false, running: false, exitCode: -1, oomKilled: false };
        return this.behaviour.inspectContainer
          ? this.behaviour.inspectContainer(Context.current().info.attempt, current)
          : current;
      }),
    // Like the real one: stop and remove the container and its secrets file; idempotent.
    teardownContainer: (args) =>
      this.record('teardownContainer', args, async () => {
        this.containers.delete(args.containerName);
        this.secretsFiles.delete(args.containerName);
      }),
  };

  readonly sharedActivities: SharedActivities = {
    recordAudit: (args) =>
      this.record('recordAudit', args, async () => {
        this.audit.push(args);
      }),
  };
}
