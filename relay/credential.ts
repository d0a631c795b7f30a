/**
 * The relay's one secret: the credential its bridge links with (`acrl_…`, 256 random bits).
 * The relay keeps only its SHA-256, in `<stateDir>/relay.json` (mode 0600, written atomically):
 * `armorclaw relay credential` makes one and prints it once, and a new one replaces the old.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { RELAY_CREDENTIAL_PREFIX } from '../formats/relay-frames';
import { writePrivateFileAtomic } from '../services/private-file';

export const RELAY_STATE_FILE = 'relay.json';
const HEX64 = /^[0-9a-f]{64}$/;

interface RelayStateFile {
  credential_sha256: string;
  created_at: string;
}

/** Hex SHA-256 of a credential, as the state file and the server keep it. */
export const credentialSha256 = (credential: string): string =>
  createHash('sha256').update(credential, 'utf8').digest('hex');

/**
 * Makes a new credential, stores its hash (replacing any previous one: the old credential no
 * longer links) and returns it. This is the only time the credential exists in clear.
 */
export function createRelayCredential(stateDir: string, now: Date = new Date()): string {
  const credential = RELAY_CREDENTIAL_PREFIX + randomBytes(32).toString('base64url');
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const state: RelayStateFile = {
    credential_sha256: credentialSha256(credential),
    created_at: now.toISOString(),
  };
  writePrivateFileAtomic(
    path.join(stateDir, RELAY_STATE_FILE),
    JSON.stringify(state, null, 2) + '\n',
  );
  return credential;
}

/** The stored hash, or undefined when no credential was made yet; a corrupt file throws. */
export function readRelayCredentialHash(stateDir: string): string | undefined {
  const file = path.join(stateDir, RELAY_STATE_FILE);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error(
      `${file} is not valid JSON; make a new credential (armorclaw relay credential)`,
    );
  }
  const hash = (value as Partial<RelayStateFile> | null)?.credential_sha256;
  if (typeof hash !== 'string' || !HEX64.test(hash)) {
    throw new Error(
      `${file} holds no credential hash; make a new credential (armorclaw relay credential)`,
    );
  }
  return hash;
}
