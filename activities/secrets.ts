import { constants, statfsSync } from 'node:fs';
import { chown, mkdir, open, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/activity';
import type { Logger } from 'pino';
import { TMPFS_MAGIC } from '../config/settings';
import {
  CONTAINER_SOCKET_DIR,
  PROXY_PLACEHOLDER_TOKEN,
  PROXY_SOCKET_NAME,
  proxyBaseUrl,
  type SecretsFile,
} from '../formats/secrets-file';
import { PROVIDER_SPECS } from '../proxy/providers';
import { KeystoreError, type KeyRecord, type Keystore } from '../services/keystore';
import { ContainerFailureType } from '../workflows/definitions';
import type { WriteSecretsArgs } from './container-types';

export interface SecretsFilesDeps {
  keystore: Keystore;
  /** tmpfs directory holding one sub-directory per container. */
  secretsDir: string;
  agentUid: number;
  log: Logger;
}

export const SECRETS_FILE_NAME = 'credentials.json';

/** The per-container directory that is bind-mounted read-only at /run/secrets. */
export const secretsDirFor = (secretsDir: string, containerName: string): string =>
  path.join(secretsDir, containerName);

/**
 * Writes and removes the short-lived secrets files. The token is read from the keystore here,
 * inside the activity, so it never appears in a workflow input, activity argument or result.
 * In `proxy` mode the file holds no token at all: a placeholder and where the proxy is.
 */
export function createSecretsActivities(deps: SecretsFilesDeps) {
  const { keystore, secretsDir, agentUid, log } = deps;

  async function writeSecretsFile(args: WriteSecretsArgs): Promise<void> {
    await ensureTmpfsDir(secretsDir);
    let record;
    try {
      record = keystore.get(args.keyId);
    } catch (err) {
      if (err instanceof KeystoreError && err.code === 'not_found') {
        throw ApplicationFailure.nonRetryable(
          `credential ${args.keyId} not found`,
          ContainerFailureType.KeyNotFound,
        );
      }
      if (err instanceof KeystoreError && err.code === 'expired') {
        throw ApplicationFailure.nonRetryable(
          `credential ${args.keyId} has expired`,
          ContainerFailureType.KeyExpired,
        );
      }
      if (err instanceof KeystoreError) {
        throw ApplicationFailure.nonRetryable(
          `credential ${args.keyId} could not be read`,
          ContainerFailureType.StartFailed,
        );
      }
      throw err;
    }
    const dir = secretsDirFor(secretsDir, args.containerName);
    // An existing directory is kept: a container may already have it bind-mounted (a pooled
    // container handed over to this run, or a retry after the container started).
    await mkdir(dir, { mode: 0o700 }).catch((err) => {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    });
    const file = path.join(dir, SECRETS_FILE_NAME);
    // Written beside it and renamed into place: an agent waiting for the file (a pooled one)
    // never sees it half written.
    const partial = path.join(dir, `.${SECRETS_FILE_NAME}.partial`);
    await rm(partial, { force: true });
    const body = Buffer.from(JSON.stringify(secretsFileFor(record, args.secretsMode)));
    const handle = await open(
      partial,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL,
      0o400,
    );
    try {
      await handle.writeFile(body);
      await handle.sync();
      if (process.getuid?.() === 0) await handle.chown(agentUid, agentUid);
    } finally {
      body.fill(0);
      await handle.close();
    }
    await rename(partial, file);
    if (process.getuid?.() === 0) await chown(dir, agentUid, agentUid);
    log.info(
      { containerName: args.containerName, keyId: args.keyId, secretsMode: args.secretsMode },
      'secrets file written',
    );
  }

  async function removeSecretsFile(args: { containerName: string }): Promise<void> {
    const dir = secretsDirFor(secretsDir, args.containerName);
    const existed = await stat(dir).then(
      () => true,
      () => false,
    );
    await rm(dir, { recursive: true, force: true });
    if (existed) log.info({ containerName: args.containerName }, 'secrets file removed');
  }

  return { writeSecretsFile, removeSecretsFile };
}

/** What the agent is given: the key itself, or how to reach the proxy that holds it. */
function secretsFileFor(
  record: KeyRecord & { token: string },
  mode: WriteSecretsArgs['secretsMode'],
): SecretsFile {
  if (mode === 'file') {
    return { mode, key_id: record.id, provider: record.provider, token: record.token };
  }
  return {
    mode,
    key_id: record.id,
    provider: record.provider,
    token: PROXY_PLACEHOLDER_TOKEN,
    proxy_socket: `${CONTAINER_SOCKET_DIR}/${PROXY_SOCKET_NAME}`,
    base_url: proxyBaseUrl(PROVIDER_SPECS[record.provider].sdkBasePath),
  };
}

/** Secrets must never touch a disk: refuse a secrets directory that is not on tmpfs. */
async function ensureTmpfsDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o711 });
  if (statfsSync(dir).type !== TMPFS_MAGIC) {
    throw ApplicationFailure.nonRetryable(
      `the secrets directory ${dir} is not on tmpfs; set ARMORCLAW_SECRETS_DIR to a tmpfs path`,
      ContainerFailureType.InvalidSpec,
    );
  }
}
