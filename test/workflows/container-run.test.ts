/**
 * `containerRunWorkflow` on the time-skipping test server, with in-memory activities
 * (test/support/fake-container-activities.ts). Every transition of the machine is driven through
 * the real workflow: its timers, retries, updates, signals, queries, search attributes and
 * history. Real Docker is the integration tier's job.
 *
 * Time on this server is locked (runs at wall-clock speed) except while a workflow result is
 * awaited or `env.sleep` is called: tests that need workflow time to pass use one of those.
 */
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  WorkflowUpdateStage,
  type WorkflowHandle,
} from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { containerRunWorkflow } from '../../workflows';
import {
  agentNotifySignal,
  budgetExceededSignal,
  runUsageSignal,
  containerExitedSignal,
  containerStatusQuery,
  containerWorkflowId,
  secretsAckedSignal,
  SHARED_TASK_QUEUE,
  stopUpdate,
  waitActiveUpdate,
  type ContainerRunInput,
} from '../../workflows/definitions';
import {
  ArmorclawContainerId,
  ArmorclawKind,
  ArmorclawState,
} from '../../workflows/search-attributes';
import {
  FakeContainerHost,
  KEY_ID,
  SECRET_MARKER,
  type FakeBehaviour,
} from '../support/fake-container-activities';
import {
  bundleWorkflows,
  createContainerRunWorkers,
  createTimeSkippingEnv,
} from '../support/temporal';
import { eventually, settleAbandonedChecks } from '../support/activity-recorder';
import { startRunUntilActive } from '../../sessions/containers';

const realSleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const SECOND = 1_000;
const HOUR = 3_600_000;

let workflowBundle: WorkflowBundleWithSourceMap;
let seq = 0;

beforeAll(async () => {
  workflowBundle = await bundleWorkflows();
}, 120_000);

type Handle = WorkflowHandle<typeof containerRunWorkflow>;

interface Run {
  /** This test's own server: time skipping is global to a server. */
  env: TestWorkflowEnvironment;
  handle: Handle;
  fake: FakeContainerHost;
  input: ContainerRunInput;
  name: string;
}

/**
 * Starts one run on its own test server (about half a second) with its own fake host and
 * workers, runs `fn`, then tears it all down. A server per test, not per suite: time skipping is
 * global to a server, and after a run with pending timers is terminated on it (the obvious way
 * to clean up a run a test leaves open) the test server no longer skips time: a later 1-hour TTL
 * would take an hour.
 */
async function withRun<T>(
  opts: { behaviour?: FakeBehaviour; input?: Partial<ContainerRunInput> },
  fn: (run: Run) => Promise<T>,
): Promise<T> {
  seq += 1;
  const name = `armorclaw-test-${seq}`;
  const input: ContainerRunInput = {
    containerName: name,
    keyId: KEY_ID,
    agentType: 'test',
    image: 'armorclaw/agent:v1',
    hostId: `host${seq}`,
    ttlMs: HOUR,
    secretsDeadlineMs: 10 * SECOND,
    // Longer than the TTL unless a test is about health: no inspections to wade through.
    healthCheckIntervalMs: 2 * HOUR,
    network: 'none',
    ...opts.input,
  };
  const fake = new FakeContainerHost(opts.behaviour);
  const env = await createTimeSkippingEnv();
  try {
    const workers = await createContainerRunWorkers({
      env,
      workflowBundle,
      hostId: input.hostId,
      hostActivities: fake.hostActivities,
      sharedActivities: fake.sharedActivities,
    });
    return await workers.run(async () => {
      const handle = await env.client.workflow.start(containerRunWorkflow, {
        taskQueue: SHARED_TASK_QUEUE,
        workflowId: containerWorkflowId(name),
        args: [input],
      });
      return fn({ env, handle, fake, input, name });
    });
  } finally {
    await settleAbandonedChecks();
    await env.teardown();
  }
}

const status = (handle: Handle) => handle.query(containerStatusQuery);

