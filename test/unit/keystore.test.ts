import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import {
  Keystore,
  KeystoreError,
  keystorePath,
  loadOrCreateMasterKey,
  type StoreKeyInput,
} from '../../services/keystore';

const NOW = 1_738_864_000;
const TOKEN = 'sk-proj-UNIQUE-token-abc123-do-not-leak';

let dir: string;
let clock: number;
const masterKey = randomBytes(32);

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'armorclaw-keystore-'));
  clock = NOW;
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

const dbPath = () => keystorePath(dir);
const openStore = (key: Buffer = masterKey) =>
  Keystore.open({ dbPath: dbPath(), masterKey: key, now: () => clock });
const mode = (p: string) => fs.statSync(p).mode & 0o777;

/** Runs `fn` against the raw SQLite file, as someone with write access to it would. */
function editDb(sql: string, ...params: unknown[]): void {
  const db = new Database(dbPath());
  try {
    db.prepare(sql).run(...params);
  } finally {
    db.close();
  }
}

function expectKeystoreError(fn: () => unknown, code: string, message?: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(KeystoreError);
  expect((caught as KeystoreError).code).toBe(code);
  if (message) expect((caught as KeystoreError).message).toMatch(message);
}

describe('Keystore', () => {
  test('stores and returns a key with its metadata', () => {
    const ks = openStore();
    expect(
      ks.store({
        id: 'openai-key-1',
        provider: 'openai',
        token: TOKEN,
        display_name: 'Production OpenAI Key',
        expires_at: NOW + 3600,
        tags: ['production', 'gpt-4'],
      }),
    ).toEqual({ id: 'openai-key-1', provider: 'openai', created_at: NOW });
    expect(ks.get('openai-key-1')).toEqual({
      id: 'openai-key-1',
      provider: 'openai',
      token: TOKEN,
      display_name: 'Production OpenAI Key',
      created_at: NOW,
      expires_at: NOW + 3600,
      tags: ['production', 'gpt-4'],
    });
    ks.close();

    // Survives reopening with the same master key.
    const again = openStore();
    expect(again.get('openai-key-1').token).toBe(TOKEN);
    again.close();
  });

  test('defaults: display_name is the id, no expiry, no tags', () => {
    const ks = openStore();
    ks.store({ id: 'k', provider: 'xai', token: 't' });
    expect(ks.get('k')).toEqual({
      id: 'k',
      provider: 'xai',
      token: 't',
      display_name: 'k',
      created_at: NOW,
      expires_at: null,
      tags: [],
    });
    ks.close();
  });

  test('has, delete, not_found', () => {
    const ks = openStore();
    ks.store({ id: 'k', provider: 'google', token: 't' });
    expect(ks.has('k')).toBe(true);
    expect(ks.has('other')).toBe(false);
    expect(ks.delete('k')).toBe(true);
    expect(ks.delete('k')).toBe(false);
    expect(ks.has('k')).toBe(false);
    expectKeystoreError(() => ks.get('k'), 'not_found', /no key with id "k"/);
    ks.close();
  });

  test('a duplicate id is refused, never overwritten', () => {
    const ks = openStore();
    ks.store({ id: 'k', provider: 'openai', token: 'first' });
    expectKeystoreError(
      () => ks.store({ id: 'k', provider: 'anthropic', token: 'second' }),
      'exists',
      /"k" already exists/,
    );
    expect(ks.get('k')).toMatchObject({ provider: 'openai', token: 'first' });
    ks.close();
  });

  test('a wrong master key is reported clearly on open', () => {
    const ks = openStore();
    ks.store({ id: 'k', provider: 'openai', token: TOKEN });
    ks.close();
    expectKeystoreError(
      () => openStore(randomBytes(32)),
      'wrong_master_key',
      /the master key does not match this keystore/,
    );
  });

  test('a master key that is not 32 bytes is refused', () => {
    expectKeystoreError(() => openStore(randomBytes(16)), 'invalid', /32 bytes/);
  });

  test('get enforces expiry using the injected clock', () => {
    const ks = openStore();
    ks.store({ id: 'k', provider: 'openai', token: TOKEN, expires_at: NOW + 10 });
    clock = NOW + 9;
    expect(ks.get('k').token).toBe(TOKEN);
    clock = NOW + 10;
    expectKeystoreError(() => ks.get('k'), 'expired', /expired/);
    // Still listed, so it can be seen and deleted.
    expect(ks.list().map((k) => k.id)).toEqual(['k']);
    ks.close();
  });

  test('list returns metadata only, sorted, filtered by provider', () => {
    const ks = openStore();
    ks.store({ id: 'b', provider: 'openai', token: TOKEN + 'b', tags: ['x'] });
    ks.store({ id: 'a', provider: 'anthropic', token: TOKEN + 'a', display_name: 'A' });
    ks.store({ id: 'c', provider: 'openai', token: TOKEN + 'c', expires_at: NOW + 5 });
    const all = ks.list();
    expect(all.map((k) => k.id)).toEqual(['a', 'b', 'c']);
    for (const record of all) {
      expect(Object.keys(record).sort()).toEqual(
        ['created_at', 'display_name', 'expires_at', 'id', 'provider', 'tags'].sort(),
      );
    }
    expect(JSON.stringify(all)).not.toContain(TOKEN);
    expect(all[0]).toEqual({
      id: 'a',
      provider: 'anthropic',
      display_name: 'A',
      created_at: NOW,
      expires_at: null,
      tags: [],
    });
    expect(ks.list('openai').map((k) => k.id)).toEqual(['b', 'c']);
    expect(ks.list('xai')).toEqual([]);
    expectKeystoreError(() => ks.list('azure'), 'invalid', /^provider: /);
    ks.close();
  });

  test('check passes on an open keystore and fails once closed', () => {
    const ks = openStore();
    expect(() => ks.check()).not.toThrow();
    ks.close();
    ks.close(); // idempotent
    expect(() => ks.check()).toThrow();
  });

  test('two handles on one file (CLI and bridge) see each other', () => {
    const bridge = openStore();
    const cli = openStore();
    cli.store({ id: 'k', provider: 'openrouter', token: TOKEN });
    expect(bridge.get('k').token).toBe(TOKEN);
    cli.close();
    bridge.close();
  });

  test('a file that is not a keystore gives a clear error', () => {
    fs.writeFileSync(dbPath(), 'this is not sqlite, just some text padding it out'.repeat(20));
    expect(() => openStore()).toThrow(/cannot open keystore .*keystore\.db/);
  });
});

