// The keystore methods (docs/api.md, "Keystore": store_key, get_key,
// list_keys) against the real bridge process: wire shapes, error codes, that tokens never show
// up where they must not (list_keys, error responses, the database files), that the CLI and
// the bridge share one keystore, and that keys survive a restart.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import {
  spawnBridge,
  removeDir,
  PROJECT_ROOT,
  type BridgeProcess,
} from '../support/bridge-process';
import { call, ncRequest } from '../support/socket-clients';

const PROVIDERS = ['openai', 'anthropic', 'openrouter', 'google', 'xai'];

let bridge: BridgeProcess;
let dir: string;
let nextId = 100;

/** A token no other test uses, so finding it anywhere points at exactly one leak. */
const freshToken = (tag: string) => `sk-${tag}-${randomBytes(12).toString('hex')}`;
const nowSeconds = () => Math.floor(Date.now() / 1000);

/** One call; also returns the raw response text for leak checks. */
async function rpc(method: string, params?: unknown): Promise<{ res: any; raw: string }> {
  const id = nextId++;
  const req: Record<string, unknown> = { jsonrpc: '2.0', id, method };
  if (params !== undefined) req.params = params;
  const raw = await ncRequest(bridge.socketPath, JSON.stringify(req));
  const lines = raw.split('\n').filter((l) => l.trim() !== '');
  expect(lines).toHaveLength(1);
  const res = JSON.parse(lines[0]!);
  expect(res.jsonrpc).toBe('2.0');
  expect(res.id).toBe(id);
  return { res, raw };
}

/** Asserts an error response with `code`, a message with no stack or host path, and no token. */
async function expectError(
  method: string,
  params: unknown,
  code: number,
  opts: { messageMatches?: RegExp; secrets?: string[] } = {},
): Promise<string> {
  const { res, raw } = await rpc(method, params);
  expect(res.result).toBeUndefined();
  expect(res.error).toBeDefined();
  expect(res.error.code).toBe(code);
  expect(typeof res.error.message).toBe('string');
  expect(res.error.message.length).toBeGreaterThan(0);
  if (opts.messageMatches) expect(res.error.message).toMatch(opts.messageMatches);
  expectNoInternals(raw);
  for (const s of opts.secrets ?? []) expect(raw).not.toContain(s);
  return res.error.message;
}

