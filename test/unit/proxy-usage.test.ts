// Usage as each provider reports it, read by proxy/usage.ts from JSON bodies and SSE streams.
// Every stream and body is also fed split at every byte and at random boundaries: the proxy
// meters chunks as the network delivers them, which may cut a UTF-8 character or a CRLF in two.
import fc from 'fast-check';
import {
  jsonUsageMeter,
  meterFor,
  SseParser,
  sseUsageMeter,
  withStreamUsage,
  type SseEvent,
  type Usage,
  type UsageMeter,
} from '../../proxy/usage';

const sse = (events: Array<[string | undefined, unknown]>, eol = '\n'): string =>
  events
    .map(
      ([name, data]) =>
        (name ? `event: ${name}${eol}` : '') +
        `data: ${typeof data === 'string' ? data : JSON.stringify(data)}${eol}${eol}`,
    )
    .join('');

interface Fixture {
  name: string;
  kind: 'json' | 'sse';
  body: string;
  fallbackModel?: string;
  expected: Usage | undefined;
}

const fixtures: Fixture[] = [
  {
    name: 'openai chat JSON',
    kind: 'json',
    body: JSON.stringify({
      object: 'chat.completion',
      model: 'gpt-4o-mini-2024-07-18',
      choices: [{ index: 0, message: { role: 'assistant', content: 'héllo — ✓' } }],
      usage: { prompt_tokens: 12, completion_tokens: 5, total_tokens: 17 },
    }),
    expected: { model: 'gpt-4o-mini-2024-07-18', inputTokens: 12, outputTokens: 5 },
  },
  {
    name: 'openai chat SSE with include_usage',
    kind: 'sse',
    body: sse([
      [undefined, { model: 'gpt-4o', choices: [{ delta: { content: 'hé' } }], usage: null }],
      [undefined, { model: 'gpt-4o', choices: [{ delta: { content: '✓ 🙂' } }], usage: null }],
      [
        undefined,
        { model: 'gpt-4o', choices: [], usage: { prompt_tokens: 30, completion_tokens: 9 } },
      ],
      [undefined, '[DONE]'],
    ]),
    expected: { model: 'gpt-4o', inputTokens: 30, outputTokens: 9 },
  },
  {
    name: 'openai chat SSE without a usage chunk',
    kind: 'sse',
    body: sse([
      [undefined, { model: 'gpt-4o', choices: [{ delta: { content: 'x' } }], usage: null }],
      [undefined, '[DONE]'],
    ]),
    expected: undefined,
  },
  {
    name: 'openai embeddings JSON',
    kind: 'json',
    body: JSON.stringify({
      object: 'list',
      model: 'text-embedding-3-small',
      data: [],
      usage: { prompt_tokens: 8, total_tokens: 8 },
    }),
    expected: { model: 'text-embedding-3-small', inputTokens: 8, outputTokens: 0 },
  },
  {
    name: 'openai responses JSON',
    kind: 'json',
    body: JSON.stringify({
      object: 'response',
      model: 'gpt-4.1',
      usage: { input_tokens: 40, output_tokens: 21, input_tokens_details: { cached_tokens: 0 } },
    }),
    expected: { model: 'gpt-4.1', inputTokens: 40, outputTokens: 21 },
  },
  {
    name: 'openai responses SSE',
    kind: 'sse',
    body: sse([
      [
        'response.created',
        { type: 'response.created', response: { model: 'gpt-4.1', usage: null } },
      ],
      ['response.output_text.delta', { type: 'response.output_text.delta', delta: 'ünï' }],
      [
        'response.completed',
        {
          type: 'response.completed',
          response: { model: 'gpt-4.1', usage: { input_tokens: 40, output_tokens: 21 } },
        },
      ],
    ]),
    expected: { model: 'gpt-4.1', inputTokens: 40, outputTokens: 21 },
  },
  {
    name: 'anthropic JSON with cached input',
    kind: 'json',
    body: JSON.stringify({
      type: 'message',
      model: 'claude-sonnet-4-5',
      usage: {
        input_tokens: 10,
        cache_creation_input_tokens: 100,
        cache_read_input_tokens: 1000,
        output_tokens: 50,
      },
    }),
    expected: { model: 'claude-sonnet-4-5', inputTokens: 1110, outputTokens: 50 },
  },
  {
    name: 'anthropic SSE',
    kind: 'sse',
    body: sse(
      [
        [
          'message_start',
          {
            type: 'message_start',
            message: { model: 'claude-haiku-4-5', usage: { input_tokens: 25, output_tokens: 1 } },
          },
        ],
        ['ping', { type: 'ping' }],
        [
          'content_block_delta',
          { type: 'content_block_delta', delta: { type: 'text_delta', text: 'ça ✓' } },
        ],
        ['message_delta', { type: 'message_delta', usage: { output_tokens: 15 } }],
        ['message_stop', { type: 'message_stop' }],
      ],
      '\r\n',
    ),
    expected: { model: 'claude-haiku-4-5', inputTokens: 25, outputTokens: 15 },
  },
  {
    name: 'google generateContent JSON with thoughts',
    kind: 'json',
    body: JSON.stringify({
      candidates: [{ content: { parts: [{ text: 'ß' }] } }],
      usageMetadata: { promptTokenCount: 9, candidatesTokenCount: 4, thoughtsTokenCount: 6 },
      modelVersion: 'gemini-2.5-flash',
    }),
    expected: { model: 'gemini-2.5-flash', inputTokens: 9, outputTokens: 10 },
  },
  {
    name: 'google streamGenerateContent SSE (running totals, CRLF, no model named)',
    kind: 'sse',
    fallbackModel: 'gemini-2.0-flash',
    body: sse(
      [
        [undefined, { candidates: [], usageMetadata: { promptTokenCount: 9 } }],
        [undefined, { usageMetadata: { promptTokenCount: 9, candidatesTokenCount: 3 } }],
        [undefined, { usageMetadata: { promptTokenCount: 9, candidatesTokenCount: 8 } }],
      ],
      '\r\n',
    ),
    expected: { model: 'gemini-2.0-flash', inputTokens: 9, outputTokens: 8 },
  },
  {
    name: 'google streamGenerateContent JSON array',
    kind: 'json',
    body: JSON.stringify([
      { usageMetadata: { promptTokenCount: 5, candidatesTokenCount: 1 }, modelVersion: 'g' },
      { usageMetadata: { promptTokenCount: 5, candidatesTokenCount: 7 }, modelVersion: 'g' },
    ]),
    expected: { model: 'g', inputTokens: 5, outputTokens: 7 },
  },
];

