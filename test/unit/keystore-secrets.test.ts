import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { Keystore, KeystoreError, keystorePath } from '../../services/keystore';

const SECRET = 'syt_matrix_access_token_MARKER_42';
let dir: string;
const masterKey = randomBytes(32);
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'armorclaw-secrets-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("the bridge's own secrets", () => {
  test('round trip, overwrite, delete; never listed as a key', () => {
    const ks = Keystore.open({ dbPath: keystorePath(dir), masterKey });
    expect(ks.getSecret('matrix.access_token')).toBeUndefined();
    ks.putSecret('matrix.access_token', SECRET);
    expect(ks.getSecret('matrix.access_token')).toBe(SECRET);
    ks.putSecret('matrix.access_token', SECRET + '-2');
    expect(ks.getSecret('matrix.access_token')).toBe(SECRET + '-2');
    expect(JSON.stringify(ks.list())).not.toContain('matrix');
    ks.deleteSecret('matrix.access_token');
    expect(ks.getSecret('matrix.access_token')).toBeUndefined();
    ks.close();
  });

  test('sealed at rest and bound to its name', () => {
    const ks = Keystore.open({ dbPath: keystorePath(dir), masterKey });
    ks.putSecret('a', SECRET);
    ks.putSecret('b', 'other');
    ks.close();
    for (const f of fs.readdirSync(dir)) {
      expect(fs.readFileSync(path.join(dir, f)).includes(Buffer.from(SECRET))).toBe(false);
    }
    // Move a's ciphertext under b's name: authentication must fail, not return a's value.
    const db = new Database(keystorePath(dir));
    db.prepare(
      "UPDATE secrets SET (nonce, sealed) = (SELECT nonce, sealed FROM secrets WHERE name = 'a') WHERE name = 'b'",
    ).run();
    db.close();
    const again = Keystore.open({ dbPath: keystorePath(dir), masterKey });
    expect(() => again.getSecret('b')).toThrow(KeystoreError);
    expect(again.getSecret('a')).toBe(SECRET);
    again.close();
  });
});
