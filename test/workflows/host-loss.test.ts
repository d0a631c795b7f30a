/**
 * A container run whose host goes away, on a real dev server (wall-clock time: the test server's
 * timers run late while activities wait, see createDevServerEnv). The host is a worker on the
 * run's host queue, stopped to play a dead bridge and started again to play its return.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { containerRunWorkflow } from '../../workflows';
import {
  containerStatusQuery,
  containerWorkflowId,
  hostReapedSignal,
  hostTaskQueue,
  SHARED_TASK_QUEUE,
  waitActiveUpdate,
  type ContainerRunInput,
} from '../../workflows/definitions';
import { FakeContainerHost, KEY_ID } from '../support/fake-container-activities';
import { bundleWorkflows, createDevServerEnv } from '../support/temporal';
import { eventually, settleAbandonedChecks } from '../support/activity-recorder';
import { PROJECT_ROOT, TSX_ARGS } from '../support/bridge-process';

const SECOND = 1_000;
const GRACE_MS = 3 * SECOND;

let workflowBundle: WorkflowBundleWithSourceMap;
let env: TestWorkflowEnvironment;
let seq = 0;

beforeAll(async () => {
  [workflowBundle, env] = await Promise.all([bundleWorkflows(), createDevServerEnv()]);
}, 120_000);

afterAll(async () => {
  await settleAbandonedChecks();
  await env?.teardown();
});

/** A host: a worker on the run's host queue, running until `stop` (the bridge dies). */
async function startHost(hostId: string, fake: FakeContainerHost) {
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: hostTaskQueue(hostId),
    activities: fake.hostActivities,
  });
  const running = worker.run();
  return {
    async stop() {
      worker.shutdown();
      await running;
    },
  };
}

/** A run on a host of its own (`<prefix>-<n>-<time>`), its secrets gone after a second. */
function runInput(hostPrefix: string): ContainerRunInput {
  seq += 1;
  return {
    containerName: `armorclaw-hostloss-${seq}`,
    keyId: KEY_ID,
    agentType: 'test',
    image: 'armorclaw/agent:v1',
    hostId: `${hostPrefix}-${seq}-${Date.now()}`,
    ttlMs: 3_600 * SECOND,
    secretsDeadlineMs: 1 * SECOND,
    healthCheckIntervalMs: 1 * SECOND,
    network: 'none',
    hostGraceMs: GRACE_MS,
  };
}

/** The shared queue's worker: the workflows, and the audit. */
const sharedWorker = (fake: FakeContainerHost) =>
  Worker.create({
    connection: env.nativeConnection,
    taskQueue: SHARED_TASK_QUEUE,
    workflowBundle,
    activities: fake.sharedActivities,
  });

async function startActiveRun(input: ContainerRunInput) {
  const handle = await env.client.workflow.start(containerRunWorkflow, {
    taskQueue: SHARED_TASK_QUEUE,
    workflowId: containerWorkflowId(input.containerName),
    args: [input],
  });
  await handle.executeUpdate(waitActiveUpdate);
  return handle;
}

async function withLostHost(
  fn: (t: {
    handle: ReturnType<typeof env.client.workflow.getHandle>;
    fake: FakeContainerHost;
    input: ContainerRunInput;
  }) => Promise<void>,
): Promise<void> {
  const input = runInput('lost-host');
  const fake = new FakeContainerHost();
  const shared = await sharedWorker(fake);
  await shared.runUntil(async () => {
    const host = await startHost(input.hostId, fake);
    const handle = await startActiveRun(input);
    // The secrets file goes first (its deadline is a second), so only the teardown is left.
    await eventually(() => expect(fake.secretsFiles.size).toBe(0), 10_000);
    await host.stop();
    await fn({ handle, fake, input });
  });
}

