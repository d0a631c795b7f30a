/**
 * Persistence of the bridge's Matrix crypto store (device identity, Olm and Megolm sessions).
 *
 * matrix-sdk-crypto-wasm persists only to IndexedDB, which Node does not have. The bridge gives
 * it `fake-indexeddb` (an in-memory IndexedDB) and keeps that memory on disk itself: after every
 * change that matters, the store's databases are dumped — schema and records, values in their
 * structured-clone form (`v8.serialize`) — sealed with AES-256-GCM and written atomically to
 * `state_dir/matrix-crypto.bin` (mode 0600). On start the file is loaded back into the in-memory
 * IndexedDB before the OlmMachine opens it, so the device keeps its identity across restarts.
 *
 * Two layers protect the file: the records are already encrypted by the crypto store itself
 * (StoreHandle.openWithKey), and the whole dump is sealed again under a second key. Both keys
 * are derived from one random secret sealed in the keystore; nothing of it reaches Temporal.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import v8 from 'node:v8';

const MAGIC = Buffer.from('ACMX1');
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

export const cryptoStorePath = (stateDir: string): string =>
  path.join(stateDir, 'matrix-crypto.bin');

/** Keys derived from the keystore secret: one for the crypto store's own cipher, one for the file. */
export function deriveStoreKeys(secret: Buffer): { storeKey: Uint8Array; fileKey: Buffer } {
  const derive = (info: string) =>
    Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), info, 32));
  return {
    storeKey: new Uint8Array(derive('armorclaw matrix crypto store')),
    fileKey: derive('armorclaw matrix crypto dump'),
  };
}

// Just the IndexedDB surface used here (the project compiles without the DOM library).
interface IdbRequest<T> {
  readonly result: T;
  readonly error: unknown;
  onsuccess: null | (() => void);
  onerror: null | (() => void);
}
interface IdbOpenRequest extends IdbRequest<IdbDatabase> {
  onupgradeneeded: null | (() => void);
}
interface IdbFactory {
  open(name: string, version?: number): IdbOpenRequest;
  databases(): Promise<Array<{ name?: string; version?: number }>>;
}
interface IdbDatabase {
  readonly version: number;
  readonly objectStoreNames: ArrayLike<string>;
  transaction(names: string[], mode: 'readonly' | 'readwrite'): IdbTransaction;
  createObjectStore(
    name: string,
    opts: { keyPath?: string | string[]; autoIncrement: boolean },
  ): IdbObjectStore;
  close(): void;
}
interface IdbTransaction {
  readonly error: unknown;
  objectStore(name: string): IdbObjectStore;
  oncomplete: null | (() => void);
  onerror: null | (() => void);
  onabort: null | (() => void);
}
interface IdbCursor {
  readonly primaryKey: IdbKey;
  readonly value: unknown;
  continue(): void;
}
interface IdbObjectStore {
  readonly keyPath: string | string[] | null;
  readonly autoIncrement: boolean;
  readonly indexNames: ArrayLike<string>;
  index(name: string): { keyPath: string | string[]; unique: boolean; multiEntry: boolean };
  openCursor(): IdbRequest<IdbCursor | null>;
  put(value: unknown, key?: IdbKey): unknown;
  createIndex(
    name: string,
    keyPath: string | string[],
    opts: { unique: boolean; multiEntry: boolean },
  ): unknown;
}
type IdbKey = unknown;

interface IndexDump {
  name: string;
  keyPath: string | string[];
  unique: boolean;
  multiEntry: boolean;
}
interface StoreDump {
  name: string;
  keyPath: string | string[] | null;
  autoIncrement: boolean;
  indexes: IndexDump[];
  records: Array<[IdbKey, unknown]>;
}
interface DatabaseDump {
  name: string;
  version: number;
  stores: StoreDump[];
}
interface CryptoDump {
  userId: string;
  deviceId: string;
  savedAt: number;
  databases: DatabaseDump[];
}

/** Installs the in-memory IndexedDB as Node's `indexedDB` (and IDBKeyRange & co.), once. */
export function installIndexedDb(): void {
  if ((globalThis as { indexedDB?: unknown }).indexedDB) return;
  require('fake-indexeddb/auto');
}

const idb = (): IdbFactory => (globalThis as unknown as { indexedDB: IdbFactory }).indexedDB;

function request<T>(r: IdbRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(asError(r.error, 'IndexedDB request failed'));
  });
}

const asError = (e: unknown, what: string): Error =>
  e instanceof Error ? e : new Error(e ? `${what}: ${String(e)}` : what);

function done(tx: IdbTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(asError(tx.error, 'IndexedDB transaction failed'));
    tx.onabort = () => reject(asError(tx.error, 'IndexedDB transaction aborted'));
  });
}