describe('Keystore tamper detection', () => {
  function storeTwo(): void {
    const ks = openStore();
    ks.store({ id: 'one', provider: 'openai', token: 'token-one', expires_at: NOW + 100 });
    ks.store({ id: 'two', provider: 'openai', token: 'token-two', expires_at: NOW + 100 });
    ks.close();
  }

  function expectTampered(id: string): void {
    const ks = openStore();
    try {
      expectKeystoreError(
        () => ks.get(id),
        'tampered',
        new RegExp(`record ${id} failed authentication`),
      );
    } finally {
      ks.close();
    }
  }

  test('a flipped ciphertext byte', () => {
    storeTwo();
    const db = new Database(dbPath());
    const { sealed } = db.prepare("SELECT sealed FROM keys WHERE id = 'one'").get() as {
      sealed: Buffer;
    };
    sealed[0] = sealed[0]! ^ 0x01;
    db.prepare("UPDATE keys SET sealed = ? WHERE id = 'one'").run(sealed);
    db.close();
    expectTampered('one');
  });

  test('a truncated ciphertext or nonce', () => {
    storeTwo();
    editDb("UPDATE keys SET sealed = x'00' WHERE id = 'one'");
    editDb("UPDATE keys SET nonce = x'0000' WHERE id = 'two'");
    expectTampered('one');
    expectTampered('two');
  });

  test('an extended expires_at', () => {
    storeTwo();
    editDb("UPDATE keys SET expires_at = expires_at + 86400 WHERE id = 'one'");
    editDb("UPDATE keys SET expires_at = NULL WHERE id = 'two'");
    expectTampered('one');
    expectTampered('two');
  });

  test('an edited expires_at is tampered even after expiry, not merely expired', () => {
    storeTwo();
    editDb("UPDATE keys SET expires_at = ? WHERE id = 'one'", NOW + 1);
    clock = NOW + 50;
    expectTampered('one');
  });

  test('ciphertexts swapped between rows', () => {
    storeTwo();
    const db = new Database(dbPath());
    type Sealed = { id: string; nonce: Buffer; sealed: Buffer };
    const rows = db.prepare('SELECT id, nonce, sealed FROM keys ORDER BY id').all() as Sealed[];
    const put = db.prepare('UPDATE keys SET nonce = ?, sealed = ? WHERE id = ?');
    put.run(rows[1]!.nonce, rows[1]!.sealed, rows[0]!.id);
    put.run(rows[0]!.nonce, rows[0]!.sealed, rows[1]!.id);
    db.close();
    expectTampered('one');
    expectTampered('two');
  });

  test('an edited id, provider, created_at, display_name or tags', () => {
    const ks = openStore();
    for (const id of ['a', 'b', 'c', 'd', 'e']) {
      ks.store({ id, provider: 'openai', token: `token-${id}`, tags: ['t'] });
    }
    ks.close();
    editDb("UPDATE keys SET id = 'a2' WHERE id = 'a'");
    editDb("UPDATE keys SET provider = 'anthropic' WHERE id = 'b'");
    editDb("UPDATE keys SET created_at = created_at - 1 WHERE id = 'c'");
    editDb("UPDATE keys SET display_name = 'Other' WHERE id = 'd'");
    editDb(`UPDATE keys SET tags = '["t","admin"]' WHERE id = 'e'`);
    for (const id of ['a2', 'b', 'c', 'd', 'e']) expectTampered(id);
  });

  test('a replaced key check reads as a wrong master key, never as garbage', () => {
    storeTwo();
    editDb("UPDATE meta SET value = randomblob(length(value)) WHERE name = 'key_check'");
    expectKeystoreError(() => openStore(), 'wrong_master_key');
  });
});

