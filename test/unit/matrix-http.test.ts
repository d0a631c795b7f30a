import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { isPermanentMatrixError } from '../../matrix/client';
import { MatrixConnectionError, MatrixHttp, MatrixHttpError } from '../../matrix/http';

interface Seen {
  method: string;
  url: string;
  auth?: string;
  contentType?: string;
  body: string;
}

describe('MatrixHttp: the bridge’s client of the client-server API', () => {
  let server: http.Server;
  let base: string;
  const seen: Seen[] = [];
  let answer: (req: http.IncomingMessage, res: http.ServerResponse) => void;

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        seen.push({
          method: req.method!,
          url: req.url!,
          auth: req.headers.authorization,
          contentType: req.headers['content-type'],
          body,
        });
        answer(req, res);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => {
    server.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  });
  beforeEach(() => (seen.length = 0));

  const json = (status: number, body: unknown) => (_: unknown, res: http.ServerResponse) => {
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(body));
  };

  test('sends the token, the v3 prefix, the query and a JSON body; answers the parsed JSON', async () => {
    answer = json(200, { event_id: '$e1' });
    const client = new MatrixHttp(`${base}/`, 'syt_secret', { userId: '@b:x', deviceId: 'D' });
    const res = await client.authedRequest<{ event_id: string }>(
      'PUT',
      '/rooms/!r%3Ax/send/m.room.message/t1',
      { a: 'b c' },
      { body: 'hi' },
    );
    expect(res).toEqual({ event_id: '$e1' });
    expect(seen[0]).toEqual({
      method: 'PUT',
      url: '/_matrix/client/v3/rooms/!r%3Ax/send/m.room.message/t1?a=b+c',
      auth: 'Bearer syt_secret',
      contentType: 'application/json',
      body: '{"body":"hi"}',
    });
    expect([client.getUserId(), client.getDeviceId()]).toEqual(['@b:x', 'D']);
  });

  test('json: false sends the body as it is under its own prefix and answers text; no token before login', async () => {
    answer = (_, res) => res.end('{"raw":true}');
    const text = await new MatrixHttp(base).authedRequest<string>(
      'POST',
      '/_matrix/client/v3/keys/upload',
      undefined,
      '{"k":1}',
      { json: false, prefix: '', headers: { 'Content-Type': 'application/json' } },
    );
    expect(text).toBe('{"raw":true}');
    expect(seen[0]).toMatchObject({ url: '/_matrix/client/v3/keys/upload', body: '{"k":1}' });
    expect(seen[0]!.auth).toBeUndefined();
  });

  test('an error answer is a MatrixHttpError with status and errcode; 4xx but 429 is permanent', async () => {
    const client = new MatrixHttp(base, 't');
    for (const [status, errcode, permanent] of [
      [403, 'M_FORBIDDEN', true],
      [404, 'M_NOT_FOUND', true],
      [429, 'M_LIMIT_EXCEEDED', false],
      [502, undefined, false],
    ] as const) {
      answer = json(status, errcode ? { errcode, error: 'no' } : {});
      const err = await client.authedRequest('GET', '/x').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MatrixHttpError);
      expect(err).toMatchObject({ httpStatus: status, errcode });
      expect(isPermanentMatrixError(err)).toBe(permanent);
    }
    answer = (_, res) => {
      res.writeHead(500);
      res.end('<html>oops</html>');
    };
    const html = await client.authedRequest('GET', '/x').catch((e: unknown) => e);
    expect(html).toMatchObject({ httpStatus: 500, data: { error: '<html>oops</html>' } });
  });

  test('no answer in time, or nobody listening: a MatrixConnectionError (retried, not permanent)', async () => {
    answer = () => undefined; // never answers
    const slow = await new MatrixHttp(base, 't')
      .authedRequest('GET', '/sync', undefined, undefined, { localTimeoutMs: 200 })
      .catch((e: unknown) => e);
    expect(slow).toBeInstanceOf(MatrixConnectionError);
    expect((slow as Error).message).toMatch(/no answer in time/);
    expect(isPermanentMatrixError(slow)).toBe(false);
    const closed = await new MatrixHttp('http://127.0.0.1:1', 't')
      .authedRequest('GET', '/x')
      .catch((e: unknown) => e);
    expect(closed).toBeInstanceOf(MatrixConnectionError);
  });

  test("the caller's own abort stays an abort", async () => {
    answer = () => undefined;
    const ctl = new AbortController();
    const pending = new MatrixHttp(base, 't').authedRequest('GET', '/sync', undefined, undefined, {
      abortSignal: ctl.signal,
    });
    setTimeout(() => ctl.abort(), 50);
    const err = await pending.catch((e: unknown) => e);
    expect(err).not.toBeInstanceOf(MatrixConnectionError);
    expect((err as Error).name).toBe('AbortError');
  });

  test('307/308 repeat the request at the new place; 301–303 become a GET without a body', async () => {
    const client = new MatrixHttp(base, 't');
    answer = (req, res) => {
      if (req.url!.startsWith('/_matrix/client/v3/old')) {
        const code = Number(new URL(req.url!, base).searchParams.get('code'));
        res.writeHead(code, { Location: '/moved' });
        return res.end();
      }
      json(200, { at: req.url })(req, res);
    };
    for (const [code, method, body] of [
      [307, 'PUT', '{"a":1}'],
      [308, 'PUT', '{"a":1}'],
      [301, 'GET', ''],
      [302, 'GET', ''],
      [303, 'GET', ''],
    ] as const) {
      seen.length = 0;
      const res = await client.authedRequest('PUT', '/old', { code: String(code) }, { a: 1 });
      expect(res).toEqual({ at: '/moved' });
      expect(seen.map((r) => r.url)).toEqual([`/_matrix/client/v3/old?code=${code}`, '/moved']);
      expect(seen[1]).toMatchObject({ method, body, auth: 'Bearer t' });
    }
  });

  test('a redirect to another origin does not carry the token; a loop of redirects gives up', async () => {
    const other = http.createServer((req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ auth: req.headers.authorization ?? null }));
    });
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    try {
      const port = (other.address() as AddressInfo).port;
      answer = (_, res) => {
        res.writeHead(302, { Location: `http://localhost:${port}/elsewhere` });
        res.end();
      };
      expect(await new MatrixHttp(base, 't').authedRequest('GET', '/x')).toEqual({ auth: null });
    } finally {
      other.closeAllConnections();
      await new Promise<void>((r) => other.close(() => r()));
    }
    answer = (_, res) => {
      res.writeHead(307, { Location: '/again' });
      res.end();
    };
    const loop = await new MatrixHttp(base, 't').authedRequest('GET', '/x').catch((e) => e);
    expect(loop).toBeInstanceOf(MatrixConnectionError);
    expect((loop as Error).message).toMatch(/more than 5 redirects/);
  });

  test('an answer whose UTF-8 is split across chunks arrives whole', async () => {
    const bytes = Buffer.from(JSON.stringify({ body: 'héllo wörld ✓ 🐙' }));
    answer = (_, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      for (const b of bytes) res.write(Buffer.from([b]));
      res.end();
    };
    expect(await new MatrixHttp(base, 't').authedRequest('GET', '/x')).toEqual({
      body: 'héllo wörld ✓ 🐙',
    });
  });

  test('getStateEvent reads one state event by type and key', async () => {
    answer = json(200, { join_rule: 'invite' });
    const ev = await new MatrixHttp(base, 't').getStateEvent('!r:x', 'm.room.join_rules', '');
    expect(ev).toEqual({ join_rule: 'invite' });
    expect(seen[0]!.url).toBe('/_matrix/client/v3/rooms/!r%3Ax/state/m.room.join_rules/');
  });
});
