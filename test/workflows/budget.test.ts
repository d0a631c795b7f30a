/**
 * `budgetWorkflow` on the time-skipping test server with in-memory activities: the audit log,
 * the Matrix send (the homeserver's txn-id dedupe simulated) and the "tell every open container
 * run" sweep. Container runs in the hard-stop test are real `containerRunWorkflow`s on the fake
 * container host, so the signal is seen to end them.
 */
import { WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { Context } from '@temporalio/activity';
import type { AuditArgs } from '../../activities/container-types';
import type { SendMatrixMessageArgs } from '../../activities/matrix';
import { dayPeriod, monthPeriod, toMicroUsd } from '../../services/budget';
import { budgetWorkflow, containerRunWorkflow } from '../../workflows';
import {
  budgetConfigureUpdate,
  budgetReportSignal,
  budgetStatusQuery,
  containerStatusQuery,
  containerWorkflowId,
  hostTaskQueue,
  SHARED_TASK_QUEUE,
  waitActiveUpdate,
  type BudgetPolicy,
  type BudgetReport,
  type BudgetStatus,
  type UsageSource,
  type BudgetWorkflowInput,
} from '../../workflows/definitions';
import { FakeContainerHost, KEY_ID } from '../support/fake-container-activities';
import { bundleWorkflows, createTimeSkippingEnv } from '../support/temporal';
import { eventually, settleAbandonedChecks } from '../support/activity-recorder';

const DAY_MS = 86_400_000;
const ADMIN_ROOM = '!admin:test.local';

let env: TestWorkflowEnvironment;
let workflowBundle: WorkflowBundleWithSourceMap;
let seq = 0;

beforeAll(async () => {
  env = await createTimeSkippingEnv();
  workflowBundle = await bundleWorkflows();
}, 120_000);

afterAll(async () => {
  await settleAbandonedChecks();
  await env?.teardown();
});

type Handle = WorkflowHandle<typeof budgetWorkflow>;

/** The outside world as the budget workflow's activities see it, recorded. */
class FakeWorld {
  readonly audit: AuditArgs[] = [];
  /** Every send attempt, retries included. */
  readonly sendAttempts: SendMatrixMessageArgs[] = [];
  /** What reached the room: one message per txn id, as a homeserver dedupes them. */
  readonly room = new Map<string, SendMatrixMessageArgs>();
  readonly sweeps: Array<{ containerNames?: string[] }> = [];
  /** Container runs an unfiltered sweep finds open (what visibility would list). */
  openRuns: string[] = [];
  failFirstSend = false;
  readonly containers = new FakeContainerHost();

  auditOf(type: string): AuditArgs[] {
    return this.audit.filter((a) => a.event_type === type);
  }

  readonly sharedActivities = {
    recordAudit: async (args: AuditArgs) => {
      // Like the real log: the dedupe key makes a retried write land once.
      if (!this.audit.some((a) => a.dedupe_key === args.dedupe_key)) this.audit.push(args);
    },
    signalBudgetExceeded: async (args: { containerNames?: string[] }) => {
      this.sweeps.push(args);
      const names = args.containerNames ?? this.openRuns;
      for (const name of names) {
        await env.client.workflow
          .getHandle(containerWorkflowId(name))
          .signal('budget-exceeded')
          .catch(() => undefined);
      }
      return { signalled: names };
    },
  };

  readonly hostActivities = {
    ...this.containers.hostActivities,
    sendMatrixMessage: async (args: SendMatrixMessageArgs) => {
      this.sendAttempts.push(args);
      if (this.failFirstSend && Context.current().info.attempt === 1) {
        throw ApplicationFailure.retryable('homeserver timed out', 'Timeout');
      }
      if (!this.room.has(args.txnId)) this.room.set(args.txnId, args);
      return { event_id: `$event-${args.txnId}` };
    },
  };
}

interface Budget {
  handle: Handle;
  world: FakeWorld;
  id: string;
  policy: BudgetPolicy;
  report(containerName: string, usd: number, source?: UsageSource): Promise<void>;
  status(): Promise<BudgetStatus>;
}

/**
 * Runs one budget workflow (its own id and host queue) with workers for `fn`, and terminates
 * what `fn` left open: time skipping is global to the server.
 */
async function withBudget<T>(
  opts: { policy?: Partial<BudgetPolicy>; input?: Partial<BudgetWorkflowInput> },
  fn: (b: Budget) => Promise<T>,
): Promise<T> {
  seq += 1;
  const id = `budget-t${seq}`;
  const world = new FakeWorld();
  const policy: BudgetPolicy = {
    dailyLimitUsd: 1,
    monthlyLimitUsd: 0,
    alertThresholds: [0.5, 0.8, 0.95],
    adminRoomId: ADMIN_ROOM,
    hostId: `bhost${seq}`,
    ...opts.policy,
  };
  const shared = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: SHARED_TASK_QUEUE,
    workflowBundle,
    activities: world.sharedActivities,
  });
  const host = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: hostTaskQueue(policy.hostId),
    activities: world.hostActivities,
  });
  return shared.runUntil(
    host.runUntil(async () => {
      const handle = await env.client.workflow.start(budgetWorkflow, {
        taskQueue: SHARED_TASK_QUEUE,
        workflowId: id,
        args: [{ policy, ...opts.input }],
      });
      const budget: Budget = {
        handle,
        world,
        id,
        policy,
        report: (containerName, usd, source) =>
          handle.signal(budgetReportSignal, { ...report(containerName, usd), source }),
        status: () => handle.query(budgetStatusQuery),
      };
      try {
        return await fn(budget);
      } finally {
        // Terminating the workflow while a workflow task of it is queued (an alert child just
        // completed, say) leaves the test server's clock locked for good: every later
        // `env.sleep` would hang. Let alerts finish and the workflow go idle first.
        for (const txnId of new Set(world.sendAttempts.map((a) => a.txnId))) {
          await untilClosed(txnId).catch(() => undefined);
        }
        await untilIdle(handle).catch(() => undefined);
        await handle.terminate('test over').catch(() => undefined);
        for (const name of world.openRuns) {
          await env.client.workflow
            .getHandle(containerWorkflowId(name))
            .terminate('test over')
            .catch(() => undefined);
        }
      }
    }),
  );
}