const meterOf = (f: Fixture): UsageMeter =>
  f.kind === 'json' ? jsonUsageMeter(f.fallbackModel) : sseUsageMeter(f.fallbackModel);

function meterChunks(f: Fixture, chunks: Uint8Array[]): Usage | undefined {
  const meter = meterOf(f);
  for (const c of chunks) meter.push(c);
  return meter.end();
}

/** `bytes` cut at the given offsets (sorted, deduplicated, any in range). */
function splitAt(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const p of [...points, bytes.length]) {
    out.push(bytes.subarray(prev, p));
    prev = p;
  }
  return out;
}

describe('usage meters', () => {
  describe.each(fixtures)('$name', (f) => {
    const bytes = Buffer.from(f.body, 'utf8');

    it('reads the usage from the whole body', () => {
      expect(meterChunks(f, [bytes])).toEqual(f.expected);
    });

    it('reads the same usage split in two at every byte', () => {
      for (let i = 0; i <= bytes.length; i++) {
        expect(meterChunks(f, [bytes.subarray(0, i), bytes.subarray(i)])).toEqual(f.expected);
      }
    });

    it('reads the same usage one byte at a time', () => {
      expect(
        meterChunks(
          f,
          [...bytes].map((b) => Uint8Array.of(b)),
        ),
      ).toEqual(f.expected);
    });

    it('reads the same usage at any chunk boundaries', () => {
      fc.assert(
        fc.property(fc.array(fc.nat(), { maxLength: 40 }), (cuts) => {
          expect(meterChunks(f, splitAt(bytes, cuts))).toEqual(f.expected);
        }),
        { numRuns: 200 },
      );
    });
  });

  it('gives up on a JSON body larger than its limit instead of holding it', () => {
    const meter = jsonUsageMeter('', 64);
    meter.push(Buffer.from(fixtures[0]!.body));
    expect(meter.end()).toBeUndefined();
  });

  it('reads nothing from a body that is not what it claims', () => {
    const json = jsonUsageMeter();
    json.push(Buffer.from('<html>bad gateway</html>'));
    expect(json.end()).toBeUndefined();
    const stream = sseUsageMeter();
    stream.push(Buffer.from(': keep-alive\n\ndata: not json\n\n'));
    expect(stream.end()).toBeUndefined();
  });

  it('picks a meter by content type', () => {
    expect(meterFor('text/event-stream; charset=utf-8')).toBeDefined();
    expect(meterFor('application/json')).toBeDefined();
    expect(meterFor('application/problem+json')).toBeDefined();
    expect(meterFor('text/html')).toBeUndefined();
    expect(meterFor(undefined)).toBeUndefined();
  });
});

