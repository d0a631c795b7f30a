/**
 * `agentTurnWorkflow` on the time-skipping test server with in-memory activities: every ending
 * of the machine (Ended, Failed while binding or delivering, Expired), delivery retries, the
 * consumptive collection (`turn-collect` once, then gone) and the retention that completes an
 * uncollected turn. The real agent and Docker are the integration tier's.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { AuditArgs } from '../../activities/container-types';
import type {
  BindTurnArgs,
  DeliverTurnArgs,
  TurnHostActivities,
  TurnSharedActivities,
} from '../../activities/turn';
import { collectTurn } from '../../sessions/turns';
import { agentTurnWorkflow } from '../../workflows';
import {
  hostTaskQueue,
  SHARED_TASK_QUEUE,
  TURN_COLLECTED,
  turnCollectUpdate,
  turnStatusQuery,
  turnWorkflowId,
  type AgentTurnInput,
} from '../../workflows/definitions';
import { ArmorclawKind, ArmorclawState } from '../../workflows/search-attributes';
import { bundleWorkflows, createDevServerEnv, createTimeSkippingEnv } from '../support/temporal';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

let workflowBundle: WorkflowBundleWithSourceMap;
let seq = 0;

beforeAll(async () => {
  workflowBundle = await bundleWorkflows();
}, 120_000);

interface Fake {
  bind?: (args: BindTurnArgs) => Promise<{ containerName: string; containerId: string }>;
  deliver?: (args: DeliverTurnArgs, attempt: number) => Promise<{ text: string; model?: string }>;
}

interface Recorded {
  binds: BindTurnArgs[];
  delivers: DeliverTurnArgs[];
  stops: string[];
  audits: AuditArgs[];
}

function input(over: Partial<AgentTurnInput> = {}): AgentTurnInput {
  return {
    session: { sessionId: 'web-1', channelId: 'c1', channelKind: 'web' },
    messages: [{ role: 'user', content: 'hello there' }],
    binding: 'session',
    run: {
      keyId: 'k1',
      agentType: 'echo',
      image: 'armorclaw/agent:v1',
      hostId: `host${seq}`,
      ttlMs: HOUR,
      secretsDeadlineMs: 10_000,
      healthCheckIntervalMs: HOUR,
      network: 'none',
    },
    timeoutMs: 5 * MINUTE,
    retentionMs: HOUR,
    maxRetries: 3,
    backoffMs: 1_000,
    ...over,
  };
}

/**
 * Runs one turn on its own test server (time skipping is global to a server), or on a dev
 * server with `onDevServer` (wall-clock timers while an activity runs; see createDevServerEnv).
 */
async function withTurn<T>(
  fake: Fake,
  { onDevServer = false, ...over }: Partial<AgentTurnInput> & { onDevServer?: boolean },
  fn: (t: {
    env: TestWorkflowEnvironment;
    runId: string;
    handle: ReturnType<TestWorkflowEnvironment['client']['workflow']['getHandle']>;
    rec: Recorded;
  }) => Promise<T>,
): Promise<T> {
  seq += 1;
  const rec: Recorded = { binds: [], delivers: [], stops: [], audits: [] };
  const turnInput = input({ ...over, run: { ...input().run, ...over.run } });
  const shared: TurnSharedActivities & { recordAudit(a: AuditArgs): Promise<void> } = {
    async bindTurnAgent(args) {
      rec.binds.push(args);
      return fake.bind
        ? fake.bind(args)
        : {
            containerName: args.containerName ?? 'armorclaw-echo-session-x-1',
            containerId: 'c0ffee',
          };
    },
    async stopTurnAgent({ containerName }) {
      rec.stops.push(containerName);
    },
    async recordAudit(a) {
      rec.audits.push(a);
    },
  };
  const host: TurnHostActivities = {
    async deliverTurn(args) {
      rec.delivers.push(args);
      const attempt = Context.current().info.attempt;
      return fake.deliver
        ? fake.deliver(args, attempt)
        : { text: `echo: ${args.messages.at(-1)!.content}`, model: 'm1' };
    },
  };
  const env = onDevServer ? await createDevServerEnv() : await createTimeSkippingEnv();
  try {
    const sharedWorker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue: SHARED_TASK_QUEUE,
      workflowBundle,
      activities: shared,
    });
    const hostWorker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue: hostTaskQueue(turnInput.run.hostId),
      activities: host,
    });
    const runId = `run-${seq}`;
    return await sharedWorker.runUntil(
      hostWorker.runUntil(async () => {
        const handle = await env.client.workflow.start(agentTurnWorkflow, {
          taskQueue: SHARED_TASK_QUEUE,
          workflowId: turnWorkflowId(runId),
          args: [turnInput],
        });
        return fn({ env, runId, handle, rec });
      }),
    );
  } finally {
    await env.teardown();
  }
}

