/**
 * `callAdmissionWorkflow` on the time-skipping test server, driven through the real admission
 * activities (`createAdmissionActivities` with the test server's client), as the call workflow
 * will drive them. Each test has its own server: the entity's id (`call-admission`) and the
 * budget's (`budget`) are fixed, and a fresh server is cheaper than terminating runs safely.
 */
import { WorkflowNotFoundError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import pino from 'pino';
import { createAdmissionActivities, type AdmissionActivities } from '../../activities/admission';
import type { AuditArgs } from '../../activities/container-types';
import { toMicroUsd } from '../../services/budget';
import { budgetWorkflow, callAdmissionWorkflow } from '../../workflows';
import {
  admissionStatusQuery,
  BUDGET_WORKFLOW_ID,
  budgetReportSignal,
  budgetStatusQuery,
  CALL_ADMISSION_EXPIRY_GRACE_MS,
  CALL_ADMISSION_WORKFLOW_ID,
  SHARED_TASK_QUEUE,
  type AdmitCallArgs,
  type AdmitCallResult,
  type CallAdmissionLimits,
  type CallAdmissionStatus,
} from '../../workflows/definitions';
import { ArmorclawKind } from '../../workflows/search-attributes';
import { bundleWorkflows, createTimeSkippingEnv } from '../support/temporal';
import { eventually, settleAbandonedChecks } from '../support/activity-recorder';

const HOUR_MS = 3_600_000;

let workflowBundle: WorkflowBundleWithSourceMap;

beforeAll(async () => {
  workflowBundle = await bundleWorkflows();
}, 120_000);

interface Admission {
  env: TestWorkflowEnvironment;
  activities: AdmissionActivities;
  handle: WorkflowHandle<typeof callAdmissionWorkflow>;
  admit(sessionId: string, a?: Partial<AdmitCallArgs>): Promise<AdmitCallResult>;
  status(): Promise<CallAdmissionStatus>;
  audit: AuditArgs[];
}

/**
 * A fresh test server with a worker on the shared queue (every workflow; the budget's shared
 * activities as in-memory fakes), and the real admission activities. `limits` are the defaults
 * of `admit`.
 */
async function withAdmission<T>(
  limits: Partial<CallAdmissionLimits>,
  fn: (a: Admission) => Promise<T>,
): Promise<T> {
  const env = await createTimeSkippingEnv();
  try {
    const audit: AuditArgs[] = [];
    const worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue: SHARED_TASK_QUEUE,
      workflowBundle,
      activities: {
        recordAudit: async (args: AuditArgs) => void audit.push(args),
        signalBudgetExceeded: async () => ({ signalled: [] }),
      },
    });
    const activities = createAdmissionActivities({
      client: env.client,
      taskQueue: SHARED_TASK_QUEUE,
      log: pino({ level: 'silent' }),
    });
    const handle = env.client.workflow.getHandle<typeof callAdmissionWorkflow>(
      CALL_ADMISSION_WORKFLOW_ID,
    );
    const admission: Admission = {
      env,
      activities,
      handle,
      audit,
      admit: (sessionId, a = {}) =>
        activities.admitCall({
          sessionId,
          roomId: '!room:test.local',
          userKey: `@user-${sessionId}:test.local`,
          hostId: 'host-1',
          expiresAtMs: Date.UTC(2100, 0, 1),
          ...a,
          limits: {
            rateLimitCalls: 10,
            rateLimitWindowMs: 60_000,
            maxConcurrentCalls: 50,
            ...limits,
            ...a.limits,
          },
        }),
      status: () => handle.query(admissionStatusQuery),
    };
    return await worker.runUntil(fn(admission));
  } finally {
    await settleAbandonedChecks();
    await env.teardown();
  }
}

const outcome = (r: AdmitCallResult): string => (r.admitted ? 'admitted' : r.reason);
const sessions = (s: CallAdmissionStatus): string[] => s.active.map((c) => c.sessionId).sort();

