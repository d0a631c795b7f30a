/**
 * The agent's credential: read once from the secrets file (a 0400 file on the bridge's tmpfs,
 * bind-mounted read-only, deleted by the bridge soon after) and kept in memory only.
 */
import { readFileSync } from 'node:fs';
import { inspect } from 'node:util';
import { errorCode } from './log';

/** Holds the token; every way of turning it into text except `reveal()` yields `[redacted]`. */
export class Secret {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  reveal(): string {
    return this.#value;
  }
  toString(): string {
    return '[redacted]';
  }
  toJSON(): string {
    return '[redacted]';
  }
  [inspect.custom](): string {
    return 'Secret([redacted])';
  }
}

export interface Credentials {
  keyId: string;
  provider: string;
  token: Secret;
}

/** Why the secrets file cannot be used; the reason never quotes the file's content. */
export class SecretsError extends Error {}

/** Reads and checks the secrets file; throws SecretsError with a printable reason. */
export function readCredentials(file: string): Credentials {
  let raw: string;
  try {
    raw = readFileSync(file, 'utf8');
  } catch (err) {
    throw new SecretsError(`cannot read the secrets file (${errorCode(err)})`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(raw);
  } catch {
    // V8's parse error quotes the input: never pass it on.
    throw new SecretsError('the secrets file is not valid JSON');
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw new SecretsError('the secrets file is not a JSON object');
  }
  const { key_id: keyId, provider, token } = doc as Record<string, unknown>;
  if (typeof keyId !== 'string' || keyId.trim() === '') {
    throw new SecretsError('the secrets file has no key_id');
  }
  if (typeof token !== 'string' || token.trim() === '') {
    throw new SecretsError('the secrets file has no token');
  }
  return {
    keyId,
    provider: typeof provider === 'string' ? provider : '',
    token: new Secret(token),
  };
}