/** `turn-collect` on a turn's handle (what agent.wait does), waiting up to `waitMs`. */
const collect = (handle: any, waitMs = 60_000): Promise<any> =>
  handle.executeUpdate(turnCollectUpdate, { args: [{ waitMs }] });

test('Ended: bound, delivered, answered; collected once, then the turn completes', async () => {
  await withTurn({}, {}, async ({ env, runId, handle, rec }) => {
    const got = await collect(handle);
    expect(got.status).toBe('done');
    expect(got.result).toMatchObject({
      runId,
      assistantText: 'echo: hello there',
      state: 'Ended',
      model: 'm1',
      endReason: 'answered',
      containerName: 'armorclaw-echo-session-x-1',
    });
    expect(got.result.events.map((e: { type: string }) => e.type)).toEqual([
      'queued',
      'bound',
      'delivering',
      'answered',
    ]);
    for (const e of got.result.events) expect(Number.isNaN(Date.parse(e.at))).toBe(false);
    // The turn's id is the delivery's turn id (the agent's idempotency key).
    expect(rec.delivers[0]).toMatchObject({ turnId: runId, sessionId: 'web-1' });
    expect(rec.binds[0]).toMatchObject({ binding: 'session', sessionId: 'web-1' });
    expect(rec.binds[0]!.containerName).toBeUndefined();
    // A session's agent outlives its turns.
    expect(rec.stops).toEqual([]);

    const result = await handle.result();
    expect(result.assistantText).toBe('echo: hello there');
    const desc = await handle.describe();
    expect(desc.typedSearchAttributes.get(ArmorclawKind)).toBe('turn');
    expect(desc.typedSearchAttributes.get(ArmorclawState)).toBe('Ended');
    expect(rec.audits.map((a) => a.event_type)).toEqual(['turn_ended']);
    // Collected and completed: gone for every later wait.
    expect(await collectTurn(env.client, runId, 10)).toEqual({ status: 'gone' });
  });
});

test('two waits: the first takes the result, the second is refused as collected', async () => {
  await withTurn({}, {}, async ({ handle }) => {
    const [a, b] = await Promise.allSettled([collect(handle), collect(handle)]);
    const outcomes = [a, b].map((r) => r.status);
    expect(outcomes.sort()).toEqual(['fulfilled', 'rejected']);
    const rejected = [a, b].find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(rejected.reason).toBeInstanceOf(WorkflowUpdateFailedError);
    expect((rejected.reason.cause as ApplicationFailure).type).toBe(TURN_COLLECTED);
  });
});

test('a wait bound that passes while the turn runs answers running, and the turn goes on', async () => {
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  await withTurn(
    {
      deliver: async () => {
        await released;
        return { text: 'late answer' };
      },
    },
    {},
    async ({ handle }) => {
      // Until the delivery has begun, the turn is Pending or Active.
      const running = await collect(handle, 10);
      expect(running.status).toBe('running');
      release();
      const done = await collect(handle);
      expect(done.result.assistantText).toBe('late answer');
    },
  );
});

test('delivery is retried (a lost connection, a bridge restart) and the turn still ends', async () => {
  await withTurn(
    {
      deliver: async (_args, attempt) => {
        if (attempt < 3)
          throw ApplicationFailure.retryable('connection closed', 'AgentUnavailable');
        return { text: 'third time' };
      },
    },
    { maxRetries: 3, backoffMs: 500 },
    async ({ handle, rec }) => {
      const got = await collect(handle);
      expect(got.result).toMatchObject({ state: 'Ended', assistantText: 'third time' });
      expect(rec.delivers).toHaveLength(3);
      // Every attempt carries the same turn id: the agent answers it once.
      expect(new Set(rec.delivers.map((d) => d.turnId)).size).toBe(1);
    },
  );
});

