/**
 * The bridge's security audit log (docs/api.md, "webrtc.get_audit_log"): container runs,
 * voice calls and security events, persistent, append-only and hash-chained.
 *
 * Why SQLite (`<state_dir>/audit.db`) rather than a JSONL file: the bridge and the `armorclaw`
 * CLI both append, and a chain must never fork. SQLite's `BEGIN IMMEDIATE` serialises writers
 * across processes (Node has no portable flock for a JSONL file), a crash cannot leave a torn
 * half-line, the `dedupe_key` UNIQUE index makes retried writes idempotent atomically, and
 * `get_audit_log` filters use indexes instead of scanning the whole file.
 *
 * Invariants:
 * - Entry `seq` runs 1, 2, 3… with no gaps; `prev_hash` is the previous entry's `hash` (64 zeros
 *   for seq 1); `hash` is SHA-256 over the canonical JSON of every stored field but `hash`.
 * - A committed entry is on disk (WAL + synchronous=FULL) before `append` returns.
 * - No credential reaches the log: details keys naming a secret are refused, not redacted.
 *
 * Limits of a bare hash chain, by design of the threat model:
 * - Dropping the newest entries leaves a valid, shorter chain. Truncation is only detectable
 *   against a head recorded elsewhere: publish `head()` to a witness (remote log sink, admin
 *   room) and pass it back as `verify({ anchor })`. A head file next to the database would not
 *   help, since whoever can edit one can edit both.
 * - Someone who can write the file can rewrite an entry and recompute every later hash; only an
 *   external anchor (as above) exposes that.
 *
 * This file is the store (schema, append, list, verify); what an entry may hold and how it is
 * hashed is audit-log-entry.ts.
 */
import path from 'node:path';
import type Database from 'better-sqlite3';
import {
  AuditLogError,
  canonicalJson,
  entryHash,
  GENESIS_HASH,
  HASH_PATTERN,
  validateInput,
  type AppendAuditInput,
  type AuditEntry,
} from './audit-log-entry';
import { openPrivateDatabase, restrictSidecarModes } from './private-sqlite';

export {
  AuditLogError,
  GENESIS_HASH,
  type AppendAuditInput,
  type AuditEntry,
  type AuditLogErrorCode,
} from './audit-log-entry';

const DEFAULT_LIST_LIMIT = 100;
const MAX_LIST_LIMIT = 1000;

export interface ListAuditOptions {
  limit?: number;
  event_type?: string;
  /** Any of these event types. */
  event_types?: readonly string[];
  session_id?: string;
  container_id?: string;
}

export interface AuditHead {
  seq: number;
  hash: string;
}

export type VerifyResult =
  { ok: true; entries: number } | { ok: false; firstBadSeq: number; reason: string };

export interface AuditLogOptions {
  path: string;
  /** The clock; injected so tests get stable timestamps. */
  now?: () => Date;
}

/** An entry as SQLite holds it: the details as their canonical JSON text. */
type AuditRow = Omit<AuditEntry, 'details'> & { details: string };

// Long enough for the CLI to wait out a bridge write (and vice versa) instead of failing SQLITE_BUSY.
const BUSY_TIMEOUT_MS = 5000;

/** The audit database inside the state directory. */
export function auditLogPath(stateDir: string): string {
  return path.join(stateDir, 'audit.db');
}

/** An open audit log; the bridge and the CLI may each hold one on the same file. */
export class AuditLog {
  private constructor(
    private readonly db: Database.Database,
    private readonly now: () => Date,
  ) {}

  /** Opens (creating if needed, mode 0600) the audit log at `path`. */
  static open(opts: AuditLogOptions): AuditLog {
    const db = openPrivateDatabase(opts.path, { busyTimeoutMs: BUSY_TIMEOUT_MS });
    try {
      createSchema(db);
      restrictSidecarModes(opts.path);
      return new AuditLog(db, opts.now ?? (() => new Date()));
    } catch (err) {
      db.close();
      throw new Error(`cannot open audit log ${opts.path}: ${(err as Error).message}`);
    }
  }

  /** Appends one entry (or returns the entry already stored under its `dedupe_key`). */
  append(input: AppendAuditInput): AuditEntry {
    return this.appendMany([input])[0]!;
  }

