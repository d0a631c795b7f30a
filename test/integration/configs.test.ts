// The config methods (docs/api.md, "Config files": attach_config, list_configs)
// against the real bridge process: result shapes, what lands on disk (bytes and modes), the
// spec's validation rules (path traversal, encodings, size limit) and that the bridge keeps
// serving after every rejection. The bridge runs with ARMORCLAW_CONFIG_MAX_BYTES=1000 so the
// attachment size limit can be probed with requests far below the socket's 1 MiB message limit.
import { readFileSync, readdirSync, statSync, existsSync } from 'node:fs';
import path from 'node:path';
import {
  spawnBridge,
  removeDir,
  PROJECT_ROOT,
  type BridgeProcess,
} from '../support/bridge-process';
import { call, ncRequest, PersistentClient } from '../support/socket-clients';

const MAX_BYTES = 1000;
const ISO_SECONDS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$/;

let bridge: BridgeProcess;
let configsDir: string;
let nextId = 1;

const nowSeconds = () => Math.floor(Date.now() / 1000);

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

async function attachOk(params: Record<string, unknown>) {
  const before = nowSeconds();
  const { res } = await rpc('attach_config', params);
  const after = nowSeconds();
  expect(res.error).toBeUndefined();
  return { result: res.result, before, after };
}

/** -32602 with a message that names `field` (if given) and leaks no path or stack. */
async function expectInvalid(params: unknown, field?: RegExp): Promise<string> {
  const { res, raw } = await rpc('attach_config', params);
  expect(res.result).toBeUndefined();
  expect(res.error?.code).toBe(-32602);
  expect(typeof res.error.message).toBe('string');
  if (field) expect(res.error.message).toMatch(field);
  expect(raw).not.toMatch(/\bat [^\s]*\s*\(?\/[^\s]*:\d+/);
  expect(raw).not.toMatch(/\.(ts|js):\d+/);
  expect(raw).not.toContain(PROJECT_ROOT);
  expect(raw).not.toContain(bridge.dir);
  return res.error.message;
}

/**
 * Everything under the test's directory (socket dir and state dir), recursively, except what
 * other parts of the bridge write on their own schedule (Temporal's files, the keystore).
 */
function stateTree(): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      const rel = path.relative(bridge.dir, p);
      if (/^state\/(temporal|keystore\.db|master\.key)/.test(rel)) continue;
      out.push(rel);
      if (e.isDirectory()) walk(p);
    }
  };
  walk(bridge.dir);
  return out.sort();
}

async function expectStillServing(): Promise<void> {
  const status = await call(bridge.socketPath, 'status', undefined, 'alive');
  expect(status.error).toBeUndefined();
  expect(status.result.state).toBe('running');
}

beforeAll(async () => {
  bridge = await spawnBridge({ env: { ARMORCLAW_CONFIG_MAX_BYTES: String(MAX_BYTES) } });
  configsDir = path.join(bridge.stateDir, 'configs');
}, 90_000);

afterAll(async () => {
  await bridge?.stop();
  if (bridge) removeDir(bridge.dir);
}, 30_000);

