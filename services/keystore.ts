/**
 * The encrypted keystore (docs/api.md, "Keystore"): provider API tokens sealed
 * with AES-256-GCM in a SQLite file shared by the bridge and the `armorclaw` CLI.
 *
 * Invariants:
 * - No token byte reaches the database, its WAL or its logs in the clear; `list` never decrypts.
 * - Everything `get` returns was authenticated: the AAD binds the row's id, provider, dates,
 *   display name and tags, so a row edited in the database, or a ciphertext moved to another
 *   row, fails with 'tampered' instead of yielding another key or a revived expired one.
 * - A wrong master key is reported as such on open, from a sealed key-check value in `meta`,
 *   rather than surfacing later as a 'tampered' record or as garbage.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type Database from 'better-sqlite3';
import { openPrivateDatabase, restrictSidecarModes } from './private-sqlite';
import { decodeMasterKey } from '../config/load';

/** Providers a key may belong to (docs/api.md, "Keystore"). */
export const PROVIDERS = ['openai', 'anthropic', 'openrouter', 'google', 'xai'] as const;
export type Provider = (typeof PROVIDERS)[number];

export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
export const MAX_TOKEN_BYTES = 16 * 1024;
export const MAX_DISPLAY_NAME_CHARS = 256;
export const MAX_TAGS = 32;
export const MAX_TAG_CHARS = 64;

export type KeystoreErrorCode =
  'invalid' | 'not_found' | 'expired' | 'exists' | 'tampered' | 'wrong_master_key';

/** A keystore failure the caller can act on; `code` is stable, `message` is for humans. */
export class KeystoreError extends Error {
  constructor(
    readonly code: KeystoreErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'KeystoreError';
  }
}

/** A stored key as `list_keys` shows it: never the token. */
export interface KeyRecord {
  id: string;
  provider: Provider;
  display_name: string;
  created_at: number;
  expires_at: number | null;
  tags: string[];
}

export interface StoreKeyInput {
  id: string;
  provider: string;
  token: string;
  display_name?: string;
  expires_at?: number;
  tags?: string[];
}

export interface KeystoreOptions {
  dbPath: string;
  masterKey: Buffer;
  /** The clock, in unix seconds; injected so tests can move past `expires_at`. */
  now?: () => number;
}

interface KeyRow {
  id: string;
  provider: string;
  display_name: string;
  created_at: number;
  expires_at: number | null;
  tags: string;
  nonce: Buffer;
  sealed: Buffer;
}

const NONCE_BYTES = 12;
const TAG_BYTES = 16;
// Bumping the format changes every AAD, so old rows can never be misread as new ones.
const FORMAT = 'armorclaw-keystore/v1';
const KEY_CHECK_PLAINTEXT = Buffer.from(`${FORMAT} key check`);
// Long enough for the CLI to wait out a bridge write (and vice versa) instead of failing SQLITE_BUSY.
const BUSY_TIMEOUT_MS = 5000;

/** The keystore database inside the state directory. */
export function keystorePath(stateDir: string): string {
  return path.join(stateDir, 'keystore.db');
}

/** An open keystore; one per process is enough, the CLI and the bridge may share the file. */
export class Keystore {
  private constructor(
    private readonly db: Database.Database,
    private readonly dataKey: Buffer,
    private readonly now: () => number,
  ) {}

  /** Opens (creating if needed) the keystore at `dbPath`; throws 'wrong_master_key' on a mismatch. */
  static open(opts: KeystoreOptions): Keystore {
    if (!Buffer.isBuffer(opts.masterKey) || opts.masterKey.length !== 32) {
      throw new KeystoreError('invalid', 'the master key must be exactly 32 bytes');
    }
    const now = opts.now ?? (() => Math.floor(Date.now() / 1000));
    let db: Database.Database;
    try {
      db = openPrivateDatabase(opts.dbPath, { busyTimeoutMs: BUSY_TIMEOUT_MS, secureDelete: true });
    } catch (err) {
      throw new Error(`cannot open keystore ${opts.dbPath}: ${(err as Error).message}`);
    }
    try {
      const dataKey = initialise(db, opts.masterKey);
      restrictSidecarModes(opts.dbPath);
      return new Keystore(db, dataKey, now);
    } catch (err) {
      db.close();
      if (err instanceof KeystoreError) throw err;
      throw new Error(`cannot open keystore ${opts.dbPath}: ${(err as Error).message}`);
    }
  }

