import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  ConfigStore,
  ConfigStoreError,
  DEFAULT_CONFIG_MAX_BYTES,
  type AttachInput,
} from '../../services/config-store';

// 2025-01-08T00:00:00.500Z: the spec's example config_id, plus millis that must be dropped.
const T0 = new Date(1736294400_500);
const T1 = new Date(1736294460_000);

let tmp: string;
let dir: string;

beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'config-store-'));
  dir = path.join(tmp, 'state', 'configs');
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

const makeStore = (opts: { maxBytes?: number; now?: () => Date } = {}) =>
  new ConfigStore({ dir, now: () => T0, ...opts });

function attachError(store: ConfigStore, input: AttachInput): ConfigStoreError {
  try {
    store.attach(input);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigStoreError);
    return err as ConfigStoreError;
  }
  throw new Error('attach did not throw');
}

/** Every entry under dir, recursively, so a rejection can be shown to have written nothing. */
function tree(root: string): string[] {
  if (!fs.existsSync(root)) return [];
  return fs.readdirSync(root, { recursive: true, encoding: 'utf8' }).sort();
}

const b64 = (bytes: Buffer | string) => Buffer.from(bytes).toString('base64');
const mode = (p: string) => fs.statSync(p).mode & 0o777;

describe('attach rejects', () => {
  const ok = { name: 'agent.env', content: 'A=1' };
  const cases: Array<[string, AttachInput, RegExp]> = [
    ['traversal ../x', { ...ok, name: '../x' }, /^name /],
    ['a/b', { ...ok, name: 'a/b' }, /^name /],
    ['absolute /etc/passwd', { ...ok, name: '/etc/passwd' }, /^name /],
    ['.', { ...ok, name: '.' }, /^name /],
    ['..', { ...ok, name: '..' }, /^name /],
    ['.hidden', { ...ok, name: '.hidden' }, /^name must not start with "\."/],
    ['.meta (the sidecar dir)', { ...ok, name: '.meta' }, /^name /],
    ['NUL', { ...ok, name: 'a\0b' }, /^name must not contain NUL/],
    ['backslash', { ...ok, name: 'a\\b' }, /^name /],
    ['empty name', { ...ok, name: '' }, /^name must not be empty/],
    ['256-char name', { ...ok, name: 'a'.repeat(256) }, /^name must be at most 255/],
    ['space in name', { ...ok, name: 'a b' }, /^name may contain only/],
    ['non-ASCII name', { ...ok, name: 'café.env' }, /^name may contain only/],
    ['numeric name', { ...ok, name: 42 }, /^name must be a string/],
    ['missing name', { content: 'x' } as AttachInput, /^name must be a string/],
    ['non-string content', { ...ok, content: 42 }, /^content must be a string/],
    ['Buffer content', { ...ok, content: Buffer.from('x') }, /^content must be a string/],
    ['missing content', { name: 'a' } as AttachInput, /^content must be a string/],
    ['lone surrogate in raw content', { ...ok, content: 'a\uD800b' }, /^content must be valid/],
    ['encoding BASE64', { ...ok, encoding: 'BASE64' }, /^encoding /],
    ['encoding utf8', { ...ok, encoding: 'utf8' }, /^encoding /],
    ['encoding null', { ...ok, encoding: null }, /^encoding /],
    ['base64 missing padding', { ...ok, encoding: 'base64', content: 'QQ' }, /^content .*base64/],
    ['base64 short padding', { ...ok, encoding: 'base64', content: 'QQ=' }, /^content .*base64/],
    ['base64 bad length', { ...ok, encoding: 'base64', content: 'QUJDR' }, /^content .*base64/],
    ['base64 url-safe -', { ...ok, encoding: 'base64', content: 'ab-c' }, /^content .*base64/],
    ['base64 url-safe _', { ...ok, encoding: 'base64', content: 'ab_c' }, /^content .*base64/],
    ['base64 newline', { ...ok, encoding: 'base64', content: 'QUJD\nREVG' }, /^content .*base64/],
    ['base64 space', { ...ok, encoding: 'base64', content: 'QUJD REVG' }, /^content .*base64/],
    ['base64 trailing newline', { ...ok, encoding: 'base64', content: 'QUJD\n' }, /^content /],
    ['base64 padding inside', { ...ok, encoding: 'base64', content: 'QQ==QUJD' }, /^content /],
    [
      'base64 non-zero pad bits',
      { ...ok, encoding: 'base64', content: 'QR==' },
      /^content .*base64/,
    ],
    ['type xml', { ...ok, type: 'xml' }, /^type must be one of env, toml, yaml, json/],
    ['type JSON (case)', { ...ok, type: 'JSON' }, /^type /],
    ['type null', { ...ok, type: null }, /^type /],
    [
      'json type, invalid JSON',
      { ...ok, type: 'json', content: '{a:1}' },
      /^content is not valid JSON/,
    ],
    ['json type, empty', { ...ok, type: 'json', content: '' }, /^content is not valid JSON/],
    ['json type, trailing junk', { ...ok, type: 'json', content: '{}x' }, /JSON/],
    [
      'json type, BOM',
      { ...ok, type: 'json', encoding: 'base64', content: b64(Buffer.from('\uFEFF{}')) },
      /JSON/,
    ],
    [
      'json type, invalid UTF-8',
      { ...ok, type: 'json', encoding: 'base64', content: b64(Buffer.from([0x22, 0xff, 0x22])) },
      /JSON/,
    ],
    ['metadata array', { ...ok, metadata: ['a'] }, /^metadata must be an object/],
    ['metadata null', { ...ok, metadata: null }, /^metadata must be an object/],
    ['metadata string', { ...ok, metadata: 'a=b' }, /^metadata must be an object/],
    ['metadata Map', { ...ok, metadata: new Map([['a', 'b']]) }, /^metadata must be a plain/],
    ['metadata Date', { ...ok, metadata: new Date() }, /^metadata must be a plain/],
    [
      'metadata 33 keys',
      { ...ok, metadata: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, i])) },
      /^metadata must have at most 32 keys/,
    ],
    ['metadata empty key', { ...ok, metadata: { '': 'x' } }, /^metadata keys /],
    ['metadata key with space', { ...ok, metadata: { 'a b': 'x' } }, /^metadata keys /],
    ['metadata key with /', { ...ok, metadata: { 'a/b': 'x' } }, /^metadata keys /],
    ['metadata 65-char key', { ...ok, metadata: { ['k'.repeat(65)]: 'x' } }, /^metadata keys /],
    ['metadata nested object', { ...ok, metadata: { a: { b: 1 } } }, /^metadata\.a must be/],
    ['metadata array value', { ...ok, metadata: { a: [1] } }, /^metadata\.a must be/],
    ['metadata null value', { ...ok, metadata: { a: null } }, /^metadata\.a must be/],
    ['metadata 1025-char value', { ...ok, metadata: { a: 'x'.repeat(1025) } }, /^metadata\.a /],
    ['metadata NaN', { ...ok, metadata: { a: NaN } }, /^metadata\.a must be a finite/],
    ['metadata Infinity', { ...ok, metadata: { a: Infinity } }, /^metadata\.a must be a finite/],
  ];

  it.each(cases)('%s', (_label, input, message) => {
    const store = makeStore();
    const err = attachError(store, input);
    expect(err.code).toBe('invalid');
    expect(err.message).toMatch(message);
    expect(tree(tmp)).toEqual([]); // nothing created, not even the configs dir
  });

  it('rejects params that are not an object', () => {
    const err = attachError(makeStore(), null as unknown as AttachInput);
    expect(err.code).toBe('invalid');
  });
});

