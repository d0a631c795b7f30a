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
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import type Database from 'better-sqlite3';
import { openPrivateDatabase, restrictSidecarModes } from './private-sqlite';

export const DEFAULT_LIST_LIMIT = 100;
export const MAX_LIST_LIMIT = 1000;
export const MAX_DETAILS_BYTES = 64 * 1024;
export const MAX_FIELD_CHARS = 512;
/** The prev_hash of entry 1. */
export const GENESIS_HASH = '0'.repeat(64);
export const EVENT_TYPE_PATTERN = /^[a-z][a-z0-9_.-]{0,63}$/;
/** Details keys refused at any depth: the audit log must never hold a credential. */
/**
 * Detail keys that name a secret: `token`, `access_token`, `password`, `api_key`, ... A key that
 * only mentions one (`input_tokens`, `token_budget`) is usage data and allowed.
 */
export const SECRET_KEY_PATTERN =
  /(^|[_.-])(token|access[_-]?token|password|passphrase|secret|client[_-]?secret|authorization|api[_-]?key)$/i;

export type AuditLogErrorCode = 'invalid' | 'secret_in_details' | 'corrupt';

/** An audit log failure the caller can act on; `code` is stable, `message` is for humans. */
export class AuditLogError extends Error {
  constructor(
    readonly code: AuditLogErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'AuditLogError';
  }
}

export interface AppendAuditInput {
  event_type: string;
  session_id?: string;
  room_id?: string;
  user_id?: string;
  container_id?: string;
  details?: Record<string, unknown>;
  /** Makes the write idempotent: a second append with this key returns the first entry. */
  dedupe_key?: string;
}

/** A stored entry: the spec's fields (absent ids are null) plus the chain fields. */
export interface AuditEntry {
  seq: number;
  timestamp: string;
  event_type: string;
  session_id: string | null;
  room_id: string | null;
  user_id: string | null;
  container_id: string | null;
  details: Record<string, unknown>;
  dedupe_key: string | null;
  prev_hash: string;
  hash: string;
}

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

interface AuditRow {
  seq: number;
  timestamp: string;
  event_type: string;
  session_id: string | null;
  room_id: string | null;
  user_id: string | null;
  container_id: string | null;
  details: string;
  dedupe_key: string | null;
  prev_hash: string;
  hash: string;
}