  /** Seals and stores a new key; an existing id is an 'exists' error, never overwritten. */
  store(input: StoreKeyInput): { id: string; provider: Provider; created_at: number } {
    const createdAt = this.now();
    const record = validate(input, createdAt);
    const { nonce, sealed } = this.seal(input.token, recordAad(record));
    try {
      this.db
        .prepare(
          `INSERT INTO keys (id, provider, display_name, created_at, expires_at, tags, nonce, sealed)
           VALUES (@id, @provider, @display_name, @created_at, @expires_at, @tags, @nonce, @sealed)`,
        )
        .run({ ...record, tags: JSON.stringify(record.tags), nonce, sealed });
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
        throw new KeystoreError(
          'exists',
          `a key with id "${record.id}" already exists (keys are never overwritten); choose another id`,
        );
      }
      throw err;
    }
    return { id: record.id, provider: record.provider, created_at: createdAt };
  }

  /** Decrypts one key; 'not_found', 'expired' or 'tampered' otherwise. */
  get(id: string): KeyRecord & { token: string } {
    if (typeof id !== 'string' || !ID_PATTERN.test(id)) {
      throw new KeystoreError('invalid', 'id: must match ' + ID_PATTERN.source);
    }
    const row = this.db.prepare('SELECT * FROM keys WHERE id = ?').get(id) as KeyRow | undefined;
    if (!row) throw new KeystoreError('not_found', `no key with id "${id}"`);
    // Authenticate before looking at expires_at, so an edited date is 'tampered', not 'expired'.
    const record = parseRow(row);
    const token = this.open(row, record);
    if (record.expires_at !== null && record.expires_at <= this.now()) {
      throw new KeystoreError('expired', `key "${id}" expired at ${record.expires_at}`);
    }
    return { ...record, token };
  }

  /** Lists keys (expired ones included, so they can be seen and deleted), never their tokens. */
  list(provider?: string): KeyRecord[] {
    if (provider !== undefined && !isProvider(provider)) {
      throw new KeystoreError('invalid', `provider: must be one of ${PROVIDERS.join(', ')}`);
    }
    const rows = (
      provider === undefined
        ? this.db.prepare('SELECT * FROM keys ORDER BY id').all()
        : this.db.prepare('SELECT * FROM keys WHERE provider = ? ORDER BY id').all(provider)
    ) as KeyRow[];
    return rows.map(parseRow);
  }

  /** Whether a key with this id is stored (expired or not). */
  has(id: string): boolean {
    return this.db.prepare('SELECT 1 FROM keys WHERE id = ?').get(id) !== undefined;
  }

  /** Deletes a key; false when there was none. */
  delete(id: string): boolean {
    return this.db.prepare('DELETE FROM keys WHERE id = ?').run(id).changes > 0;
  }

  /** A cheap health probe: throws if the database cannot be read. */
  check(): void {
    this.db.prepare('SELECT count(*) FROM meta').get();
  }

  /** Closes the database; further calls fail. Idempotent. */
  close(): void {
    if (this.db.open) this.db.close();
  }

  /**
   * Stores a secret of the bridge itself (the Matrix access token, for instance), sealed like a
   * key but kept apart from the provider keys: never listed, never returned by `get_key`.
   */
  putSecret(name: string, value: string): void {
    const { nonce, sealed } = this.seal(value, secretAad(name));
    this.db
      .prepare(
        `INSERT INTO secrets (name, nonce, sealed, updated_at) VALUES (?, ?, ?, ?)
         ON CONFLICT(name) DO UPDATE SET nonce = excluded.nonce, sealed = excluded.sealed,
         updated_at = excluded.updated_at`,
      )
      .run(name, nonce, sealed, this.now());
  }

  /** A secret stored with `putSecret`, or undefined; 'tampered' if it fails authentication. */
  getSecret(name: string): string | undefined {
    const row = this.db.prepare('SELECT nonce, sealed FROM secrets WHERE name = ?').get(name) as
      { nonce: Buffer; sealed: Buffer } | undefined;
    if (!row) return undefined;
    return this.unseal(row.nonce, row.sealed, secretAad(name), `secret ${name}`);
  }

  deleteSecret(name: string): void {
    this.db.prepare('DELETE FROM secrets WHERE name = ?').run(name);
  }

  private seal(plaintext: string, aad: Buffer): { nonce: Buffer; sealed: Buffer } {
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.dataKey, nonce);
    cipher.setAAD(aad);
    const sealed = Buffer.concat([
      cipher.update(plaintext, 'utf8'),
      cipher.final(),
      cipher.getAuthTag(),
    ]);
    return { nonce, sealed };
  }

  private unseal(nonce: Buffer, sealed: Buffer, aad: Buffer, what: string): string {
    try {
      if (nonce.length !== NONCE_BYTES || sealed.length < TAG_BYTES) throw new Error('short');
      const decipher = createDecipheriv('aes-256-gcm', this.dataKey, nonce);
      decipher.setAAD(aad);
      decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
      const plain = Buffer.concat([
        decipher.update(sealed.subarray(0, sealed.length - TAG_BYTES)),
        decipher.final(),
      ]);
      const text = plain.toString('utf8');
      plain.fill(0);
      return text;
    } catch {
      throw new KeystoreError('tampered', `${what} failed authentication`);
    }
  }

  private open(row: KeyRow, record: KeyRecord): string {
    return this.unseal(row.nonce, row.sealed, recordAad(record), `record ${row.id}`);
  }
}