/**
 * Waits (wall clock, polling) until a workflow has closed. Never `result()` in these tests: this
 * client's `result()` lets the server skip time, even for an instant on a closed workflow, and a
 * skip to the next UTC midnight rolls the budget's day over in the middle of a test.
 */
async function untilClosed(workflowId: string): Promise<void> {
  const handle = env.client.workflow.getHandle(workflowId);
  await eventually(async () => expect((await handle.describe()).status.name).not.toBe('RUNNING'));
}

/** Waits until the workflow has no queued workflow task, activity or child, twice in a row. */
async function untilIdle(handle: Handle): Promise<void> {
  let quiet = 0;
  const deadline = Date.now() + 10_000;
  while (quiet < 2 && Date.now() < deadline) {
    const { raw } = await handle.describe();
    const idle =
      !raw.pendingWorkflowTask &&
      (raw.pendingActivities ?? []).length === 0 &&
      (raw.pendingChildren ?? []).length === 0;
    quiet = idle ? quiet + 1 : 0;
    await realSleep(100);
  }
}

const report = (containerName: string, usd: number): BudgetReport => ({
  container_name: containerName,
  model: 'test-model',
  input_tokens: 1_000,
  output_tokens: 500,
  cost_micro_usd: toMicroUsd(usd),
});

const realSleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until every report sent so far is counted in the day's total. */
const counted = (b: Budget, reports: number) =>
  eventually(async () => {
    const s = await b.status();
    expect(s.day.reports).toBe(reports);
    return s;
  });

