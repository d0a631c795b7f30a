import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import type { LogFormat } from '../../config/settings';
import { Keystore, keystorePath } from '../../services/keystore';
import { LeakGuard, LiveLeakGuard } from '../../services/leak-guard';
import { createLogger, logScrubber, LogScrubber, SCRUB_REFRESH_MS } from '../../worker/logger';

/** A destination that keeps what it is given, and can claim to be a terminal. */
function capture(isTTY: boolean): Writable & { isTTY: boolean; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer | string, _enc, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  return Object.assign(stream, { isTTY, text: () => chunks.join('') });
}

function logOnce(format: LogFormat, isTTY: boolean): string {
  const out = capture(isTTY);
  const log = createLogger({ level: 'info', format, destination: out });
  log
    .child({ component: 'socket' })
    .info(
      { params: { token: 'tok-s3cret', password: 'pw-s3cret' }, socket: '/run/x.sock' },
      'bridge ready',
    );
  return out.text();
}

const ESC = '\u001b[';

describe('log format', () => {
  test('auto on a terminal: readable coloured lines, the component before the message', () => {
    const text = logOnce('auto', true);
    expect(() => JSON.parse(text)).toThrow();
    expect(text).toContain(ESC);
    expect(text).toMatch(/\d\d:\d\d:\d\d\.\d{3}/);
    expect(text).toContain('[socket] bridge ready');
    expect(text).toContain('/run/x.sock');
  });

  test('auto into a pipe: one JSON object a line', () => {
    const text = logOnce('auto', false);
    const line = JSON.parse(text.trim());
    expect(line).toMatchObject({ msg: 'bridge ready', component: 'socket', level: 30 });
  });

  test('pretty forced into a pipe: readable, without colour codes', () => {
    const text = logOnce('pretty', false);
    expect(text).toContain('[socket] bridge ready');
    expect(text).not.toContain(ESC);
  });

  test('json forced on a terminal stays JSON', () => {
    expect(JSON.parse(logOnce('json', true).trim()).msg).toBe('bridge ready');
  });

  test.each<[LogFormat, boolean]>([
    ['json', false],
    ['pretty', true],
  ])('secrets are redacted (%s)', (format, tty) => {
    const text = logOnce(format, tty);
    expect(text).not.toContain('s3cret');
    expect(text).toContain('[redacted]');
  });
});

// Shaped like provider keys, with the characters serializers treat specially: `/` and `+`
// (percent- and base64-relevant), and `"` and `\`, which JSON escapes inside a log line.
const TOKEN = 'sk-live-Qx7/Lm+9_vT2w~?K-rN8z';
const QUOTED = 'sk-odd-"quoted"\\back-7Hq2';
const KEYS = [
  { id: 'main', token: TOKEN },
  { id: 'odd', token: QUOTED },
];

// Every encoding the leak guard looks for, as a careless log call would print it.
const forms: Array<[string, string]> = [
  ['raw', TOKEN],
  ['base64', Buffer.from(TOKEN).toString('base64')],
  ['base64url', Buffer.from(TOKEN).toString('base64url')],
  ['hex', Buffer.from(TOKEN).toString('hex')],
  ['URL-encoded', encodeURIComponent(TOKEN)],
  ['raw, JSON-escaped in the line', QUOTED],
];

/** A scrubber on a clock the test moves, attached to a guard over `keys` (read at each refresh). */
function scrubbing(keys: Array<{ id: string; token: string }>) {
  const clock = { now: 0 };
  const scrubber = new LogScrubber(() => clock.now);
  const source = jest.fn(() => new LeakGuard(keys));
  const detach = scrubber.use(source);
  return { clock, scrubber, source, detach };
}

function loggerTo(format: LogFormat, scrubber: LogScrubber) {
  const out = capture(format === 'pretty');
  return { out, log: createLogger({ level: 'info', format, destination: out, scrubber }) };
}

const printed = (text: string, secret: string) =>
  new LeakGuard([{ id: 's', token: secret }]).scan(text);