test(
  'a host gone longer than its grace: the run is Failed host_lost, its teardown waits for the host, and runs when it returns',
  () =>
    withLostHost(async ({ handle, fake, input }) => {
      const lostAt = Date.now();
      await eventually(async () => {
        const s = await handle.query(containerStatusQuery);
        expect(s).toMatchObject({ state: 'Failed', end_reason: 'host_lost', cleanup_done: false });
        expect(s.end_detail).toBe(`host ${input.hostId} did not come back within 3s`);
      }, 30_000);
      // Not before the grace: the health check waited that long for a worker.
      expect(Date.now() - lostAt).toBeGreaterThanOrEqual(GRACE_MS - 500);
      expect(fake.containers.has(input.containerName)).toBe(true);
      expect(fake.callsOf('teardownContainer')).toHaveLength(0);

      // The host comes back: it takes the waiting teardown.
      const back = await startHost(input.hostId, fake);
      try {
        expect(await handle.result()).toMatchObject({ state: 'Failed', end_reason: 'host_lost' });
        expect(fake.containers.has(input.containerName)).toBe(false);
        expect(fake.callsOf('teardownContainer')).toHaveLength(1);
        const audit = fake.audit.find((a) => a.event_type === 'container_failed');
        expect(audit?.details).toMatchObject({ reason: 'host_lost' });
        expect(audit?.details).not.toHaveProperty('reaped');
      } finally {
        await back.stop();
      }
    }),
  60_000,
);

test(
  'hosts.reap gives the host up: the lost run finishes without its teardown, audited as reaped',
  () =>
    withLostHost(async ({ handle, fake, input }) => {
      await eventually(async () => {
        expect(await handle.query(containerStatusQuery)).toMatchObject({ end_reason: 'host_lost' });
      }, 30_000);
      await handle.signal(hostReapedSignal, {
        detail: `host ${input.hostId} reaped by the operator`,
      });
      expect(await handle.result()).toMatchObject({ state: 'Failed', end_reason: 'host_lost' });
      const status = await handle.query(containerStatusQuery);
      expect(status).toMatchObject({ cleanup_done: true, secrets_removed: true });
      expect(fake.callsOf('teardownContainer')).toHaveLength(0);
      // The container is still "on the host": the host's bridge removes it if it ever returns.
      expect(fake.containers.has(input.containerName)).toBe(true);
      const audit = fake.audit.find((a) => a.event_type === 'container_failed');
      expect(audit?.details).toMatchObject({
        reason: 'host_lost',
        reaped: `host ${input.hostId} reaped by the operator`,
      });
    }),
  60_000,
);

test(
  'reaping an Active run whose host is away ends it as lost at once',
  () =>
    withLostHost(async ({ handle, fake }) => {
      // Well inside the grace: the run still thinks its host may come back.
      expect(await handle.query(containerStatusQuery)).toMatchObject({ state: 'Active' });
      await handle.signal(hostReapedSignal, { detail: 'reaped' });
      expect(await handle.result()).toMatchObject({ state: 'Failed', end_reason: 'host_lost' });
      expect(await handle.query(containerStatusQuery)).toMatchObject({
        end_detail: 'reaped',
        cleanup_done: true,
      });
      expect(fake.callsOf('teardownContainer')).toHaveLength(0);
    }),
  60_000,
);

test("a host killed with -9 in the middle of removing the secrets file: the run is lost within the removal's 10 s and the grace, not a minute later", async () => {
  const input = runInput('killed-host');
  // The host's worker in a process of its own: its secrets-file removal never finishes.
  const child = spawn(
    process.execPath,
    [
      ...TSX_ARGS,
      path.join(PROJECT_ROOT, 'test/support/host-process.ts'),
      env.address,
      input.hostId,
    ],
    { cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr = (stderr + d).slice(-5_000)));
  const lines: string[] = [];
  readline.createInterface({ input: child.stdout! }).on('line', (l) => lines.push(l));
  const saw = (what: string) =>
    eventually(() => {
      if (child.exitCode !== null) throw new Error(`host process exited: ${stderr}`);
      expect(lines).toContain(what);
    }, 60_000);
  const fake = new FakeContainerHost();
  const shared = await sharedWorker(fake);
  try {
    await shared.runUntil(async () => {
      await saw('{"ready":true}');
      const handle = await startActiveRun(input);
      await saw('{"started":"removeSecretsFile"}');
      child.kill('SIGKILL');
      const killedAt = Date.now();
      // The run waits for the removal (its machine is mid-step): the removal's start-to-close,
      // a retry that no worker takes within the grace, then lost.
      await eventually(async () => {
        const s = await handle.query(containerStatusQuery);
        expect(s).toMatchObject({ state: 'Failed', end_reason: 'host_lost' });
        expect(s.end_detail).toBe(`host ${input.hostId} did not come back within 3s`);
      }, 40_000);
      expect(Date.now() - killedAt).toBeLessThan(25 * SECOND);
      await handle.signal(hostReapedSignal, { detail: 'reaped' });
      expect(await handle.result()).toMatchObject({ state: 'Failed', end_reason: 'host_lost' });
    });
  } finally {
    child.kill('SIGKILL');
  }
}, 120_000);