describe('Keystore validation', () => {
  const valid: StoreKeyInput = { id: 'k', provider: 'openai', token: 't' };
  const bad: Array<[string, Record<string, unknown>]> = [
    ['id', { id: '' }],
    ['id', { id: '-leading-dash' }],
    ['id', { id: '.leading-dot' }],
    ['id', { id: 'has space' }],
    ['id', { id: 'has/slash' }],
    ['id', { id: 'a'.repeat(129) }],
    ['id', { id: 42 }],
    ['id', { id: undefined }],
    ['provider', { provider: 'azure' }],
    ['provider', { provider: 'OpenAI' }],
    ['provider', { provider: undefined }],
    ['token', { token: '' }],
    ['token', { token: undefined }],
    ['token', { token: 123 }],
    ['token', { token: 'a'.repeat(16 * 1024 + 1) }],
    ['token', { token: '€'.repeat(5462) }], // 16,386 bytes in 5,462 characters
    ['token', { token: 'sk-\0-x' }],
    ['display_name', { display_name: '' }],
    ['display_name', { display_name: 'x'.repeat(257) }],
    ['display_name', { display_name: 5 }],
    ['display_name', { display_name: 'bell\u0007' }],
    ['display_name', { display_name: 'esc\u001b[31m' }],
    ['expires_at', { expires_at: 0 }],
    ['expires_at', { expires_at: -5 }],
    ['expires_at', { expires_at: NOW + 1.5 }],
    ['expires_at', { expires_at: Number.NaN }],
    ['expires_at', { expires_at: String(NOW + 100) }],
    ['expires_at', { expires_at: NOW }],
    ['expires_at', { expires_at: NOW - 1 }],
    ['tags', { tags: 'production' }],
    ['tags', { tags: Array.from({ length: 33 }, (_, i) => `t${i}`) }],
    ['tags', { tags: ['x'.repeat(65)] }],
    ['tags', { tags: [''] }],
    ['tags', { tags: [1] }],
    ['tags', { tags: ['new\nline'] }],
  ];

  test.each(bad)('%s: %j is invalid', (field, override) => {
    const ks = openStore();
    try {
      expectKeystoreError(
        () => ks.store({ ...valid, ...override } as StoreKeyInput),
        'invalid',
        new RegExp(`^${field}: `),
      );
      expect(ks.list()).toEqual([]);
    } finally {
      ks.close();
    }
  });

  const good: Array<[string, Partial<StoreKeyInput>]> = [
    ['a 128-character id', { id: 'a'.repeat(128) }],
    ['an id with . _ : -', { id: 'A9._:-z' }],
    ['every provider', {}],
    ['a 16 KiB token', { token: 'a'.repeat(16 * 1024) }],
    ['a 256-character display name', { display_name: 'x'.repeat(256) }],
    ['a unicode display name', { display_name: 'Clé de production ✓' }],
    ['expires_at one second ahead', { expires_at: NOW + 1 }],
    [
      '32 tags of 64 characters',
      { tags: Array.from({ length: 32 }, (_, i) => `${i}`.padEnd(64, 'x')) },
    ],
    ['no tags', { tags: [] }],
  ];

  test.each(good)('accepts %s', (_name, override) => {
    const ks = openStore();
    try {
      for (const provider of ['openai', 'anthropic', 'openrouter', 'google', 'xai']) {
        const input = {
          ...valid,
          provider,
          ...override,
          id: `${override.id ?? 'k'}-${provider}`.slice(-128),
        };
        ks.store(input);
        expect(ks.get(input.id)).toMatchObject({ provider, token: input.token });
      }
    } finally {
      ks.close();
    }
  });

  test('get refuses a malformed id', () => {
    const ks = openStore();
    expectKeystoreError(() => ks.get('../etc'), 'invalid', /^id: /);
    ks.close();
  });
});