  /**
   * Appends entries in one transaction (one fsync): one for `append`, many for high-rate writers
   * such as the HTTP gateway. Entries are validated first; an invalid one throws before anything
   * is written. An entry with a `dedupe_key` already stored is not written again: the stored one
   * is returned in its place (first write wins, so a retried activity gets back what was
   * recorded the first time). IMMEDIATE takes the write lock before reading the head, so two
   * processes can never both chain onto the same entry; the dedupe lookups sit inside it for the
   * same reason.
   */
  appendMany(inputs: readonly AppendAuditInput[]): AuditEntry[] {
    if (inputs.length === 0) return [];
    const validated = inputs.map((input) => validateInput(input));
    const at = this.now();
    if (!(at instanceof Date) || Number.isNaN(at.getTime())) {
      throw new AuditLogError('invalid', 'now(): the clock returned an invalid Date');
    }
    const timestamp = at.toISOString();
    const findDedupe = this.db.prepare('SELECT * FROM entries WHERE dedupe_key = ?');
    const readHead = this.db.prepare('SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1');
    const insert = this.db.prepare(
      `INSERT INTO entries (seq, timestamp, event_type, session_id, room_id, user_id,
         container_id, details, dedupe_key, prev_hash, hash)
       VALUES (@seq, @timestamp, @event_type, @session_id, @room_id, @user_id,
         @container_id, @details, @dedupe_key, @prev_hash, @hash)`,
    );
    return this.db
      .transaction((): AuditEntry[] => {
        let head = readHead.get() as AuditHead | undefined;
        const out: AuditEntry[] = [];
        for (const fields of validated) {
          if (fields.dedupe_key !== null) {
            const existing = findDedupe.get(fields.dedupe_key) as AuditRow | undefined;
            if (existing) {
              out.push(rowToEntry(existing));
              continue;
            }
          }
          const unhashed = {
            ...fields,
            seq: (head?.seq ?? 0) + 1,
            timestamp,
            prev_hash: head?.hash ?? GENESIS_HASH,
          };
          const entry: AuditEntry = { ...unhashed, hash: entryHash(unhashed) };
          insert.run({ ...entry, details: canonicalJson(entry.details) });
          head = { seq: entry.seq, hash: entry.hash };
          out.push(entry);
        }
        return out;
      })
      .immediate();
  }

  /** Entries newest first, optionally filtered; `limit` is 1-1000 (default 100). */
  list(opts: ListAuditOptions = {}): AuditEntry[] {
    const limit = opts.limit ?? DEFAULT_LIST_LIMIT;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIST_LIMIT) {
      throw new AuditLogError('invalid', `limit: must be an integer from 1 to ${MAX_LIST_LIMIT}`);
    }
    const where: string[] = [];
    const params: string[] = [];
    for (const key of ['event_type', 'session_id', 'container_id'] as const) {
      const value = opts[key];
      if (value === undefined) continue;
      if (typeof value !== 'string') throw new AuditLogError('invalid', `${key}: must be a string`);
      where.push(`${key} = ?`);
      params.push(value);
    }
    if (opts.event_types !== undefined) {
      if (opts.event_types.length === 0) return [];
      where.push(`event_type IN (${opts.event_types.map(() => '?').join(', ')})`);
      params.push(...opts.event_types);
    }
    const sql =
      'SELECT * FROM entries' +
      (where.length ? ` WHERE ${where.join(' AND ')}` : '') +
      ' ORDER BY seq DESC LIMIT ?';
    return (this.db.prepare(sql).all(...params, limit) as AuditRow[]).map(rowToEntry);
  }

  /** The newest entry's seq and hash, to hand to an external witness; null when empty. */
  head(): AuditHead | null {
    return (
      (this.db.prepare('SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1').get() as
        AuditHead | undefined) ?? null
    );
  }

  /**
   * Recomputes the whole chain. Detects an edited, deleted or reordered entry; detects
   * truncation only when given an `anchor` (a `head()` kept outside this file).
   */
  verify(opts: { anchor?: AuditHead } = {}): VerifyResult {
    const anchor = opts.anchor;
    if (
      anchor !== undefined &&
      (!Number.isSafeInteger(anchor.seq) || anchor.seq < 1 || !HASH_PATTERN.test(anchor.hash))
    ) {
      throw new AuditLogError('invalid', 'anchor: expected { seq, hash } as returned by head()');
    }
    // One read transaction: a consistent snapshot even while another process appends.
    return this.db
      .transaction((): VerifyResult => {
        let prevHash = GENESIS_HASH;
        let seq = 0;
        const rows = this.db.prepare('SELECT * FROM entries ORDER BY seq').iterate();
        for (const row of rows as IterableIterator<AuditRow>) {
          const reason = checkRow(row, seq + 1, prevHash);
          if (reason) return { ok: false, firstBadSeq: seq + 1, reason };
          prevHash = row.hash;
          seq++;
          if (anchor?.seq === seq && anchor.hash !== row.hash) {
            return {
              ok: false,
              firstBadSeq: seq,
              reason: `rewritten: entry ${seq} no longer has the anchored hash`,
            };
          }
        }
        if (anchor && anchor.seq > seq) {
          return {
            ok: false,
            firstBadSeq: seq + 1,
            reason: `truncated: the anchor names seq ${anchor.seq} but the log ends at seq ${seq}`,
          };
        }
        return { ok: true, entries: seq };
      })
      .deferred();
  }

  /** Closes the database; further calls fail. Idempotent. */
  close(): void {
    if (this.db.open) this.db.close();
  }
}

