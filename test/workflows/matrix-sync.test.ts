/**
 * `matrixSyncWorkflow` on a real dev server (wall-clock timers: a host's grace is a real
 * schedule-to-start timeout), with each host a worker whose sync call reads a scripted
 * homeserver: a timeline of events and `next_batch` tokens that are positions in it. A host is
 * stopped to play a dead bridge.
 */
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { SyncBatch, SyncBatchArgs } from '../../activities/matrix';
import type { IncomingEvent } from '../../services/matrix-store';
import { matrixSyncWorkflow } from '../../workflows';
import {
  hostTaskQueue,
  matrixEventsQuery,
  matrixSyncJoinSignal,
  matrixSyncStatusQuery,
  matrixTakeUpdate,
  NOTHING_TO_TAKE,
  SHARED_TASK_QUEUE,
} from '../../workflows/definitions';
import { eventually, settleAbandonedChecks } from '../support/activity-recorder';
import { bundleWorkflows, createDevServerEnv } from '../support/temporal';

const GRACE_MS = 2_000;

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

/** The room's timeline; a sync from position `since` gets what follows it (at most 3). */
class Homeserver {
  readonly timeline: IncomingEvent[] = [];
  /** Every call, by host: which position it synced from. */
  readonly calls: Array<{ host: string; since: string | null }> = [];

  say(n: number): void {
    for (let i = 0; i < n; i++) {
      const k = this.timeline.length + 1;
      this.timeline.push({
        event_id: `$e${k}`,
        type: 'm.room.message',
        room_id: '!r:test',
        sender: '@alice:test',
        content: { msgtype: 'm.text', body: `message ${k}` },
        origin_server_ts: k,
      });
    }
  }

  async sync(host: string, args: SyncBatchArgs): Promise<SyncBatch> {
    this.calls.push({ host, since: args.since });
    const from = args.since === null ? this.timeline.length : Number(args.since);
    // The long poll: nothing new waits a little, as a homeserver would.
    if (from >= this.timeline.length) await new Promise((r) => setTimeout(r, 100));
    const events = args.since === null ? [] : this.timeline.slice(from, from + 3);
    return { next_batch: String(from + events.length), events };
  }
}

/** A bridge's host: a worker on its queue whose sync call is logged in as `account`. */
async function startHost(hostId: string, hs: Homeserver, account: string) {
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: hostTaskQueue(hostId),
    activities: {
      syncMatrixBatch: async (args: SyncBatchArgs) => {
        if (args.userId !== account)
          throw ApplicationFailure.nonRetryable(`logged in as ${account}`, 'NotLoggedIn');
        return hs.sync(hostId, args);
      },
    },
  });
  const running = worker.run();
  return {
    async stop() {
      worker.shutdown();
      await running;
    },
  };
}

async function withSync(
  fn: (t: {
    hs: Homeserver;
    handle: ReturnType<typeof env.client.workflow.getHandle>;
    hostA: string;
    hostB: string;
    userId: string;
  }) => Promise<void>,
): Promise<void> {
  seq += 1;
  const userId = `@bot${seq}-${Date.now()}:test`;
  const [hostA, hostB] = [`mx-a-${seq}-${Date.now()}`, `mx-b-${seq}-${Date.now()}`];
  const shared = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: SHARED_TASK_QUEUE,
    workflowBundle,
  });
  await shared.runUntil(async () => {
    const handle = await env.client.workflow.signalWithStart(matrixSyncWorkflow, {
      taskQueue: SHARED_TASK_QUEUE,
      workflowId: `matrix-sync-${userId}`,
      args: [{ userId, hostGraceMs: GRACE_MS, syncTimeoutMs: 1_000 }],
      signal: matrixSyncJoinSignal,
      signalArgs: [{ hostId: hostA }],
    });
    await handle.signal(matrixSyncJoinSignal, { hostId: hostB });
    try {
      await fn({ hs: new Homeserver(), handle, hostA, hostB, userId });
    } finally {
      await handle.terminate('test over').catch(() => undefined);
    }
  });
}