describe('attach_config', () => {
  test('list_configs is [] before anything is attached', async () => {
    const { res } = await rpc('list_configs');
    expect(res.result).toEqual([]);
  });

  test('raw: result is exactly the spec fields; the file holds the content, mode 0640', async () => {
    const content = 'MODEL=gpt-4\nTEMPERATURE=0.7';
    const metadata = { source: 'element-x', user: 'admin' };
    const { result, before, after } = await attachOk({
      name: 'agent.env',
      content,
      encoding: 'raw',
      type: 'env',
      metadata,
    });
    const expectedPath = path.join(configsDir, 'agent.env');
    expect(Object.keys(result).sort()).toEqual([
      'config_id',
      'encoding',
      'metadata',
      'name',
      'path',
      'size',
      'type',
    ]);
    expect(result).toStrictEqual({
      config_id: expect.stringMatching(/^config-agent\.env-\d+$/),
      name: 'agent.env',
      path: expectedPath,
      size: Buffer.byteLength(content),
      type: 'env',
      encoding: 'raw',
      metadata,
    });
    expect(result.size).toBe(27);
    const stamp = Number(/-(\d+)$/.exec(result.config_id)![1]);
    expect(stamp).toBeGreaterThanOrEqual(before);
    expect(stamp).toBeLessThanOrEqual(after);

    expect(path.dirname(result.path)).toBe(configsDir);
    expect(readFileSync(expectedPath, 'utf8')).toBe(content);
    expect(statSync(expectedPath).mode & 0o777).toBe(0o640);
    expect(statSync(expectedPath).isFile()).toBe(true);
  });

  test('encoding defaults to raw; type and metadata are absent when not given', async () => {
    const content = 'key = "value"\n';
    const { result } = await attachOk({ name: 'model.toml', content });
    expect(result).toStrictEqual({
      config_id: expect.stringMatching(/^config-model\.toml-\d+$/),
      name: 'model.toml',
      path: path.join(configsDir, 'model.toml'),
      size: Buffer.byteLength(content),
      encoding: 'raw',
    });
    expect(readFileSync(result.path, 'utf8')).toBe(content);
  });

  test('size counts bytes, not characters', async () => {
    const content = 'GREETING=héllo wörld 🔑\n';
    const { result } = await attachOk({ name: 'utf8.env', content });
    expect(result.size).toBe(Buffer.byteLength(content, 'utf8'));
    expect(result.size).toBeGreaterThan(content.length);
    expect(readFileSync(result.path).equals(Buffer.from(content, 'utf8'))).toBe(true);
  });

  test('base64: the file holds the decoded bytes, size is the decoded size', async () => {
    const bytes = Buffer.from([0x41, 0x50, 0x49, 0x3d, 0x00, 0xff, 0xfe, 0x0a, 0x80, 0x7f, 0x01]);
    const content = bytes.toString('base64');
    const { result } = await attachOk({ name: 'secret.env', content, encoding: 'base64' });
    expect(result.encoding).toBe('base64');
    expect(result.size).toBe(bytes.length);
    const onDisk = readFileSync(path.join(configsDir, 'secret.env'));
    expect(onDisk.equals(bytes)).toBe(true);
    expect(onDisk.toString('latin1')).not.toBe(content);
    expect(statSync(path.join(configsDir, 'secret.env')).mode & 0o777).toBe(0o640);

    // The spec's own example.
    const spec = Buffer.from('API_KEY=secret123').toString('base64');
    const r2 = await attachOk({ name: 'spec.env', content: spec, encoding: 'base64' });
    expect(readFileSync(r2.result.path, 'utf8')).toBe('API_KEY=secret123');
    expect(r2.result.size).toBe(17);
  });

  test('attaching the same name again replaces the content', async () => {
    await attachOk({ name: 'replace.env', content: 'A=1\nB=2\n' });
    const { result } = await attachOk({ name: 'replace.env', content: 'C=3\n' });
    expect(result.size).toBe(4);
    expect(readFileSync(path.join(configsDir, 'replace.env'), 'utf8')).toBe('C=3\n');
    const { res } = await rpc('list_configs');
    expect(res.result.filter((e: any) => e.name === 'replace.env')).toHaveLength(1);
  });

  test('type json requires valid JSON content', async () => {
    const { result } = await attachOk({ name: 'ok.json', content: '{"a":1}', type: 'json' });
    expect(result.type).toBe('json');
    await expectInvalid({ name: 'bad.json', content: '{"a":', type: 'json' }, /json/i);
    expect(existsSync(path.join(configsDir, 'bad.json'))).toBe(false);
  });

  test('metadata keys are kept as data, including "__proto__"', async () => {
    const raw = `{"jsonrpc":"2.0","id":"proto","method":"attach_config","params":{"name":"proto.env","content":"X=1","metadata":{"__proto__":"p","k":"v"}}}`;
    const res = JSON.parse(await ncRequest(bridge.socketPath, raw));
    expect(res.error).toBeUndefined();
    expect(Object.keys(res.result.metadata).sort()).toEqual(['__proto__', 'k']);
    expect(res.result.metadata.__proto__).toBe('p');

    // And its value obeys the same rules as any other key's: no nested objects.
    const nested = `{"jsonrpc":"2.0","id":"proto2","method":"attach_config","params":{"name":"proto2.env","content":"X=1","metadata":{"__proto__":{"x":1}}}}`;
    const res2 = JSON.parse(await ncRequest(bridge.socketPath, nested));
    expect(res2.error?.code).toBe(-32602);
    expect(res2.error.message).toMatch(/metadata/);
    expect(existsSync(path.join(configsDir, 'proto2.env'))).toBe(false);
  });
});