test('Failed: delivery failing past maxRetries', async () => {
  await withTurn(
    {
      deliver: async () => {
        throw ApplicationFailure.retryable('agent not connected', 'AgentUnavailable');
      },
    },
    { maxRetries: 1, backoffMs: 100 },
    async ({ handle, rec }) => {
      const got = await collect(handle);
      expect(got.result).toMatchObject({ state: 'Failed', endReason: 'delivery_failed' });
      expect(got.result.endDetail).toContain('agent not connected');
      expect(rec.delivers).toHaveLength(2);
      expect(got.result.events.at(-1).type).toBe('failed');
    },
  );
});

test('Failed: no agent could be bound; an agent refusing the turn is not retried', async () => {
  await withTurn(
    {
      bind: async () => {
        throw ApplicationFailure.nonRetryable('credential k1 not found', 'AgentUnavailable');
      },
    },
    {},
    async ({ handle, rec }) => {
      const got = await collect(handle);
      expect(got.result).toMatchObject({ state: 'Failed', endReason: 'bind_failed' });
      expect(got.result.endDetail).toContain('credential k1 not found');
      expect(rec.delivers).toHaveLength(0);
    },
  );
  await withTurn(
    {
      deliver: async () => {
        throw ApplicationFailure.nonRetryable('Method not found', 'AgentRefused');
      },
    },
    {},
    async ({ handle, rec }) => {
      const got = await collect(handle);
      expect(got.result).toMatchObject({ state: 'Failed', endReason: 'delivery_failed' });
      expect(rec.delivers).toHaveLength(1);
    },
  );
});

test('Expired: no answer within the turn timeout; the delivery in flight is cancelled', async () => {
  let cancelled = false;
  await withTurn(
    {
      // An agent that never answers: the turn gives up first and cancels the delivery.
      deliver: async () => {
        const ctx = Context.current();
        const beat = setInterval(() => ctx.heartbeat(), 200);
        try {
          return await ctx.cancelled;
        } catch (err) {
          cancelled = true;
          throw err;
        } finally {
          clearInterval(beat);
        }
      },
    },
    // A short limit in real time, on a dev server: the time-skipping one is late with it.
    { timeoutMs: 3_000, onDevServer: true },
    async ({ handle }) => {
      const got = await collect(handle);
      expect(got.result).toMatchObject({ state: 'Expired', endReason: 'turn_timeout' });
      expect(got.result.endDetail).toBe('no answer within 3 s');
      expect(got.result.events.at(-1)!.type).toBe('expired');
      for (let i = 0; i < 50 && !cancelled; i++) await new Promise((r) => setTimeout(r, 100));
      expect(cancelled).toBe(true);
    },
  );
});

test('an isolated turn runs on its own agent and stops it when it ends', async () => {
  await withTurn({}, { binding: 'isolated' }, async ({ handle, rec }) => {
    const got = await collect(handle);
    const name = rec.binds[0]!.containerName!;
    expect(name).toMatch(/^armorclaw-echo-turn-[0-9a-f]{12}$/);
    expect(got.result.containerName).toBe(name);
    await handle.result();
    expect(rec.stops).toEqual([name]);
  });
});

test('an answer nobody collects is kept for the retention time, then the turn completes', async () => {
  await withTurn({}, { retentionMs: 2 * HOUR }, async ({ env, runId, handle }) => {
    // Wait for the answer without taking it (the status query), then let time pass.
    for (let i = 0; i < 100; i++) {
      if ((await handle.query(turnStatusQuery)).state === 'Ended') break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const status = await handle.query(turnStatusQuery);
    expect(status).toMatchObject({ state: 'Ended', collected: false });
    const started = Date.parse((await handle.describe()).startTime.toISOString());
    const result = await handle.result();
    expect(result.state).toBe('Ended');
    const closed = (await handle.describe()).closeTime!.getTime();
    // Completed by the retention timer (time skipped), not before it.
    expect(closed - started).toBeGreaterThanOrEqual(2 * HOUR);
    expect(await collectTurn(env.client, runId, 10)).toEqual({ status: 'gone' });
  });
});