/**
 * History as text with every payload decoded, so a token in any payload would show:
 * `fetchHistory` gives payload data as base64 strings (bytes on other paths; both handled).
 */
async function historyText(handle: Handle): Promise<string> {
  const history = await handle.fetchHistory();
  return JSON.stringify(history, function (this: Record<string, unknown>, key, value) {
    const raw = this[key];
    if (raw instanceof Uint8Array) return Buffer.from(raw).toString('utf8');
    if (key === 'data' && typeof raw === 'string')
      return Buffer.from(raw, 'base64').toString('utf8');
    return value;
  });
}

/** Activity types scheduled in the run's history, in order. */
async function scheduledActivities(handle: Handle): Promise<string[]> {
  const history = await handle.fetchHistory();
  return (history.events ?? [])
    .map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name)
    .filter((n): n is string => typeof n === 'string');
}

/** Durations (ms) of the timers the run started, and which of them fired. */
async function timers(
  handle: Handle,
): Promise<{ started: Map<string, number>; fired: Set<string> }> {
  const history = await handle.fetchHistory();
  const started = new Map<string, number>();
  const fired = new Set<string>();
  for (const e of history.events ?? []) {
    const s = e.timerStartedEventAttributes;
    if (s?.timerId) {
      const t = s.startToFireTimeout;
      started.set(s.timerId, Number(t?.seconds ?? 0) * 1000 + Math.round((t?.nanos ?? 0) / 1e6));
    }
    const f = e.timerFiredEventAttributes;
    if (f?.timerId) fired.add(f.timerId);
  }
  return { started, fired };
}

const auditTypes = (fake: FakeContainerHost) => fake.audit.map((a) => a.event_type);

/** What must hold after every run, however it ended: nothing left on the host. */
function expectNothingLeft(fake: FakeContainerHost, name: string): void {
  expect(fake.containers.has(name)).toBe(false);
  expect(fake.secretsFiles.has(name)).toBe(false);
  expect(fake.callsOf('teardownContainer').length).toBeGreaterThanOrEqual(1);
}

