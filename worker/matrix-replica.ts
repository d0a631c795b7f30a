/**
 * Each bridge's copy of its Matrix account's shared queue. The sync runs on one host at a time
 * (`matrixSyncWorkflow`); every logged-in bridge, that one included, copies the queue's new
 * events into its own MatrixStore and pushes them to its local listeners (RPC subscribers, the
 * agents bound to rooms, approval replies), and takes its `matrix.status` from the sync's.
 */
import type { Client } from '@temporalio/client';
import type { Logger } from 'pino';
import type { BridgeConfig } from '../config/load';
import type { MatrixConnection } from '../matrix/client';
import type { MatrixInbox } from '../matrix/inbox';
import type { MatrixStore } from '../services/matrix-store';
import {
  matrixEventsAfter,
  matrixSyncStatus,
  type MatrixSyncSettings,
} from '../sessions/matrix-sync';

/** The sync settings every bridge of a deployment shares. */
export const matrixSyncSettings = (config: BridgeConfig): MatrixSyncSettings => ({
  taskQueue: config.temporal.taskQueue,
  hostGraceMs: config.hostGraceMs,
  syncTimeoutMs: config.matrix.syncTimeoutMs,
});

/** How often a bridge copies the queue while another host runs the account's sync. */
const COPY_EVERY_MS = 500;
/**
 * How often while this host runs it and no event came for as long: its own sync calls store and
 * push each event as it arrives, so a quiet round only reads the sync's health and notices the
 * sync moving to another host (whose events are then copied up to this much later). Events
 * arriving bring the quick rounds back at once: the queue keeps only its newest events, and
 * each must be copied while it is there for `matrix.receive` to find its place. Two queries a
 * second through the Temporal client, the server and the workflow thread kept an idle bridge's
 * RSS about 8 MB higher.
 */
const QUIET_OWNER_ROUND_EVERY_MS = 5_000;
/** Events per query: big events make big answers (Temporal warns above 512 KB). */
const COPY_PAGE = 40;

export class MatrixReplica {
  private timer: NodeJS.Timeout | undefined;
  /** The delay the pending round was set for. */
  private delay = COPY_EVERY_MS;
  private lastEventsAt = 0;
  private unsubscribe: (() => void) | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private tail: Promise<void> = Promise.resolve();

  constructor(
    private readonly deps: {
      client: Client;
      /** This bridge's host id (the sync's owner when it runs here). */
      hostId: string;
      matrix: MatrixConnection;
      store: MatrixStore;
      inbox: MatrixInbox;
      log: Logger;
    },
  ) {}

  start(): void {
    this.unsubscribe = this.deps.inbox.subscribe({}, () => {
      this.lastEventsAt = Date.now();
      if (this.timer && this.delay > COPY_EVERY_MS) this.schedule(COPY_EVERY_MS);
    });
    this.loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    clearTimeout(this.timer);
    await this.running;
  }

  private readonly loop = (): void => {
    if (this.stopped) return;
    this.timer = undefined;
    let owner = false;
    this.running = this.serial(() => this.round())
      .then((ownsSync) => {
        owner = ownsSync;
      })
      .catch((err) =>
        this.deps.log.debug({ err: (err as Error).message }, 'Matrix queue copy failed'),
      )
      .finally(() => {
        const quiet = Date.now() - this.lastEventsAt > QUIET_OWNER_ROUND_EVERY_MS;
        this.schedule(owner && quiet ? QUIET_OWNER_ROUND_EVERY_MS : COPY_EVERY_MS);
      });
  };

  private schedule(ms: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.delay = ms;
    this.timer = setTimeout(this.loop, ms);
  }

  /**
   * Copies the queue up to `upTo` now, for `matrix.receive`, which reads the span it took from
   * this copy. Copies never interleave: this waits for a round already running.
   */
  copyUpTo(userId: string, upTo: number): Promise<void> {
    return this.serial(() => this.copyTo(userId, upTo));
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn);
    this.tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }

  private async copyTo(userId: string, upTo: number): Promise<void> {
    const { client, store, inbox } = this.deps;
    let after = store.queuePosition(userId) ?? 0;
    while (after < upTo) {
      const events = await matrixEventsAfter(client, userId, after, COPY_PAGE);
      if (events.length === 0) break;
      after = events[events.length - 1]!.seq;
      inbox.publish(store.storeQueued(userId, events));
    }
  }

  /**
   * One round: the sync's health into `matrix.status`, then the queue's new events. True when
   * the sync runs on this host.
   */
  private async round(): Promise<boolean> {
    const { client, matrix, store } = this.deps;
    const userId = matrix.userId;
    if (!userId || !matrix.loggedIn) return false;
    const status = await matrixSyncStatus(client, userId);
    if (!status) return false;
    if (status.synced && !status.last_problem) matrix.markSynced();
    else if (status.last_problem) matrix.markDisconnected(status.last_problem);

    const position = store.queuePosition(userId);
    // A bridge new to the account starts at the queue's end: it is not flooded with the past.
    // A queue behind this copy (the account's workflow started afresh) is copied from its start.
    if (position === undefined) store.setQueuePosition(userId, status.last_seq);
    else if (position > status.last_seq) store.setQueuePosition(userId, 0);
    if (!this.stopped) await this.copyTo(userId, status.last_seq);
    return status.owner === this.deps.hostId;
  }
}
