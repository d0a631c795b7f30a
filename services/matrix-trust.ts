/**
 * Zero trust for Matrix: which senders and rooms may reach agents. Patterns are exact user ids
 * (`@alice:example.com`) or a whole server (`*:example.com`, also written `*@example.com`).
 */
export interface TrustPolicy {
  trustedSenders: readonly string[];
  trustedRooms: readonly string[];
  /** What an empty list means: false lets nobody through, true everybody. */
  emptyListAllowsAll: boolean;
}

export type TrustVerdict =
  { trusted: true } | { trusted: false; reason: 'untrusted_sender' | 'untrusted_room' };

/** The server part of a Matrix id (`@a:b.c:8448` → `b.c:8448`), or null if it is not one. */
export function serverOf(userId: string): string | null {
  const m = /^@[^:]+:(.+)$/.exec(userId);
  return m ? m[1]! : null;
}

export function senderMatches(sender: string, pattern: string): boolean {
  if (pattern.startsWith('*:') || pattern.startsWith('*@')) {
    return serverOf(sender) === pattern.slice(2);
  }
  return sender === pattern;
}

/** Whether the bridge deals with `roomId` at all (events in, sends from remote clients out). */
export function roomTrusted(policy: TrustPolicy, roomId: string): boolean {
  return policy.trustedRooms.length === 0
    ? policy.emptyListAllowsAll
    : policy.trustedRooms.includes(roomId);
}

/** Decides whether an event from `sender` in `roomId` may reach anyone. */
export function judge(policy: TrustPolicy, sender: string, roomId: string): TrustVerdict {
  if (!roomTrusted(policy, roomId)) return { trusted: false, reason: 'untrusted_room' };
  const senderOk =
    policy.trustedSenders.length === 0
      ? policy.emptyListAllowsAll
      : policy.trustedSenders.some((p) => senderMatches(sender, p));
  return senderOk ? { trusted: true } : { trusted: false, reason: 'untrusted_sender' };
}

/**
 * A room id: `!` and an opaque part. Not required to carry `:server` (room version 12 ids do not).
 */
export const isRoomId = (id: string): boolean => /^![^\s]{1,254}$/.test(id);
