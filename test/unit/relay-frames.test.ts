// The bridge ↔ relay link frames (formats/relay-frames.ts): both parsers, valid and malformed.
import {
  RELAY_FORWARDED_PATHS,
  parseBridgeToRelay,
  parseRelayToBridge,
} from '../../formats/relay-frames';

const j = (v: unknown) => JSON.stringify(v);
const long = (n: number) => 'x'.repeat(n);

describe('parseRelayToBridge', () => {
  test.each([
    [
      'http with authorization',
      {
        type: 'http',
        id: 'h_1',
        path: '/api/bridge/revoke',
        address: '203.0.113.7',
        authorization: 'Bearer acdv_x',
        body: '{"bridgeId":"br_0123456789abcdef"}',
      },
    ],
    [
      'http without authorization',
      {
        type: 'http',
        id: 'h_2',
        path: '/api/bridge/pair/complete',
        address: '::1',
        body: '{}',
      },
    ],
    ['open with a token', { type: 'open', conn: 'c_1', address: '10.0.0.1', token: 'acdv_t' }],
    ['open without a token', { type: 'open', conn: 'c_1', address: '10.0.0.1' }],
    ['frame', { type: 'frame', conn: 'c_1', text: '{"type":"ping"}' }],
    ['frame with empty text', { type: 'frame', conn: 'c_1', text: '' }],
    ['gone', { type: 'gone', conn: 'c_1' }],
    ['pong', { type: 'pong' }],
  ])('accepts %s', (_name, frame) => {
    expect(parseRelayToBridge(j(frame))).toEqual(frame);
  });

  test('every forwarded path is accepted', () => {
    for (const path of RELAY_FORWARDED_PATHS) {
      const frame = { type: 'http', id: 'h', path, address: 'a', body: '' };
      expect(parseRelayToBridge(j(frame))).toEqual(frame);
    }
  });

  test('drops fields it does not know', () => {
    expect(parseRelayToBridge(j({ type: 'gone', conn: 'c_1', extra: 1 }))).toEqual({
      type: 'gone',
      conn: 'c_1',
    });
  });

  const http = { type: 'http', id: 'h_1', path: '/api/bridge/revoke', address: 'a', body: '' };
  test.each([
    ['not JSON', '{'],
    ['an array', '[]'],
    ['null', 'null'],
    ['a string', '"http"'],
    ['no type', j({ conn: 'c' })],
    ['an unknown type', j({ type: 'admit', conn: 'c', ok: true })],
    ['http: an unknown path', j({ ...http, path: '/rpc' })],
    ['http: a path with a query', j({ ...http, path: '/api/bridge/revoke?x=1' })],
    ['http: no id', j({ ...http, id: undefined })],
    ['http: an empty id', j({ ...http, id: '' })],
    ['http: an oversize id', j({ ...http, id: long(65) })],
    ['http: a numeric id', j({ ...http, id: 7 })],
    ['http: no address', j({ ...http, address: undefined })],
    ['http: an oversize address', j({ ...http, address: long(65) })],
    ['http: no body', j({ ...http, body: undefined })],
    ['http: an object body', j({ ...http, body: {} })],
    ['http: an oversize body', j({ ...http, body: long(2 * 1024 * 1024 + 1) })],
    ['http: an oversize authorization', j({ ...http, authorization: long(1025) })],
    ['http: a non-string authorization', j({ ...http, authorization: 1 })],
    ['open: no conn', j({ type: 'open', address: 'a' })],
    ['open: no address', j({ type: 'open', conn: 'c' })],
    ['open: an oversize token', j({ type: 'open', conn: 'c', address: 'a', token: long(257) })],
    ['open: a non-string token', j({ type: 'open', conn: 'c', address: 'a', token: 5 })],
    ['frame: no text', j({ type: 'frame', conn: 'c' })],
    ['frame: oversize text', j({ type: 'frame', conn: 'c', text: long(2 * 1024 * 1024 + 1) })],
    ['frame: an oversize conn', j({ type: 'frame', conn: long(65), text: '' })],
    ['gone: no conn', j({ type: 'gone' })],
  ])('rejects %s', (_name, text) => {
    expect(parseRelayToBridge(text)).toBeNull();
  });
});