function createSchema(db: Database.Database): void {
  // The triggers stop a bug (or a careless `sqlite3` session) from editing history; they are no
  // defence against someone who can drop them, which is what the hash chain is for.
  db.exec(`
    CREATE TABLE IF NOT EXISTS entries (
      seq INTEGER PRIMARY KEY,
      timestamp TEXT NOT NULL,
      event_type TEXT NOT NULL,
      session_id TEXT,
      room_id TEXT,
      user_id TEXT,
      container_id TEXT,
      details TEXT NOT NULL,
      dedupe_key TEXT UNIQUE,
      prev_hash TEXT NOT NULL,
      hash TEXT NOT NULL
    ) STRICT;
    CREATE INDEX IF NOT EXISTS entries_event_type ON entries (event_type, seq);
    CREATE INDEX IF NOT EXISTS entries_session_id ON entries (session_id, seq);
    CREATE INDEX IF NOT EXISTS entries_container_id ON entries (container_id, seq);
    CREATE TRIGGER IF NOT EXISTS entries_no_update BEFORE UPDATE ON entries
      BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER IF NOT EXISTS entries_no_delete BEFORE DELETE ON entries
      BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
  `);
}

/** Why `row` breaks the chain at `expectedSeq`, or null if it fits. */
function checkRow(row: AuditRow, expectedSeq: number, prevHash: string): string | null {
  if (row.seq !== expectedSeq) {
    return `seq gap: expected seq ${expectedSeq}, found seq ${row.seq} (entries deleted)`;
  }
  if (row.prev_hash !== prevHash) {
    return expectedSeq === 1
      ? 'prev_hash of the first entry is not the genesis hash'
      : `prev_hash does not match the hash of entry ${expectedSeq - 1} (entries removed or reordered)`;
  }
  let entry: AuditEntry;
  try {
    entry = rowToEntry(row);
  } catch {
    return 'details are not a JSON object (entry edited)';
  }
  const { hash: _stored, ...unhashed } = entry;
  if (!HASH_PATTERN.test(row.hash) || entryHash(unhashed) !== row.hash) {
    return 'hash does not match the entry content (entry edited)';
  }
  return null;
}

function rowToEntry(row: AuditRow): AuditEntry {
  let details: unknown;
  try {
    details = JSON.parse(row.details);
  } catch {
    details = undefined;
  }
  if (details === null || typeof details !== 'object' || Array.isArray(details)) {
    throw new AuditLogError('corrupt', `entry ${row.seq} has unreadable details; run verify`);
  }
  return {
    seq: row.seq,
    timestamp: row.timestamp,
    event_type: row.event_type,
    session_id: row.session_id,
    room_id: row.room_id,
    user_id: row.user_id,
    container_id: row.container_id,
    details: details as Record<string, unknown>,
    dedupe_key: row.dedupe_key,
    prev_hash: row.prev_hash,
    hash: row.hash,
  };
}
