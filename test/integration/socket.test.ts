/**
 * The JSON-RPC socket of the real bridge, driven by byte-level clients that behave like `nc`,
 * `socat`, the spec's Python snippet and pipelining clients; and fed bad input.
 */
import { spawn } from 'node:child_process';
import net from 'node:net';
import { removeDir, spawnBridge, type BridgeProcess } from '../support/bridge-process';
import { PersistentClient, call, ncRequest, parseLines } from '../support/socket-clients';

let bridge: BridgeProcess;

beforeAll(async () => {
  bridge = await spawnBridge({ env: { ARMORCLAW_SOCKET_IDLE_TIMEOUT_MS: '1500' } });
}, 120_000);

afterAll(async () => {
  await bridge?.stop();
  if (bridge) removeDir(bridge.dir);
});

const req = (id: number | string, method: string, params?: unknown) =>
  JSON.stringify({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) });

describe('the spec methods status and health', () => {
  test('status has exactly the spec shape', async () => {
    const res = await call(bridge.socketPath, 'status');
    expect(res).toEqual({
      jsonrpc: '2.0',
      id: 1,
      result: {
        version: '1.0.0',
        state: 'running',
        socket: bridge.socketPath,
        containers: 0,
        container_ids: [],
      },
    });
  });

  test('health is healthy and names its checks', async () => {
    const res = await call(bridge.socketPath, 'health', undefined, 'h');
    expect(res.id).toBe('h');
    expect(res.result.status).toBe('healthy');
    for (const part of ['temporal', 'keystore', 'configs']) {
      expect(res.result.checks[part]).toMatchObject({ status: 'ok' });
    }
  });
});

describe('voice methods on a bridge without Matrix', () => {
  test('start is -32000 (Matrix adapter not configured); bad input is -32602 / -32004', async () => {
    const start = await call(bridge.socketPath, 'webrtc.start', {
      room_id: '!room:example.org',
      key_id: 'nope',
    });
    expect(start.error).toEqual({
      code: -32000,
      message: 'Internal error: Matrix adapter not configured',
    });
    expect((await call(bridge.socketPath, 'webrtc.start', {})).error.code).toBe(-32602);
    expect(
      (await call(bridge.socketPath, 'webrtc.start', { room_id: '!r:x', ttl: 'soon' })).error,
    ).toMatchObject({ code: -32602, message: expect.stringContaining('ttl') });
    expect(
      (await call(bridge.socketPath, 'webrtc.get_audit_log', { limit: 1001 })).error.code,
    ).toBe(-32602);
    expect(
      (await call(bridge.socketPath, 'webrtc.end', { session_id: 'session-abc123' })).error,
    ).toMatchObject({ code: -32004, message: 'Session not found: session-abc123' });
    expect((await call(bridge.socketPath, 'webrtc.list')).result).toEqual({
      active_sessions: 0,
      sessions: [],
    });
    expect((await call(bridge.socketPath, 'webrtc.get_audit_log')).result).toEqual({
      entries: [],
    });
    // The bridge keeps serving.
    expect((await call(bridge.socketPath, 'status')).result.state).toBe('running');
  });
});