describe('parseBridgeToRelay', () => {
  test.each([
    ['admit ok', { type: 'admit', conn: 'c_1', ok: true }],
    [
      'admit refused',
      { type: 'admit', conn: 'c_1', ok: false, status: 403, message: 'this device is revoked' },
    ],
    ['send', { type: 'send', conn: 'c_1', text: '{"type":"ready"}' }],
    ['close', { type: 'close', conn: 'c_1', code: 4403, reason: 'revoked' }],
    ['close with an empty reason', { type: 'close', conn: 'c_1', code: 1000, reason: '' }],
    ['ping', { type: 'ping' }],
  ])('accepts %s', (_name, frame) => {
    expect(parseBridgeToRelay(j(frame))).toEqual(frame);
  });

  test('accepts a response, keeping only the allowed headers (lower-cased)', () => {
    const parsed = parseBridgeToRelay(
      j({
        type: 'response',
        id: 'h_1',
        status: 429,
        headers: {
          'Retry-After': '60',
          'content-type': 'application/json',
          'set-cookie': 'a=b',
          location: 'https://evil.example',
          'access-control-allow-origin': '*',
          'retry-after-long': 'x',
        },
        body: '{"ok":false}',
      }),
    );
    expect(parsed).toEqual({
      type: 'response',
      id: 'h_1',
      status: 429,
      headers: { 'retry-after': '60', 'content-type': 'application/json' },
      body: '{"ok":false}',
    });
  });

  test('a response drops a header value that is not a short string, and tolerates no headers', () => {
    expect(
      parseBridgeToRelay(
        j({
          type: 'response',
          id: 'h',
          status: 200,
          headers: { 'retry-after': 5, 'content-type': long(129) },
          body: '',
        }),
      ),
    ).toEqual({ type: 'response', id: 'h', status: 200, headers: {}, body: '' });
    expect(parseBridgeToRelay(j({ type: 'response', id: 'h', status: 200, body: '' }))).toEqual({
      type: 'response',
      id: 'h',
      status: 200,
      headers: {},
      body: '',
    });
  });

  test('an admit drops a status that is not an integer and a message that is too long', () => {
    expect(
      parseBridgeToRelay(
        j({ type: 'admit', conn: 'c', ok: false, status: '403', message: long(257) }),
      ),
    ).toEqual({ type: 'admit', conn: 'c', ok: false });
  });

  const response = { type: 'response', id: 'h_1', status: 200, headers: {}, body: '{}' };
  test.each([
    ['not JSON', 'nope'],
    ['an array', '[{"type":"ping"}]'],
    ['an unknown type', j({ type: 'pong' })],
    [
      'a relay frame',
      j({ type: 'http', id: 'h', path: '/api/bridge/revoke', address: 'a', body: '' }),
    ],
    ['response: status 99', j({ ...response, status: 99 })],
    ['response: status 600', j({ ...response, status: 600 })],
    ['response: a fractional status', j({ ...response, status: 200.5 })],
    ['response: a string status', j({ ...response, status: '200' })],
    ['response: no id', j({ ...response, id: undefined })],
    ['response: an oversize id', j({ ...response, id: long(65) })],
    ['response: no body', j({ ...response, body: undefined })],
    ['response: an oversize body', j({ ...response, body: long(2 * 1024 * 1024 + 1) })],
    ['admit: no ok', j({ type: 'admit', conn: 'c' })],
    ['admit: a string ok', j({ type: 'admit', conn: 'c', ok: 'true' })],
    ['admit: no conn', j({ type: 'admit', ok: true })],
    ['send: no text', j({ type: 'send', conn: 'c' })],
    ['send: an empty conn', j({ type: 'send', conn: '', text: '' })],
    ['close: no code', j({ type: 'close', conn: 'c', reason: '' })],
    ['close: a fractional code', j({ type: 'close', conn: 'c', code: 4000.5, reason: '' })],
    ['close: no reason', j({ type: 'close', conn: 'c', code: 1000 })],
    ['close: an oversize reason', j({ type: 'close', conn: 'c', code: 1000, reason: long(124) })],
  ])('rejects %s', (_name, text) => {
    expect(parseBridgeToRelay(text)).toBeNull();
  });
});
