import type { StoredEvent } from '../services/matrix-store';

export interface InboxFilter {
  roomIds?: readonly string[];
  types?: readonly string[];
}

type Listener = (events: StoredEvent[]) => void;

/**
 * Fans newly stored Matrix events out to live listeners (RPC subscribers, agents). Delivery is
 * synchronous and never waits for a listener: a slow or broken one only loses its push, never
 * the durable copy, which stays in the MatrixStore for `matrix.receive` and redelivery.
 */
export class MatrixInbox {
  private readonly listeners = new Map<number, { filter: InboxFilter; listener: Listener }>();
  private nextId = 1;

  /** Registers a listener; returns its unsubscribe function. */
  subscribe(filter: InboxFilter, listener: Listener): () => void {
    const id = this.nextId++;
    this.listeners.set(id, { filter, listener });
    return () => this.listeners.delete(id);
  }

  publish(events: StoredEvent[]): void {
    if (events.length === 0) return;
    for (const { filter, listener } of [...this.listeners.values()]) {
      const matching = events.filter((e) => matches(filter, e));
      if (matching.length === 0) continue;
      try {
        listener(matching);
      } catch {
        // One listener's failure is its own.
      }
    }
  }

  get size(): number {
    return this.listeners.size;
  }
}

export function matches(filter: InboxFilter, e: StoredEvent): boolean {
  if (filter.roomIds && filter.roomIds.length > 0 && !filter.roomIds.includes(e.room_id))
    return false;
  if (filter.types && filter.types.length > 0 && !filter.types.includes(e.type)) return false;
  return true;
}

type EventFields = Pick<StoredEvent, 'type' | 'room_id' | 'sender' | 'content' | 'event_id'>;

/**
 * The spec's form of an event (`matrix.receive`), without a queue position: from a bridge's
 * store (`origin`) or from the account's shared queue (`origin_server_ts`).
 */
export const publicEvent = (
  e: EventFields & ({ origin: string } | { origin_server_ts: number }),
) => ({
  type: e.type,
  room_id: e.room_id,
  sender: e.sender,
  content: e.content,
  origin: 'origin' in e ? e.origin : String(e.origin_server_ts),
  event_id: e.event_id,
});