const secretAad = (name: string): Buffer => Buffer.from(`${FORMAT}:secret:${name}`);

/** Creates the schema and the key check on first use, else verifies the master key. */
function initialise(db: Database.Database, masterKey: Buffer): Buffer {
  db.exec(`
    CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL) STRICT;
    CREATE TABLE IF NOT EXISTS keys (
      id TEXT PRIMARY KEY,
      provider TEXT NOT NULL,
      display_name TEXT NOT NULL,
      created_at INTEGER NOT NULL,
      expires_at INTEGER,
      tags TEXT NOT NULL,
      nonce BLOB NOT NULL,
      sealed BLOB NOT NULL
    ) STRICT;
    CREATE TABLE IF NOT EXISTS secrets (
      name TEXT PRIMARY KEY,
      nonce BLOB NOT NULL,
      sealed BLOB NOT NULL,
      updated_at INTEGER NOT NULL
    ) STRICT;
  `);
  const readMeta = (name: string) =>
    (db.prepare('SELECT value FROM meta WHERE name = ?').get(name) as { value: Buffer } | undefined)
      ?.value;
  // IMMEDIATE takes the write lock first, so a CLI and a bridge opening a fresh file at the same
  // moment cannot both write a salt and key check: the second sees the first's.
  const meta = db
    .transaction(() => {
      let salt = readMeta('salt');
      let check = readMeta('key_check');
      if (!salt || !check) {
        salt = randomBytes(16);
        const key = deriveDataKey(masterKey, salt);
        const nonce = randomBytes(NONCE_BYTES);
        const cipher = createCipheriv('aes-256-gcm', key, nonce);
        cipher.setAAD(Buffer.from(`${FORMAT}:key-check`));
        check = Buffer.concat([
          nonce,
          cipher.update(KEY_CHECK_PLAINTEXT),
          cipher.final(),
          cipher.getAuthTag(),
        ]);
        const put = db.prepare('INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)');
        put.run('salt', salt);
        put.run('key_check', check);
      }
      return { salt, check };
    })
    .immediate();

  const dataKey = deriveDataKey(masterKey, meta.salt);
  if (!verifyKeyCheck(dataKey, meta.check)) {
    throw new KeystoreError(
      'wrong_master_key',
      'the master key does not match this keystore (it was created with a different key); ' +
        'set ARMORCLAW_MASTER_KEY or ARMORCLAW_MASTER_KEY_FILE to the key it was created with',
    );
  }
  return dataKey;
}