describe('thresholds', () => {
  test('each threshold alerts once: one m.notice to the admin room, one budget_warning', () =>
    withBudget({}, async (b) => {
      b.world.failFirstSend = true;
      const today = dayPeriod(await env.currentTimeMs());
      // $0.20 a report: 0.5 is passed at $0.60, 0.8 at $0.80; then two more below 0.95. Each
      // is counted before the next is sent, so no two share a workflow task (and an alert).
      const costs = [0.2, 0.2, 0.2, 0.2, 0.05, 0.05];
      // The proxy metered the first four; the agent reported the last two itself.
      for (const [i, usd] of costs.entries()) {
        await b.report('armorclaw-a-1', usd, i < 4 ? 'proxy' : 'agent');
        await counted(b, i + 1);
      }
      const s = await counted(b, 6);
      expect(s.day).toEqual({
        period: today,
        spent_usd: 0.9,
        limit_usd: 1,
        exceeded: false,
        thresholds_alerted: [0.5, 0.8],
        reports: 6,
        metered_usd: 0.8,
        self_reported_usd: 0.1,
      });
      expect(s.month).toMatchObject({ spent_usd: 0.9, limit_usd: null, thresholds_alerted: [] });
      expect(s.exceeded).toBe(false);
      expect(s.admin_room).toBe(ADMIN_ROOM);

      await eventually(() => expect(b.world.room.size).toBe(2));
      const sent = [...b.world.room.values()];
      expect(sent.map((m) => m.txnId)).toEqual([
        `${b.id}-${today}-0.5-alert`,
        `${b.id}-${today}-0.8-alert`,
      ]);
      for (const m of sent) expect(m).toMatchObject({ roomId: ADMIN_ROOM, msgtype: 'm.notice' });
      expect(sent[0]!.body).toContain('50% of the daily limit reached: $0.60 of $1.00');
      expect(sent[1]!.body).toContain('80% of the daily limit reached: $0.80 of $1.00');
      // The first attempt of each failed and was retried with the same txn id: still once.
      expect(b.world.sendAttempts.length).toBe(4);

      await eventually(() => expect(b.world.auditOf('budget_warning')).toHaveLength(2));
      expect(b.world.auditOf('budget_warning')[0]).toEqual({
        event_type: 'budget_warning',
        dedupe_key: `${b.id}-${today}-0.5`,
        details: {
          scope: 'day',
          period: today,
          threshold: 0.5,
          spent_usd: 0.6,
          limit_usd: 1,
          alert_room: ADMIN_ROOM,
        },
      });

      // Nothing more happens without a new threshold.
      await b.report('armorclaw-a-1', 0.01);
      await counted(b, 7);
      await realSleep(300);
      expect(b.world.room.size).toBe(2);
      expect(b.world.auditOf('budget_warning')).toHaveLength(2);
    }));

  test('without an admin room the alert is audited only (alert_room null)', () =>
    withBudget({ policy: { adminRoomId: undefined } }, async (b) => {
      await b.report('armorclaw-a-1', 0.55);
      await eventually(() => expect(b.world.auditOf('budget_warning')).toHaveLength(1));
      expect(b.world.auditOf('budget_warning')[0]!.details).toMatchObject({
        threshold: 0.5,
        alert_room: null,
      });
      expect(b.world.sendAttempts).toEqual([]);
      expect((await b.status()).admin_room).toBeNull();
    }));

  test('a bad report is dropped, a bad policy refused', () =>
    withBudget({}, async (b) => {
      await b.handle.signal(budgetReportSignal, { ...report('x', 0.1), input_tokens: -5 });
      await b.handle.signal(budgetReportSignal, { ...report('x', 0.1), cost_micro_usd: 0.5 });
      await b.report('x', 0.1);
      await counted(b, 1);
      await expect(
        b.handle.executeUpdate(budgetConfigureUpdate, {
          args: [{ ...b.policy, alertThresholds: [1.5] }],
        }),
      ).rejects.toThrow(WorkflowUpdateFailedError);
      expect((await b.status()).alert_thresholds).toEqual([0.5, 0.8, 0.95]);
    }));
});