describe('stored tokens are scrubbed from every line', () => {
  const guard = new LeakGuard(KEYS);

  describe.each<LogFormat>(['json', 'pretty'])('%s', (format) => {
    test.each(forms)('%s, in a message, a nested field and an error', (_name, form) => {
      const { scrubber } = scrubbing(KEYS);
      const { out, log } = loggerTo(format, scrubber);
      log.info(`calling the provider with ${form} now`);
      log.info({ request: { headers: { 'x-api-key': form }, retries: [form] } }, 'request');
      log.error({ err: new Error(`provider refused ${form}`) }, 'call failed');
      log.error(new Error(`bad key ${form}`));
      const text = out.text();
      expect(text).not.toContain(form);
      expect(guard.scan(text)).toEqual({ leaked: false });
      // A marker in place of each: the message, both fields, each error's message and stack.
      expect(text.match(/\[redacted\]/g)!.length).toBeGreaterThanOrEqual(7);
      if (format === 'json') {
        const lines = text
          .trim()
          .split('\n')
          .map((line) => JSON.parse(line) as Record<string, unknown>);
        expect(lines).toHaveLength(4);
        expect(lines[0]!.msg).toMatch(/^calling the provider with .*\[redacted\].* now$/);
      }
    });
  });

  test('the raw token leaves exactly a marker in the message', () => {
    const { scrubber } = scrubbing(KEYS);
    const { out, log } = loggerTo('json', scrubber);
    log.info(`key ${TOKEN}, and ${QUOTED}.`);
    expect(JSON.parse(out.text()).msg).toBe('key [redacted], and [redacted].');
  });

  test('a line without secrets is written byte for byte as without a scrubber', () => {
    jest.useFakeTimers({ now: new Date('2026-02-01T10:00:00Z') });
    try {
      const err = new Error('unrelated'); // one stack for both loggers
      const write = (scrubber: LogScrubber, format: LogFormat) => {
        const { out, log } = loggerTo(format, scrubber);
        const child = log.child({ component: 'rpc' });
        child.info({ url: 'https://x.test/a%20b?q=1', quote: 'say "hi"\\', n: 3 }, 'line\none');
        child.warn({ err }, 'warned');
        return out.text();
      };
      for (const format of ['json', 'pretty'] as const) {
        const plain = write(new LogScrubber(), format);
        expect(write(scrubbing(KEYS).scrubber, format)).toBe(plain);
      }
    } finally {
      jest.useRealTimers();
    }
  });

  test('a key stored while running is redacted after the next refresh; keys are not read per line', () => {
    const keys: Array<{ id: string; token: string }> = [];
    const { clock, scrubber, source } = scrubbing(keys);
    const { out, log } = loggerTo('json', scrubber);
    const msgs = () =>
      out
        .text()
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line).msg as string);

    for (let i = 0; i < 50; i++) log.info('nothing stored yet');
    expect(source).toHaveBeenCalledTimes(1);

    keys.push({ id: 'new', token: TOKEN });
    clock.now = SCRUB_REFRESH_MS - 1;
    log.info(`early ${TOKEN}`);
    clock.now = SCRUB_REFRESH_MS;
    log.info(`late ${TOKEN}`);
    log.info(`later ${TOKEN}`);
    expect(msgs().slice(-3)).toEqual([`early ${TOKEN}`, 'late [redacted]', 'later [redacted]']);
    expect(source).toHaveBeenCalledTimes(2);
  });

  test('a detached source no longer scrubs', () => {
    const { scrubber, detach } = scrubbing(KEYS);
    const { out, log } = loggerTo('json', scrubber);
    detach();
    log.info(TOKEN);
    expect(printed(out.text(), TOKEN)).toMatchObject({ leaked: true });
  });

  test('a source that throws keeps its last guard and never breaks logging', () => {
    const clock = { now: 0 };
    const scrubber = new LogScrubber(() => clock.now);
    let failing = false;
    scrubber.use(() => {
      if (failing) throw new Error('keystore busy');
      return new LeakGuard(KEYS);
    });
    const { out, log } = loggerTo('json', scrubber);
    log.info('first');
    failing = true;
    clock.now = 5 * SCRUB_REFRESH_MS;
    expect(() => log.info(`still ${TOKEN}`)).not.toThrow();
    expect(out.text()).toContain('still [redacted]');
  });

  test('loggers use the process-wide scrubber by default', () => {
    const out = capture(false);
    const log = createLogger({ level: 'info', destination: out });
    const detach = logScrubber.use(() => new LeakGuard(KEYS));
    try {
      log.info(`with ${TOKEN}`);
    } finally {
      detach();
    }
    log.info(`detached ${TOKEN}`);
    const msgs = out
      .text()
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line).msg as string);
    expect(msgs).toEqual(['with [redacted]', `detached ${TOKEN}`]);
  });
});

describe('scrubbing from the keystore, as the bridge does', () => {
  const NOW = 1_738_864_000;
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'armorclaw-log-scrub-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('expired keys are still redacted', () => {
    let unixNow = NOW;
    const keystore = Keystore.open({
      dbPath: keystorePath(dir),
      masterKey: randomBytes(32),
      now: () => unixNow,
    });
    try {
      keystore.store({ id: 'old', provider: 'openai', token: TOKEN, expires_at: NOW + 10 });
      unixNow = NOW + 60;
      expect(() => keystore.get('old')).toThrow(/expired/);
      const leakGuard = new LiveLeakGuard(keystore);
      const scrubber = new LogScrubber(() => 0);
      scrubber.use(() => leakGuard.current());
      const { out, log } = loggerTo('json', scrubber);
      log.info({ hex: Buffer.from(TOKEN).toString('hex') }, `expired ${TOKEN}`);
      expect(printed(out.text(), TOKEN)).toEqual({ leaked: false });
      expect(JSON.parse(out.text())).toMatchObject({
        msg: 'expired [redacted]',
        hex: '[redacted]',
      });
    } finally {
      keystore.close();
    }
  });
});
