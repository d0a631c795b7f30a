import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';
import type { LogFormat } from '../config/settings';

/**
 * Paths whose values are secrets wherever they appear in a log object. Tokens are redacted by
 * path so that a careless `log.info({ params })` still prints nothing secret. Redaction happens
 * before a line is written, so it holds for both formats.
 */
export const redactPaths = [
  'token',
  'password',
  'access_token',
  'masterKey',
  'master_key',
  '*.token',
  '*.password',
  '*.access_token',
  '*.masterKey',
  'params.token',
  'params.password',
  'keystore.masterKey',
  'config.keystore.masterKey',
];

export interface LoggerOptions {
  level: string;
  format?: LogFormat;
  /** Where lines go (stdout by default); `auto` looks at whether it is a TTY. */
  destination?: pino.DestinationStream & { isTTY?: boolean };
}

/** The one root logger; modules take `.child({ ... })` of it. */
export function createLogger(options: LoggerOptions): Logger {
  const { level, format = 'json' } = options;
  const out = options.destination ?? process.stdout;
  const wantPretty = format === 'pretty' || (format === 'auto' && out.isTTY === true);
  return pino(
    {
      level,
      base: { service: 'armorclaw-bridge' },
      redact: { paths: redactPaths, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    wantPretty ? prettyStream(out) : options.destination,
  );
}

function prettyStream(out: pino.DestinationStream & { isTTY?: boolean }): pino.DestinationStream {
  return pretty({
    destination: out,
    // Colours only where a terminal shows them (a forced `pretty` into a pipe stays plain).
    colorize: out.isTTY === true,
    // Synchronous, in this thread: the last lines before an exit are never lost.
    sync: true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname,service,component',
    messageFormat: '{if component}[{component}] {end}{msg}',
    singleLine: false,
  });
}
