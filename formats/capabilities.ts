/**
 * The high-risk capabilities an agent must ask an operator for (`approval.request` on its socket)
 * before it acts, with what an approval grants when the operator does not say otherwise. Pure
 * data, shared by the agent's socket methods, the approval workflow's callers, the gateway and
 * the docs; the table in docs/gateway.md ("Capabilities") mirrors it and a unit test keeps the
 * two in step.
 *
 * A grant is deliberately narrow: a few uses and a short life. An operator who trusts an agent
 * with more says so per approval (`grantTtlMs`, `grantUses`), up to the caps below.
 */

export interface CapabilitySpec {
  /** What it lets an agent do, for operators reading an approval request. */
  description: string;
  /** How long a grant lasts when the approval does not say. */
  defaultGrantTtlMs: number;
  /** How many `approval.use` calls a grant allows when the approval does not say. */
  defaultGrantUses: number;
}

const MINUTE_MS = 60_000;

export const CAPABILITIES = {
  'shell.exec': {
    description: 'run a shell command or program inside the agent container',
    defaultGrantTtlMs: 10 * MINUTE_MS,
    defaultGrantUses: 1,
  },
  'fs.write': {
    description: 'write or overwrite files outside the agent scratch space',
    defaultGrantTtlMs: 30 * MINUTE_MS,
    defaultGrantUses: 10,
  },
  'fs.delete': {
    description: 'delete files or directories',
    defaultGrantTtlMs: 10 * MINUTE_MS,
    defaultGrantUses: 1,
  },
  'network.egress': {
    description: 'open a network connection to a host outside the bridge',
    defaultGrantTtlMs: 15 * MINUTE_MS,
    defaultGrantUses: 5,
  },
  'matrix.invite': {
    description: 'invite a user into a Matrix room or create a room',
    defaultGrantTtlMs: 10 * MINUTE_MS,
    defaultGrantUses: 1,
  },
  'matrix.broadcast': {
    description: 'post outside the room the agent is bound to',
    defaultGrantTtlMs: 10 * MINUTE_MS,
    defaultGrantUses: 1,
  },
  'keys.use': {
    description: 'use a stored credential other than the run key (signing, another provider)',
    defaultGrantTtlMs: 5 * MINUTE_MS,
    defaultGrantUses: 1,
  },
  'payments.spend': {
    description: 'spend money or commit to a purchase on someone’s behalf',
    defaultGrantTtlMs: 5 * MINUTE_MS,
    defaultGrantUses: 1,
  },
} as const satisfies Record<string, CapabilitySpec>;

export type Capability = keyof typeof CAPABILITIES;

export const CAPABILITY_NAMES = Object.keys(CAPABILITIES) as Capability[];

/** The longest grant any approval may give (a day), and the most uses. */
export const MAX_GRANT_TTL_MS = 24 * 60 * MINUTE_MS;
export const MAX_GRANT_USES = 1_000;

export function isCapability(name: unknown): name is Capability {
  return typeof name === 'string' && Object.hasOwn(CAPABILITIES, name);
}