describe('happy path', () => {
  test('waitActive answers the spec fields; an ack removes the secrets once, before the deadline', () =>
    withRun({}, async ({ env, handle, fake, name }) => {
      const started = await handle.executeUpdate(waitActiveUpdate);
      const container = fake.containers.get(name);
      expect(container?.running).toBe(true);
      expect(started).toEqual({
        container_id: container!.id,
        container_name: name,
        status: 'running',
        endpoint: `/run/armorclaw/containers/${name}.sock`,
      });
      // The activity read the token from the keystore and wrote it to the file; the workflow
      // only ever saw the key id.
      expect(fake.secretsFiles.get(name)).toBe(SECRET_MARKER);
      expect(fake.callsOf('writeSecretsFile')[0]?.args).toEqual({
        containerName: name,
        keyId: KEY_ID,
        secretsMode: 'file',
      });
      const before = await status(handle);
      expect(before).toMatchObject({
        state: 'Active',
        secrets_removed: false,
        container_id: container!.id,
      });

      await handle.signal(secretsAckedSignal);
      await eventually(async () => expect((await status(handle)).secrets_removed).toBe(true));
      expect(fake.secretsFiles.has(name)).toBe(false);
      const removals = fake.callsOf('removeSecretsFile');
      expect(removals).toHaveLength(1);
      const startedAt = fake.callsOf('startContainer')[0]!.scheduledMs;
      expect(removals[0]!.scheduledMs - startedAt).toBeLessThan(10 * SECOND);

      // Let the 10 s deadline fire too: the machine's guard keeps it from removing again.
      await env.sleep(15 * SECOND);
      await eventually(async () => {
        const { started: ts, fired } = await timers(handle);
        const deadline = [...ts].find(([, ms]) => ms === 10 * SECOND);
        expect(deadline && fired.has(deadline[0])).toBe(true);
      });
      const stopped = await handle.executeUpdate(stopUpdate, { args: [{ reason: 'test' }] });
      expect(stopped).toEqual({
        status: 'stopped',
        container_id: container!.id,
        container_name: name,
      });
      expect(await handle.result()).toEqual({ state: 'Ended', end_reason: 'stop_requested' });
      expect(fake.callsOf('removeSecretsFile')).toHaveLength(1);
      expect(
        (await scheduledActivities(handle)).filter((a) => a === 'removeSecretsFile'),
      ).toHaveLength(1);
      expect(auditTypes(fake)).toEqual(['container_started', 'container_ended']);
      expectNothingLeft(fake, name);
    }));

  test('without an ack, the secrets file is removed at 10 s of workflow time', () =>
    withRun({}, async ({ env, handle, fake, name }) => {
      await handle.executeUpdate(waitActiveUpdate);
      await env.sleep(9 * SECOND);
      expect((await status(handle)).secrets_removed).toBe(false);
      expect(fake.secretsFiles.get(name)).toBe(SECRET_MARKER);
      await env.sleep(2 * SECOND);
      await eventually(async () => expect((await status(handle)).secrets_removed).toBe(true));
      expect(fake.secretsFiles.has(name)).toBe(false);
      const removals = fake.callsOf('removeSecretsFile');
      expect(removals).toHaveLength(1);
      // Measured from when the start was scheduled: 10 s plus the few ms the fakes took.
      const delay = removals[0]!.scheduledMs - fake.callsOf('startContainer')[0]!.scheduledMs;
      expect(delay).toBeGreaterThanOrEqual(10 * SECOND);
      expect(delay).toBeLessThan(11 * SECOND);
      // A late ack changes nothing.
      await handle.signal(secretsAckedSignal);
      await handle.executeUpdate(stopUpdate, { args: [{}] });
      expect(fake.callsOf('removeSecretsFile')).toHaveLength(1);
    }));
});

describe('an ack that overtakes the start result', () => {
  test('is honoured as soon as the run is Active: one removal, well before the deadline', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    await withRun(
      { behaviour: { startContainer: () => gate } },
      async ({ env, handle, fake, name }) => {
        try {
          // The agent runs and acks while Docker's start call has not returned yet.
          await eventually(() => expect(fake.callsOf('startContainer')).toHaveLength(1));
          await handle.signal(secretsAckedSignal);
          expect((await status(handle)).state).toBe('Pending');
          release();
          await handle.executeUpdate(waitActiveUpdate);
          await eventually(async () => expect((await status(handle)).secrets_removed).toBe(true));
          expect(fake.secretsFiles.has(name)).toBe(false);
          const removals = fake.callsOf('removeSecretsFile');
          expect(removals).toHaveLength(1);
          const startedAt = fake.callsOf('startContainer')[0]!.scheduledMs;
          expect(removals[0]!.scheduledMs - startedAt).toBeLessThan(10 * SECOND);
          await env.sleep(15 * SECOND);
          await handle.executeUpdate(stopUpdate, { args: [{}] });
          expect(fake.callsOf('removeSecretsFile')).toHaveLength(1);
        } finally {
          release();
        }
      },
    );
  });
});

