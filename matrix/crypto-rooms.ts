/**
 * What the bridge's E2EE reads from Matrix rooms: the slice of a /sync response crypto needs,
 * and each room's encryption settings, history visibility and members, which decide whether a
 * send is encrypted and for whom.
 */
import type { MatrixHttp } from './http';

/** A /sync response, as far as crypto reads it. */
export interface CryptoSyncResponse {
  to_device?: { events?: unknown[] };
  device_lists?: { changed?: string[]; left?: string[] };
  device_one_time_keys_count?: Record<string, number>;
  device_unused_fallback_key_types?: string[];
  'org.matrix.msc2732.device_unused_fallback_key_types'?: string[];
  rooms?: {
    join?: Record<
      string,
      {
        state?: { events?: StateEvent[] };
        timeline?: { events?: StateEvent[]; limited?: boolean };
      }
    >;
    leave?: Record<string, unknown>;
  };
}

export interface StateEvent {
  type: string;
  state_key?: string;
  content?: Record<string, unknown>;
  sender?: string;
}

/** The logged-in client's HTTP API, as the SDK types it with `onlyData`. */
export type HttpApi = Pick<MatrixHttp, 'authedRequest'>;

/**
 * The state the bridge needs to encrypt for a room: its encryption settings, history visibility
 * and who is in it. Filled from `/rooms/{id}/state` on the first send and kept current from the
 * state events of each sync; a gappy (limited) timeline drops the entry, since lazy-loaded
 * members may hide changes in the gap.
 */
export class RoomStates {
  private readonly rooms = new Map<
    string,
    {
      encryption: Record<string, unknown> | null;
      historyVisibility: string;
      members: Map<string, string>;
    }
  >();
  /** Rooms whose m.room.encryption was seen in a sync before their state was loaded. */
  private readonly seenEncrypted = new Map<string, Record<string, unknown>>();
  /** Counts state changes seen per room: a state read that raced with one is not kept. */
  private readonly changes = new Map<string, number>();

  constructor(private readonly http: () => HttpApi) {}

  observe(res: CryptoSyncResponse): void {
    for (const roomId of Object.keys(res.rooms?.leave ?? {})) this.rooms.delete(roomId);
    for (const [roomId, room] of Object.entries(res.rooms?.join ?? {})) {
      const known = this.rooms.get(roomId);
      if (room.timeline?.limited) this.rooms.delete(roomId);
      for (const e of [...(room.state?.events ?? []), ...(room.timeline?.events ?? [])]) {
        if (e.state_key === undefined) continue;
        this.changes.set(roomId, (this.changes.get(roomId) ?? 0) + 1);
        if (e.type === 'm.room.encryption' && e.state_key === '' && e.content) {
          this.seenEncrypted.set(roomId, e.content);
          if (known) known.encryption = e.content;
        }
        if (!known || room.timeline?.limited) continue;
        if (e.type === 'm.room.history_visibility' && e.state_key === '')
          known.historyVisibility = String(e.content?.history_visibility ?? 'shared');
        if (e.type === 'm.room.member')
          known.members.set(e.state_key, String(e.content?.membership ?? 'leave'));
      }
    }
  }

  async get(roomId: string) {
    let room = this.rooms.get(roomId);
    if (!room) {
      const generation = this.changes.get(roomId) ?? 0;
      const state = await this.http().authedRequest<StateEvent[]>(
        'GET',
        `/rooms/${encodeURIComponent(roomId)}/state`,
      );
      room = { encryption: null, historyVisibility: 'shared', members: new Map() };
      for (const e of state) {
        if (e.type === 'm.room.encryption' && e.state_key === '') room.encryption = e.content ?? {};
        if (e.type === 'm.room.history_visibility' && e.state_key === '')
          room.historyVisibility = String(e.content?.history_visibility ?? 'shared');
        if (e.type === 'm.room.member' && e.state_key)
          room.members.set(e.state_key, String(e.content?.membership ?? 'leave'));
      }
      // Encryption can only be switched on: a sync that saw it wins over an older state read.
      room.encryption ??= this.seenEncrypted.get(roomId) ?? null;
      if ((this.changes.get(roomId) ?? 0) === generation) this.rooms.set(roomId, room);
    }
    return room;
  }
}