describe('the concurrency cap', () => {
  test('10 admits racing for 3 slots: exactly 3 admitted, 7 refused; a release frees a slot', () =>
    withAdmission({ maxConcurrentCalls: 3 }, async (a) => {
      // Before any bridge started the entity, a release is a no-op.
      await expect(a.activities.releaseCall({ sessionId: 'nobody' })).resolves.toBeUndefined();
      await expect(a.handle.describe()).rejects.toThrow(WorkflowNotFoundError);

      // Ten admits at once, the entity not yet running: each may be the one that starts it.
      const ids = Array.from({ length: 10 }, (_, i) => `s${i}`);
      const results = await Promise.all(ids.map((id) => a.admit(id)));
      const admitted = ids.filter((_, i) => results[i]!.admitted);
      expect(admitted).toHaveLength(3);
      expect(results.map(outcome).filter((o) => o === 'max_concurrent')).toHaveLength(7);
      expect(
        results
          .filter((r) => r.admitted)
          .map((r) => r.admitted && r.active)
          .sort(),
      ).toEqual([1, 2, 3]);
      const refusal = results.find((r) => !r.admitted)!;
      expect(refusal).toEqual({
        admitted: false,
        reason: 'max_concurrent',
        message: '3 calls in progress, the maximum is 3',
      });
      const status = await a.status();
      expect(sessions(status)).toEqual([...admitted].sort());
      expect(status.active[0]).toMatchObject({ roomId: '!room:test.local', hostId: 'host-1' });
      // One run served them all.
      const { runId, typedSearchAttributes } = await a.handle.describe();
      expect(typedSearchAttributes.get(ArmorclawKind)).toBe('admission');

      // A retried admit of an admitted session: admitted, not counted again.
      await expect(a.admit(admitted[0]!)).resolves.toEqual({ admitted: true, active: 3 });
      expect(await a.admit('late')).toMatchObject({ admitted: false, reason: 'max_concurrent' });

      await a.activities.releaseCall({ sessionId: admitted[1]! });
      await a.activities.releaseCall({ sessionId: 'unknown' });
      await eventually(async () => expect((await a.status()).active).toHaveLength(2));
      await expect(a.admit('late')).resolves.toEqual({ admitted: true, active: 3 });
      expect(await a.admit('later')).toMatchObject({ reason: 'max_concurrent' });
      expect(sessions(await a.status())).toEqual([admitted[0]!, admitted[2]!, 'late'].sort());
      expect((await a.handle.describe()).runId).toBe(runId);
    }));

  test('a malformed admit is refused by the validator, non-retryably, and records nothing', () =>
    withAdmission({}, async (a) => {
      await a.admit('ok');
      const err = await a
        .admit('bad', {
          limits: { rateLimitCalls: 0, rateLimitWindowMs: 1, maxConcurrentCalls: 1 },
        })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ApplicationFailure);
      expect(err).toMatchObject({ type: 'InvalidAdmission', nonRetryable: true });
      expect((err as Error).message).toContain('limits.rateLimitCalls must be a positive integer');
      expect(sessions(await a.status())).toEqual(['ok']);
    }));
});

describe('the rate limit', () => {
  test('2 calls per 60 s per user: the third is refused, allowed again once the window slid', () =>
    withAdmission({ rateLimitCalls: 2, rateLimitWindowMs: 60_000 }, async (a) => {
      const alice = { userKey: '@alice:test.local' };
      const bob = { userKey: '@bob:test.local' };
      expect(outcome(await a.admit('a1', alice))).toBe('admitted');
      expect(outcome(await a.admit('a2', alice))).toBe('admitted');
      const third = await a.admit('a3', alice);
      expect(third).toEqual({
        admitted: false,
        reason: 'rate_limited',
        message: '@alice:test.local started 2 calls in the last 60 s (limit 2)',
      });
      // Releasing does not give a rate slot back: the window counts calls started.
      await a.activities.releaseCall({ sessionId: 'a1' });
      expect(outcome(await a.admit('a3', alice))).toBe('rate_limited');
      // Another user, and a room without a user, are counted apart.
      expect(outcome(await a.admit('b1', bob))).toBe('admitted');
      expect(outcome(await a.admit('b2', bob))).toBe('admitted');
      expect(outcome(await a.admit('r1', { userKey: 'room:!room:test.local' }))).toBe('admitted');
      expect((await a.status()).recent).toEqual({
        '@alice:test.local': 2,
        '@bob:test.local': 2,
        'room:!room:test.local': 1,
      });

      await a.env.sleep(61_000);
      expect(outcome(await a.admit('a3', alice))).toBe('admitted');
      expect(outcome(await a.admit('a4', alice))).toBe('admitted');
      expect(outcome(await a.admit('a5', alice))).toBe('rate_limited');
      expect((await a.status()).recent).toEqual({ '@alice:test.local': 2 });
      expect(sessions(await a.status())).toEqual(['a2', 'a3', 'a4', 'b1', 'b2', 'r1']);
    }));
});