/** Every database whose name starts with `prefix`: schema and records, one consistent read each. */
async function dumpDatabases(prefix: string): Promise<DatabaseDump[]> {
  const out: DatabaseDump[] = [];
  for (const info of await idb().databases()) {
    if (!info.name?.startsWith(prefix)) continue;
    const db = await request(idb().open(info.name));
    try {
      const names = Array.from(db.objectStoreNames);
      const stores: StoreDump[] = [];
      if (names.length > 0) {
        const tx = db.transaction(names, 'readonly');
        for (const name of names) {
          const os = tx.objectStore(name);
          const indexes = Array.from(os.indexNames).map((n) => {
            const i = os.index(n);
            return { name: n, keyPath: i.keyPath, unique: i.unique, multiEntry: i.multiEntry };
          });
          const records: Array<[IdbKey, unknown]> = [];
          await new Promise<void>((resolve, reject) => {
            const c = os.openCursor();
            c.onsuccess = () => {
              const cursor = c.result;
              if (!cursor) return resolve();
              records.push([cursor.primaryKey, cursor.value]);
              cursor.continue();
            };
            c.onerror = () => reject(asError(c.error, 'IndexedDB cursor failed'));
          });
          stores.push({
            name,
            keyPath: os.keyPath,
            autoIncrement: os.autoIncrement,
            indexes,
            records,
          });
        }
        await done(tx);
      }
      out.push({ name: info.name, version: db.version, stores });
    } finally {
      db.close();
    }
  }
  return out;
}

/** Recreates dumped databases (same versions, so the crypto store runs no migration). */
async function restoreDatabases(databases: DatabaseDump[]): Promise<void> {
  for (const d of databases) {
    const open = idb().open(d.name, d.version);
    open.onupgradeneeded = () => {
      const db = open.result;
      for (const s of d.stores) {
        const os = db.createObjectStore(s.name, {
          keyPath: s.keyPath ?? undefined,
          autoIncrement: s.autoIncrement,
        });
        for (const i of s.indexes)
          os.createIndex(i.name, i.keyPath, { unique: i.unique, multiEntry: i.multiEntry });
      }
    };
    const db = await request(open);
    try {
      if (d.stores.length > 0) {
        const tx = db.transaction(
          d.stores.map((s) => s.name),
          'readwrite',
        );
        for (const s of d.stores) {
          const os = tx.objectStore(s.name);
          for (const [key, value] of s.records) {
            if (os.keyPath === null) os.put(value, key);
            else os.put(value);
          }
        }
        await done(tx);
      }
    } finally {
      db.close();
    }
  }
}

function seal(key: Buffer, plaintext: Buffer): Buffer {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(MAGIC);
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([MAGIC, nonce, cipher.getAuthTag(), body]);
}

function unseal(key: Buffer, file: Buffer): Buffer {
  if (!file.subarray(0, MAGIC.length).equals(MAGIC)) throw new Error('not a crypto store dump');
  const nonce = file.subarray(MAGIC.length, MAGIC.length + NONCE_BYTES);
  const tag = file.subarray(MAGIC.length + NONCE_BYTES, MAGIC.length + NONCE_BYTES + TAG_BYTES);
  const body = file.subarray(MAGIC.length + NONCE_BYTES + TAG_BYTES);
  const decipher = createDecipheriv('aes-256-gcm', key, nonce);
  decipher.setAAD(MAGIC);
  decipher.setAuthTag(tag);
  return Buffer.concat([decipher.update(body), decipher.final()]);
}

/**
 * One device's crypto store on disk. `load` fills the in-memory IndexedDB from the file (when it
 * belongs to this user and device); `save` writes the current databases back atomically.
 */
export class CryptoStoreFile {
  constructor(
    private readonly file: string,
    private readonly fileKey: Buffer,
    /** Databases of this device are named `<prefix>...`. */
    readonly prefix: string,
    private readonly owner: { userId: string; deviceId: string },
  ) {}

  /**
   * Loads the dump into IndexedDB. Returns 'restored', 'absent' (no file) or 'other-device' (the
   * file belongs to another user or device and is left alone until the next save replaces it).
   * Throws when the file cannot be read or authenticated: starting with a fresh identity over a
   * damaged one must be a decision, not an accident.
   */
  async load(): Promise<'restored' | 'absent' | 'other-device'> {
    let sealed: Buffer;
    try {
      sealed = fs.readFileSync(this.file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'absent';
      throw err;
    }
    const dump = v8.deserialize(unseal(this.fileKey, sealed)) as CryptoDump;
    if (dump.userId !== this.owner.userId || dump.deviceId !== this.owner.deviceId)
      return 'other-device';
    await restoreDatabases(dump.databases.filter((d) => d.name.startsWith(this.prefix)));
    return 'restored';
  }

  /** Writes the current state: temp file, fsync, rename, fsync of the directory. */
  async save(): Promise<number> {
    const dump: CryptoDump = {
      ...this.owner,
      savedAt: Date.now(),
      databases: await dumpDatabases(this.prefix),
    };
    const bytes = seal(this.fileKey, v8.serialize(dump));
    const tmp = `${this.file}.tmp-${process.pid}`;
    const fd = fs.openSync(tmp, 'w', 0o600);
    try {
      fs.writeSync(fd, bytes);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, this.file);
    const dir = fs.openSync(path.dirname(this.file), 'r');
    try {
      fs.fsyncSync(dir);
    } finally {
      fs.closeSync(dir);
    }
    return bytes.length;
  }
}