function expectNoInternals(raw: string): void {
  // No stack frames ("at fn (/path/file.ts:1:2)"), no source paths, no library names.
  expect(raw).not.toMatch(/\bat [^\s]*\s*\(?\/[^\s]*:\d+/);
  expect(raw).not.toMatch(/\/(work|home|root|tmp|usr)\//);
  expect(raw).not.toMatch(/\.(ts|js):\d+/);
  expect(raw).not.toMatch(/node_modules|SQLITE_|better-sqlite3/);
  expect(raw).not.toContain(PROJECT_ROOT);
  expect(raw).not.toContain(bridge.dir);
}

async function storeKey(params: Record<string, unknown>) {
  const before = nowSeconds();
  const { res, raw } = await rpc('store_key', params);
  const after = nowSeconds();
  expect(res.error).toBeUndefined();
  return { res, raw, before, after };
}

/** Raw bytes of every `keystore.db*` file in the state dir. */
function keystoreFiles(): Array<{ name: string; bytes: Buffer }> {
  return readdirSync(bridge.stateDir)
    .filter((n) => n.startsWith('keystore.db'))
    .map((n) => ({ name: n, bytes: readFileSync(path.join(bridge.stateDir, n)) }));
}

function runCli(
  args: string[],
  stdin: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [path.join(PROJECT_ROOT, 'cli', 'armorclaw.js'), ...args],
      { cwd: bridge.dir, env: bridge.env, timeout: 30_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
    child.stdin!.end(stdin);
  });
}

beforeAll(async () => {
  // No ARMORCLAW_MASTER_KEY: the bridge makes <stateDir>/master.key, which the CLI then reads.
  bridge = await spawnBridge({ env: { ARMORCLAW_MASTER_KEY: '' } });
  dir = bridge.dir;
}, 90_000);

afterAll(async () => {
  await bridge?.stop();
  if (dir) removeDir(dir);
}, 30_000);

describe('store_key', () => {
  test('returns exactly {id, provider, created_at} with created_at the current unix time', async () => {
    const token = freshToken('store');
    const { res, raw, before, after } = await storeKey({
      id: 'openai-key-1',
      provider: 'openai',
      token,
      display_name: 'Production OpenAI Key',
      tags: ['production', 'gpt-4'],
    });
    expect(Object.keys(res.result).sort()).toEqual(['created_at', 'id', 'provider']);
    expect(res.result.id).toBe('openai-key-1');
    expect(res.result.provider).toBe('openai');
    expect(Number.isInteger(res.result.created_at)).toBe(true);
    expect(res.result.created_at).toBeGreaterThanOrEqual(before);
    expect(res.result.created_at).toBeLessThanOrEqual(after);
    // The answer to a store never echoes the token.
    expect(raw).not.toContain(token);
  });

  test('accepts every provider of Appendix A', async () => {
    for (const provider of PROVIDERS) {
      const { res } = await storeKey({
        id: `each-${provider}`,
        provider,
        token: freshToken(provider),
      });
      expect(res.result).toMatchObject({ id: `each-${provider}`, provider });
    }
  });

  test('invalid provider → -32602 naming provider, nothing stored', async () => {
    const token = freshToken('badprov');
    await expectError('store_key', { id: 'bad-prov', provider: 'openaii', token }, -32602, {
      messageMatches: /provider/,
      secrets: [token],
    });
    await expectError('get_key', { id: 'bad-prov' }, -3);
  });

  test.each(['id', 'provider', 'token'])('missing %s → -32602 naming the field', async (field) => {
    const token = freshToken('missing');
    const params: Record<string, unknown> = { id: `missing-${field}`, provider: 'openai', token };
    delete params[field];
    const message = await expectError('store_key', params, -32602, { secrets: [token] });
    expect(message).toMatch(new RegExp(`\\b${field}\\b`));
  });

  test.each([
    ['token', 'a number', { token: 12345 }],
    ['tags', 'not an array', { tags: 'production' }],
    ['tags', 'an array of non-strings', { tags: [1, 2] }],
    ['expires_at', 'a string', { expires_at: '1741459200' }],
    ['expires_at', 'a fraction', { expires_at: nowSeconds() + 3600.5 }],
    ['display_name', 'a number', { display_name: 7 }],
    ['id', 'a number', { id: 42 }],
  ])('%s as %s → -32602 naming the field', async (field, _what, patch) => {
    const token = freshToken('types');
    const params = { id: `types-${field}-${nextId}`, provider: 'openai', token, ...patch };
    const message = await expectError('store_key', params, -32602, { secrets: [token] });
    expect(message).toContain(field);
    if (typeof params.id === 'string') await expectError('get_key', { id: params.id }, -3);
  });

  test('unknown field → -32602 naming it, nothing stored', async () => {
    const token = freshToken('unknown');
    const message = await expectError(
      'store_key',
      { id: 'unknown-field', provider: 'openai', token, colour: 'blue' },
      -32602,
      { secrets: [token] },
    );
    expect(message).toContain('colour');
    await expectError('get_key', { id: 'unknown-field' }, -3);
  });

  test('duplicate id → -32602 and the first token is kept', async () => {
    const first = freshToken('dup1');
    const second = freshToken('dup2');
    await storeKey({ id: 'dup-key', provider: 'anthropic', token: first });
    const message = await expectError(
      'store_key',
      { id: 'dup-key', provider: 'openai', token: second },
      -32602,
      { secrets: [first, second] },
    );
    expect(message).toContain('dup-key');
    const { res } = await rpc('get_key', { id: 'dup-key' });
    expect(res.result.token).toBe(first);
    expect(res.result.provider).toBe('anthropic');
  });

  test('expires_at in the past (or now) → -32602', async () => {
    const token = freshToken('past');
    const message = await expectError(
      'store_key',
      { id: 'past-key', provider: 'openai', token, expires_at: nowSeconds() - 60 },
      -32602,
      { secrets: [token] },
    );
    expect(message).toContain('expires_at');
    await expectError('get_key', { id: 'past-key' }, -3);
  });

  test('params as a (non-empty) array → -32602', async () => {
    const token = freshToken('array');
    await expectError('store_key', ['array-key', 'openai', token], -32602, { secrets: [token] });
    await expectError('get_key', { id: 'array-key' }, -3);
  });

  test('no params at all → -32602', async () => {
    await expectError('store_key', undefined, -32602, { messageMatches: /id/ });
  });
});

describe('get_key', () => {
  test('returns the token and every field', async () => {
    const token = freshToken('get');
    const expiresAt = nowSeconds() + 86_400;
    const { res: stored } = await storeKey({
      id: 'get-me',
      provider: 'xai',
      token,
      display_name: 'Grok key',
      expires_at: expiresAt,
      tags: ['a', 'b'],
    });
    const { res } = await rpc('get_key', { id: 'get-me' });
    expect(res.error).toBeUndefined();
    expect(res.result).toStrictEqual({
      id: 'get-me',
      provider: 'xai',
      token,
      display_name: 'Grok key',
      created_at: stored.result.created_at,
      expires_at: expiresAt,
      tags: ['a', 'b'],
    });
  });

  test('defaults: display_name, expires_at null, tags []', async () => {
    const token = freshToken('defaults');
    await storeKey({ id: 'defaults-key', provider: 'google', token });
    const { res } = await rpc('get_key', { id: 'defaults-key' });
    expect(res.result.token).toBe(token);
    expect(res.result.expires_at).toBeNull();
    expect(res.result.tags).toEqual([]);
    expect(typeof res.result.display_name).toBe('string');
  });

  test('a token with unicode and JSON-special characters round-trips exactly', async () => {
    const token = `tok-"quoted"\\back\\slash-é-🔑-${randomBytes(4).toString('hex')}`;
    await storeKey({ id: 'unicode-key', provider: 'openrouter', token });
    const { res } = await rpc('get_key', { id: 'unicode-key' });
    expect(res.result.token).toBe(token);
  });

  test('unknown id → -3', async () => {
    const message = await expectError('get_key', { id: 'no-such-key' }, -3);
    expect(message).toContain('no-such-key');
  });

  test('missing id → -32602 naming id', async () => {
    await expectError('get_key', {}, -32602, { messageMatches: /\bid\b/ });
    await expectError('get_key', undefined, -32602, { messageMatches: /\bid\b/ });
  });

  test('id of the wrong type, or an unknown field → -32602', async () => {
    await expectError('get_key', { id: 7 }, -32602, { messageMatches: /\bid\b/ });
    await expectError('get_key', { id: 'get-me', extra: true }, -32602, {
      messageMatches: /extra/,
    });
  });

  test('params as an array → -32602', async () => {
    await expectError('get_key', ['get-me'], -32602);
  });

  test('an expired key → -32603 without its token; it still lists', async () => {
    const token = freshToken('expiring');
    const expiresAt = nowSeconds() + 2;
    await storeKey({ id: 'expiring-key', provider: 'openai', token, expires_at: expiresAt });
    // Before expiry the key is readable, so the later failure is the expiry and nothing else.
    const { res: fresh } = await rpc('get_key', { id: 'expiring-key' });
    expect(fresh.result?.token).toBe(token);

    while (Date.now() < (expiresAt + 1) * 1000) await new Promise((r) => setTimeout(r, 200));
    const message = await expectError('get_key', { id: 'expiring-key' }, -32603, {
      secrets: [token],
    });
    expect(message).toMatch(/expired/i);

    const { res: list, raw } = await rpc('list_keys', { provider: 'openai' });
    expect(list.result.map((k: any) => k.id)).toContain('expiring-key');
    expect(raw).not.toContain(token);
  }, 20_000);
});

describe('list_keys', () => {
  test('lists stored keys with the spec fields and never a token', async () => {
    const tokens = [freshToken('list1'), freshToken('list2')];
    await storeKey({ id: 'list-a', provider: 'anthropic', token: tokens[0], tags: ['x'] });
    await storeKey({ id: 'list-b', provider: 'openai', token: tokens[1], display_name: 'B' });
    const { res, raw } = await rpc('list_keys');
    expect(Array.isArray(res.result)).toBe(true);
    const ids = res.result.map((k: any) => k.id);
    expect(ids).toEqual(expect.arrayContaining(['list-a', 'list-b', 'openai-key-1', 'get-me']));
    for (const entry of res.result) {
      expect(Object.keys(entry).sort()).toEqual([
        'created_at',
        'display_name',
        'expires_at',
        'id',
        'provider',
        'tags',
      ]);
      expect(Number.isInteger(entry.created_at)).toBe(true);
      expect(entry.expires_at === null || Number.isInteger(entry.expires_at)).toBe(true);
      expect(Array.isArray(entry.tags)).toBe(true);
    }
    const a = res.result.find((k: any) => k.id === 'list-a');
    expect(a).toMatchObject({ provider: 'anthropic', tags: ['x'], expires_at: null });
    const b = res.result.find((k: any) => k.id === 'list-b');
    expect(b).toMatchObject({ provider: 'openai', display_name: 'B', tags: [] });
    // Neither the field nor any token's text, anywhere in the response. (get_key's answer
    // does have both, so these checks do look at the right thing.)
    const { raw: getRaw } = await rpc('get_key', { id: 'list-a' });
    expect(getRaw).toMatch(/"token"/);
    expect(getRaw).toContain(tokens[0]);
    expect(raw).not.toMatch(/"token"/);
    for (const t of tokens) expect(raw).not.toContain(t);
    expect(raw).not.toMatch(/sk-[a-z0-9]+-[0-9a-f]{24}/);
  });

  test('empty params object and empty array mean "all"', async () => {
    const { res: all } = await rpc('list_keys');
    const { res: empty } = await rpc('list_keys', {});
    const { res: emptyArray } = await rpc('list_keys', []);
    expect(empty.result).toEqual(all.result);
    expect(emptyArray.result).toEqual(all.result);
  });

  test('provider filter returns only that provider', async () => {
    const { res: all } = await rpc('list_keys');
    for (const provider of PROVIDERS) {
      const { res, raw } = await rpc('list_keys', { provider });
      expect(res.error).toBeUndefined();
      expect(res.result.length).toBeGreaterThan(0); // each-<provider> at least
      expect(res.result.every((k: any) => k.provider === provider)).toBe(true);
      expect(res.result).toEqual(all.result.filter((k: any) => k.provider === provider));
      expect(raw).not.toMatch(/"token"/);
    }
  });

  test('invalid provider → -32602', async () => {
    await expectError('list_keys', { provider: 'OpenAI' }, -32602, { messageMatches: /provider/ });
    await expectError('list_keys', { provider: 42 }, -32602, { messageMatches: /provider/ });
    await expectError('list_keys', { provider: 'openai', extra: 1 }, -32602, {
      messageMatches: /extra/,
    });
  });
});

describe('at rest', () => {
  test('no keystore.db* file holds a token in the clear', async () => {
    const token = freshToken('atrest');
    await storeKey({ id: 'at-rest-key', provider: 'openai', token, display_name: 'at rest' });
    const { res } = await rpc('get_key', { id: 'at-rest-key' });
    expect(res.result.token).toBe(token);

    const files = keystoreFiles();
    expect(files.map((f) => f.name)).toContain('keystore.db');
    const all = Buffer.concat(files.map((f) => f.bytes));
    // These are the right files: the key's id and display name are stored in the clear.
    expect(all.includes(Buffer.from('at-rest-key'))).toBe(true);
    for (const f of files) {
      expect({ file: f.name, hasToken: f.bytes.includes(Buffer.from(token)) }).toEqual({
        file: f.name,
        hasToken: false,
      });
      expect(f.bytes.includes(Buffer.from(token.slice(0, 20)))).toBe(false);
    }
    // Not even the earlier tokens whose keys were listed and read above.
    expect(all.includes(Buffer.from('sk-store-'))).toBe(false);
    expect(all.includes(Buffer.from('sk-get-'))).toBe(false);
  });
});

describe('CLI and bridge share one keystore', () => {
  test('a key added with `armorclaw add-key` is readable over RPC while the bridge runs', async () => {
    expect(existsSync(path.join(bridge.stateDir, 'master.key'))).toBe(true);
    const token = freshToken('cli');
    const r = await runCli(
      ['add-key', '--provider', 'anthropic', '--id', 'cli-key', '--tag', 'from-cli'],
      token + '\n',
    );
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(r.stdout).toContain('cli-key');
    expect(r.stdout + r.stderr).not.toContain(token);

    const { res } = await rpc('get_key', { id: 'cli-key' });
    expect(res.error).toBeUndefined();
    expect(res.result).toMatchObject({
      id: 'cli-key',
      provider: 'anthropic',
      token, // the trailing newline from stdin is not part of the token
      tags: ['from-cli'],
      expires_at: null,
    });
    const { res: list } = await rpc('list_keys', { provider: 'anthropic' });
    expect(list.result.map((k: any) => k.id)).toContain('cli-key');
  });

  test('a key stored over RPC shows in `armorclaw list-keys --json` without its token', async () => {
    const token = freshToken('rpc2cli');
    await storeKey({ id: 'rpc-to-cli', provider: 'google', token });
    const r = await runCli(['list-keys', '--provider', 'google', '--json'], '');
    expect(r.code).toBe(0);
    const listed = JSON.parse(r.stdout);
    expect(listed.map((k: any) => k.id)).toContain('rpc-to-cli');
    expect(r.stdout).not.toContain(token);
  });
});

describe('restart', () => {
  test('keys survive a bridge restart on the same state directory', async () => {
    const token = freshToken('restart');
    await storeKey({ id: 'survivor', provider: 'openrouter', token, tags: ['keep'] });
    const { res: before } = await rpc('list_keys');

    const code = await bridge.stop();
    expect(code).toBe(0);
    bridge = await spawnBridge({ dir, env: { ARMORCLAW_MASTER_KEY: '' } });

    const { res } = await rpc('get_key', { id: 'survivor' });
    expect(res.error).toBeUndefined();
    expect(res.result).toMatchObject({
      id: 'survivor',
      provider: 'openrouter',
      token,
      tags: ['keep'],
    });
    const { res: cli } = await rpc('get_key', { id: 'cli-key' });
    expect(cli.result?.id).toBe('cli-key');
    expect(typeof cli.result?.token).toBe('string');
    const { res: after } = await rpc('list_keys');
    expect(after.result).toEqual(before.result);
    // And the new process still refuses what it should.
    await expectError(
      'store_key',
      { id: 'survivor', provider: 'openai', token: freshToken('x') },
      -32602,
    );
    const status = await call(bridge.socketPath, 'status', undefined, 9);
    expect(status.result?.state).toBe('running');
  }, 120_000);
});