describe('expiry', () => {
  test('a slot never released is dropped at the first admit after its expiry and the grace', () =>
    withAdmission({ maxConcurrentCalls: 1 }, async (a) => {
      const now = await a.env.currentTimeMs();
      const expiresAtMs = now + 10_000;
      expect(outcome(await a.admit('leaked', { expiresAtMs }))).toBe('admitted');
      const held = (await a.status()).active[0]!;
      expect(held).toMatchObject({ sessionId: 'leaked', expiresAtMs });
      // Workflow time is the server's: the admission was stamped with it.
      expect(Math.abs(held.admittedAtMs - now)).toBeLessThan(5_000);

      // Past the TTL but within the grace: still held.
      await a.env.sleep(10_000 + CALL_ADMISSION_EXPIRY_GRACE_MS / 2);
      expect(outcome(await a.admit('next', { expiresAtMs: now + HOUR_MS }))).toBe('max_concurrent');
      await a.env.sleep(CALL_ADMISSION_EXPIRY_GRACE_MS / 2 + 1_000);
      expect(await a.admit('next', { expiresAtMs: now + HOUR_MS })).toEqual({
        admitted: true,
        active: 1,
      });
      expect(sessions(await a.status())).toEqual(['next']);
    }));
});

describe('continue-as-new', () => {
  test('active calls and rate windows are carried over, and racing admits still hold the cap', () =>
    withAdmission({ rateLimitCalls: 2, maxConcurrentCalls: 100 }, async (a) => {
      // The entity started by hand, with a low history limit: the activity uses the running one.
      const started = await a.env.client.workflow.start(callAdmissionWorkflow, {
        taskQueue: SHARED_TASK_QUEUE,
        workflowId: CALL_ADMISSION_WORKFLOW_ID,
        args: [{ maxHistoryEvents: 30 }],
      });
      const firstRunId = started.firstExecutionRunId;
      const alice = { userKey: '@alice:test.local' };
      expect(outcome(await a.admit('a1', alice))).toBe('admitted');
      expect(outcome(await a.admit('a2', alice))).toBe('admitted');
      for (let i = 0; i < 20; i++) expect(outcome(await a.admit(`s${i}`))).toBe('admitted');

      const { runId } = await a.handle.describe();
      expect(runId).not.toBe(firstRunId);
      const first = await a.env.client.workflow
        .getHandle(CALL_ADMISSION_WORKFLOW_ID, firstRunId)
        .describe();
      expect(first.status.name).toBe('CONTINUED_AS_NEW');

      let status = await a.status();
      expect(status.active).toHaveLength(22);
      expect(status.recent['@alice:test.local']).toBe(2);
      expect(outcome(await a.admit('a3', alice))).toBe('rate_limited');
      // A retried admit from before the continue-as-new is still recognised.
      expect(await a.admit('a1', alice)).toEqual({ admitted: true, active: 22 });
      await a.activities.releaseCall({ sessionId: 'a1' });
      await eventually(async () => expect((await a.status()).active).toHaveLength(21));

      // Ten admits racing for 4 free slots; the next admit finds the history long and the run
      // continues as new after answering it: the race's outcome is what is carried over.
      const raceRunId = (await a.handle.describe()).runId;
      const cap = { rateLimitCalls: 2, rateLimitWindowMs: 60_000, maxConcurrentCalls: 25 };
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) => a.admit(`race${i}`, { limits: cap })),
      );
      expect(results.map(outcome).filter((o) => o === 'admitted')).toHaveLength(4);
      expect(results.map(outcome).filter((o) => o === 'max_concurrent')).toHaveLength(6);
      expect(outcome(await a.admit('one-more', { limits: cap }))).toBe('max_concurrent');
      await eventually(async () => expect((await a.handle.describe()).runId).not.toBe(raceRunId));
      status = await a.status();
      expect(status.active).toHaveLength(25);
      expect(sessions(status)).not.toContain('a1');
      expect(status.active.filter((c) => c.sessionId.startsWith('race'))).toHaveLength(4);
      const { typedSearchAttributes } = await a.handle.describe();
      expect(typedSearchAttributes.get(ArmorclawKind)).toBe('admission');
    }));

  test('continuing as new at every other activation loses no racing admit', () =>
    withAdmission({ maxConcurrentCalls: 3 }, async (a) => {
      // A fresh run is at ~3 events when it starts: it serves one batch of messages, then the
      // next activation (history past 6) answers its messages and continues as new at once.
      const started = await a.env.client.workflow.start(callAdmissionWorkflow, {
        taskQueue: SHARED_TASK_QUEUE,
        workflowId: CALL_ADMISSION_WORKFLOW_ID,
        args: [{ maxHistoryEvents: 6 }],
      });
      const results = await Promise.all(Array.from({ length: 10 }, (_, i) => a.admit(`s${i}`)));
      expect(results.map(outcome).filter((o) => o === 'admitted')).toHaveLength(3);
      expect(results.map(outcome).filter((o) => o === 'max_concurrent')).toHaveLength(7);
      const admitted = results.flatMap((r, i) => (r.admitted ? [`s${i}`] : []));
      for (let i = 0; i < 5; i++) {
        expect(outcome(await a.admit(`late${i}`))).toBe('max_concurrent');
        expect(await a.admit(admitted[i % 3]!)).toEqual({ admitted: true, active: 3 });
      }
      expect((await a.handle.describe()).runId).not.toBe(started.firstExecutionRunId);
      expect(sessions(await a.status())).toEqual(admitted.sort());
    }));
});