describe('framing: every client the spec shows', () => {
  test('nc -N: newline-terminated request, half-close', async () => {
    const out = await ncRequest(bridge.socketPath, req(1, 'status') + '\n');
    expect(out.endsWith('\n')).toBe(true);
    expect(parseLines(out)).toEqual([
      expect.objectContaining({ id: 1, result: expect.any(Object) }),
    ]);
  });

  test("the spec's Python client: one object, no newline, connection left open", async () => {
    const c = await PersistentClient.connect(bridge.socketPath);
    c.write(
      JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'status' }, null, 1).replace(/\n/g, ' '),
    );
    const [res] = await c.readLines(1);
    expect(res.result.state).toBe('running');
    c.close();
  });

  test('several objects pipelined in one write, without separators: answered in order', async () => {
    const c = await PersistentClient.connect(bridge.socketPath);
    c.write(req(1, 'health') + req(2, 'status') + req(3, 'list_configs'));
    const res = await c.readLines(3);
    expect(res.map((r) => r.id)).toEqual([1, 2, 3]);
    expect(res[1].result.state).toBe('running');
    c.close();
  });

  test('pipelined with newlines, split mid-object across writes', async () => {
    const c = await PersistentClient.connect(bridge.socketPath);
    const stream = `${req(1, 'status')}\n${req(2, 'status')}\r\n${req(3, 'health')}\n`;
    for (let i = 0; i < stream.length; i += 7) {
      c.write(stream.slice(i, i + 7));
      await new Promise((r) => setImmediate(r));
    }
    const res = await c.readLines(3);
    expect(res.map((r) => r.id)).toEqual([1, 2, 3]);
    c.close();
  });

  test('a batch is answered with an array, even of one', async () => {
    const one = parseLines(await ncRequest(bridge.socketPath, `[${req(7, 'status')}]`));
    expect(one).toHaveLength(1);
    expect(Array.isArray(one[0])).toBe(true);
    expect((one[0] as any[])[0]).toMatchObject({ id: 7, result: { state: 'running' } });

    const two = parseLines(
      await ncRequest(
        bridge.socketPath,
        `[${req(1, 'status')},{"jsonrpc":"2.0","method":"health"},${req(2, 'nope')}]`,
      ),
    );
    const batch = two[0] as any[];
    expect(batch.map((r) => r.id)).toEqual([1, 2]);
    expect(batch[1].error.code).toBe(-32601);
  });

  test('notifications get no response; a batch of notifications gets nothing at all', async () => {
    const out = await ncRequest(
      bridge.socketPath,
      '{"jsonrpc":"2.0","method":"status"}\n[{"jsonrpc":"2.0","method":"health"}]\n' +
        req(9, 'status'),
    );
    const lines = parseLines(out);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ id: 9 });
  });
});

describe('bad input gets the spec code and the bridge keeps serving', () => {
  const cases: Array<[string, string, number, unknown]> = [
    ['malformed JSON', '{"jsonrpc":"2.0","id":1,"method":}', -32700, null],
    ['truncated JSON before half-close', '{"jsonrpc":"2.0","id":1', -32700, null],
    ['a bare number', '42', -32600, null],
    ['an empty batch', '[]', -32600, null],
    ['wrong jsonrpc version', '{"jsonrpc":"1.0","id":3,"method":"status"}', -32600, 3],
    ['method not a string', '{"jsonrpc":"2.0","id":4,"method":5}', -32600, 4],
    ['params a string', '{"jsonrpc":"2.0","id":5,"method":"status","params":"x"}', -32600, 5],
    ['unknown method', '{"jsonrpc":"2.0","id":6,"method":"launch_missiles"}', -32601, 6],
    [
      'params on a method that takes none',
      '{"jsonrpc":"2.0","id":7,"method":"status","params":{"x":1}}',
      -32602,
      7,
    ],
    ['object id', '{"jsonrpc":"2.0","id":{},"method":"status"}', -32600, null],
  ];
  test.each(cases)('%s', async (_name, payload, code, id) => {
    const lines = parseLines(await ncRequest(bridge.socketPath, payload));
    expect(lines).toHaveLength(1);
    const res = lines[0] as any;
    expect(res.jsonrpc).toBe('2.0');
    expect(res.id).toEqual(id);
    expect(res.error.code).toBe(code);
    expect(typeof res.error.message).toBe('string');
    expect(JSON.stringify(res)).not.toMatch(/\s+at\s|\/work\/|node_modules|\.ts:/);
  });

  test('[null] is answered with an array holding one -32600', async () => {
    const [res] = parseLines(await ncRequest(bridge.socketPath, '[null]')) as any[];
    expect(res).toEqual([
      { jsonrpc: '2.0', id: null, error: expect.objectContaining({ code: -32600 }) },
    ]);
  });

  test('after a parse error the same connection answers the next request', async () => {
    const c = await PersistentClient.connect(bridge.socketPath);
    c.write('{"oops":}\n' + req(2, 'status') + '\n');
    const [bad, good] = await c.readLines(2);
    expect(bad.error.code).toBe(-32700);
    expect(good).toMatchObject({ id: 2, result: { state: 'running' } });
    c.close();
  });

  test('a 5 MB frame gets -32600 and its connection is closed; others are served', async () => {
    const c = await PersistentClient.connect(bridge.socketPath);
    const big =
      '{"jsonrpc":"2.0","id":1,"method":"store_key","params":{"pad":"' +
      'x'.repeat(5 * 1024 * 1024) +
      '"}}';
    c.write(big);
    const [res] = await c.readLines(1);
    expect(res.error.code).toBe(-32600);
    expect(res.error.message).toMatch(/larger than 1463640 bytes/);
    await c.waitClosed(5_000);
    expect((await call(bridge.socketPath, 'status')).result.state).toBe('running');
  });

  test('half-closed, abandoned and idle connections harm nothing', async () => {
    // abandoned mid-request
    for (let i = 0; i < 20; i++) {
      const s = net.connect(bridge.socketPath);
      await new Promise((r) => s.once('connect', r));
      s.write('{"jsonrpc":"2.0","id":1,"meth');
      s.destroy();
    }
    // a request sent, then the client vanishes before the answer
    for (let i = 0; i < 20; i++) {
      const s = net.connect(bridge.socketPath);
      await new Promise((r) => s.once('connect', r));
      s.write(req(i, 'health'));
      s.destroy();
    }
    // half-closed with nothing sent
    const h = net.connect(bridge.socketPath);
    await new Promise((r) => h.once('connect', r));
    h.end();
    // idle: closed by the bridge after the idle timeout (1.5 s in this suite)
    const idle = await PersistentClient.connect(bridge.socketPath);
    await idle.waitClosed(5_000);

    expect((await call(bridge.socketPath, 'health')).result.status).toBe('healthy');
  });

  test('200 concurrent connections are all answered', async () => {
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        call(bridge.socketPath, i % 2 ? 'status' : 'health', undefined, i),
      ),
    );
    results.forEach((r, i) => {
      expect(r.id).toBe(i);
      expect(r.error).toBeUndefined();
    });
    expect((await call(bridge.socketPath, 'status')).result.state).toBe('running');
  });
});