describe('attach size limit (decoded bytes)', () => {
  const limited = () => makeStore({ maxBytes: 8 });

  it('accepts raw content of exactly maxBytes and rejects maxBytes + 1', () => {
    expect(limited().attach({ name: 'a', content: 'x'.repeat(8) }).size).toBe(8);
    const err = attachError(limited(), { name: 'b', content: 'x'.repeat(9) });
    expect(err.code).toBe('invalid');
    expect(err.message).toMatch(/limit is 8 bytes/);
    expect(fs.existsSync(path.join(dir, 'b'))).toBe(false);
  });

  it('counts raw content in UTF-8 bytes, not characters', () => {
    expect(limited().attach({ name: 'a', content: 'é'.repeat(4) }).size).toBe(8);
    expect(attachError(limited(), { name: 'b', content: 'é'.repeat(4) + 'x' }).message).toMatch(
      /9 bytes decoded; the limit is 8 bytes/,
    );
  });

  it('accepts base64 decoding to exactly maxBytes and rejects maxBytes + 1', () => {
    // 8 bytes encode with one "=", 9 with none: the padding arithmetic is exercised both ways.
    const at = b64(Buffer.alloc(8, 7));
    const over = b64(Buffer.alloc(9, 7));
    expect(at.endsWith('=') && !over.endsWith('=')).toBe(true);
    expect(limited().attach({ name: 'a', content: at, encoding: 'base64' }).size).toBe(8);
    const err = attachError(limited(), { name: 'b', content: over, encoding: 'base64' });
    expect(err.code).toBe('invalid');
    expect(err.message).toMatch(/limit is 8 bytes/);
  });

  it('defaults to 1 MiB', () => {
    const store = makeStore();
    expect(store.maxBytes).toBe(DEFAULT_CONFIG_MAX_BYTES);
    expect(DEFAULT_CONFIG_MAX_BYTES).toBe(1024 * 1024);
    expect(store.attach({ name: 'big', content: 'x'.repeat(1024 * 1024) }).size).toBe(1024 * 1024);
    expect(
      attachError(store, { name: 'big2', content: 'x'.repeat(1024 * 1024 + 1) }).message,
    ).toMatch(/limit is 1048576 bytes/);
  });

  it('refuses a nonsensical maxBytes at construction', () => {
    expect(() => makeStore({ maxBytes: 0 })).toThrow(RangeError);
    expect(() => makeStore({ maxBytes: 1.5 })).toThrow(RangeError);
  });
});