describe('Keystore files', () => {
  test('no token bytes in the database, WAL or SHM, open or closed', () => {
    const tokens = [TOKEN, 'sk-ant-api03-' + randomBytes(40).toString('base64url')];
    const ks = openStore();
    tokens.forEach((token, i) => ks.store({ id: `k${i}`, provider: 'anthropic', token }));
    ks.get('k0');

    const needles = tokens.flatMap((t) => {
      const b = Buffer.from(t);
      return [
        b,
        Buffer.from(b.toString('base64')),
        Buffer.from(b.toString('hex')),
        Buffer.from(b.toString('base64url')),
      ];
    });
    const scan = () => {
      const files = fs.readdirSync(dir).filter((f) => f.startsWith('keystore.db'));
      expect(files).toContain('keystore.db');
      for (const file of files) {
        const bytes = fs.readFileSync(path.join(dir, file));
        for (const needle of needles) expect(bytes.includes(needle)).toBe(false);
      }
      return files;
    };
    expect(scan()).toEqual(expect.arrayContaining(['keystore.db', 'keystore.db-wal']));
    ks.close();
    scan();
  });

  test('database, WAL and SHM are 0600 whatever the umask', () => {
    const old = process.umask(0);
    try {
      const ks = openStore();
      ks.store({ id: 'k', provider: 'openai', token: TOKEN });
      const files = fs.readdirSync(dir).filter((f) => f.startsWith('keystore.db'));
      expect(files.sort()).toEqual(['keystore.db', 'keystore.db-shm', 'keystore.db-wal']);
      for (const f of files) expect([f, mode(path.join(dir, f))]).toEqual([f, 0o600]);
      ks.close();
    } finally {
      process.umask(old);
    }
  });

  test('an existing database with loose permissions is tightened to 0600', () => {
    openStore().close();
    fs.chmodSync(dbPath(), 0o644);
    openStore().close();
    expect(mode(dbPath())).toBe(0o600);
  });
});

