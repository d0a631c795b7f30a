import {
  ActivityFailure,
  ApplicationFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  proxyActivities,
  setHandler,
  sleep,
  TimeoutFailure,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { MatrixActivities } from '../activities/matrix';
import {
  afterJoin,
  afterSyncFailure,
  type SyncFailure,
  type SyncOwnership,
} from '../machines/matrix-sync-owner';
import {
  hostTaskQueue,
  matrixEventsQuery,
  matrixSyncJoinSignal,
  matrixSyncStatusQuery,
  matrixTakeUpdate,
  NOTHING_TO_TAKE,
  type MatrixAcceptedEvent,
  type MatrixQueuedEvent,
  type MatrixSyncInput,
} from './definitions';
import { hostDidNotAnswer } from './host-loss';
import { ArmorclawHost, ArmorclawKind, ArmorclawState } from './search-attributes';

/** The shared queue keeps the newest events up to both bounds; older ones are dropped. */
const QUEUE_MAX_EVENTS = 1_000;
const QUEUE_MAX_CHARS = 1_000_000;
/** Sync calls per run before `continueAsNew` carries the state into a fresh history. */
const CALLS_PER_RUN = 500;

/**
 * The Matrix sync of one account (workflow id `matrix-sync-<user id>`), shared by every bridge
 * logged in as it. One sync call at a time runs on the owner's host queue; each returns the
 * accepted events of one /sync and its `next_batch`, which the workflow appends to the account's
 * queue and keeps as the position. The position and the events advance together when the call
 * completes, so a call lost with its host is simply made again, from the same position, on the
 * next host: no event is lost or queued twice. Bridges copy the queue into their own store for
 * their local listeners; `matrix.receive` takes from the queue itself.
 */
export async function matrixSyncWorkflow(input: MatrixSyncInput): Promise<void> {
  let own: SyncOwnership = { hosts: input.hosts ?? [], owner: input.owner };
  let since = input.since ?? null;
  const queue: MatrixQueuedEvent[] = [...(input.queue ?? [])];
  let nextSeq = input.nextSeq ?? 1;
  const cursors: Record<string, number> = { ...input.cursors };
  let moves = input.moves ?? 0;
  let lastProblem: string | null = null;

  const tagOwner = () =>
    upsertSearchAttributes([
      { key: ArmorclawKind, value: 'matrix-sync' },
      { key: ArmorclawState, value: 'Active' },
      { key: ArmorclawHost, value: own.owner ?? '' },
    ]);

  setHandler(matrixSyncJoinSignal, ({ hostId }) => {
    const before = own.owner;
    own = afterJoin(own, hostId);
    if (own.owner !== before) tagOwner();
  });
  setHandler(
    matrixTakeUpdate,
    ({ consumer, limit }) => {
      // Seqs have no gaps, so a span of seqs is a span of events.
      const after = cursors[consumer] ?? 0;
      const upTo = Math.min(nextSeq - 1, after + Math.max(0, limit));
      cursors[consumer] = upTo;
      return { after, upTo };
    },
    {
      // A take with nothing to take is refused before it is accepted, so a client polling an
      // idle room writes nothing to the history.
      validator: ({ consumer, limit }) => {
        if (limit <= 0 || (cursors[consumer] ?? 0) >= nextSeq - 1) {
          throw ApplicationFailure.nonRetryable('nothing to take', NOTHING_TO_TAKE);
        }
      },
    },
  );
  setHandler(matrixEventsQuery, ({ after, limit }) =>
    queue.filter((e) => e.seq > after).slice(0, Math.max(0, limit)),
  );
  setHandler(matrixSyncStatusQuery, () => ({
    user_id: input.userId,
    owner: own.owner ?? null,
    hosts: [...own.hosts],
    synced: since !== null,
    last_seq: nextSeq - 1,
    moves,
    last_problem: lastProblem,
  }));

  const append = (events: MatrixAcceptedEvent[]) => {
    const known = new Set(queue.map((e) => e.event_id));
    for (const e of events) {
      if (known.has(e.event_id)) continue;
      known.add(e.event_id);
      queue.push({ ...e, seq: nextSeq++ });
    }
    let chars = queue.reduce((n, e) => n + JSON.stringify(e.content).length, 0);
    while (queue.length > QUEUE_MAX_EVENTS || (chars > QUEUE_MAX_CHARS && queue.length > 1)) {
      chars -= JSON.stringify(queue.shift()!.content).length;
    }
  };

  tagOwner();
  let failuresInRow = 0;
  // The first call of a run, and the first after a failure or a move, does not long-poll.
  let quick = true;
  for (let calls = 0; calls < CALLS_PER_RUN && !workflowInfo().continueAsNewSuggested; calls++) {
    if (own.owner === undefined) await condition(() => own.owner !== undefined);
    const owner = own.owner!;
    const { syncMatrixBatch } = proxyActivities<MatrixActivities>({
      taskQueue: hostTaskQueue(owner),
      // The host's grace: a bridge that is down longer hands the sync on.
      scheduleToStartTimeout: input.hostGraceMs,
      startToCloseTimeout: input.syncTimeoutMs + 60_000,
      // The call heartbeats through its long poll: a host that dies mid-poll is noticed in 20 s.
      heartbeatTimeout: '20s',
      retry: { maximumAttempts: 1 },
    });
    try {
      const res = await syncMatrixBatch({ userId: input.userId, since, quick });
      append(res.events);
      since = res.next_batch;
      failuresInRow = 0;
      lastProblem = null;
      quick = false;
    } catch (err) {
      failuresInRow++;
      quick = true;
      const failure = classify(err);
      lastProblem = `${failure} on ${owner}: ${describe(err)}`;
      const next = afterSyncFailure(own, failure, failuresInRow);
      own = { hosts: next.hosts, owner: next.owner };
      if (next.moved) {
        moves++;
        tagOwner();
      }
      if (next.retryInMs > 0) await sleep(next.retryInMs);
    }
  }
  await condition(allHandlersFinished);
  await continueAsNew<typeof matrixSyncWorkflow>({
    ...input,
    hosts: [...own.hosts],
    owner: own.owner,
    since,
    queue,
    nextSeq,
    cursors,
    moves,
  });
}

function classify(err: unknown): SyncFailure {
  if (hostDidNotAnswer(err)) return 'host_silent';
  if (!(err instanceof ActivityFailure)) return 'failed';
  const cause = err.cause;
  if (cause instanceof TimeoutFailure) return 'host_silent';
  if (cause instanceof ApplicationFailure) {
    if (cause.type === 'NotLoggedIn') return 'logged_out';
    if (cause.type === 'SyncInterrupted' || cause.type === 'WorkerGone') return 'interrupted';
  }
  return 'failed';
}

function describe(err: unknown): string {
  const cause = err instanceof ActivityFailure ? (err.cause ?? err) : err;
  return cause instanceof Error ? cause.message : String(cause);
}