describe('attach accepts', () => {
  it.each([
    ['255-char name (sidecar must still fit NAME_MAX)', { name: 'a'.repeat(255), content: 'x' }],
    ['dots inside a name', { name: 'a..b', content: 'x' }],
    ['empty raw content', { name: 'empty', content: '' }],
    ['empty base64 content', { name: 'empty', content: '', encoding: 'base64' }],
    ['valid JSON', { name: 'c.json', content: '{"a":[1,2]}', type: 'json' }],
    ['base64 JSON', { name: 'c.json', content: b64('[true]'), type: 'json', encoding: 'base64' }],
    ['non-JSON content typed toml', { name: 'c.toml', content: 'a = 1', type: 'toml' }],
    [
      'metadata at every limit',
      {
        name: 'm',
        content: 'x',
        metadata: {
          ...Object.fromEntries(Array.from({ length: 31 }, (_, i) => [`k${i}`, i % 2 === 0])),
          ['k'.repeat(64)]: 'v'.repeat(1024),
        },
      },
    ],
  ] as Array<[string, AttachInput]>)('%s', (_label, input) => {
    const store = makeStore();
    const result = store.attach(input);
    expect(result.name).toBe(input.name);
    expect(store.get(result.name)?.meta?.config_id).toBe(result.config_id);
  });

  it('keeps a "__proto__" metadata key as data', () => {
    const metadata: unknown = JSON.parse('{"__proto__": "x", "a": 1}');
    const result = makeStore().attach({ name: 'p', content: 'x', metadata });
    expect(Object.getPrototypeOf(result.metadata)).toBe(Object.prototype);
    expect(Object.keys(result.metadata ?? {})).toEqual(['__proto__', 'a']);
  });
});

