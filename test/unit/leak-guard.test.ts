import { inspect } from 'node:util';
import fc from 'fast-check';
import { LeakGuard, MIN_GUARDED_CHARS, type LeakScan } from '../../services/leak-guard';

// Shaped like a provider key, with the characters encodings treat specially: `/` and `+` (JSON's
// `\/`, percent-escaped in URLs), `-` and `_`; its `?` and `~` put a `/` in its base64 at every
// alignment, so base64url and JSON-escaped base64 differ from plain base64.
const TOKEN = 'sk-ant-api03-Qx7/Lm+9_vT2w~?K-rN8z?P4s~~o?';
const OTHER = 'sk-proj-Hb3c9Fq2ZtW7yU1xE5rM0aLk';
const KEYS = [
  { id: 'anthropic-main', token: TOKEN },
  { id: 'openai-batch', token: OTHER },
];

const b64 = (data: string | Uint8Array) => Buffer.from(data).toString('base64');
const b64url = (data: string | Uint8Array) => Buffer.from(data).toString('base64url');
const hex = (s: string) => Buffer.from(s).toString('hex');
const percentAll = (s: string) =>
  [...Buffer.from(s)].map((b) => '%' + b.toString(16).padStart(2, '0')).join('');
// Per UTF-16 code unit, as JSON escapes astral characters: two `\uXXXX`, a surrogate pair.
const unicodeEscapeAll = (s: string) =>
  s
    .split('')
    .map((c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'))
    .join('');

const leakOf = (scan: LeakScan) => (scan.leaked ? scan : null);

describe('LeakGuard.scan', () => {
  const guard = new LeakGuard(KEYS);

  // Each form as an agent might send it, and the encoding name the guard reports.
  const forms: Array<[string, string, string]> = [
    ['raw', `here is the key: ${TOKEN}.`, 'raw'],
    ['base64, padded', `blob=${b64(TOKEN)}`, 'base64'],
    ['base64, unpadded', b64(TOKEN).replace(/=+$/, ''), 'base64'],
    ['base64url', `?k=${b64url(TOKEN)}`, 'base64url'],
    ['hex, lower case', `0x${hex(TOKEN)}`, 'hex'],
    ['hex, upper case', hex(TOKEN).toUpperCase(), 'hex'],
    ['percent-encoded, some characters', `https://x.test/?k=${encodeURIComponent(TOKEN)}`, 'url'],
    ['percent-encoded, every character', percentAll(TOKEN).toUpperCase(), 'url'],
    ['JSON with \\/', JSON.stringify({ k: TOKEN }).replace(/\//g, '\\/'), 'json'],
    ['JSON, every character \\uXXXX', `{"k":"${unicodeEscapeAll(TOKEN)}"}`, 'json'],
    ['split by spaces and newlines', TOKEN.replace(/(.{5})/g, '$1 \n'), 'split'],
    ['split by zero-width characters', [...TOKEN].join('\u200b\u2060\ufeff'), 'split'],
    ['base64 inside JSON', JSON.stringify({ b: b64(TOKEN) }).replace(/\//g, '\\/'), 'base64+json'],
    ['base64 wrapped like MIME', b64(TOKEN).replace(/(.{8})/g, '$1\r\n'), 'base64+split'],
    [
      'JSON inside JSON',
      JSON.stringify({ args: `{"k":"${unicodeEscapeAll(TOKEN)}"}` }),
      'json+json',
    ],
    ['JSON, then percent-encoded', encodeURIComponent(`"${unicodeEscapeAll(TOKEN)}"`), 'json+url'],
    ['zero-width characters as JSON escapes', [...TOKEN].join('\\u200B'), 'json+split'],
  ];

  test.each(forms)('finds a token written %s', (_name, text, encoding) => {
    expect(guard.scan(text)).toEqual({
      leaked: true,
      keyIds: ['anthropic-main'],
      encodings: [encoding],
    });
  });

  test.each([0, 1, 2])(
    'finds a token embedded in a longer base64 blob, %i bytes past a 3-byte boundary',
    (offset) => {
      const before = Buffer.from('{"messages":[{"role":"user","content":"'.slice(0, 30 + offset));
      const message = Buffer.concat([before, Buffer.from(TOKEN), Buffer.from('"}]}')]);
      for (const [text, encoding] of [
        [b64(message), 'base64'],
        [b64(message).replace(/=+$/, ''), 'base64'],
        [b64url(message), 'base64url'],
      ]) {
        expect(leakOf(guard.scan(`data:${text}`))).toMatchObject({
          keyIds: ['anthropic-main'],
          encodings: [encoding],
        });
      }
    },
  );

  test('percent-encoded multi-byte UTF-8 and astral characters are decoded', () => {
    const token = 'pässwörd-ключ-🔑-1234';
    const g = new LeakGuard([{ id: 'unicode', token }]);
    expect(leakOf(g.scan(`q=${encodeURIComponent(token)}`))?.encodings).toEqual(['url']);
    expect(leakOf(g.scan(`"${unicodeEscapeAll(token)}"`))?.encodings).toEqual(['json']);
    // An escape that is not valid UTF-8 is left alone rather than guessed at, as decoders
    // would: a stray byte, an overlong `/`, a surrogate.
    expect(g.scan(percentAll(token).replace('%c3', '%ff')).leaked).toBe(false);
    const slash = new LeakGuard([{ id: 'slash', token: 'abcd/efgh' }]);
    expect(slash.scan('abcd%2Fefgh').leaked).toBe(true);
    expect(slash.scan('abcd%C0%AFefgh').leaked).toBe(false);
    expect(slash.scan('abcd%E0%80%AFefgh').leaked).toBe(false);
    const lone = new LeakGuard([{ id: 'lone', token: 'abcd\ud800efgh' }]);
    expect(lone.scan('abcd%ED%A0%80efgh').leaked).toBe(false);
  });

  test('near misses and ordinary text are not hits', () => {
    const near = [
      TOKEN.slice(1),
      TOKEN.slice(0, -1),
      TOKEN.slice(0, 10) + TOKEN.slice(11),
      TOKEN.replace('Qx7', 'Qx8'),
      b64(TOKEN.slice(0, -1)),
      b64url(TOKEN.slice(1)),
      hex(TOKEN.slice(0, -1)),
      encodeURIComponent(TOKEN.slice(0, -1)),
      percentAll(TOKEN).slice(0, -1), // the last escape cut short
      'anthropic-main openai-batch',
      '{"usage":{"input_tokens":1200,"output_tokens":345,"cache_read_input_tokens":0}}',
      'sk-ant-api03-',
    ];
    for (const text of near) expect(guard.scan(text)).toEqual({ leaked: false });
  });

  test(`tokens under ${MIN_GUARDED_CHARS} characters are not guarded, and say so`, () => {
    const g = new LeakGuard([
      { id: 'short', token: 'abc1234' },
      { id: 'spaced', token: 'abc 123 4' },
      { id: 'eight', token: 'abcd1234' },
    ]);
    expect(g.unguardedKeyIds).toEqual(['short', 'spaced']);
    expect(g.scan('abc1234 abc1234abc 123 4')).toEqual({ leaked: false });
    expect(leakOf(g.scan('xabcd1234x'))?.keyIds).toEqual(['eight']);
  });

  test('several keys: each is named once, in the order the guard was given them', () => {
    const text = `${b64(OTHER)} and ${TOKEN} and again ${TOKEN}`;
    expect(guard.scan(text)).toEqual({
      leaked: true,
      keyIds: ['anthropic-main', 'openai-batch'],
      encodings: ['base64', 'raw'],
    });
    expect(leakOf(guard.scan(hex(OTHER)))?.keyIds).toEqual(['openai-batch']);
    // A token that is part of another (or of itself, overlapping) is found inside it too.
    const nested = new LeakGuard([
      { id: 'long', token: `xx-${OTHER}-yy` },
      { id: 'inner', token: OTHER },
      { id: 'repeat', token: 'abababab' },
    ]);
    expect(leakOf(nested.scan(`"xx-${OTHER}-yy"`))?.keyIds).toEqual(['long', 'inner']);
    expect(leakOf(nested.scan(`xx-${OTHER}-y`))?.keyIds).toEqual(['inner']);
    expect(leakOf(nested.scan('abababababab'))?.keyIds).toEqual(['repeat']);
    // The same token stored under two ids: both are named.
    const twice = new LeakGuard([...KEYS, { id: 'copy', token: TOKEN }]);
    expect(leakOf(twice.scan(TOKEN))?.keyIds).toEqual(['anthropic-main', 'copy']);
  });

  test('a token written plainly is reported raw even when the text holds other escapes', () => {
    const text = `{"note":"50%25 done\\n", "k": "${TOKEN}"}`;
    expect(guard.scan(text)).toEqual({
      leaked: true,
      keyIds: ['anthropic-main'],
      encodings: ['raw'],
    });
  });

  test('a guard rebuilt without a removed key no longer flags it', () => {
    const rebuilt = new LeakGuard(KEYS.filter((k) => k.id !== 'anthropic-main'));
    expect(rebuilt.scan(TOKEN)).toEqual({ leaked: false });
    expect(rebuilt.scan(b64(TOKEN))).toEqual({ leaked: false });
    expect(leakOf(rebuilt.scan(OTHER))?.keyIds).toEqual(['openai-batch']);
    expect(new LeakGuard([]).scan(TOKEN)).toEqual({ leaked: false });
  });

  test('never reveals a token: not in results, errors, JSON or inspection', () => {
    const texts = forms.map(([, text]) => text);
    const shown = JSON.stringify([texts.map((t) => guard.scan(t)), guard.scanValue(texts)]);
    expect(shown).not.toContain(TOKEN);
    expect(JSON.stringify(guard)).not.toContain(TOKEN);
    expect(inspect(guard, { depth: Infinity, showHidden: true })).not.toContain(TOKEN);
    const listedTwice = () => new LeakGuard([...KEYS, { id: 'anthropic-main', token: TOKEN }]);
    expect(listedTwice).toThrow('anthropic-main');
    try {
      listedTwice();
    } catch (err) {
      expect(String(err)).not.toContain(TOKEN);
    }
  });
});

describe('LeakGuard.scanValue', () => {
  const guard = new LeakGuard(KEYS);

  test('walks nested objects, arrays, Maps and Sets, keys included', () => {
    const clean = { a: [1, 'two', { three: null, four: true }], n: 42 };
    expect(guard.scanValue(clean)).toEqual({ leaked: false });
    const deep = { a: [1, { b: { c: [`x ${TOKEN} y`] } }] };
    expect(leakOf(guard.scanValue(deep))?.keyIds).toEqual(['anthropic-main']);
    expect(leakOf(guard.scanValue({ meta: { [TOKEN]: 'value' } }))?.encodings).toEqual(['raw']);
    expect(leakOf(guard.scanValue([new Map([[b64(OTHER), 1]])]))?.keyIds).toEqual(['openai-batch']);
    expect(leakOf(guard.scanValue({ s: new Set([{ t: hex(OTHER) }]) }))?.keyIds).toEqual([
      'openai-batch',
    ]);
    expect(leakOf(guard.scanValue({ bytes: Buffer.from(`..${TOKEN}..`) }))?.keyIds).toEqual([
      'anthropic-main',
    ]);
  });

  test('numbers are read as text, and cycles end', () => {
    const g = new LeakGuard([{ id: 'numeric', token: '31415926535' }]);
    expect(leakOf(g.scanValue({ n: 31415926535 }))?.keyIds).toEqual(['numeric']);
    const cyclic: Record<string, unknown> = { t: 'nothing here' };
    cyclic.self = cyclic;
    expect(g.scanValue(cyclic)).toEqual({ leaked: false });
  });
});

describe('LeakGuard.redact', () => {
  const guard = new LeakGuard(KEYS);

  test('removes every form it finds, leaving the rest of the text', () => {
    const text = [
      `raw ${TOKEN}`,
      `b64 ${b64(`${TOKEN} and ${OTHER}`)}`,
      `mid ${b64(`ab${TOKEN}`)}`,
      `hex ${hex(TOKEN).toUpperCase()}`,
      `url ${encodeURIComponent(TOKEN)}`,
      `json ${JSON.stringify({ k: TOKEN }).replace(/\//g, '\\/')}`,
      `split ${[...OTHER].join('\u200b')}`,
    ].join('\n');
    const redacted = guard.redact(text);
    expect(guard.scan(redacted)).toEqual({ leaked: false });
    expect(redacted.match(/\[redacted\]/g)).toHaveLength(8);
    expect(redacted).toContain('json {"k":"[redacted]"}');
    expect(redacted.split('\n').map((line) => line.split(' ')[0])).toEqual([
      'raw',
      'b64',
      'mid',
      'hex',
      'url',
      'json',
      'split',
    ]);
  });

  test('overlapping occurrences become one marker', () => {
    const g = new LeakGuard([
      { id: 'long', token: `xx-${OTHER}-yy` },
      { id: 'inner', token: OTHER },
      { id: 'repeat', token: 'abababab' },
    ]);
    expect(g.redact(`<xx-${OTHER}-yy>`)).toBe('<[redacted]>');
    expect(g.redact('<abababababab> <abababab>')).toBe('<[redacted]> <[redacted]>');
  });

  test('finds each layer in a text that needs every view, one per decoding chain', () => {
    // `%` and `\` at every level: raw, url, json, url+url, json+url, url+json and json+json views.
    const text = [
      `url ${encodeURIComponent(TOKEN)}`,
      `json ${unicodeEscapeAll(OTHER)}`,
      `json+url ${encodeURIComponent(`"${unicodeEscapeAll(TOKEN)}"`)}`,
      `json+json ${JSON.stringify(unicodeEscapeAll(OTHER))}`,
      `url+url ${encodeURIComponent(encodeURIComponent(TOKEN))}`,
    ].join('\n');
    expect(leakOf(guard.scan(text))?.encodings).toEqual([
      'json',
      'json+json',
      'json+url',
      'url',
      'url+url',
    ]);
    const redacted = guard.redact(text);
    expect(guard.scan(redacted)).toEqual({ leaked: false });
    // Each match's escapes go with it; the quotes around the JSON strings stay.
    expect(redacted.split('\n')).toEqual([
      'url [redacted]',
      'json [redacted]',
      'json+url %22[redacted]%22',
      'json+json "[redacted]"',
      'url+url [redacted]',
    ]);
  });

  test('leaves text without tokens as it was', () => {
    const text = 'usage: {"input_tokens": 12} %41 \\u0041 \u200b';
    expect(guard.redact(text)).toBe(text);
  });
});

// Properties. Surrounding text draws on characters that matter to the decoders.
const unit1 = fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 1 });
const noise = fc.string({
  unit: fc.oneof(unit1, fc.constantFrom('%', '%2', '\\', '\\u00', '\u200b', '\n', 'é', '🔑')),
  maxLength: 40,
});
const secrets = fc
  .string({ unit: 'grapheme-ascii', minLength: 8, maxLength: 200 })
  .filter((s) => s.replace(/\s/g, '').length >= MIN_GUARDED_CHARS);
// One or two choices per character of a token (at most 200 characters).
const choices = fc.array(fc.nat({ max: 7 }), { minLength: 201, maxLength: 201 });

/** Percent-encodes the characters `choice` picks (always `%`, or decoding would be ambiguous). */
function urlEncode(s: string, choice: number[]): string {
  return [...s]
    .map((c, i) => {
      if (c !== '%' && choice[i]! % 2 === 0) return c;
      const escaped = percentAll(c);
      return choice[i]! > 2 ? escaped.toUpperCase() : escaped;
    })
    .join('');
}

/** JSON-escapes `s`: what JSON requires, plus `\/` and `\uXXXX` where `choice` picks them. */
function jsonEscape(s: string, choice: number[]): string {
  return [...s]
    .map((c, i) => {
      const digits = c.charCodeAt(0).toString(16).padStart(4, '0');
      if (choice[i] === 0) return '\\u' + (choice[i + 1]! % 2 ? digits.toUpperCase() : digits);
      if (c === '/' && choice[i] === 1) return '\\/';
      return JSON.stringify(c).slice(1, -1);
    })
    .join('');
}

const INVISIBLE = [' ', '\n', '\t', '\u200b', '\u200d', '\u2060', '\ufeff', '\u00ad'];
function split(s: string, choice: number[]): string {
  return [...s].map((c, i) => (choice[i]! < 2 ? c + INVISIBLE[choice[i + 1]! % 8] : c)).join('');
}

const ENCODERS: Record<string, (s: string, choice: number[]) => string> = {
  raw: (s) => s,
  base64: (s) => b64(s),
  base64Unpadded: (s) => b64(s).replace(/=+$/, ''),
  base64url: (s) => b64url(s),
  hex: (s) => hex(s),
  hexUpper: (s) => hex(s).toUpperCase(),
  url: urlEncode,
  json: jsonEscape,
  split,
};

describe('LeakGuard properties', () => {
  test('every encoding of a token is found wherever it is embedded, and redacted', () => {
    fc.assert(
      fc.property(
        secrets,
        secrets,
        noise,
        noise,
        choices,
        fc.constantFrom(...Object.keys(ENCODERS)),
        (secret, decoy, before, after, choice, name) => {
          const guard = new LeakGuard([
            { id: 'decoy', token: decoy },
            { id: 'k', token: secret },
          ]);
          // A space keeps the noise's trailing `%` or `\` from joining the first escape: a
          // decoder would read that as another character too, so nothing would be leaked.
          const text = `${before} ${ENCODERS[name]!(secret, choice)} ${after}`;
          expect(leakOf(guard.scan(text))?.keyIds).toContain('k');
          expect(leakOf(guard.scan(guard.redact(text)))?.keyIds ?? []).not.toContain('k');
        },
      ),
    );
  });

  test('a token inside a longer base64 blob is found at any offset', () => {
    fc.assert(
      fc.property(
        secrets,
        fc.uint8Array({ maxLength: 40 }),
        fc.uint8Array({ maxLength: 40 }),
        fc.constantFrom(b64, b64url),
        noise,
        (secret, head, tail, encode, before) => {
          const guard = new LeakGuard([{ id: 'k', token: secret }]);
          const blob = encode(Buffer.concat([head, Buffer.from(secret), tail]));
          expect(leakOf(guard.scan(before + blob))?.keyIds).toEqual(['k']);
        },
      ),
    );
  });

  test('text that cannot hold a token is not flagged', () => {
    // The token holds a `~`; the text has none of `~`, `e`, `E`, `5`, and escaping any of
    // them (`%7e`, `\u0065`, `%45`, `%35`) takes another of them, so no decoding of the text
    // yields a `~`; hex of a `~` is `7e`. A base64 form (60 bits of the token or more) could
    // appear only by chance.
    const textUnit = fc.oneof(
      unit1.filter((c) => !/[~eE5]/.test(c)),
      fc.constantFrom('%', '%7', '\\u007', '\u200b', '\n'),
    );
    fc.assert(
      fc.property(
        secrets,
        fc.nat(),
        fc.string({ unit: textUnit, maxLength: 300 }),
        (secret, at, text) => {
          const i = at % secret.length;
          const token = secret.slice(0, i) + '~' + secret.slice(i);
          expect(new LeakGuard([{ id: 'k', token }]).scan(text)).toEqual({ leaked: false });
        },
      ),
    );
  });

  test('a token with one character missing is not flagged, in any encoding', () => {
    // Alphanumeric tokens in text with no letters or digits: the surroundings cannot supply the
    // missing character. (Base64 is left out: its forms drop a few boundary bits by design.)
    const token = fc.string({
      unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'),
      minLength: MIN_GUARDED_CHARS + 1,
      maxLength: 64,
    });
    const around = fc.string({ unit: fc.constantFrom(' ', '.', ',', '"', '%', '\\', '\n', '!') });
    const names = ['raw', 'hex', 'hexUpper', 'url', 'json', 'split'];
    fc.assert(
      fc.property(
        token,
        fc.nat(),
        around,
        around,
        choices,
        fc.constantFrom(...names),
        (secret, at, before, after, choice, name) => {
          const i = at % secret.length;
          const near = secret.slice(0, i) + secret.slice(i + 1);
          const text = `${before} ${ENCODERS[name]!(near, choice)} ${after}`;
          expect(new LeakGuard([{ id: 'k', token: secret }]).scan(text)).toEqual({ leaked: false });
        },
      ),
    );
  });
});
