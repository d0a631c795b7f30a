import {
  DefaultLogger,
  NativeConnection,
  Runtime,
  Worker,
  bundleWorkflowCode,
  type WorkflowBundle,
  type WorkflowBundlePath,
} from '@temporalio/worker';
import path from 'node:path';
import type { LogLevel } from '@temporalio/common';
import type { Logger } from 'pino';
import type { HostContainerActivities, SharedActivities } from '../activities/container-types';
import type { MatrixActivities } from '../activities/matrix';
import type { AdmissionActivities } from '../activities/admission';
import type { AgentRunActivities, VoiceHostActivities } from '../activities/voice';
import type { TurnHostActivities, TurnSharedActivities } from '../activities/turn';
import { hostTaskQueue } from '../workflows/definitions';
import { COMPILED } from '../services/runtime';

/** The prebuilt workflow bundle's file name in `dist/`. */
export const WORKFLOW_BUNDLE_FILE = 'workflow-bundle.js';

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
  /**
   * Settles with the error when a worker stops by itself (not through `stop`): the bridge then
   * serves requests it can no longer carry out, so it exits and its supervisor restarts it.
   */
  failed: Promise<Error>;
}

const PINO_LEVEL: Record<LogLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = {
  TRACE: 'trace',
  DEBUG: 'debug',
  INFO: 'info',
  WARN: 'warn',
  ERROR: 'error',
};

let runtimeInstalled = false;

/**
 * The SDK's own logs (workers, activities) go through our logger, warnings and up; signals are
 * the bridge's to handle.
 */
function routeSdkLogs(log: Logger): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  try {
    Runtime.install({
      logger: new DefaultLogger('WARN', ({ level, message, meta }) => {
        log[PINO_LEVEL[level]]({ ...meta, sdk: true }, message);
      }),
      // The SDK would shut the workers down on SIGINT, SIGTERM, SIGQUIT and SIGUSR2 by itself,
      // leaving a bridge that answers but runs nothing (SIGUSR2 is a profiler's or a heap
      // dump's signal). The bridge's own shutdown stops them.
      shutdownSignals: [],
    });
  } catch {
    // Already installed (several bridges in one test process): keep the first logger.
  }
}

let bundle: Promise<WorkflowBundle | WorkflowBundlePath> | undefined;

/**
 * The workflow code for the worker's sandbox. Compiled, the bridge loads the bundle the build
 * made (`dist/workflow-bundle.js`); from source it bundles once per process, which takes
 * seconds and a good deal of memory.
 */
export function workflowBundle(): Promise<WorkflowBundle | WorkflowBundlePath> {
  bundle ??= COMPILED
    ? Promise.resolve({ codePath: path.join(__dirname, '..', WORKFLOW_BUNDLE_FILE) })
    : createWorkflowBundle();
  return bundle;
}

/** Bundles the workflow code beside this module (the build writes it to a file). */
export function createWorkflowBundle(): Promise<WorkflowBundle> {
  return bundleWorkflowCode({
    workflowsPath: require.resolve('../workflows'),
    logger: quietBundlerLogger,
  });
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
 * Pollers scale with the backlog (Temporal's poller autoscaling) instead of a fixed ten per
 * queue, of which only two take new workflows' first tasks: a burst of starts no longer waits
 * in the server for a free poller.
 */
const POLLERS = {
  workflowTaskPollerBehavior: { type: 'autoscaling' },
  activityTaskPollerBehavior: { type: 'autoscaling' },
} as const;

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
    ...POLLERS,
  });
  const host = await Worker.create({
    connection,
    namespace: opts.namespace,
    taskQueue: hostTaskQueue(opts.hostId),
    activities: opts.hostActivities,
    ...POLLERS,
  });
  const runs = [shared.run(), host.run()];
  let stopping = false;
  const failed = new Promise<Error>((resolve) => {
    for (const run of runs) {
      run.then(
        () => {
          if (!stopping) resolve(new Error('a Temporal worker stopped by itself'));
        },
        (err: Error) => {
          opts.log.fatal({ err }, 'a Temporal worker stopped unexpectedly');
          resolve(err);
        },
      );
    }
  });
  return {
    failed,
    async stop() {
      stopping = true;
      for (const w of [shared, host]) {
        if (w.getState() === 'RUNNING') w.shutdown();
      }
      await Promise.allSettled(runs);
      await connection.close();
    },
  };
}