const bodies = (events: IncomingEvent[]) => events.map((e) => e.content.body);

test('the owner dies: within its grace the sync moves to the next host, from the same position; every event queued once, in order', () =>
  withSync(async ({ hs, handle, hostA, hostB, userId }) => {
    const a = await startHost(hostA, hs, userId);
    let b: Awaited<ReturnType<typeof startHost>> | undefined;
    try {
      await eventually(async () =>
        expect(await handle.query(matrixSyncStatusQuery)).toMatchObject({
          owner: hostA,
          hosts: [hostA, hostB],
          synced: true,
        }),
      );
      hs.say(5);
      await eventually(async () =>
        expect((await handle.query(matrixSyncStatusQuery)).last_seq).toBe(5),
      );
      b = await startHost(hostB, hs, userId);
      await a.stop();
      hs.say(4);
      const stoppedAt = Date.now();
      await eventually(async () => {
        const s = await handle.query(matrixSyncStatusQuery);
        expect(s).toMatchObject({ owner: hostB, moves: 1, last_seq: 9 });
        expect(s.last_problem).toBeNull();
      }, 30_000);
      expect(Date.now() - stoppedAt).toBeGreaterThanOrEqual(GRACE_MS - 500);
      const queued = await handle.query(matrixEventsQuery, { after: 0, limit: 100 });
      expect(queued.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
      expect(bodies(queued)).toEqual(hs.timeline.map((e) => e.content.body));
      // B's first call started where A's last completed call ended: after the fifth event.
      expect(hs.calls.find((c) => c.host === hostB)?.since).toBe('5');
    } finally {
      await b?.stop();
      await a.stop().catch(() => undefined);
    }
  }));

test('matrix-take hands each event to one taker: spans follow each other per consumer, and an empty take leaves no trace', () =>
  withSync(async ({ hs, handle, hostA, userId }) => {
    const a = await startHost(hostA, hs, userId);
    try {
      await eventually(async () =>
        expect((await handle.query(matrixSyncStatusQuery)).synced).toBe(true),
      );
      hs.say(7);
      await eventually(async () =>
        expect((await handle.query(matrixSyncStatusQuery)).last_seq).toBe(7),
      );
      const take = (consumer: string, limit: number) =>
        handle.executeUpdate(matrixTakeUpdate, { args: [{ consumer, limit }] });
      expect(await take('rpc', 5)).toEqual({ after: 0, upTo: 5 });
      expect(await take('rpc', 5)).toEqual({ after: 5, upTo: 7 });
      expect(await take('other', 10)).toEqual({ after: 0, upTo: 7 });
      // Nothing left: refused by the validator, so an idle poller writes no history.
      await expect(take('rpc', 5)).rejects.toMatchObject({ cause: { type: NOTHING_TO_TAKE } });
      await expect(take('other', 5)).rejects.toMatchObject({ cause: { type: NOTHING_TO_TAKE } });
      const history = await handle.fetchHistory();
      const accepted = (history.events ?? []).filter(
        (e) => e.workflowExecutionUpdateAcceptedEventAttributes,
      );
      expect(accepted).toHaveLength(3);
    } finally {
      await a.stop();
    }
  }));

test('a host logged in as another account leaves the list, and the sync moves on at once', () =>
  withSync(async ({ hs, handle, hostA, hostB, userId }) => {
    const a = await startHost(hostA, hs, '@someone-else:test');
    const b = await startHost(hostB, hs, userId);
    try {
      await eventually(async () =>
        expect(await handle.query(matrixSyncStatusQuery)).toMatchObject({
          owner: hostB,
          hosts: [hostB],
          synced: true,
        }),
      );
    } finally {
      await a.stop();
      await b.stop();
    }
  }));