describe('round trip', () => {
  it('stores raw content and returns exactly the spec result shape', () => {
    const store = makeStore();
    const content = 'MODEL=gpt-4\nTEMPERATURE=0.7 😀';
    const result = store.attach({
      name: 'agent.env',
      content,
      encoding: 'raw',
      type: 'env',
      metadata: { source: 'element-x', user: 'admin', n: 3, flag: false },
    });
    const filePath = path.join(dir, 'agent.env');
    expect(result).toStrictEqual({
      config_id: 'config-agent.env-1736294400',
      name: 'agent.env',
      path: filePath,
      size: Buffer.byteLength(content),
      type: 'env',
      encoding: 'raw',
      metadata: { source: 'element-x', user: 'admin', n: 3, flag: false },
    });
    expect(Object.keys(result)).toEqual([
      'config_id',
      'name',
      'path',
      'size',
      'type',
      'encoding',
      'metadata',
    ]);
    expect(fs.readFileSync(filePath)).toEqual(Buffer.from(content, 'utf8'));
  });

  it('omits type and metadata when not given and defaults encoding to raw', () => {
    const result = makeStore().attach({ name: 'plain', content: 'abc' });
    expect(result).toStrictEqual({
      config_id: 'config-plain-1736294400',
      name: 'plain',
      path: path.join(dir, 'plain'),
      size: 3,
      encoding: 'raw',
    });
  });

  it('stores the decoded bytes of base64 content', () => {
    const bytes = Buffer.from([0x00, 0xff, 0x10, 0x80, 0x41, 0x0a, 0xfe]);
    const result = makeStore().attach({
      name: 'secret.bin',
      content: b64(bytes),
      encoding: 'base64',
    });
    expect(result.size).toBe(bytes.length);
    expect(result.encoding).toBe('base64');
    expect(fs.readFileSync(path.join(dir, 'secret.bin'))).toEqual(bytes);
  });

  it('records the sidecar and returns it from get()', () => {
    const store = makeStore();
    store.attach({ name: 'c.json', content: '{"x":1}', type: 'json', metadata: { a: 'b' } });
    const record = store.get('c.json');
    const sha = createHash('sha256').update('{"x":1}').digest('hex');
    expect(record).toStrictEqual({
      name: 'c.json',
      path: path.join(dir, 'c.json'),
      size: 7,
      modified: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/),
      sha256: sha,
      meta: {
        config_id: 'config-c.json-1736294400',
        type: 'json',
        encoding: 'raw',
        metadata: { a: 'b' },
        sha256: sha,
        created: '2025-01-08T00:00:00Z',
      },
    });
    expect(JSON.parse(fs.readFileSync(path.join(dir, '.meta', 'c.json'), 'utf8'))).toEqual(
      record?.meta,
    );
  });
});

describe('get', () => {
  it('returns null for an absent name and validates the name', () => {
    const store = makeStore();
    expect(store.get('nothing')).toBeNull();
    expect(() => store.get('../etc/passwd')).toThrow(ConfigStoreError);
  });

  it('does not follow a symlink planted in the directory', () => {
    const store = makeStore();
    store.attach({ name: 'real', content: 'x' });
    fs.writeFileSync(path.join(tmp, 'outside'), 'host secret');
    fs.symlinkSync(path.join(tmp, 'outside'), path.join(dir, 'link'));
    expect(store.get('link')).toBeNull();
    expect(store.list().map((e) => e.name)).toEqual(['real']);
  });

  it('reports meta null when the content changed without its sidecar (crash between renames)', () => {
    const store = makeStore();
    store.attach({ name: 'a', content: 'one', type: 'env' });
    fs.writeFileSync(path.join(dir, 'a'), 'two');
    const record = store.get('a');
    expect(record?.meta).toBeNull();
    expect(record?.sha256).toBe(createHash('sha256').update('two').digest('hex'));
  });

  it('reports meta null when the sidecar is missing or torn', () => {
    const store = makeStore();
    store.attach({ name: 'a', content: 'one' });
    fs.writeFileSync(path.join(dir, '.meta', 'a'), '{"config_id":');
    expect(store.get('a')?.meta).toBeNull();
    fs.rmSync(path.join(dir, '.meta', 'a'));
    expect(store.get('a')?.meta).toBeNull();
    expect(store.get('a')?.size).toBe(3);
  });
});

describe('file modes', () => {
  it('creates files 0640 and directories 0750 whatever the umask', () => {
    const old = process.umask(0o077);
    try {
      makeStore().attach({ name: 'a', content: 'x', metadata: { k: 'v' } });
    } finally {
      process.umask(old);
    }
    expect(mode(dir)).toBe(0o750);
    expect(mode(path.join(dir, '.meta'))).toBe(0o750);
    expect(mode(path.join(dir, 'a'))).toBe(0o640);
    expect(mode(path.join(dir, '.meta', 'a'))).toBe(0o640);
  });

  it('keeps 0640 when a file is replaced', () => {
    const store = makeStore();
    store.attach({ name: 'a', content: 'x' });
    fs.chmodSync(path.join(dir, 'a'), 0o600);
    store.attach({ name: 'a', content: 'y' });
    expect(mode(path.join(dir, 'a'))).toBe(0o640);
  });
});