describe('attach_config rejections (-32602), and the bridge keeps serving', () => {
  const rejected: Array<[string, Record<string, unknown>, RegExp]> = [
    ['path traversal ../x', { name: '../x', content: 'X=1' }, /name/],
    ['traversal ../../etc/cron.d/evil', { name: '../../etc/cron.d/evil', content: 'X=1' }, /name/],
    ['absolute /etc/passwd', { name: '/etc/passwd', content: 'root::0:0::/:/bin/sh' }, /name/],
    ['a/b', { name: 'a/b', content: 'X=1' }, /name/],
    ['backslash a\\b', { name: 'a\\b', content: 'X=1' }, /name/],
    ['.', { name: '.', content: 'X=1' }, /name/],
    ['..', { name: '..', content: 'X=1' }, /name/],
    ['a dot name (.meta)', { name: '.meta', content: 'X=1' }, /name/],
    ['empty name', { name: '', content: 'X=1' }, /name/],
    ['NUL in name', { name: 'a\u0000b.env', content: 'X=1' }, /name/],
    ['bad base64', { name: 'b64.env', content: 'not base64!!', encoding: 'base64' }, /base64/],
    [
      'base64 with whitespace',
      { name: 'b64.env', content: 'QUJD\nREVG', encoding: 'base64' },
      /base64/,
    ],
    ['unpadded base64', { name: 'b64.env', content: 'QUI', encoding: 'base64' }, /base64/],
    ['encoding hex', { name: 'hex.env', content: '414243', encoding: 'hex' }, /encoding/],
    ['unknown type', { name: 't.env', content: 'X=1', type: 'ini' }, /type/],
    ['missing name', { content: 'X=1' }, /\bname\b/],
    ['missing content', { name: 'nocontent.env' }, /\bcontent\b/],
    ['content not a string', { name: 'num.env', content: 42 }, /\bcontent\b/],
    ['metadata not an object', { name: 'm.env', content: 'X=1', metadata: ['a'] }, /metadata/],
    [
      'metadata nested value',
      { name: 'm.env', content: 'X=1', metadata: { a: { b: 1 } } },
      /metadata/,
    ],
    ['unknown field', { name: 'u.env', content: 'X=1', mode: '0777' }, /mode/],
  ];

  test.each(rejected)('%s', async (_label, params, field) => {
    const treeBefore = stateTree();
    const passwdBefore = readFileSync('/etc/passwd');
    await expectInvalid(params, field);
    // Nothing was written anywhere: not in the state dir, not outside it.
    expect(stateTree()).toEqual(treeBefore);
    expect(existsSync(path.join(bridge.stateDir, 'x'))).toBe(false);
    expect(existsSync(path.join(bridge.dir, 'x'))).toBe(false);
    expect(readFileSync('/etc/passwd').equals(passwdBefore)).toBe(true);
    await expectStillServing();
  });

  test('params as an array → -32602', async () => {
    await expectInvalid(['agent.env', 'X=1']);
    await expectStillServing();
  });

  test('a rejection does not close a kept-open connection', async () => {
    const client = await PersistentClient.connect(bridge.socketPath);
    try {
      client.write(
        JSON.stringify({
          jsonrpc: '2.0',
          id: 1,
          method: 'attach_config',
          params: { name: '../x', content: 'X' },
        }),
      );
      client.write(
        JSON.stringify({
          jsonrpc: '2.0',
          id: 2,
          method: 'attach_config',
          params: { name: 'kept.env', content: 'K=1' },
        }),
      );
      const [a, b] = await client.readLines(2);
      expect(a.id).toBe(1);
      expect(a.error.code).toBe(-32602);
      expect(b.id).toBe(2);
      expect(b.result.name).toBe('kept.env');
      expect(client.closed).toBe(false);
    } finally {
      client.close();
    }
  });
});

