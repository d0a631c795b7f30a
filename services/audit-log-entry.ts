/**
 * What an audit entry is: the input `append` accepts and how it is checked (plain JSON details,
 * no credential under any key, bounded ids), and the canonical JSON and hash that chain each
 * stored entry to the one before it. The SQLite store is audit-log.ts.
 */
import { createHash } from 'node:crypto';

const MAX_DETAILS_BYTES = 64 * 1024;
const MAX_FIELD_CHARS = 512;
/** The prev_hash of entry 1. */
export const GENESIS_HASH = '0'.repeat(64);
const EVENT_TYPE_PATTERN = /^[a-z][a-z0-9_.-]{0,63}$/;
/**
 * Detail keys that name a secret: `token`, `access_token`, `password`, `api_key`, ... A key that
 * only mentions one (`input_tokens`, `token_budget`) is usage data and allowed.
 */
const SECRET_KEY_PATTERN =
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

// Part of every hash, so a future format can never be mistaken for this one.
const FORMAT = 'armorclaw-audit/v1';
const MAX_DETAILS_DEPTH = 32;
/** A stored hash: SHA-256, lower-case hex. */
export const HASH_PATTERN = /^[0-9a-f]{64}$/;
// Ids end up in `armorclaw` terminal output.
// eslint-disable-next-line no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;

// Every stored field but `hash` is covered, absent ids as null, so no field can change unseen.
export function entryHash(entry: Omit<AuditEntry, 'hash'>): string {
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

export type ValidatedFields = Pick<
  AuditEntry,
  'event_type' | 'session_id' | 'room_id' | 'user_id' | 'container_id' | 'details' | 'dedupe_key'
>;

/** The fields `input` stores; throws AuditLogError naming what is wrong. */
export function validateInput(input: AppendAuditInput): ValidatedFields {
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