describe('list', () => {
  it('is empty before anything is attached', () => {
    expect(makeStore().list()).toEqual([]);
  });

  it('returns name, path, size and an ISO 8601 modified time, sorted by name', () => {
    const store = makeStore();
    store.attach({ name: 'model.toml', content: 'a = 1\n' });
    store.attach({ name: 'agent.env', content: 'A=1' });
    store.attach({ name: 'Zed', content: '' });
    fs.utimesSync(path.join(dir, 'agent.env'), T0, new Date('2026-02-11T12:00:00.789Z'));
    expect(store.list()).toEqual([
      { name: 'Zed', path: path.join(dir, 'Zed'), size: 0, modified: expect.any(String) },
      {
        name: 'agent.env',
        path: path.join(dir, 'agent.env'),
        size: 3,
        modified: '2026-02-11T12:00:00Z',
      },
      {
        name: 'model.toml',
        path: path.join(dir, 'model.toml'),
        size: 6,
        modified: expect.any(String),
      },
    ]);
    for (const entry of store.list()) {
      expect(entry.modified).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      expect(Object.keys(entry).sort()).toEqual(['modified', 'name', 'path', 'size']);
    }
  });

  it('ignores temp files, the sidecar dir and anything that is not a regular file', () => {
    const store = makeStore();
    store.attach({ name: 'kept', content: 'x' });
    // What a crash between temp write and rename leaves behind.
    fs.writeFileSync(path.join(dir, '.tmp-0123456789abcdef'), 'MODEL=gp');
    fs.writeFileSync(path.join(dir, '.meta', '.tmp-0123456789abcdef'), '{"con');
    fs.mkdirSync(path.join(dir, 'subdir'));
    expect(store.list().map((e) => e.name)).toEqual(['kept']);
  });
});

describe('re-attach', () => {
  it('replaces the content, the sidecar and the config_id', () => {
    let now = T0;
    const store = makeStore({ now: () => now });
    const first = store.attach({ name: 'a', content: 'one', type: 'env', metadata: { v: 1 } });
    now = T1;
    const second = store.attach({ name: 'a', content: 'three' });
    expect(second.config_id).toBe('config-a-1736294460');
    expect(second.config_id).not.toBe(first.config_id);
    expect(fs.readFileSync(path.join(dir, 'a'), 'utf8')).toBe('three');
    expect(store.list()).toEqual([expect.objectContaining({ name: 'a', size: 5 })]);
    const meta = store.get('a')?.meta;
    expect(meta?.config_id).toBe(second.config_id);
    expect(meta).not.toHaveProperty('type');
    expect(meta).not.toHaveProperty('metadata');
    expect(fs.readdirSync(dir).sort()).toEqual(['.meta', 'a']); // no temp files left
    expect(fs.readdirSync(path.join(dir, '.meta'))).toEqual(['a']);
  });
});

describe('I/O failures', () => {
  it('reports a failed rename as io, keeps no temp file and lists nothing partial', () => {
    const store = makeStore();
    store.attach({ name: 'other', content: 'x' });
    fs.mkdirSync(path.join(dir, 'victim')); // rename(file, dir) fails with EISDIR
    const err = attachError(store, { name: 'victim', content: 'payload' });
    expect(err.code).toBe('io');
    expect(err.message).not.toContain(tmp); // messages may reach clients: no host paths
    expect(fs.readdirSync(dir).sort()).toEqual(['.meta', 'other', 'victim']);
    expect(fs.readdirSync(path.join(dir, 'victim'))).toEqual([]);
    expect(store.list().map((e) => e.name)).toEqual(['other']);
  });

  it('reports an unusable directory as io', () => {
    fs.mkdirSync(path.join(tmp, 'state'));
    fs.writeFileSync(dir, 'a file where the directory should be');
    const err = attachError(makeStore(), { name: 'a', content: 'x' });
    expect(err.code).toBe('io');
    expect(err.cause).toBeDefined();
    expect(() => makeStore().list()).toThrow(expect.objectContaining({ code: 'io' }));
  });
});

describe('check', () => {
  it('resolves for a usable directory, creating it 0750', async () => {
    const old = process.umask(0o077);
    try {
      await expect(makeStore().check()).resolves.toBeUndefined();
    } finally {
      process.umask(old);
    }
    expect(mode(dir)).toBe(0o750);
  });

  it('rejects as io with the errno and no path when the directory is unusable', async () => {
    fs.mkdirSync(path.join(tmp, 'state'));
    fs.writeFileSync(dir, 'not a directory');
    const err: unknown = await makeStore()
      .check()
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(ConfigStoreError);
    expect((err as ConfigStoreError).code).toBe('io');
    expect((err as ConfigStoreError).message).toMatch(/\((EEXIST|ENOTDIR)\)$/);
    expect((err as ConfigStoreError).message).not.toContain(tmp);
  });
});
