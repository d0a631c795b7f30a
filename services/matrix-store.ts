import path from 'node:path';
import type Database from 'better-sqlite3';
import { openPrivateDatabase } from './private-sqlite';

/** A room event as the bridge keeps and delivers it (the API spec's `matrix.receive` shape). */
export interface StoredEvent {
  /** Position in the bridge's inbound queue: strictly increasing, never reused. */
  seq: number;
  event_id: string;
  type: string;
  room_id: string;
  sender: string;
  content: Record<string, unknown>;
  /** origin_server_ts as the spec shows it: a string of milliseconds. */
  origin: string;
}

export interface IncomingEvent {
  event_id: string;
  type: string;
  room_id: string;
  sender: string;
  content: Record<string, unknown>;
  origin_server_ts: number;
}

const queuePositionKey = (account: string) => `queue_seq:${account}`;

export const matrixStorePath = (stateDir: string): string => path.join(stateDir, 'matrix.db');

interface EventRow {
  seq: number;
  event_id: string;
  type: string;
  room_id: string;
  sender: string;
  content: string;
  origin_server_ts: number;
}

const toStored = (r: EventRow): StoredEvent => ({
  seq: r.seq,
  event_id: r.event_id,
  type: r.type,
  room_id: r.room_id,
  sender: r.sender,
  content: JSON.parse(r.content) as Record<string, unknown>,
  origin: String(r.origin_server_ts),
});

/**
 * The durable side of Matrix: the sync position, the inbound queue and each consumer's cursor.
 * A sync batch and its `next_batch` are committed in one transaction, so after a crash the sync
 * resumes exactly where the last committed batch ended: nothing lost, nothing stored twice
 * (event ids are unique).
 */
export class MatrixStore {
  private constructor(private readonly db: Database.Database) {}

  /** Opens (creating) the store at `file`, mode 0600. */
  static open(file: string): MatrixStore {
    const db = openPrivateDatabase(file);
    db.exec(`
      CREATE TABLE IF NOT EXISTS kv (name TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
      CREATE TABLE IF NOT EXISTS events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL UNIQUE,
        type TEXT NOT NULL,
        room_id TEXT NOT NULL,
        sender TEXT NOT NULL,
        content TEXT NOT NULL,
        origin_server_ts INTEGER NOT NULL,
        received_at INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX IF NOT EXISTS events_room ON events (room_id, seq);
      CREATE TABLE IF NOT EXISTS cursors (consumer TEXT PRIMARY KEY, seq INTEGER NOT NULL) STRICT;
      CREATE TABLE IF NOT EXISTS queued (
        account TEXT NOT NULL,
        seq INTEGER NOT NULL,
        event_id TEXT NOT NULL,
        PRIMARY KEY (account, seq)
      ) STRICT;
    `);
    return new MatrixStore(db);
  }

  /** The `next_batch` to resume from, or undefined before the first sync. */
  syncToken(): string | undefined {
    return this.get('next_batch');
  }

  /**
   * Commits one sync response: its accepted events and its `next_batch`, atomically. Returns the
   * events that were new (a replayed batch after a crash stores nothing twice).
   */
  commitSync(events: IncomingEvent[], nextBatch: string): StoredEvent[] {
    return this.db.transaction(() => {
      const fresh = this.insertEvents(events);
      this.set('next_batch', nextBatch);
      return fresh;
    })();
  }

  /**
   * Copies events of an account's shared queue (`matrixSyncWorkflow`'s): stores those this store
   * lacks, remembers each one's place in the queue, and records how far the copy got, in one
   * transaction. Returns the new ones: an event this bridge synced itself is not pushed twice.
   */
  storeQueued(account: string, events: Array<IncomingEvent & { seq: number }>): StoredEvent[] {
    const place = this.db.prepare(
      'INSERT INTO queued (account, seq, event_id) VALUES (?, ?, ?) ON CONFLICT DO NOTHING',
    );
    return this.db.transaction(() => {
      const fresh = this.insertEvents(events);
      for (const e of events) place.run(account, e.seq, e.event_id);
      const last = events[events.length - 1];
      if (last) this.set(queuePositionKey(account), String(last.seq));
      return fresh;
    })();
  }

