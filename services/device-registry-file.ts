/**
 * The device registry's file, `<state_dir>/devices.json` (services/device-registry.ts): its rows,
 * their validation on load, and the atomic 0600 write. Snake case on disk, like the gateway's
 * token file; the registry's API speaks the spec's camel case.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isDeviceScope, type DeviceScope } from '../formats/device-scopes';
import { writePrivateFileAtomic } from './private-file';

export const BRIDGE_ID_PATTERN = /^br_[0-9a-f]{16}$/;
const CODE_ID_PATTERN = /^pc_[0-9a-f]{16}$/;
const HEX64 = /^[0-9a-f]{64}$/;

export interface CodeRow {
  id: string;
  scrypt: string;
  scope: DeviceScope;
  created_at: string;
  expires_at: string;
  state: 'pending' | 'used' | 'superseded';
  bridge_id: string | null;
}

export interface DeviceRow {
  bridge_id: string;
  name: string;
  os: string;
  bridge_version: string;
  pub_key: string;
  scope: DeviceScope;
  token_sha256: string;
  paired_at: string;
  rotated_at: string | null;
  revoked_at: string | null;
}

export interface RegistryFile {
  version: 1;
  code_salt: string;
  codes: CodeRow[];
  devices: DeviceRow[];
}

/** The registry at `file`, or a new empty one with a fresh code salt if there is no file yet. */
export function readRegistryFile(file: string): RegistryFile {
  let text: string | undefined;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (text === undefined) {
    return { version: 1, code_salt: randomBytes(32).toString('hex'), codes: [], devices: [] };
  }
  return checkFile(JSON.parse(text) as unknown, file);
}

/** Writes `state` to `file` atomically, 0600 (services/private-file.ts). */
export function writeRegistryFile(file: string, state: RegistryFile): void {
  writePrivateFileAtomic(file, JSON.stringify(state, null, 2) + '\n');
}

function checkFile(value: unknown, file: string): RegistryFile {
  const f = value as Partial<RegistryFile> | null;
  if (
    typeof f !== 'object' ||
    f === null ||
    f.version !== 1 ||
    typeof f.code_salt !== 'string' ||
    !HEX64.test(f.code_salt) ||
    !Array.isArray(f.codes) ||
    !Array.isArray(f.devices)
  ) {
    throw new Error(
      `${file}: expected { "version": 1, "code_salt", "codes": [...], "devices": [...] }`,
    );
  }
  const isTime = (v: unknown) => typeof v === 'string' && !Number.isNaN(Date.parse(v));
  const codes = f.codes.map((c: Partial<CodeRow> | null, i) => {
    if (
      typeof c !== 'object' ||
      c === null ||
      typeof c.id !== 'string' ||
      !CODE_ID_PATTERN.test(c.id) ||
      typeof c.scrypt !== 'string' ||
      !HEX64.test(c.scrypt) ||
      !isDeviceScope(c.scope) ||
      !isTime(c.created_at) ||
      !isTime(c.expires_at) ||
      !['pending', 'used', 'superseded'].includes(c.state as string) ||
      (c.bridge_id !== null && typeof c.bridge_id !== 'string')
    ) {
      throw new Error(`${file}: codes[${i}] is not a pairing code record`);
    }
    return c as CodeRow;
  });
  const devices = f.devices.map((d: Partial<DeviceRow> | null, i) => {
    if (
      typeof d !== 'object' ||
      d === null ||
      typeof d.bridge_id !== 'string' ||
      !BRIDGE_ID_PATTERN.test(d.bridge_id) ||
      typeof d.name !== 'string' ||
      typeof d.os !== 'string' ||
      typeof d.bridge_version !== 'string' ||
      typeof d.pub_key !== 'string' ||
      !isDeviceScope(d.scope) ||
      typeof d.token_sha256 !== 'string' ||
      !HEX64.test(d.token_sha256) ||
      !isTime(d.paired_at) ||
      (d.rotated_at !== null && !isTime(d.rotated_at)) ||
      (d.revoked_at !== null && !isTime(d.revoked_at))
    ) {
      throw new Error(`${file}: devices[${i}] is not a device record`);
    }
    return d as DeviceRow;
  });
  return { version: 1, code_salt: f.code_salt, codes, devices };
}
