// The Matrix crypto store's persistence (matrix/crypto-store.ts): the Rust crypto's IndexedDB
// databases dumped to a sealed file and loaded back give the same device identity; the file is
// private, sealed, bound to its user and device, and a wrong key is an error, not a new identity.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as Rust from '@matrix-org/matrix-sdk-crypto-wasm';
import {
  CryptoStoreFile,
  cryptoStorePath,
  deriveStoreKeys,
  installIndexedDb,
} from '../../matrix/crypto-store';

jest.setTimeout(30_000);

const USER = '@bot:example.test';
const DEVICE = 'ARMORCLAW';
const PREFIX = 'unit-crypto';
let dir: string;

beforeAll(async () => {
  installIndexedDb();
  await Rust.initAsync();
});
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'armorclaw-crypto-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const idb = () => (globalThis as any).indexedDB;

/** Forgets every database in the in-memory IndexedDB: what a new process starts with. */
async function forgetAll(): Promise<void> {
  for (const { name } of await idb().databases()) {
    await new Promise<void>((resolve, reject) => {
      const r = idb().deleteDatabase(name);
      r.onsuccess = () => resolve();
      r.onerror = () => reject(r.error);
      r.onblocked = () => reject(new Error(`deleting ${name} is blocked`));
    });
  }
}

async function machine(storeKey: Uint8Array): Promise<Rust.OlmMachine> {
  const handle = await Rust.StoreHandle.openWithKey(PREFIX, storeKey);
  const m = (await Rust.OlmMachine.initFromStore(
    new Rust.UserId(USER),
    new Rust.DeviceId(DEVICE),
    handle,
  )) as Rust.OlmMachine;
  handle.free();
  return m;
}

const identity = (m: Rust.OlmMachine) => ({
  ed25519: m.identityKeys.ed25519.toBase64(),
  curve25519: m.identityKeys.curve25519.toBase64(),
});

test('a saved store loads back into a fresh IndexedDB with the same device identity', async () => {
  const { storeKey, fileKey } = deriveStoreKeys(randomBytes(32));
  const file = cryptoStorePath(dir);
  const store = new CryptoStoreFile(file, fileKey, PREFIX, { userId: USER, deviceId: DEVICE });
  expect(await store.load()).toBe('absent');

  const first = await machine(storeKey);
  const before = identity(first);
  first.close();
  await store.save();
  expect(statSync(file).mode & 0o777).toBe(0o600);
  // Sealed: the public identity key is not readable in the file.
  expect(readFileSync(file).includes(Buffer.from(before.curve25519))).toBe(false);

  await forgetAll();
  expect(await store.load()).toBe('restored');
  const second = await machine(storeKey);
  expect(identity(second)).toEqual(before);
  second.close();

  // Without the file, the same names give a new identity.
  await forgetAll();
  const third = await machine(storeKey);
  expect(identity(third).ed25519).not.toBe(before.ed25519);
  third.close();
  await forgetAll();
});

test("another device's file is left alone; a wrong key or a damaged file is an error", async () => {
  const secret = randomBytes(32);
  const { storeKey, fileKey } = deriveStoreKeys(secret);
  const file = cryptoStorePath(dir);
  const m = await machine(storeKey);
  m.close();
  await new CryptoStoreFile(file, fileKey, PREFIX, { userId: USER, deviceId: DEVICE }).save();
  await forgetAll();

  const other = new CryptoStoreFile(file, fileKey, PREFIX, { userId: USER, deviceId: 'OTHER' });
  expect(await other.load()).toBe('other-device');
  expect(await idb().databases()).toEqual([]);

  const wrongKey = deriveStoreKeys(randomBytes(32)).fileKey;
  const wrong = new CryptoStoreFile(file, wrongKey, PREFIX, { userId: USER, deviceId: DEVICE });
  await expect(wrong.load()).rejects.toThrow();

  const bytes = readFileSync(file);
  bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0xff;
  writeFileSync(file, bytes);
  const damaged = new CryptoStoreFile(file, fileKey, PREFIX, { userId: USER, deviceId: DEVICE });
  await expect(damaged.load()).rejects.toThrow();
});
