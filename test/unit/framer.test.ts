import fc from 'fast-check';
import { JsonStreamFramer, type Frame } from '../../rpc/framer';

const MB = 1024 * 1024;

/** Feeds `chunks` to a fresh framer, then ends the input; returns every frame. */
function frameAll(chunks: Buffer[], max = MB): Frame[] {
  const framer = new JsonStreamFramer(max);
  return [...chunks.flatMap((c) => framer.push(c)), ...framer.end()];
}

const texts = (frames: Frame[]) => frames.map((f) => (f.kind === 'json' ? JSON.parse(f.text) : f));

/** Splits `buf` at the given cut points (sorted, deduplicated). */
function splitAt(buf: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let last = 0;
  for (const p of points) {
    out.push(buf.subarray(last, p));
    last = p;
  }
  out.push(buf.subarray(last));
  return out;
}

// Byte streams recorded from real clients: nc/socat (a trailing newline), a Python client (one
// object, no newline), pipelining clients.
const recorded: Record<string, { stream: string; expect: unknown[] }> = {
  'nc / socat: one request and a newline': {
    stream: '{"jsonrpc":"2.0","id":1,"method":"status"}\n',
    expect: [{ jsonrpc: '2.0', id: 1, method: 'status' }],
  },
  'python sendall: one object, no newline': {
    stream: '{"jsonrpc": "2.0", "id": 1, "method": "status"}',
    expect: [{ jsonrpc: '2.0', id: 1, method: 'status' }],
  },
  'pipelined without separators': {
    stream: '{"jsonrpc":"2.0","id":1,"method":"a"}{"jsonrpc":"2.0","id":2,"method":"b"}',
    expect: [
      { jsonrpc: '2.0', id: 1, method: 'a' },
      { jsonrpc: '2.0', id: 2, method: 'b' },
    ],
  },
  'pipelined with newlines and CRLF': {
    stream: '{"jsonrpc":"2.0","id":1,"method":"a"}\r\n\n  {"jsonrpc":"2.0","id":2,"method":"b"}\n',
    expect: [
      { jsonrpc: '2.0', id: 1, method: 'a' },
      { jsonrpc: '2.0', id: 2, method: 'b' },
    ],
  },
  'batch array': {
    stream: '[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","method":"n"}]',
    expect: [
      [
        { jsonrpc: '2.0', id: 1, method: 'a' },
        { jsonrpc: '2.0', method: 'n' },
      ],
    ],
  },
  'pretty-printed request spread over lines (the spec socat example)': {
    stream:
      '{\n  "jsonrpc":"2.0",\n  "id":1,\n  "method":"attach_config",\n  "params":{\n    "name":"agent.env"\n  }\n}\n',
    expect: [{ jsonrpc: '2.0', id: 1, method: 'attach_config', params: { name: 'agent.env' } }],
  },
  'braces, brackets, quotes and escapes inside strings': {
    stream: '{"jsonrpc":"2.0","id":"}{","method":"x","params":{"s":"a\\"}]\\\\","t":"[{"}}',
    expect: [{ jsonrpc: '2.0', id: '}{', method: 'x', params: { s: 'a"}]\\', t: '[{' } }],
  },
  'multi-byte UTF-8': {
    stream: '{"jsonrpc":"2.0","id":1,"method":"m","params":{"s":"héllo ✓ 🐉"}}',
    expect: [{ jsonrpc: '2.0', id: 1, method: 'm', params: { s: 'héllo ✓ 🐉' } }],
  },
  'top-level scalars are frames of their own': {
    stream: '42 true "x" {"a":1}',
    expect: [42, true, 'x', { a: 1 }],
  },
};

describe('JsonStreamFramer', () => {
  for (const [name, { stream, expect: expected }] of Object.entries(recorded)) {
    test(`${name}: whole stream`, () => {
      expect(texts(frameAll([Buffer.from(stream)]))).toEqual(expected);
    });

    test(`${name}: every split into two chunks`, () => {
      const buf = Buffer.from(stream);
      for (let i = 0; i <= buf.length; i++) {
        expect(texts(frameAll([buf.subarray(0, i), buf.subarray(i)]))).toEqual(expected);
      }
    });

    test(`${name}: arbitrary splits (property)`, () => {
      const buf = Buffer.from(stream);
      fc.assert(
        fc.property(fc.array(fc.nat(), { maxLength: 20 }), (cuts) => {
          expect(texts(frameAll(splitAt(buf, cuts)))).toEqual(expected);
        }),
        { numRuns: 300 },
      );
    });
  }

  test('any sequence of JSON objects and arrays, arbitrarily split and separated (property)', () => {
    const value = fc.oneof(fc.dictionary(fc.string(), fc.jsonValue()), fc.array(fc.jsonValue()));
    const separator = fc.constantFrom('', '\n', '\r\n', ' ', '\t\n');
    fc.assert(
      fc.property(
        fc.array(fc.tuple(value, separator), { minLength: 1, maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        (items, cuts) => {
          const stream = Buffer.from(items.map(([v, sep]) => JSON.stringify(v) + sep).join(''));
          const got = texts(frameAll(splitAt(stream, cuts)));
          expect(got).toEqual(items.map(([v]) => JSON.parse(JSON.stringify(v))));
        },
      ),
      { numRuns: 500 },
    );
  });

  test('a frame that ends exactly at the limit passes; one byte more is too large', () => {
    const body = '{"p":"' + 'x'.repeat(100) + '"}';
    const size = Buffer.byteLength(body);
    expect(texts(frameAll([Buffer.from(body)], size))).toEqual([{ p: 'x'.repeat(100) }]);
    const over = frameAll([Buffer.from(body)], size - 1);
    expect(over).toEqual([{ kind: 'too-large', bytes: size }]);
  });

  test('an oversized frame is reported once, while still arriving, and nothing after it', () => {
    const framer = new JsonStreamFramer(1024);
    const frames: Frame[] = [];
    frames.push(...framer.push(Buffer.from('{"a":"')));
    for (let i = 0; i < 10; i++) frames.push(...framer.push(Buffer.alloc(512, 0x61)));
    frames.push(...framer.push(Buffer.from('"}{"b":1}')));
    frames.push(...framer.end());
    expect(frames).toHaveLength(1);
    expect(frames[0]).toMatchObject({ kind: 'too-large' });
  });

  test('a cut-off request becomes a final frame at end of input (so it gets a parse error)', () => {
    const frames = frameAll([Buffer.from('{"jsonrpc":"2.0","id":1')]);
    expect(frames).toEqual([{ kind: 'json', text: '{"jsonrpc":"2.0","id":1' }]);
  });

  test('whitespace only yields nothing', () => {
    expect(frameAll([Buffer.from(' \n\r\n\t ')])).toEqual([]);
  });
});