describe('size limit (ARMORCLAW_CONFIG_MAX_BYTES=1000)', () => {
  test('raw: 1000 bytes accepted, 1001 rejected', async () => {
    const { result } = await attachOk({ name: 'max.env', content: 'a'.repeat(MAX_BYTES) });
    expect(result.size).toBe(MAX_BYTES);
    expect(statSync(path.join(configsDir, 'max.env')).size).toBe(MAX_BYTES);

    const message = await expectInvalid({ name: 'over.env', content: 'a'.repeat(MAX_BYTES + 1) });
    expect(message).toMatch(/1001/);
    expect(message).toMatch(/1000/);
    expect(existsSync(path.join(configsDir, 'over.env'))).toBe(false);
    await expectStillServing();
  });

  test('raw: the limit is in UTF-8 bytes (501 × "é" = 1002 bytes is rejected)', async () => {
    await attachOk({ name: 'e500.env', content: 'é'.repeat(500) });
    await expectInvalid({ name: 'e501.env', content: 'é'.repeat(501) });
    expect(existsSync(path.join(configsDir, 'e501.env'))).toBe(false);
  });

  test('base64: the decoded size counts (1000 ok, 1001 rejected)', async () => {
    const ok = Buffer.alloc(MAX_BYTES, 7);
    const { result } = await attachOk({
      name: 'max.bin',
      content: ok.toString('base64'),
      encoding: 'base64',
    });
    expect(result.size).toBe(MAX_BYTES);
    expect(readFileSync(path.join(configsDir, 'max.bin')).equals(ok)).toBe(true);

    const over = Buffer.alloc(MAX_BYTES + 1, 7).toString('base64');
    expect(over.length).toBeLessThan(1400); // far below the socket limit: the store refuses it
    await expectInvalid({ name: 'over.bin', content: over, encoding: 'base64' });
    expect(existsSync(path.join(configsDir, 'over.bin'))).toBe(false);
    await expectStillServing();
  });

  test('a 2 MiB request exceeds the socket limit: -32600, id null, connection closed', async () => {
    const client = await PersistentClient.connect(bridge.socketPath);
    try {
      const huge = JSON.stringify({
        jsonrpc: '2.0',
        id: 77,
        method: 'attach_config',
        params: { name: 'huge.env', content: 'x'.repeat(2 * 1024 * 1024) },
      });
      client.write(huge + '\n');
      const [res] = await client.readLines(1);
      expect(res.error.code).toBe(-32600);
      expect(res.id).toBeNull();
      expect(res.result).toBeUndefined();
      await client.waitClosed(5_000);
      expect(client.closed).toBe(true);
    } finally {
      client.close();
    }
    expect(existsSync(path.join(configsDir, 'huge.env'))).toBe(false);
    await expectStillServing();
  });
});

describe('list_configs', () => {
  test('lists every attachment with {name, path, size, modified}, sorted, no internals', async () => {
    const before = Date.now();
    const { res } = await rpc('list_configs');
    expect(res.error).toBeUndefined();
    const entries: any[] = res.result;
    const names = entries.map((e) => e.name);

    // Exactly what the tests above attached, and nothing of the store's own (.meta, .tmp-*).
    const onDisk = readdirSync(configsDir)
      .filter((n) => !n.startsWith('.'))
      .sort();
    expect(names).toEqual(onDisk);
    expect(names).toEqual(
      expect.arrayContaining([
        'agent.env',
        'model.toml',
        'secret.env',
        'replace.env',
        'max.env',
        'kept.env',
      ]),
    );
    expect(names).toEqual([...names].sort());
    expect(names.some((n) => n.startsWith('.'))).toBe(false);
    expect(names).not.toContain('over.env');

    for (const e of entries) {
      expect(Object.keys(e).sort()).toEqual(['modified', 'name', 'path', 'size']);
      expect(e.path).toBe(path.join(configsDir, e.name));
      const st = statSync(e.path);
      expect(e.size).toBe(st.size);
      expect(Number.isInteger(e.size)).toBe(true);
      expect(e.modified).toMatch(ISO_SECONDS);
      const t = Date.parse(e.modified);
      expect(Number.isNaN(t)).toBe(false);
      expect(Math.abs(t - st.mtimeMs)).toBeLessThan(1000);
      expect(t).toBeLessThanOrEqual(before + 1000);
      expect(t).toBeGreaterThan(before - 5 * 60_000);
    }
    const agent = entries.find((e) => e.name === 'agent.env');
    expect(agent.size).toBe(27);
    const secret = entries.find((e) => e.name === 'secret.env');
    expect(secret.size).toBe(11);
    const replaced = entries.find((e) => e.name === 'replace.env');
    expect(replaced.size).toBe(4);
  });

  test('params: none, {} and [] are fine; anything else is -32602', async () => {
    const { res: a } = await rpc('list_configs');
    const { res: b } = await rpc('list_configs', {});
    const { res: c } = await rpc('list_configs', []);
    expect(b.result).toEqual(a.result);
    expect(c.result).toEqual(a.result);
    const { res: d } = await rpc('list_configs', { name: 'agent.env' });
    expect(d.error?.code).toBe(-32602);
    expect(d.error.message).toMatch(/name/);
  });

  test('the bridge still answers status at the end', async () => {
    await expectStillServing();
  });
});