describe('SseParser', () => {
  const stream =
    '\uFEFF: comment\r\nevent: first\r\ndata: a\r\ndata: b\r\n\r\n' +
    'data:no-space\rid: 3\r\r' +
    'event: ignored-without-data\n\n' +
    'data: ünïcödé ✓ 🙂\n\n' +
    'data: cut off at the end';
  const expected: SseEvent[] = [
    { event: 'first', data: 'a\nb' },
    { event: '', data: 'no-space' },
    { event: '', data: 'ünïcödé ✓ 🙂' },
    { event: '', data: 'cut off at the end' },
  ];
  const parse = (chunks: Uint8Array[]): SseEvent[] => {
    const parser = new SseParser();
    return [...chunks.flatMap((c) => parser.push(c)), ...parser.end()];
  };

  it('parses every line ending, comments, multi-line data and a last unterminated event', () => {
    expect(parse([Buffer.from(stream)])).toEqual(expected);
  });

  it('gives the same events whatever the chunk boundaries', () => {
    const bytes = Buffer.from(stream);
    for (let i = 0; i <= bytes.length; i++) {
      expect(parse([bytes.subarray(0, i), bytes.subarray(i)])).toEqual(expected);
    }
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 60 }), (cuts) => {
        expect(parse(splitAt(bytes, cuts))).toEqual(expected);
      }),
      { numRuns: 300 },
    );
  });

  it('does not count a CR at a chunk end and the LF after it as two line ends', () => {
    expect(parse([Buffer.from('data: x\r'), Buffer.from('\ndata: y\r\n\r\n')])).toEqual([
      { event: '', data: 'x\ny' },
    ]);
  });
});

describe('withStreamUsage', () => {
  const rewrite = (body: unknown) => withStreamUsage(Buffer.from(JSON.stringify(body)));

  it('asks a streaming chat request for its usage chunk, keeping its other stream options', () => {
    const out = rewrite({ model: 'gpt-4o', stream: true, stream_options: { other: 1 } });
    expect(out?.model).toBe('gpt-4o');
    expect(JSON.parse(out!.body.toString())).toEqual({
      model: 'gpt-4o',
      stream: true,
      stream_options: { other: 1, include_usage: true },
    });
  });

  it('leaves a request that needs nothing untouched', () => {
    const plain = Buffer.from(JSON.stringify({ model: 'm', stream: false }));
    expect(withStreamUsage(plain)?.body).toBe(plain);
    const asked = Buffer.from(
      JSON.stringify({ model: 'm', stream: true, stream_options: { include_usage: true } }),
    );
    expect(withStreamUsage(asked)?.body).toBe(asked);
  });

  it('leaves a body that is not a JSON object to the provider to refuse', () => {
    expect(withStreamUsage(Buffer.from('{nope'))).toBeUndefined();
    expect(withStreamUsage(Buffer.from('[1,2]'))).toBeUndefined();
  });
});