  /** How far the copy of `account`'s queue got; undefined before its first copy. */
  queuePosition(account: string): number | undefined {
    const v = this.get(queuePositionKey(account));
    return v === undefined ? undefined : Number(v);
  }

  setQueuePosition(account: string, seq: number): void {
    this.set(queuePositionKey(account), String(seq));
  }

  /** The copied events of `account`'s queue in (after, upTo], in queue order. */
  queuedEvents(account: string, after: number, upTo: number): StoredEvent[] {
    const rows = this.db
      .prepare(
        `SELECT e.* FROM queued q JOIN events e ON e.event_id = q.event_id
         WHERE q.account = ? AND q.seq > ? AND q.seq <= ? ORDER BY q.seq`,
      )
      .all(account, after, upTo);
    return (rows as EventRow[]).map(toStored);
  }

  private insertEvents(events: IncomingEvent[]): StoredEvent[] {
    const insert = this.db.prepare(
      `INSERT INTO events (event_id, type, room_id, sender, content, origin_server_ts, received_at)
       VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(event_id) DO NOTHING`,
    );
    const read = this.db.prepare('SELECT * FROM events WHERE seq = ?');
    const fresh: StoredEvent[] = [];
    for (const e of events) {
      const res = insert.run(
        e.event_id,
        e.type,
        e.room_id,
        e.sender,
        JSON.stringify(e.content),
        e.origin_server_ts,
        Date.now(),
      );
      if (res.changes === 1) fresh.push(toStored(read.get(res.lastInsertRowid) as EventRow));
    }
    return fresh;
  }

  /** Events after `consumer`'s cursor, oldest first, optionally in one room. */
  pending(consumer: string, opts: { limit: number; roomId?: string }): StoredEvent[] {
    const after = this.cursor(consumer);
    const rows = opts.roomId
      ? this.db
          .prepare('SELECT * FROM events WHERE seq > ? AND room_id = ? ORDER BY seq LIMIT ?')
          .all(after, opts.roomId, opts.limit)
      : this.db
          .prepare('SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?')
          .all(after, opts.limit);
    return (rows as EventRow[]).map(toStored);
  }

  /**
   * Takes up to `limit` events for `consumer` and moves its cursor past them in the same
   * transaction: what `matrix.receive` returns is never returned again.
   */
  take(consumer: string, limit: number): StoredEvent[] {
    return this.db.transaction(() => {
      const events = this.pending(consumer, { limit });
      if (events.length > 0) this.advance(consumer, events[events.length - 1]!.seq);
      return events;
    })();
  }

  cursor(consumer: string): number {
    const row = this.db.prepare('SELECT seq FROM cursors WHERE consumer = ?').get(consumer) as
      { seq: number } | undefined;
    // A consumer without a cursor starts at the beginning of the queue.
    return row?.seq ?? 0;
  }

  /** Moves a cursor forward (never back). */
  advance(consumer: string, seq: number): void {
    this.db
      .prepare(
        `INSERT INTO cursors (consumer, seq) VALUES (?, ?)
         ON CONFLICT(consumer) DO UPDATE SET seq = max(seq, excluded.seq)`,
      )
      .run(consumer, seq);
  }

  /** Starts a new consumer at the current end of the queue (it sees only what comes next). */
  startConsumerAtEnd(consumer: string): void {
    const last =
      (this.db.prepare('SELECT max(seq) AS s FROM events').get() as { s: number | null }).s ?? 0;
    this.db
      .prepare('INSERT INTO cursors (consumer, seq) VALUES (?, ?) ON CONFLICT(consumer) DO NOTHING')
      .run(consumer, last);
  }

  get(name: string): string | undefined {
    return (
      this.db.prepare('SELECT value FROM kv WHERE name = ?').get(name) as
        { value: string } | undefined
    )?.value;
  }

  set(name: string, value: string): void {
    this.db
      .prepare(
        'INSERT INTO kv (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value',
      )
      .run(name, value);
  }

  delete(name: string): void {
    this.db.prepare('DELETE FROM kv WHERE name = ?').run(name);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