describe('the real tools the spec shows', () => {
  const run = (cmd: string, args: string[], input: string) =>
    new Promise<{ code: number | null; out: string; err: string }>((resolve, reject) => {
      const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (err += d));
      child.on('error', reject);
      child.on('exit', (code) => resolve({ code, out, err }));
      child.stdin.end(input);
    });

  test('echo … | nc -N -U', async () => {
    const { code, out } = await run('nc', ['-N', '-U', bridge.socketPath], req(1, 'status') + '\n');
    expect(code).toBe(0);
    expect(parseLines(out)).toEqual([
      expect.objectContaining({ id: 1, result: expect.objectContaining({ state: 'running' }) }),
    ]);
  });

  test("the spec's multi-line attach_config example through socat", async () => {
    const payload = `{
  "jsonrpc":"2.0",
  "id":1,
  "method":"attach_config",
  "params":{
    "name":"agent.env",
    "content":"MODEL=gpt-4\\nMAX_TOKENS=4096",
    "encoding":"raw",
    "type":"env"
  }
}
`;
    const { code, out } = await run('socat', ['-', `UNIX-CONNECT:${bridge.socketPath}`], payload);
    expect(code).toBe(0);
    const [res] = parseLines(out) as any[];
    expect(res.result).toMatchObject({ name: 'agent.env', size: 27, type: 'env', encoding: 'raw' });
  });

  test("the spec's Python client, verbatim (sendall with no newline, one recv)", async () => {
    const script = `
import socket
import json

sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.connect(${JSON.stringify(bridge.socketPath)})
request = {"jsonrpc": "2.0", "id": 1, "method": "status"}
sock.sendall(json.dumps(request).encode())
response = json.loads(sock.recv(4096).decode())
print(json.dumps(response))
`;
    const { code, out, err } = await run('python3', ['-c', script], '');
    expect(err).toBe('');
    expect(code).toBe(0);
    expect(JSON.parse(out).result).toMatchObject({ state: 'running', containers: 0 });
  });
});