describe('TTL', () => {
  test('a 1-hour TTL expires in moments of wall time: Expired, torn down, audited', () =>
    withRun({}, async ({ handle, fake, name }) => {
      const { container_id } = await handle.executeUpdate(waitActiveUpdate);
      const wallStart = Date.now();
      const result = await handle.result();
      expect(Date.now() - wallStart).toBeLessThan(15 * SECOND);
      expect(result).toEqual({ state: 'Expired', end_reason: 'ttl_expired' });

      const teardowns = fake.callsOf('teardownContainer');
      expect(teardowns).toHaveLength(1);
      const lived = teardowns[0]!.scheduledMs - fake.callsOf('startContainer')[0]!.scheduledMs;
      expect(lived).toBeGreaterThanOrEqual(HOUR);
      expect(lived).toBeLessThan(HOUR + 5 * SECOND);
      expect([...(await timers(handle)).started.values()]).toContain(HOUR);

      expect(auditTypes(fake)).toEqual(['container_started', 'container_expired']);
      expect(fake.audit[1]).toMatchObject({
        event_type: 'container_expired',
        session_id: name,
        container_id,
        details: { reason: 'ttl_expired', key_id: KEY_ID },
      });
      const final = await status(handle);
      expect(final).toMatchObject({ state: 'Expired', cleanup_done: true, secrets_removed: true });
      expectNothingLeft(fake, name);

      // The Web UI's view: search attributes carry the terminal state and the container id.
      const { typedSearchAttributes } = await handle.describe();
      expect(typedSearchAttributes.get(ArmorclawState)).toBe('Expired');
      expect(typedSearchAttributes.get(ArmorclawKind)).toBe('container');
      expect(typedSearchAttributes.get(ArmorclawContainerId)).toBe(container_id);
    }));
});

describe('stop', () => {
  test('stop → Ended, answered only after teardown and audit; a second stop is refused', () =>
    withRun({}, async ({ handle, fake, name }) => {
      const { container_id } = await handle.executeUpdate(waitActiveUpdate);
      const stopped = await handle.executeUpdate(stopUpdate, { args: [{ reason: 'rpc_stop' }] });
      // Checked at the moment the update answered, before anything else can happen.
      expect(fake.containers.has(name)).toBe(false);
      expect(fake.callsOf('teardownContainer')).toHaveLength(1);
      expect(auditTypes(fake)).toEqual(['container_started', 'container_ended']);
      expect(stopped).toEqual({ status: 'stopped', container_id, container_name: name });
      expect(await handle.result()).toEqual({ state: 'Ended', end_reason: 'stop_requested' });
      expect((await handle.describe()).typedSearchAttributes.get(ArmorclawState)).toBe('Ended');

      // The run is closed: the server refuses the update with NOT_FOUND, which the client
      // raises as WorkflowNotFoundError (what `stop` maps to "container not found").
      await expect(handle.executeUpdate(stopUpdate, { args: [{}] })).rejects.toBeInstanceOf(
        WorkflowNotFoundError,
      );
      expect(fake.callsOf('teardownContainer')).toHaveLength(1);
    }));

  test('stop while the container is still starting → Ended, nothing left behind', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    await withRun({ behaviour: { startContainer: () => gate } }, async ({ handle, fake, name }) => {
      // Whatever fails, unblock the fake start: the worker cannot shut down around it.
      try {
        const activeAnswer = handle.executeUpdate(waitActiveUpdate);
        activeAnswer.catch(() => undefined);
        await eventually(() => expect(fake.callsOf('startContainer')).toHaveLength(1));
        const stopped = handle.executeUpdate(stopUpdate, { args: [{ reason: 'rpc_stop' }] });
        // Docker finishes the start a moment after the stop arrived: the workflow must not tear
        // down before it, or the container it creates is orphaned.
        await realSleep(1_000);
        release();
        expect(await stopped).toEqual({
          status: 'stopped',
          container_id: expect.any(String),
          container_name: name,
        });
        expect(await handle.result()).toMatchObject({
          state: 'Ended',
          end_reason: 'stop_requested',
        });
        await fake.callsOf('startContainer')[0]!.settled;
        expectNothingLeft(fake, name);
        const err = await activeAnswer.then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
        expect((err as WorkflowUpdateFailedError).cause).toMatchObject({ type: 'RunEnded' });
        // The launch finished what it began: the container started (and was torn down).
        expect(auditTypes(fake)).toEqual(['container_started', 'container_ended']);
      } finally {
        release();
      }
    });
  });
});

