/**
 * The bridge's root logger: JSON lines or readable pretty lines, with secrets kept out of both.
 * Two layers: known secret fields are redacted by path, and every serialized line is scrubbed of
 * the keystore's tokens in every form the leak guard knows (docs/leak-guard.md#log-redaction), so
 * a token inside a message, an error or a field nobody expected is not printed either.
 */
import { performance } from 'node:perf_hooks';
import pino, { type Logger } from 'pino';
import type { LogFormat } from '../config/settings';
import type { LeakGuard } from '../services/leak-guard';

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

/** The guard over the tokens stored now, or undefined when there is none to ask. */
export type GuardSource = () => LeakGuard | undefined;

/** How long a scrubber keeps a source's guard before asking it again. */
export const SCRUB_REFRESH_MS = 1000;

interface Attached {
  source: GuardSource;
  guard: LeakGuard | undefined;
  askedAt: number;
}

/**
 * Redacts stored tokens from log lines. The logger exists before the keystore is opened, so the
 * keys are attached later through `use`. A source is asked at most once per SCRUB_REFRESH_MS,
 * never per line: asking lists the keystore, and a key stored meanwhile is redacted from the
 * first line written after the next refresh.
 */
export class LogScrubber {
  readonly #attached = new Set<Attached>();

  /** `now` in milliseconds, monotonic: a wall clock set back would stop the refreshes. */
  constructor(private readonly now: () => number = () => performance.now()) {}

  /** Redacts with `source`'s guard from now on, until the returned function detaches it. */
  use(source: GuardSource): () => void {
    const attached: Attached = { source, guard: undefined, askedAt: -Infinity };
    this.#attached.add(attached);
    return () => {
      this.#attached.delete(attached);
    };
  }

  /** `line` with every guarded token replaced by `[redacted]`; the same string when none is. */
  scrub(line: string): string {
    for (const attached of this.#attached) {
      const now = this.now();
      if (now - attached.askedAt >= SCRUB_REFRESH_MS) {
        // Set first: a source that logs must not ask itself again from inside this line.
        attached.askedAt = now;
        try {
          attached.guard = attached.source();
        } catch {
          // Writing a log line must never throw; the last guard serves until the next refresh.
        }
      }
      if (attached.guard) line = attached.guard.redact(line);
    }
    return line;
  }
}

/**
 * The process's scrubber, shared by every logger `createLogger` makes unless told otherwise: the
 * bridge's start attaches its keystore's guard here whichever logger it was given.
 */
export const logScrubber = new LogScrubber();

export interface LoggerOptions {
  level: string;
  format?: LogFormat;
  /** Where lines go (stdout by default); `auto` looks at whether it is a TTY. */
  destination?: pino.DestinationStream & { isTTY?: boolean };
  /** Scrubs every line before it is written or prettified (`logScrubber` by default). */
  scrubber?: LogScrubber;
}

/** The one root logger; modules take `.child({ ... })` of it. */
export function createLogger(options: LoggerOptions): Logger {
  const { level, format = 'json', scrubber = logScrubber } = options;
  const out = options.destination ?? process.stdout;
  const wantPretty = format === 'pretty' || (format === 'auto' && out.isTTY === true);
  return pino(
    {
      level,
      base: { service: 'armorclaw-bridge' },
      redact: { paths: redactPaths, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      // The serialized JSON line, before pino-pretty reads it: one scrub covers both formats.
      hooks: { streamWrite: (line) => scrubber.scrub(line) },
    },
    wantPretty ? prettyStream(out) : options.destination,
  );
}

function prettyStream(out: pino.DestinationStream & { isTTY?: boolean }): pino.DestinationStream {
  // Loaded only for readable lines: a bridge logging JSON does not carry it.
  const pretty = require('pino-pretty') as typeof import('pino-pretty');
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
