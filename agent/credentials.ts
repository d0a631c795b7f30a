/**
 * The agent's credential: read once from the secrets file (a 0400 file on the bridge's tmpfs,
 * bind-mounted read-only, deleted by the bridge soon after) and kept in memory only. The file's
 * shape is formats/secrets-file.ts: in `proxy` mode it names the bridge's provider proxy and
 * holds a placeholder, in `file` mode (or with no `mode`, as files written before modes were)
 * it holds the real key.
 */
import { existsSync, readFileSync, watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import { inspect } from 'node:util';
import { PROXY_LOOPBACK_PORT, SECRETS_MODES, type SecretsMode } from '../formats/secrets-file';
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

interface CommonCredentials {
  keyId: string;
  provider: string;
  /** The real key in `file` mode, the placeholder in `proxy` mode. */
  token: Secret;
}

export type Credentials = CommonCredentials &
  (
    | { mode: 'file' }
    | {
        mode: 'proxy';
        /** The provider proxy's Unix socket inside the container. */
        proxySocket: string;
        /** What an SDK is given: the loopback forwarder plus the provider's API prefix. */
        baseUrl: string;
      }
  );

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
  const fields = doc as Record<string, unknown>;
  const { key_id: keyId, provider, token } = fields;
  if (typeof keyId !== 'string' || keyId.trim() === '') {
    throw new SecretsError('the secrets file has no key_id');
  }
  if (typeof token !== 'string' || token.trim() === '') {
    throw new SecretsError('the secrets file has no token');
  }
  const common: CommonCredentials = {
    keyId,
    provider: typeof provider === 'string' ? provider : '',
    token: new Secret(token),
  };
  const mode = readMode(fields.mode);
  if (mode === 'file') return { ...common, mode };
  return {
    ...common,
    mode,
    proxySocket: readProxySocket(fields.proxy_socket),
    baseUrl: readBaseUrl(fields.base_url),
  };
}

function readMode(value: unknown): SecretsMode {
  if (value === undefined) return 'file';
  if (SECRETS_MODES.includes(value as SecretsMode)) return value as SecretsMode;
  throw new SecretsError(`the secrets file's mode is not one of ${SECRETS_MODES.join(', ')}`);
}

function readProxySocket(value: unknown): string {
  if (typeof value !== 'string' || !path.isAbsolute(value) || value.includes('\0')) {
    throw new SecretsError('the secrets file is in proxy mode without an absolute proxy_socket');
  }
  return value;
}

/**
 * The agent runs its forwarder at 127.0.0.1:PROXY_LOOPBACK_PORT; a base URL naming anything
 * else would send an SDK nowhere, so it is refused here rather than at the first request.
 */
function readBaseUrl(value: unknown): string {
  let url: URL | undefined;
  try {
    url = typeof value === 'string' ? new URL(value) : undefined;
  } catch {
    // An unparsable URL: reported below, without quoting it.
  }
  if (
    !url ||
    url.protocol !== 'http:' ||
    url.hostname !== '127.0.0.1' ||
    url.port !== String(PROXY_LOOPBACK_PORT)
  ) {
    throw new SecretsError(
      `the secrets file's base_url is not http://127.0.0.1:${PROXY_LOOPBACK_PORT}/…`,
    );
  }
  return value as string;
}

/**
 * Resolves once `file` exists: the agent of a pooled container waits here until a run takes the
 * container and the bridge writes the file (renamed into place, so it is whole when it appears).
 * Watches the directory, and looks every `pollMs` too in case a watch event is missed.
 */
export function waitForFile(file: string, pollMs = 250): Promise<void> {
  return new Promise((resolve) => {
    let watcher: FSWatcher | undefined;
    const check = () => {
      if (!existsSync(file)) return;
      watcher?.close();
      clearInterval(timer);
      resolve();
    };
    const timer = setInterval(check, pollMs);
    try {
      watcher = watch(path.dirname(file), check);
    } catch {
      // Polling alone still finds it.
    }
    check();
  });
}
