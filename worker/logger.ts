import pino, { type Logger } from 'pino';

/**
 * Paths whose values are secrets wherever they appear in a log object. Tokens are redacted by
 * path so that a careless `log.info({ params })` still prints nothing secret.
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

/** The one root logger; modules take `.child({ ... })` of it. */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'armorclaw-bridge' },
      redact: { paths: redactPaths, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}
