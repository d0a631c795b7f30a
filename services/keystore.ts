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
 *
 * This file is the store (schema, rows, the Keystore API); the cipher, the input checks and the
 * master key file are keystore-cipher.ts, keystore-validation.ts and keystore-master-key.ts,
 * re-exported here so callers import the keystore from one place.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type Database from 'better-sqlite3';
import { openPrivateDatabase, restrictSidecarModes } from './private-sqlite';
import {
  deriveDataKey,
  makeKeyCheck,
  recordAad,
  seal,
  secretAad,
  unseal,
  verifyKeyCheck,
  type Sealed,
} from './keystore-cipher';
import {
  ID_PATTERN,
  isProvider,
  KeystoreError,
  PROVIDERS,
  validateKeyInput,
  type KeyRecord,
  type Provider,
  type StoreKeyInput,
} from './keystore-validation';

export {
  ID_PATTERN,
  KeystoreError,
  MAX_DISPLAY_NAME_CHARS,
  MAX_TAG_CHARS,
  MAX_TAGS,
  MAX_TOKEN_BYTES,
  PROVIDERS,
  type KeyRecord,
  type KeystoreErrorCode,
  type Provider,
  type StoreKeyInput,
} from './keystore-validation';
export { loadOrCreateMasterKey } from './keystore-master-key';

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
    const record = validateKeyInput(input, createdAt);
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

  /**
   * Every stored token, expired ones too, for the leak guard alone: an expired key leaked is
   * still a leak. A row that fails authentication is left out (it is `get`'s error to report).
   */
  tokensForLeakGuard(): Array<{ id: string; token: string }> {
    const rows = this.db.prepare('SELECT * FROM keys ORDER BY id').all() as KeyRow[];
    const keys: Array<{ id: string; token: string }> = [];
    for (const row of rows) {
      try {
        const record = parseRow(row);
        keys.push({ id: record.id, token: this.open(row, record) });
      } catch {
        // Tampered or unreadable: nothing usable to guard.
      }
    }
    return keys;
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
    return unseal(this.dataKey, row, secretAad(name), `secret ${name}`);
  }

  /** Removes a secret stored with `putSecret`; nothing happens if there is none. */
  deleteSecret(name: string): void {
    this.db.prepare('DELETE FROM secrets WHERE name = ?').run(name);
  }

  private seal(plaintext: string, aad: Buffer): Sealed {
    return seal(this.dataKey, plaintext, aad);
  }

  private open(row: KeyRow, record: KeyRecord): string {
    return unseal(this.dataKey, row, recordAad(record), `record ${row.id}`);
  }
}

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
        check = makeKeyCheck(deriveDataKey(masterKey, salt));
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