describe('the container exits', () => {
  test.each([
    [137, false, 'Failed', 'container_exited', 'container_failed'],
    [0, false, 'Ended', 'container_exited', 'container_ended'],
    [137, true, 'Failed', 'oom_killed', 'container_failed'],
  ] as const)('exit code %d, oomKilled %s → %s (%s)', (exitCode, oomKilled, state, reason, audit) =>
    withRun({}, async ({ handle, fake, name }) => {
      await handle.executeUpdate(waitActiveUpdate);
      await handle.signal(containerExitedSignal, { exitCode, oomKilled });
      const result = await handle.result();
      expect(result).toMatchObject({ state, end_reason: reason, exit_code: exitCode });
      expect(auditTypes(fake)).toEqual(['container_started', audit]);
      expect(fake.audit[1]?.details).toMatchObject({ reason, exit_code: exitCode });
      expectNothingLeft(fake, name);
      expect((await handle.describe()).typedSearchAttributes.get(ArmorclawState)).toBe(state);
    }),
  );
});

describe('health monitoring by periodic inspect', () => {
  test.each([
    [
      'has died with exit code 1',
      (fake: FakeContainerHost, name: string) => {
        const c = fake.containers.get(name)!;
        fake.containers.set(name, { ...c, running: false, exitCode: 1 });
      },
      1,
    ],
    ['has vanished', (fake: FakeContainerHost, name: string) => fake.containers.delete(name), -1],
  ] as const)(
    'an inspect that finds the container %s → Failed, at the configured interval',
    (_n, kill, exitCode) =>
      withRun(
        { input: { healthCheckIntervalMs: 30 * SECOND } },
        async ({ env, handle, fake, name }) => {
          await handle.executeUpdate(waitActiveUpdate);
          await env.sleep(31 * SECOND);
          await eventually(() => expect(fake.callsOf('inspectContainer')).toHaveLength(1));
          expect((await status(handle)).state).toBe('Active');
          // Killed behind our back, and no Docker event reached the workflow: the next inspect
          // (30 s later) is what notices.
          kill(fake, name);
          const result = await handle.result();
          expect(result).toEqual({
            state: 'Failed',
            end_reason: 'container_exited',
            end_detail: `exit code ${exitCode}`,
            exit_code: exitCode,
          });
          const checks = fake.callsOf('inspectContainer');
          expect(checks).toHaveLength(2);
          const startedAt = fake.callsOf('startContainer')[0]!.scheduledMs;
          expect(checks[0]!.scheduledMs - startedAt).toBeGreaterThanOrEqual(30 * SECOND);
          expect(checks[1]!.scheduledMs - checks[0]!.scheduledMs).toBeGreaterThanOrEqual(
            30 * SECOND,
          );
          expectNothingLeft(fake, name);
        },
      ),
  );

  test('an inspect that keeps failing → Failed health_check_failed after its retries', () =>
    withRun(
      {
        input: { healthCheckIntervalMs: 30 * SECOND },
        behaviour: {
          inspectContainer: () => {
            throw new Error('connect ENOENT /var/run/docker.sock');
          },
        },
      },
      async ({ handle, fake, name }) => {
        await handle.executeUpdate(waitActiveUpdate);
        const result = await handle.result();
        expect(result).toMatchObject({ state: 'Failed', end_reason: 'health_check_failed' });
        // The health proxy's retry policy: 5 attempts, then the run gives up on the host.
        expect(fake.callsOf('inspectContainer').map((c) => c.attempt)).toEqual([1, 2, 3, 4, 5]);
        expect(auditTypes(fake)).toEqual(['container_started', 'container_failed']);
        expectNothingLeft(fake, name);
      },
    ));
});

