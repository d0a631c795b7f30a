/**
 * The bridge's custom search attributes: upserted by workflows on each transition so the
 * Temporal Web UI lists every session with its state, and registered by the bridge at start.
 * They carry ids, never secrets (docs/architecture.md, rule 7).
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

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