// The master key is never used directly: a per-keystore salt gives each keystore its own data
// key, and the info string keeps this key apart from anything else derived from the master key.
function deriveDataKey(masterKey: Buffer, salt: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', masterKey, salt, `${FORMAT} data key`, 32));
}

function verifyKeyCheck(key: Buffer, check: Buffer): boolean {
  if (check.length !== NONCE_BYTES + KEY_CHECK_PLAINTEXT.length + TAG_BYTES) return false;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, check.subarray(0, NONCE_BYTES));
    decipher.setAAD(Buffer.from(`${FORMAT}:key-check`));
    decipher.setAuthTag(check.subarray(check.length - TAG_BYTES));
    const plain = Buffer.concat([
      decipher.update(check.subarray(NONCE_BYTES, check.length - TAG_BYTES)),
      decipher.final(),
    ]);
    return plain.equals(KEY_CHECK_PLAINTEXT);
  } catch {
    return false;
  }
}

// A JSON array is an unambiguous encoding: no choice of field values can make two different
// records produce the same AAD.
function recordAad(r: KeyRecord): Buffer {
  return Buffer.from(
    JSON.stringify([FORMAT, r.id, r.provider, r.created_at, r.expires_at, r.display_name, r.tags]),
  );
}

function parseRow(row: KeyRow): KeyRecord {
  let tags: string[] = [];
  try {
    const parsed: unknown = JSON.parse(row.tags);
    if (Array.isArray(parsed) && parsed.every((t) => typeof t === 'string')) tags = parsed;
  } catch {
    // An unparsable tags column means the row was edited; `get` reports it as 'tampered'
    // because the AAD no longer matches, and `list` just shows no tags.
  }
  return {
    id: row.id,
    provider: row.provider as Provider,
    display_name: row.display_name,
    created_at: row.created_at,
    expires_at: row.expires_at,
    tags,
  };
}

function isProvider(p: unknown): p is Provider {
  return typeof p === 'string' && (PROVIDERS as readonly string[]).includes(p);
}

// Control characters are refused in text that `armorclaw list-keys` prints to a terminal.
// eslint-disable-next-line no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;