describe('update-with-start (what `start` uses)', () => {
  test('answers Active in one call; a name already taken is WorkflowExecutionAlreadyStartedError', () =>
    withRun({}, async ({ env, input, fake }) => {
      // The run of `input` is started already (by withRun): its name is taken.
      await expect(
        startRunUntilActive(env.client, SHARED_TASK_QUEUE, input),
      ).rejects.toBeInstanceOf(WorkflowExecutionAlreadyStartedError);
      const other = { ...input, containerName: `${input.containerName}-b` };
      const started = await startRunUntilActive(env.client, SHARED_TASK_QUEUE, other);
      expect(started).toMatchObject({ container_name: other.containerName, status: 'running' });
      expect(
        fake
          .callsOf('launchContainer')
          .map((c) => (c.args as { containerName: string }).containerName),
      ).toContain(other.containerName);
    }));
});

describe('start failures', () => {
  test('unknown key: non-retryable KeyNotFound → waitActive rejects with that type, run Failed', () =>
    withRun({ input: { keyId: 'key-does-not-exist' } }, async ({ handle, fake, name }) => {
      const err = await handle.executeUpdate(waitActiveUpdate).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
      const cause = (err as WorkflowUpdateFailedError).cause;
      expect(cause).toBeInstanceOf(ApplicationFailure);
      expect(cause).toMatchObject({ type: 'KeyNotFound' });
      expect(await handle.result()).toMatchObject({ state: 'Failed', end_reason: 'start_failed' });
      expect(fake.callsOf('writeSecretsFile')).toHaveLength(1);
      expect(fake.callsOf('startContainer')).toHaveLength(0);
      expect(fake.callsOf('teardownContainer')).toHaveLength(1);
      expect(auditTypes(fake)).toEqual(['container_failed']);
      expectNothingLeft(fake, name);
      const { typedSearchAttributes } = await handle.describe();
      expect(typedSearchAttributes.get(ArmorclawState)).toBe('Failed');
      expect(typedSearchAttributes.get(ArmorclawContainerId)).toBeUndefined();
    }));

  test('transient Docker errors are retried: two failures, then Active', () =>
    withRun(
      {
        behaviour: {
          startContainer: (attempt) => {
            if (attempt <= 2) throw new Error('dockerd: connection reset');
          },
        },
      },
      async ({ handle, fake }) => {
        const started = await handle.executeUpdate(waitActiveUpdate);
        expect(started.status).toBe('running');
        expect(fake.callsOf('startContainer').map((c) => c.attempt)).toEqual([1, 2, 3]);
        // Each attempt of the launch writes the file again (the same file: idempotent).
        expect(fake.callsOf('launchContainer').map((c) => c.attempt)).toEqual([1, 2, 3]);
        expect(fake.callsOf('writeSecretsFile')).toHaveLength(3);
        expect((await status(handle)).state).toBe('Active');
      },
    ));

  test('a Docker error that never clears → Failed after the retry policy’s 5 attempts', () =>
    withRun(
      {
        behaviour: {
          startContainer: () => {
            throw new Error('dockerd: connection reset');
          },
        },
      },
      async ({ handle, fake, name }) => {
        // Accepted first, so the answer is the failure, not "workflow already closed".
        const update = await handle.startUpdate(waitActiveUpdate, {
          waitForStage: WorkflowUpdateStage.ACCEPTED,
        });
        // Awaiting the result lets the server skip the retry backoff (0.5 + 1 + 2 + 4 s).
        const result = await handle.result();
        expect(result).toMatchObject({
          state: 'Failed',
          end_reason: 'start_failed',
          end_detail: 'dockerd: connection reset',
        });
        expect(fake.callsOf('startContainer').map((c) => c.attempt)).toEqual([1, 2, 3, 4, 5]);
        const err = await update.result().then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
        // The last attempt's error, as converted by the SDK: a plain Error arrives as an
        // ApplicationFailure of type 'Error', which `start` answers with its generic message.
        const cause = (err as WorkflowUpdateFailedError).cause;
        expect(cause).toBeInstanceOf(ApplicationFailure);
        expect(cause?.message).toBe('dockerd: connection reset');
        expectNothingLeft(fake, name);
      },
    ));
});