describe('the hard limit', () => {
  test('reaching it ends every running container run, refuses nothing twice, and is remembered', () =>
    withBudget({}, async (b) => {
      const today = dayPeriod(await env.currentTimeMs());
      // Two real container runs on the fake container host, both Active.
      const names = [`armorclaw-budget-${seq}-a`, `armorclaw-budget-${seq}-b`];
      b.world.openRuns = names;
      const runs = await Promise.all(
        names.map((containerName) =>
          env.client.workflow.start(containerRunWorkflow, {
            taskQueue: SHARED_TASK_QUEUE,
            workflowId: containerWorkflowId(containerName),
            args: [
              {
                containerName,
                keyId: KEY_ID,
                agentType: 'test',
                image: 'armorclaw/agent:v1',
                hostId: b.policy.hostId,
                ttlMs: 3_600_000,
                secretsDeadlineMs: 10_000,
                healthCheckIntervalMs: 7_200_000,
                network: 'none',
              },
            ],
          }),
        ),
      );
      for (const run of runs) await run.executeUpdate(waitActiveUpdate);

      await b.report(names[0]!, 0.7);
      await counted(b, 1);
      await b.report(names[1]!, 0.4);
      const s = await counted(b, 2);
      expect(s.exceeded).toBe(true);
      expect(s.day).toMatchObject({
        spent_usd: 1.1,
        exceeded: true,
        thresholds_alerted: [0.5, 0.8, 0.95],
      });

      for (const run of runs) {
        await untilClosed(run.workflowId);
        expect(await run.query(containerStatusQuery)).toMatchObject({
          state: 'Ended',
          end_reason: 'budget_exceeded',
          cleanup_done: true,
        });
      }
      await eventually(() => expect(b.world.room.size).toBe(2));
      const exceededKey = `${b.id}-${today}-exceeded-1000000`;
      expect(b.world.auditOf('budget_exceeded')).toEqual([
        {
          event_type: 'budget_exceeded',
          dedupe_key: exceededKey,
          details: {
            scope: 'day',
            period: today,
            spent_usd: 1.1,
            limit_usd: 1,
            alert_room: ADMIN_ROOM,
          },
        },
      ]);
      const notice = b.world.room.get(`${exceededKey}-alert`)!;
      expect(notice.body).toContain('budget exceeded: $1.10 of the daily limit of $1.00');
      expect(notice.body).toContain('2 running agent session(s) stopped');
      expect(b.world.sweeps).toEqual([{}]);
      // Only 0.5 was announced (at $0.70); 0.8 and 0.95 were passed by the report that exceeded.
      expect(b.world.auditOf('budget_warning').map((a) => a.details!.threshold)).toEqual([0.5]);

      // A run the sweep did not reach reports: it is told to end; a stopped one is not again.
      await b.report(names[0]!, 0.01);
      await b.report('armorclaw-late-1', 0.01);
      await counted(b, 4);
      await eventually(() =>
        expect(b.world.sweeps).toEqual([{}, { containerNames: ['armorclaw-late-1'] }]),
      );
      await b.report('armorclaw-late-1', 0.01);
      await counted(b, 5);
      await realSleep(300);
      expect(b.world.sweeps).toHaveLength(2);
      expect(b.world.auditOf('budget_exceeded')).toHaveLength(1);
    }));

  test('a raised limit lifts the stop; a lowered one below the spend triggers it', () =>
    withBudget({}, async (b) => {
      await b.report('armorclaw-a-1', 1.2);
      await eventually(async () => expect((await b.status()).exceeded).toBe(true));
      const raised = await b.handle.executeUpdate(budgetConfigureUpdate, {
        args: [{ ...b.policy, dailyLimitUsd: 5 }],
      });
      expect(raised.exceeded).toBe(false);
      expect(raised.day.limit_usd).toBe(5);
      await b.handle.executeUpdate(budgetConfigureUpdate, {
        args: [{ ...b.policy, dailyLimitUsd: 1.1 }],
      });
      await eventually(() => expect(b.world.auditOf('budget_exceeded')).toHaveLength(2));
      expect(b.world.auditOf('budget_exceeded').map((a) => a.details!.limit_usd)).toEqual([1, 1.1]);
      await eventually(() => expect(b.world.sweeps).toHaveLength(2));
      // Both alerts went out (and nothing is left in flight to hold the server's clock).
      await eventually(() => expect(b.world.room.size).toBe(2));
    }));
});