function validate(input: StoreKeyInput, now: number): KeyRecord {
  const bad = (message: string) => new KeystoreError('invalid', message);
  if (typeof input !== 'object' || input === null) throw bad('input: expected an object');
  const { id, provider, token, display_name, expires_at, tags } = input;

  if (typeof id !== 'string' || !ID_PATTERN.test(id)) {
    throw bad(
      'id: must be 1-128 characters of letters, digits, ".", "_", ":" or "-", starting with a letter or digit',
    );
  }
  if (!isProvider(provider)) throw bad(`provider: must be one of ${PROVIDERS.join(', ')}`);
  if (typeof token !== 'string' || token.length === 0)
    throw bad('token: must be a non-empty string');
  if (Buffer.byteLength(token, 'utf8') > MAX_TOKEN_BYTES) {
    throw bad(`token: must be at most ${MAX_TOKEN_BYTES} bytes`);
  }
  if (token.includes('\0')) throw bad('token: must not contain NUL characters');
  if (display_name !== undefined) {
    if (typeof display_name !== 'string' || display_name.length === 0) {
      throw bad('display_name: must be a non-empty string');
    }
    if (display_name.length > MAX_DISPLAY_NAME_CHARS) {
      throw bad(`display_name: must be at most ${MAX_DISPLAY_NAME_CHARS} characters`);
    }
    if (CONTROL_CHARS.test(display_name))
      throw bad('display_name: must not contain control characters');
  }
  if (expires_at !== undefined) {
    if (typeof expires_at !== 'number' || !Number.isSafeInteger(expires_at) || expires_at <= 0) {
      throw bad('expires_at: must be a positive integer (unix seconds)');
    }
    if (expires_at <= now) throw bad('expires_at: must be in the future');
  }
  if (tags !== undefined) {
    if (!Array.isArray(tags)) throw bad('tags: must be an array of strings');
    if (tags.length > MAX_TAGS) throw bad(`tags: at most ${MAX_TAGS} tags`);
    for (const tag of tags as unknown[]) {
      if (typeof tag !== 'string' || tag.length === 0 || tag.length > MAX_TAG_CHARS) {
        throw bad(`tags: each tag must be a string of 1-${MAX_TAG_CHARS} characters`);
      }
      if (CONTROL_CHARS.test(tag)) throw bad('tags: must not contain control characters');
    }
  }
  return {
    id,
    provider,
    display_name: display_name ?? id,
    created_at: now,
    expires_at: expires_at ?? null,
    tags: tags ? [...tags] : [],
  };
}

/**
 * The master key from the environment value if given, else from `keyFile`, creating that file
 * (32 random bytes, mode 0600) on first use.
 */
export function loadOrCreateMasterKey(opts: { fromEnv?: string; keyFile: string }): Buffer {
  if (opts.fromEnv !== undefined && opts.fromEnv !== '') {
    const key = decodeMasterKey(opts.fromEnv);
    if (!key) {
      throw new KeystoreError(
        'invalid',
        'ARMORCLAW_MASTER_KEY: must be 32 bytes as 64 hex characters or base64',
      );
    }
    return key;
  }
  return readKeyFile(opts.keyFile) ?? createKeyFile(opts.keyFile);
}

function readKeyFile(keyFile: string): Buffer | null {
  let fd: number;
  try {
    // O_NOFOLLOW: a symlink planted in the state directory must not redirect us to another file.
    fd = fs.openSync(keyFile, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') {
      throw new KeystoreError(
        'invalid',
        `master key file ${keyFile} is a symbolic link; refusing to use it`,
      );
    }
    throw err;
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile())
      throw new KeystoreError('invalid', `master key file ${keyFile} is not a regular file`);
    if ((st.mode & 0o077) !== 0) {
      const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
      throw new KeystoreError(
        'invalid',
        `master key file ${keyFile} is accessible by group or others (mode ${mode}); ` +
          `run: chmod 600 ${keyFile}`,
      );
    }
    const bytes = fs.readFileSync(fd);
    if (bytes.length === 32) return bytes;
    const key = decodeMasterKey(bytes.toString('latin1'));
    bytes.fill(0);
    if (!key) {
      throw new KeystoreError(
        'invalid',
        `master key file ${keyFile} must hold 32 raw bytes, 64 hex characters or base64 of 32 bytes`,
      );
    }
    return key;
  } finally {
    fs.closeSync(fd);
  }
}

function createKeyFile(keyFile: string): Buffer {
  const dir = path.dirname(keyFile);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const key = randomBytes(32);
  const tmp = `${keyFile}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const fd = fs.openSync(tmp, 'wx', 0o600);
  try {
    fs.fchmodSync(fd, 0o600);
    fs.writeFileSync(fd, key);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  try {
    // link(), not rename(): if another process created the key first, rename would silently
    // replace it, and whatever that process already sealed would be unreadable. link fails
    // with EEXIST instead, and we adopt the winner's key.
    fs.linkSync(tmp, keyFile);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const existing = readKeyFile(keyFile);
    if (!existing) throw err;
    return existing;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  fsyncDir(dir);
  return key;
}

function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