describe('signals from the agent and the budget', () => {
  test('budget-exceeded → Ended budget_exceeded', () =>
    withRun({}, async ({ handle, fake, name }) => {
      await handle.executeUpdate(waitActiveUpdate);
      await handle.signal(budgetExceededSignal);
      expect(await handle.result()).toEqual({ state: 'Ended', end_reason: 'budget_exceeded' });
      expect(auditTypes(fake)).toEqual(['container_started', 'container_ended']);
      expectNothingLeft(fake, name);
    }));

  test('metered usage adds up in the status; reaching the run limit ends it budget_exceeded', () =>
    withRun(
      { input: { secretsMode: 'proxy', limitMicroUsd: 10_000 } },
      async ({ handle, fake, name }) => {
        await handle.executeUpdate(waitActiveUpdate);
        expect(fake.callsOf('startContainer')[0]?.args).toMatchObject({
          secretsMode: 'proxy',
          limitMicroUsd: 10_000,
        });
        const usage = { model: 'm', input_tokens: 100, output_tokens: 50, cost_micro_usd: 4_000 };
        await handle.signal(runUsageSignal, usage);
        await handle.signal(runUsageSignal, usage);
        const s = await status(handle);
        expect(s.state).toBe('Active');
        expect(s.secrets_mode).toBe('proxy');
        expect(s.usage).toEqual({
          requests: 2,
          input_tokens: 200,
          output_tokens: 100,
          cost_usd: 0.008,
          limit_usd: 0.01,
        });
        await handle.signal(runUsageSignal, usage);
        expect(await handle.result()).toMatchObject({
          state: 'Ended',
          end_reason: 'budget_exceeded',
        });
        expect((await status(handle)).usage.cost_usd).toBe(0.012);
        expectNothingLeft(fake, name);
      },
    ));

  test('agent notifications show in the status query, the most recent 50, oldest first', () =>
    withRun({}, async ({ handle }) => {
      await handle.executeUpdate(waitActiveUpdate);
      for (let i = 1; i <= 55; i += 1) {
        await handle.signal(agentNotifySignal, {
          kind: i % 2 ? 'progress' : 'status',
          message: `step ${i}`,
          at: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
        });
      }
      const { notifications, state } = await status(handle);
      expect(state).toBe('Active');
      expect(notifications).toHaveLength(50);
      expect(notifications[0]).toMatchObject({ message: 'step 6', kind: 'status' });
      expect(notifications.at(-1)).toMatchObject({ message: 'step 55', kind: 'progress' });
      await handle.executeUpdate(stopUpdate, { args: [{}] });
    }));
});

describe('secrets never reach Temporal history', () => {
  test('the keystore token appears nowhere in a whole run’s history', () =>
    withRun({}, async ({ handle, fake, name }) => {
      await handle.executeUpdate(waitActiveUpdate);
      expect(fake.secretsFiles.get(name)).toBe(SECRET_MARKER);
      await handle.signal(secretsAckedSignal);
      await handle.signal(agentNotifySignal, {
        kind: 'status',
        message: 'ready',
        at: '2026-01-01T00:00:00Z',
      });
      await handle.signal(containerExitedSignal, { exitCode: 0, oomKilled: false });
      await handle.result();
      const text = await historyText(handle);
      // Positive control: payloads are decoded, so the key id (in input and arguments) shows.
      expect(text).toContain(KEY_ID);
      expect(text).toContain('ready');
      expect(text).not.toContain(SECRET_MARKER);
    }));

  test('control: the check finds a token that does reach history', () =>
    withRun({}, async ({ handle }) => {
      await handle.executeUpdate(waitActiveUpdate);
      // What a careless agent could do: put the secret in a notification.
      await handle.signal(agentNotifySignal, {
        kind: 'error',
        message: SECRET_MARKER,
        at: '2026-01-01T00:00:00Z',
      });
      await handle.executeUpdate(stopUpdate, { args: [{}] });
      expect(await historyText(handle)).toContain(SECRET_MARKER);
    }));
});
