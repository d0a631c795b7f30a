import {
  DefaultLogger,
  NativeConnection,
  Runtime,
  Worker,
  bundleWorkflowCode,
  type WorkflowBundleWithSourceMap,
} from '@temporalio/worker';
import type { LogLevel } from '@temporalio/common';
import type { Logger } from 'pino';
import type { HostContainerActivities, SharedActivities } from '../activities/container-types';
import type { MatrixActivities } from '../activities/matrix';
import type { AdmissionActivities } from '../activities/admission';
import type { AgentRunActivities, VoiceHostActivities } from '../activities/voice';
import type { TurnHostActivities, TurnSharedActivities } from '../activities/turn';
import { hostTaskQueue } from '../workflows/definitions';

export interface WorkersOptions {
  address: string;
  namespace: string;
  taskQueue: string;
  hostId: string;
  hostActivities: HostContainerActivities &
    MatrixActivities &
    VoiceHostActivities &
    TurnHostActivities;
  sharedActivities: SharedActivities &
    AgentRunActivities &
    AdmissionActivities &
    TurnSharedActivities;
  log: Logger;
}

export interface RunningWorkers {
  /** Stops polling, lets running activities finish, closes the connection. */
  stop(): Promise<void>;
}

const PINO_LEVEL: Record<LogLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = {
  TRACE: 'trace',
  DEBUG: 'debug',
  INFO: 'info',
  WARN: 'warn',
  ERROR: 'error',
};

let runtimeInstalled = false;

/** The SDK's own logs (workers, activities) go through our logger, warnings and up. */
function routeSdkLogs(log: Logger): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  try {
    Runtime.install({
      logger: new DefaultLogger('WARN', ({ level, message, meta }) => {
        log[PINO_LEVEL[level]]({ ...meta, sdk: true }, message);
      }),
    });
  } catch {
    // Already installed (several bridges in one test process): keep the first logger.
  }
}

let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;

/** Workflow code is bundled once per process (it takes a few seconds). */
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  bundle ??= bundleWorkflowCode({
    workflowsPath: require.resolve('../workflows'),
    logger: quietBundlerLogger,
  });
  return bundle;
}

const quietBundlerLogger = {
  log: () => undefined,
  trace: () => undefined,
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

/**
 * Two workers (docs/architecture.md, rule 5): the shared queue runs workflows and stateless activities;
 * the host queue runs what must happen on this machine (Docker, secrets tmpfs, sockets).
 */
export async function startWorkers(opts: WorkersOptions): Promise<RunningWorkers> {
  routeSdkLogs(opts.log);
  const connection = await NativeConnection.connect({ address: opts.address });
  const shared = await Worker.create({
    connection,
    namespace: opts.namespace,
    taskQueue: opts.taskQueue,
    workflowBundle: await workflowBundle(),
    activities: opts.sharedActivities,
    // A workflow's next task goes to the worker that ran its last one; when that bridge has died,
    // the task moves to the shared queue after this long (SDK default 10 s). Kept short so a
    // session of a dead host reacts within its grace, not 10 s later.
    stickyQueueScheduleToStartTimeout: '2s',
  });
  const host = await Worker.create({
    connection,
    namespace: opts.namespace,
    taskQueue: hostTaskQueue(opts.hostId),
    activities: opts.hostActivities,
  });
  const runs = [shared.run(), host.run()];
  for (const run of runs) {
    run.catch((err) => opts.log.fatal({ err }, 'a Temporal worker stopped unexpectedly'));
  }
  return {
    async stop() {
      for (const w of [shared, host]) {
        if (w.getState() === 'RUNNING') w.shutdown();
      }
      await Promise.allSettled(runs);
      await connection.close();
    },
  };
}