describe('the budget gate', () => {
  test('calls are refused while the budget workflow says exceeded', () =>
    withAdmission({}, async (a) => {
      const budget = await a.env.client.workflow.start(budgetWorkflow, {
        taskQueue: SHARED_TASK_QUEUE,
        workflowId: BUDGET_WORKFLOW_ID,
        args: [
          {
            policy: { dailyLimitUsd: 1, monthlyLimitUsd: 0, alertThresholds: [], hostId: 'host-1' },
          },
        ],
      });
      const report = (usd: number) =>
        budget.signal(budgetReportSignal, {
          container_name: 'armorclaw-a-1',
          model: 'test-model',
          input_tokens: 1,
          output_tokens: 1,
          cost_micro_usd: toMicroUsd(usd),
        });
      await report(0.4);
      await eventually(async () =>
        expect((await budget.query(budgetStatusQuery)).day.reports).toBe(1),
      );
      expect(outcome(await a.admit('before'))).toBe('admitted');

      await report(0.7);
      await eventually(async () =>
        expect((await budget.query(budgetStatusQuery)).exceeded).toBe(true),
      );
      expect(await a.admit('after')).toEqual({
        admitted: false,
        reason: 'budget_exceeded',
        message: 'the daily budget is spent; calls are refused until it resets or is raised',
      });
      // Refused before the entity was asked: nothing recorded there.
      expect(sessions(await a.status())).toEqual(['before']);
      await eventually(() => expect(a.audit.map((e) => e.event_type)).toContain('budget_exceeded'));
    }));
});
