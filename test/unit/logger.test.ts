import { Writable } from 'node:stream';
import type { LogFormat } from '../../config/settings';
import { createLogger } from '../../worker/logger';

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