// Part of every hash, so a future format can never be mistaken for this one.
const FORMAT = 'armorclaw-audit/v1';
// Long enough for the CLI to wait out a bridge write (and vice versa) instead of failing SQLITE_BUSY.
const BUSY_TIMEOUT_MS = 5000;
const MAX_DETAILS_DEPTH = 32;
const HASH_PATTERN = /^[0-9a-f]{64}$/;
// Ids end up in `armorclaw` terminal output.
// eslint-disable-next-line no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;

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
    const fields = validateInput(input);
    const at = this.now();
    if (!(at instanceof Date) || Number.isNaN(at.getTime())) {
      throw new AuditLogError('invalid', 'now(): the clock returned an invalid Date');
    }
    const timestamp = at.toISOString();
    // IMMEDIATE takes the write lock before reading the head, so two processes can never both
    // chain onto the same entry; the dedupe lookup sits inside it for the same reason.
    return this.db
      .transaction((): AuditEntry => {
        if (fields.dedupe_key !== null) {
          const existing = this.db
            .prepare('SELECT * FROM entries WHERE dedupe_key = ?')
            .get(fields.dedupe_key) as AuditRow | undefined;
          // First write wins: a retried activity gets back what was recorded the first time.
          if (existing) return rowToEntry(existing);
        }
        const head = this.db
          .prepare('SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1')
          .get() as AuditHead | undefined;
        const unhashed = {
          ...fields,
          seq: (head?.seq ?? 0) + 1,
          timestamp,
          prev_hash: head?.hash ?? GENESIS_HASH,
        };
        const entry: AuditEntry = { ...unhashed, hash: entryHash(unhashed) };
        this.db
          .prepare(
            `INSERT INTO entries (seq, timestamp, event_type, session_id, room_id, user_id,
               container_id, details, dedupe_key, prev_hash, hash)
             VALUES (@seq, @timestamp, @event_type, @session_id, @room_id, @user_id,
               @container_id, @details, @dedupe_key, @prev_hash, @hash)`,
          )
          .run({ ...entry, details: canonicalJson(entry.details) });
        return entry;
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

// Every stored field but `hash` is covered, absent ids as null, so no field can change unseen.
function entryHash(entry: Omit<AuditEntry, 'hash'>): string {
  return createHash('sha256')
    .update(canonicalJson({ format: FORMAT, ...entry }))
    .digest('hex');
}

/**
 * JSON with object keys sorted (by UTF-16 code unit, as RFC 8785 does) and no whitespace; for
 * the values `validateDetails` admits this matches RFC 8785 (JCS), so an outside verifier can
 * recompute hashes with any JCS library.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const obj = value as Record<string, unknown>;
  const members = Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`);
  return `{${members.join(',')}}`;
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

type ValidatedFields = Pick<
  AuditEntry,
  'event_type' | 'session_id' | 'room_id' | 'user_id' | 'container_id' | 'details' | 'dedupe_key'
>;

function validateInput(input: AppendAuditInput): ValidatedFields {
  const bad = (message: string) => new AuditLogError('invalid', message);
  if (typeof input !== 'object' || input === null) throw bad('entry: expected an object');
  if (typeof input.event_type !== 'string' || !EVENT_TYPE_PATTERN.test(input.event_type)) {
    throw bad(
      'event_type: must be 1-64 characters of lower-case letters, digits, "_", "." or "-", ' +
        'starting with a letter (e.g. "call_created")',
    );
  }
  const optionalId = (
    key: 'session_id' | 'room_id' | 'user_id' | 'container_id' | 'dedupe_key',
  ) => {
    const value: unknown = input[key];
    if (value === undefined) return null;
    if (typeof value !== 'string' || value.length === 0 || value.length > MAX_FIELD_CHARS) {
      throw bad(`${key}: must be a string of 1-${MAX_FIELD_CHARS} characters`);
    }
    if (CONTROL_CHARS.test(value)) throw bad(`${key}: must not contain control characters`);
    return value;
  };
  const details = input.details ?? {};
  if (typeof details !== 'object' || details === null || Array.isArray(details)) {
    throw bad('details: must be an object');
  }
  validateDetails(details, 'details', 0, new Set());
  // Returned and hashed as stored: round-tripping drops undefined members the way storage does.
  const stored = canonicalJson(details);
  if (Buffer.byteLength(stored, 'utf8') > MAX_DETAILS_BYTES) {
    throw bad(`details: must be at most ${MAX_DETAILS_BYTES} bytes as JSON`);
  }
  return {
    event_type: input.event_type,
    session_id: optionalId('session_id'),
    room_id: optionalId('room_id'),
    user_id: optionalId('user_id'),
    container_id: optionalId('container_id'),
    details: JSON.parse(stored) as Record<string, unknown>,
    dedupe_key: optionalId('dedupe_key'),
  };
}

// Only plain JSON is admitted, so what is hashed is exactly what is stored and read back (no
// NaN turning into null, no Date or Buffer serialised differently on another machine).
function validateDetails(value: unknown, at: string, depth: number, seen: Set<object>): void {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return;
  if (typeof value === 'number') {
    if (Number.isFinite(value)) return;
    throw new AuditLogError('invalid', `${at}: numbers must be finite`);
  }
  if (typeof value !== 'object') {
    throw new AuditLogError('invalid', `${at}: must be JSON (got ${typeof value})`);
  }
  if (depth >= MAX_DETAILS_DEPTH) {
    throw new AuditLogError('invalid', `${at}: nested more than ${MAX_DETAILS_DEPTH} levels`);
  }
  if (seen.has(value)) throw new AuditLogError('invalid', `${at}: circular reference`);
  seen.add(value);
  if (Array.isArray(value)) {
    value.forEach((item, i) => {
      if (item === undefined) throw new AuditLogError('invalid', `${at}[${i}]: undefined`);
      validateDetails(item, `${at}[${i}]`, depth + 1, seen);
    });
  } else {
    const proto: unknown = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      throw new AuditLogError('invalid', `${at}: must be a plain object, array or JSON scalar`);
    }
    for (const [key, child] of Object.entries(value)) {
      // Refused rather than redacted: a caller logging a credential is a bug to fix at the source.
      if (SECRET_KEY_PATTERN.test(key)) {
        throw new AuditLogError(
          'secret_in_details',
          `${at}.${key}: keys naming a token, password, secret or authorization are refused; ` +
            'the audit log must never hold credentials (record a key id or fingerprint instead)',
        );
      }
      if (child !== undefined) validateDetails(child, `${at}.${key}`, depth + 1, seen);
    }
  }
  seen.delete(value);
}
