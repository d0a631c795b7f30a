/**
 * The bridge's custom search attributes: upserted by workflows on each transition so the
 * Temporal Web UI lists every session with its state, and registered by the bridge at start.
 * They carry ids, never secrets (docs/architecture.md, rule 7).
 */
import {
  defineSearchAttributeKey,
  SearchAttributeType,
  type SearchAttributePair,
} from '@temporalio/common';

export const ArmorclawKind = defineSearchAttributeKey('ArmorclawKind', SearchAttributeType.KEYWORD);
export const ArmorclawState = defineSearchAttributeKey(
  'ArmorclawState',
  SearchAttributeType.KEYWORD,
);
export const ArmorclawRoom = defineSearchAttributeKey('ArmorclawRoom', SearchAttributeType.KEYWORD);
export const ArmorclawContainerId = defineSearchAttributeKey(
  'ArmorclawContainerId',
  SearchAttributeType.KEYWORD,
);
export const ArmorclawHost = defineSearchAttributeKey('ArmorclawHost', SearchAttributeType.KEYWORD);
export const ArmorclawAgentType = defineSearchAttributeKey(
  'ArmorclawAgentType',
  SearchAttributeType.KEYWORD,
);
export const ArmorclawKeyId = defineSearchAttributeKey(
  'ArmorclawKeyId',
  SearchAttributeType.KEYWORD,
);

/** A call's user-visible state (Connecting, Live, Reconnecting, Ended, Failed). */
export const ArmorclawUserState = defineSearchAttributeKey(
  'ArmorclawUserState',
  SearchAttributeType.KEYWORD,
);

export const allSearchAttributes = [
  ArmorclawKind,
  ArmorclawState,
  ArmorclawRoom,
  ArmorclawContainerId,
  ArmorclawHost,
  ArmorclawAgentType,
  ArmorclawKeyId,
  ArmorclawUserState,
] as const;

/**
 * A container run's attributes in `state`: what the client starts it with (Pending) and what its
 * workflow upserts on every transition, so the two never drift apart.
 */
export function containerRunAttributes(
  run: { agentType: string; keyId: string; hostId: string },
  state: string,
  containerId?: string,
): SearchAttributePair[] {
  return [
    { key: ArmorclawKind, value: 'container' },
    { key: ArmorclawState, value: state },
    { key: ArmorclawAgentType, value: run.agentType },
    { key: ArmorclawKeyId, value: run.keyId },
    { key: ArmorclawHost, value: run.hostId },
    ...(containerId ? [{ key: ArmorclawContainerId, value: containerId }] : []),
  ];
}

/** Visibility query of container runs; `open` keeps those whose workflow still runs. */
export function containerRunsQuery(opts: { open: boolean; state?: string }): string {
  return (
    `${ArmorclawKind.name} = 'container'` +
    (opts.open ? ` AND ExecutionStatus = 'Running'` : '') +
    (opts.state ? ` AND ${ArmorclawState.name} = '${opts.state}'` : '')
  );
}

/** The states of an approval's workflow that each public status covers. */
export const APPROVAL_STATES_OF: Record<string, readonly string[]> = {
  pending: ['Pending'],
  // A grant used up or timed out was approved all the same.
  approved: ['Approved', 'Spent'],
  denied: ['Denied'],
  expired: ['Expired'],
};

/**
 * Visibility query of approval requests: of one public status, or only those with a usable
 * grant (`grantActive`: Approved and still open). The request itself (capability, requester,
 * grant) is in each workflow's memo, so no attribute beyond kind and state is needed.
 */
export function approvalsQuery(opts: { status?: string; grantActive?: boolean }): string {
  const states = opts.grantActive
    ? ['Approved']
    : opts.status
      ? APPROVAL_STATES_OF[opts.status]
      : [];
  return (
    `${ArmorclawKind.name} = 'approval'` +
    (opts.grantActive ? ` AND ExecutionStatus = 'Running'` : '') +
    (states && states.length > 0
      ? ` AND ${ArmorclawState.name} IN (${states.map((s) => `'${s}'`).join(', ')})`
      : '')
  );
}

/**
 * A gateway turn's attributes in `state` (ArmorclawKind `turn`): what the client or schedule
 * starts it with (Pending) and what its workflow upserts on every transition.
 */
export function turnAttributes(
  turn: { agentType: string; keyId: string; hostId: string },
  state: string,
  containerId?: string,
): SearchAttributePair[] {
  return [
    { key: ArmorclawKind, value: 'turn' },
    { key: ArmorclawState, value: state },
    { key: ArmorclawAgentType, value: turn.agentType },
    { key: ArmorclawKeyId, value: turn.keyId },
    { key: ArmorclawHost, value: turn.hostId },
    ...(containerId ? [{ key: ArmorclawContainerId, value: containerId }] : []),
  ];
}