describe('loadOrCreateMasterKey', () => {
  test('creates a 32-byte key file 0600 in a new 0700 directory, then reuses it', () => {
    const keyFile = path.join(dir, 'state', 'master.key');
    const old = process.umask(0);
    let key: Buffer;
    try {
      key = loadOrCreateMasterKey({ keyFile });
    } finally {
      process.umask(old);
    }
    expect(key).toHaveLength(32);
    expect(mode(keyFile)).toBe(0o600);
    expect(mode(path.dirname(keyFile))).toBe(0o700);
    expect(fs.readFileSync(keyFile).equals(key)).toBe(true);
    expect(loadOrCreateMasterKey({ keyFile }).equals(key)).toBe(true);
    // No temporary file is left behind.
    expect(fs.readdirSync(path.dirname(keyFile))).toEqual(['master.key']);
  });

  test('the environment value wins over the key file', () => {
    const key = randomBytes(32);
    const keyFile = path.join(dir, 'master.key');
    expect(loadOrCreateMasterKey({ fromEnv: key.toString('hex'), keyFile }).equals(key)).toBe(true);
    expect(loadOrCreateMasterKey({ fromEnv: key.toString('base64'), keyFile }).equals(key)).toBe(
      true,
    );
    expect(fs.existsSync(keyFile)).toBe(false);
  });

  test('a malformed environment value is refused', () => {
    expectKeystoreError(
      () => loadOrCreateMasterKey({ fromEnv: 'abc', keyFile: path.join(dir, 'master.key') }),
      'invalid',
      /ARMORCLAW_MASTER_KEY/,
    );
  });

  test('a key file may hold hex text', () => {
    const key = randomBytes(32);
    const keyFile = path.join(dir, 'master.key');
    fs.writeFileSync(keyFile, key.toString('hex') + '\n', { mode: 0o600 });
    expect(loadOrCreateMasterKey({ keyFile }).equals(key)).toBe(true);
  });

  test('a key file readable by group or others is refused', () => {
    const keyFile = path.join(dir, 'master.key');
    fs.writeFileSync(keyFile, randomBytes(32), { mode: 0o600 });
    for (const loose of [0o640, 0o604, 0o660]) {
      fs.chmodSync(keyFile, loose);
      expectKeystoreError(
        () => loadOrCreateMasterKey({ keyFile }),
        'invalid',
        /accessible by group or others .*chmod 600/,
      );
    }
  });

  test('a key file with the wrong content or a symlink is refused', () => {
    const keyFile = path.join(dir, 'master.key');
    fs.writeFileSync(keyFile, 'not a key', { mode: 0o600 });
    expectKeystoreError(
      () => loadOrCreateMasterKey({ keyFile }),
      'invalid',
      /must hold 32 raw bytes/,
    );

    const target = path.join(dir, 'elsewhere.key');
    fs.writeFileSync(target, randomBytes(32), { mode: 0o600 });
    const link = path.join(dir, 'link.key');
    fs.symlinkSync(target, link);
    expectKeystoreError(() => loadOrCreateMasterKey({ keyFile: link }), 'invalid', /symbolic link/);
  });

  test('a keystore opened with a created key file opens again with it', () => {
    const keyFile = path.join(dir, 'master.key');
    const ks = openStore(loadOrCreateMasterKey({ keyFile }));
    ks.store({ id: 'k', provider: 'openai', token: TOKEN });
    ks.close();
    const again = openStore(loadOrCreateMasterKey({ keyFile }));
    expect(again.get('k').token).toBe(TOKEN);
    again.close();
  });
});
