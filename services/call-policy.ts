/**
 * Which rooms voice calls may be placed for: a pure function of the configured lists
 * (`voice.allowed_rooms`, `voice.blocked_rooms`, `matrix.trusted_rooms`,
 * `matrix.empty_list_allows_all`), no I/O. Rate and concurrency limits are not here: they need
 * one decider for the whole namespace, `callAdmissionWorkflow`.
 */

export interface RoomPolicy {
  allowedRooms: readonly string[];
  blockedRooms: readonly string[];
  trustedRooms: readonly string[];
  /** What empty allow lists mean: false (zero trust) lets no room call, true every room. */
  emptyListAllowsAll: boolean;
}

export type RoomVerdict =
  { allowed: true } | { allowed: false; reason: 'room_blocked' | 'room_not_allowed' };

/**
 * Decides whether a call may be placed for `roomId`. The block list wins over every allow list;
 * then the first non-empty list of `allowedRooms`, `trustedRooms` names the rooms allowed; with
 * both empty, `emptyListAllowsAll` decides.
 */
export function roomVerdict(roomId: string, policy: RoomPolicy): RoomVerdict {
  if (policy.blockedRooms.includes(roomId)) return { allowed: false, reason: 'room_blocked' };
  const allowList = policy.allowedRooms.length > 0 ? policy.allowedRooms : policy.trustedRooms;
  const allowed = allowList.length > 0 ? allowList.includes(roomId) : policy.emptyListAllowsAll;
  return allowed ? { allowed: true } : { allowed: false, reason: 'room_not_allowed' };
}
