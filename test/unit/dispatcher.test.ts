import pino from 'pino';
import { RpcDispatcher, type CallContext } from '../../rpc/dispatcher';
import { ErrorCode, RpcError, defaultMessage, toWireError } from '../../rpc/errors';

const ctx: CallContext = {
  connectionId: 1,
  notify: () => true,
  onClose: () => undefined,
  keepOpen: () => () => undefined,
};

function dispatcher() {
  const d = new RpcDispatcher(pino({ level: 'silent' }));
  d.addMethod('echo', (params) => params);
  d.addMethod('fail-rpc', () => {
    throw new RpcError(ErrorCode.KeyNotFound, 'key k1 not found');
  });
  d.addMethod('fail-bug', () => {
    throw new Error('ENOENT: /secret/path/file.db at Object.<anonymous> (worker.ts:1:1)');
  });
  return d;
}

describe('error catalogue', () => {
  test('every code has the spec name as its default message', () => {
    expect(defaultMessage[ErrorCode.ParseError]).toBe('Parse error');
    expect(defaultMessage[ErrorCode.ContainerStopped]).toBe('Container not found');
    expect(defaultMessage[ErrorCode.KeyNotFound]).toBe('Key not found');
    expect(defaultMessage[ErrorCode.BudgetExceeded]).toBe('Budget exceeded');
    for (const code of Object.values(ErrorCode))
      expect(defaultMessage[code]).toEqual(expect.any(String));
  });

  test('codes are the spec values', () => {
    expect(ErrorCode).toMatchObject({
      ParseError: -32700,
      InvalidRequest: -32600,
      MethodNotFound: -32601,
      InvalidParams: -32602,
      InternalError: -32603,
      ContainerRunning: -1,
      ContainerStopped: -2,
      KeyNotFound: -3,
      RoomAccessDenied: -32001,
      TtlExceeded: -32007,
    });
  });

  test('only RpcErrors reach the wire with their text', () => {
    expect(toWireError(new RpcError(ErrorCode.KeyNotFound, 'nope', { id: 'x' }))).toEqual({
      code: -3,
      message: 'nope',
      data: { id: 'x' },
    });
    expect(toWireError(new Error('/etc/shadow: EACCES'))).toEqual({
      code: -32603,
      message: 'Internal error',
    });
    expect(toWireError('string thrown')).toEqual({ code: -32603, message: 'Internal error' });
  });
});

describe('RpcDispatcher', () => {
  test('a call returns its result with the same id', async () => {
    expect(
      await dispatcher().handleText(
        '{"jsonrpc":"2.0","id":"a","method":"echo","params":{"x":1}}',
        ctx,
      ),
    ).toEqual({
      jsonrpc: '2.0',
      id: 'a',
      result: { x: 1 },
    });
  });

  test('RpcError keeps its code and message; other errors become a bare -32603', async () => {
    const d = dispatcher();
    expect(await d.handleText('{"jsonrpc":"2.0","id":1,"method":"fail-rpc"}', ctx)).toEqual({
      jsonrpc: '2.0',
      id: 1,
      error: { code: -3, message: 'key k1 not found' },
    });
    const bug = await d.handleText('{"jsonrpc":"2.0","id":2,"method":"fail-bug"}', ctx);
    expect(bug).toEqual({
      jsonrpc: '2.0',
      id: 2,
      error: { code: -32603, message: 'Internal error' },
    });
  });

  test('a failing notification is owed nothing', async () => {
    expect(await dispatcher().handleText('{"jsonrpc":"2.0","method":"fail-bug"}', ctx)).toBeNull();
    expect(await dispatcher().handleText('{"jsonrpc":"2.0","method":"nope"}', ctx)).toBeNull();
  });

  test('batches: arrays even of one, notifications dropped, all-notification batch owed nothing', async () => {
    const d = dispatcher();
    expect(
      await d.handleText('[{"jsonrpc":"2.0","id":1,"method":"echo","params":[]}]', ctx),
    ).toEqual([{ jsonrpc: '2.0', id: 1, result: [] }]);
    expect(
      await d.handleText(
        '[{"jsonrpc":"2.0","method":"echo"},{"jsonrpc":"2.0","method":"echo"}]',
        ctx,
      ),
    ).toBeNull();
    const mixed = (await d.handleText(
      '[1,{"jsonrpc":"2.0","id":2,"method":"nope"}]',
      ctx,
    )) as any[];
    expect(mixed.map((r) => r.error.code)).toEqual([-32600, -32601]);
  });

  test.each([
    ['not JSON', '{', -32700, null],
    ['empty batch', '[]', -32600, null],
    ['[null]', '[null]', -32600, null],
    ['string', '"x"', -32600, null],
    ['no jsonrpc', '{"id":1,"method":"echo"}', -32600, 1],
    ['empty method', '{"jsonrpc":"2.0","id":1,"method":""}', -32600, 1],
    ['bool id', '{"jsonrpc":"2.0","id":true,"method":"echo"}', -32600, null],
    ['scalar params', '{"jsonrpc":"2.0","id":1,"method":"echo","params":5}', -32600, 1],
    ['unknown method', '{"jsonrpc":"2.0","id":9,"method":"nope"}', -32601, 9],
  ])('%s → %d', async (_name, text, code, id) => {
    const res = await dispatcher().handleText(text, ctx);
    const one = Array.isArray(res) ? res[0] : res;
    expect(one).toMatchObject({ jsonrpc: '2.0', id, error: { code } });
  });
});