describe('periods', () => {
  test('the day rolls over at UTC midnight by itself: daily totals and the stop reset', () =>
    withBudget({ policy: { monthlyLimitUsd: 100 } }, async (b) => {
      const start = await env.currentTimeMs();
      await b.report('armorclaw-a-1', 1.5);
      let s = await counted(b, 1);
      expect(s).toMatchObject({ exceeded: true, day: { period: dayPeriod(start) } });

      // Skip to just past the next UTC midnight: no report, no signal, only the timer.
      const midnight = Date.UTC(
        new Date(start).getUTCFullYear(),
        new Date(start).getUTCMonth(),
        new Date(start).getUTCDate() + 1,
      );
      await env.sleep(midnight - start + 1_000);
      const tomorrow = dayPeriod(midnight);
      s = await eventually(async () => {
        const st = await b.status();
        expect(st.day.period).toBe(tomorrow);
        return st;
      });
      expect(s.day).toEqual({
        period: tomorrow,
        spent_usd: 0,
        limit_usd: 1,
        exceeded: false,
        thresholds_alerted: [],
        reports: 0,
        metered_usd: 0,
        self_reported_usd: 0,
      });
      expect(s.exceeded).toBe(false);
      // The month goes on (unless the day was also the month's last).
      const sameMonth = monthPeriod(midnight) === monthPeriod(start);
      expect(s.month).toMatchObject({
        period: monthPeriod(midnight),
        spent_usd: sameMonth ? 1.5 : 0,
      });

      // The new day's thresholds alert afresh, under the new day's key.
      await b.report('armorclaw-a-1', 0.6);
      await eventually(() =>
        expect(b.world.auditOf('budget_warning').map((a) => a.dedupe_key)).toContain(
          `${b.id}-${tomorrow}-0.5`,
        ),
      );
      // A week later, with no traffic at all, the period has moved on again.
      await env.sleep(7 * DAY_MS);
      const later = dayPeriod(await env.currentTimeMs());
      await eventually(async () => expect((await b.status()).day.period).toBe(later));
    }));

  test('totals, alerts and the stop survive continue-as-new', () =>
    withBudget({ input: { maxHistoryEvents: 40 } }, async (b) => {
      const firstRunId = (await b.handle.describe()).runId;
      const today = dayPeriod(await env.currentTimeMs());
      b.world.openRuns = ['armorclaw-a-0', 'armorclaw-a-1', 'armorclaw-a-2'];
      // 45 reports of $0.02 = $0.90, several continue-as-new on the way. Sent without waiting,
      // except at the reports that reach 0.5 (the 25th) and 0.8 (the 40th), so that each of
      // those is alone in its batch and announces its own threshold.
      const send = async (from: number, to: number) => {
        for (let i = from; i < to; i++) await b.report(`armorclaw-a-${i % 3}`, 0.02);
        await counted(b, to);
      };
      await send(0, 24);
      await send(24, 25);
      await send(25, 39);
      await send(39, 40);
      await send(40, 45);
      const s = await counted(b, 45);
      expect(s.day).toMatchObject({ spent_usd: 0.9, thresholds_alerted: [0.5, 0.8] });
      expect((await b.handle.describe()).runId).not.toBe(firstRunId);
      const first = await env.client.workflow.getHandle(b.id, firstRunId).describe();
      expect(first.status.name).toBe('CONTINUED_AS_NEW');

      await b.report('armorclaw-a-0', 0.2);
      await counted(b, 46);
      await eventually(() => expect(b.world.auditOf('budget_exceeded')).toHaveLength(1));
      for (let i = 0; i < 30; i++) await b.report('armorclaw-a-1', 0.001);
      const end = await counted(b, 76);
      expect(end.exceeded).toBe(true);
      expect(end.day.spent_usd).toBeCloseTo(1.13, 6);
      await eventually(() => expect(b.world.room.size).toBe(3));
      expect([...b.world.room.keys()]).toEqual([
        `${b.id}-${today}-0.5-alert`,
        `${b.id}-${today}-0.8-alert`,
        `${b.id}-${today}-exceeded-1000000-alert`,
      ]);
      expect(b.world.auditOf('budget_warning')).toHaveLength(2);
      // Stopped runs were carried over: the sweep ran once, nobody was told twice.
      expect(b.world.sweeps).toEqual([{}]);
    }));
});
