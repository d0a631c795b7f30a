/**
 * The API reference's own shell examples, typed as a user types them (only the socket path is
 * this test bridge's), against the real bridge with its default idle timeout (2 minutes). Plain
 * `nc -U` never half-closes, so it returns only because the bridge closes a connection that had
 * all its answers and then went quiet. Also: who stays open past that quiet time, and configs up
 * to the size limit through the base64 path.
 */
import { spawn } from 'node:child_process';
import { removeDir, spawnBridge, type BridgeProcess } from '../support/bridge-process';
import { PersistentClient, call, parseLines } from '../support/socket-clients';

let bridge: BridgeProcess;

beforeAll(async () => {
  bridge = await spawnBridge();
}, 120_000);

afterAll(async () => {
  await bridge?.stop();
  if (bridge) removeDir(bridge.dir);
});

/** Far below the 2-minute idle timeout: a client still open then was not closed for quiet. */
const RETURNS_WITHIN_MS = 5_000;
const QUIET_CLOSE_MS = 500;

/** Runs a shell snippet; it must exit by itself within RETURNS_WITHIN_MS. */
function shell(script: string): Promise<{ code: number | null; out: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn(
      'bash',
      ['-c', script.replaceAll('/run/armorclaw/bridge.sock', bridge.socketPath)],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(`still running after ${RETURNS_WITHIN_MS} ms; printed ${JSON.stringify(out)}`),
      );
    }, RETURNS_WITHIN_MS);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out, ms: Date.now() - started });
    });
  });
}

const request = (id: number, method: string, params?: unknown) =>
  JSON.stringify({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) });

describe('the examples as written', () => {
  test('echo … | nc -U (netcat without -N) prints the answer and returns', async () => {
    const { code, out } = await shell(
      `echo '{"jsonrpc":"2.0","id":1,"method":"status"}' | nc -U /run/armorclaw/bridge.sock`,
    );
    expect(code).toBe(0);
    expect(parseLines(out)).toEqual([
      expect.objectContaining({ id: 1, result: expect.objectContaining({ state: 'running' }) }),
    ]);
  });

  test('the base64 attach_config example through socat', async () => {
    const { code, out } = await shell(`
SECRET=$(echo -n "API_KEY=secret123" | base64)
echo "{
  \\"jsonrpc\\":\\"2.0\\",
  \\"id\\":2,
  \\"method\\":\\"attach_config\\",
  \\"params\\":{
    \\"name\\":\\"secret.env\\",
    \\"content\\":\\"$SECRET\\",
    \\"encoding\\":\\"base64\\"
  }
}" | socat - UNIX-CONNECT:/run/armorclaw/bridge.sock`);
    expect(code).toBe(0);
    const [res] = parseLines(out) as any[];
    expect(res).toMatchObject({
      id: 2,
      result: { name: 'secret.env', size: 17, encoding: 'base64' },
    });
    // The answer describes the file; it never echoes what is in it.
    expect(out).not.toContain('secret123');
  });

  test('several requests through one nc -U are all answered before it returns', async () => {
    const { code, out } = await shell(
      `printf '%s\\n%s\\n' '${request(1, 'status')}' '${request(2, 'health')}' | nc -U /run/armorclaw/bridge.sock`,
    );
    expect(code).toBe(0);
    expect(parseLines(out).map((r: any) => r.id)).toEqual([1, 2]);
  });
});

describe('who is closed for quiet, and who is not', () => {
  const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

  test('a client quiet after its answers is closed; one that keeps talking is not', async () => {
    const chatty = await PersistentClient.connect(bridge.socketPath);
    for (let i = 1; i <= 4; i++) {
      chatty.write(request(i, 'status'));
      expect((await chatty.readLines(1))[0].id).toBe(i);
      await pause(QUIET_CLOSE_MS / 4);
    }
    expect(chatty.closed).toBe(false);
    await chatty.waitClosed(RETURNS_WITHIN_MS);
  });

  test('a half-sent request keeps its connection open; the rest is answered when it comes', async () => {
    const c = await PersistentClient.connect(bridge.socketPath);
    c.write(request(1, 'status'));
    await c.readLines(1);
    const second = request(2, 'status');
    c.write(second.slice(0, 10));
    await pause(QUIET_CLOSE_MS * 3);
    expect(c.closed).toBe(false);
    c.write(second.slice(10));
    expect((await c.readLines(1))[0]).toMatchObject({ id: 2, result: { state: 'running' } });
    c.close();
  });

  test('a subscriber stays open until it unsubscribes', async () => {
    const c = await PersistentClient.connect(bridge.socketPath);
    c.write(request(1, 'matrix.subscribe', {}));
    const [sub] = await c.readLines(1);
    expect(sub.result.subscription).toMatch(/^sub-/);
    await pause(QUIET_CLOSE_MS * 3);
    expect(c.closed).toBe(false);
    c.write(request(2, 'matrix.unsubscribe', { subscription: sub.result.subscription }));
    expect((await c.readLines(1))[0].result.status).toBe('unsubscribed');
    await c.waitClosed(RETURNS_WITHIN_MS);
  });

  test('a client that connects and says nothing is left to the idle timeout', async () => {
    const c = await PersistentClient.connect(bridge.socketPath);
    await pause(QUIET_CLOSE_MS * 3);
    expect(c.closed).toBe(false);
    c.write(request(1, 'status'));
    expect((await c.readLines(1))[0].id).toBe(1);
    c.close();
  });
});

describe('configs up to the limit through the base64 path', () => {
  const MAX = 1024 * 1024;
  const attach = (name: string, bytes: number) =>
    call(
      bridge.socketPath,
      'attach_config',
      {
        name,
        content: Buffer.alloc(bytes, 'k').toString('base64'),
        encoding: 'base64',
        metadata: { source: 'test' },
      },
      1,
      30_000,
    );

  test('1,000,000 bytes and exactly 1 MiB attach', async () => {
    for (const [name, bytes] of [
      ['million.bin', 1_000_000],
      ['mebibyte.bin', MAX],
    ] as const) {
      const res = await attach(name, bytes);
      expect(res.error).toBeUndefined();
      expect(res.result).toMatchObject({ name, size: bytes, encoding: 'base64' });
    }
  });

  test('one byte over 1 MiB is -32602 naming the limit, and the connection was not cut', async () => {
    const res = await attach('over.bin', MAX + 1);
    expect(res.error).toEqual({
      code: -32602,
      message: `Invalid params: content is ${MAX + 1} bytes decoded; the limit is ${MAX} bytes`,
    });
    const listed = (await call(bridge.socketPath, 'list_configs')).result as Array<{
      name: string;
    }>;
    expect(listed.map((c) => c.name)).not.toContain('over.bin');
  });
});
