import type { Logger } from 'pino';
import type { Keystore } from '../services/keystore';
import type { RoomEncryptionHook } from './crypto';
import { MatrixHttp, MatrixHttpError } from './http';

/** Where the bridge's Matrix session lives: ids in plain text, the token sealed in the keystore. */
const SECRET_TOKEN = 'matrix.access_token';
const SECRET_SESSION = 'matrix.session';

export interface MatrixSession {
  homeserver: string;
  userId: string;
  deviceId: string;
}

export type MatrixLinkStatus = 'connected' | 'disconnected';

/** The state `matrix.status` and `health` report. */
export interface MatrixRuntimeStatus {
  enabled: boolean;
  status: MatrixLinkStatus;
  user_id?: string;
  logged_in: boolean;
  last_sync_at?: string;
  last_error?: string;
}

/** A /sync response, reduced to what the bridge reads. */
export interface SyncResponse {
  next_batch: string;
  rooms?: {
    join?: Record<string, { timeline?: { events?: RawEvent[] } }>;
    invite?: Record<string, { invite_state?: { events?: RawEvent[] } }>;
  };
}

export interface RawEvent {
  event_id?: string;
  type: string;
  sender: string;
  content: Record<string, unknown>;
  origin_server_ts?: number;
  state_key?: string;
}

/** An `m.room.message` content; in a thread when `threadId` names its root. */
export function messageContent(
  msgtype: string,
  body: string,
  threadId?: string,
): Record<string, unknown> {
  const content: Record<string, unknown> = { msgtype, body };
  if (threadId !== undefined) {
    content['m.relates_to'] = {
      rel_type: 'm.thread',
      event_id: threadId,
      is_falling_back: true,
      'm.in_reply_to': { event_id: threadId },
    };
  }
  return content;
}

/** Errors the homeserver gave a definite answer to (retrying will not help). */
export const isPermanentMatrixError = (err: unknown): boolean =>
  err instanceof MatrixHttpError &&
  err.httpStatus !== undefined &&
  err.httpStatus >= 400 &&
  err.httpStatus < 500 &&
  err.httpStatus !== 429;

/**
 * The bridge's Matrix identity and its HTTP client (matrix/http.ts). Logging in stores the access
 * token sealed in the keystore and reuses one device id, so transaction ids stay valid across
 * restarts (Synapse deduplicates sends per device) and nothing secret enters Temporal history.
 */
export class MatrixConnection {
  private client?: MatrixHttp;
  private session?: MatrixSession;
  readonly status: MatrixRuntimeStatus;
  /** Encrypts sends into encrypted rooms (matrix/crypto.ts); set once at start. */
  e2ee?: RoomEncryptionHook;

  constructor(
    private readonly keystore: Keystore,
    private readonly opts: { homeserver?: string; deviceId: string; log: Logger },
  ) {
    this.status = {
      enabled: opts.homeserver !== undefined,
      status: 'disconnected',
      logged_in: false,
    };
    this.restore();
  }

  get loggedIn(): boolean {
    return this.client !== undefined;
  }

  get userId(): string | undefined {
    return this.session?.userId;
  }

  /** Logs in with a password (never stored); keeps the token sealed in the keystore. */
  async login(
    username: string,
    password: string,
    homeserver = this.opts.homeserver,
  ): Promise<MatrixSession> {
    if (!homeserver) throw new Error('no Matrix homeserver is configured (matrix.homeserver)');
    const res = await new MatrixHttp(homeserver).authedRequest<{
      user_id: string;
      device_id: string;
      access_token: string;
    }>('POST', '/login', undefined, {
      type: 'm.login.password',
      identifier: { type: 'm.id.user', user: username },
      password,
      device_id: this.opts.deviceId,
      initial_device_display_name: 'ArmorClaw Bridge',
    });
    const session: MatrixSession = { homeserver, userId: res.user_id, deviceId: res.device_id };
    this.keystore.putSecret(SECRET_TOKEN, res.access_token);
    this.keystore.putSecret(SECRET_SESSION, JSON.stringify(session));
    this.use(session, res.access_token);
    this.opts.log.info(
      { userId: session.userId, deviceId: session.deviceId },
      'logged in to Matrix',
    );
    return session;
  }

  /** The logged-in client; throws when there is none. */
  requireClient(): MatrixHttp {
    if (!this.client) throw new NotLoggedInError();
    return this.client;
  }

  /** One long-poll /sync. */
  async sync(params: {
    since?: string;
    timeoutMs: number;
    filter: string;
    signal?: AbortSignal;
  }): Promise<SyncResponse> {
    const query: Record<string, string> = {
      timeout: String(params.timeoutMs),
      filter: params.filter,
    };
    if (params.since) query.since = params.since;
    return this.requireClient().authedRequest<SyncResponse>('GET', '/sync', query, undefined, {
      abortSignal: params.signal,
      localTimeoutMs: params.timeoutMs + 15_000,
    });
  }

  /** Sends one message; `txnId` makes a retried send land once. */
  async send(roomId: string, content: Record<string, unknown>, txnId: string): Promise<string> {
    const client = this.requireClient();
    const encrypted = await this.e2ee?.encrypt(roomId, 'm.room.message', content);
    const type = encrypted ? 'm.room.encrypted' : 'm.room.message';
    const path = `/rooms/${encodeURIComponent(roomId)}/send/${type}/${encodeURIComponent(txnId)}`;
    const res = await client.authedRequest<{ event_id: string }>(
      'PUT',
      path,
      undefined,
      encrypted ?? content,
    );
    return res.event_id;
  }

  async join(roomId: string): Promise<void> {
    await this.requireClient().authedRequest(
      'POST',
      `/join/${encodeURIComponent(roomId)}`,
      undefined,
      {},
    );
  }

  markSynced(): void {
    this.status.status = 'connected';
    this.status.last_sync_at = new Date().toISOString();
    this.status.last_error = undefined;
  }

  markDisconnected(reason: string): void {
    this.status.status = 'disconnected';
    this.status.last_error = reason;
  }

  private restore(): void {
    try {
      const token = this.keystore.getSecret(SECRET_TOKEN);
      const session = this.keystore.getSecret(SECRET_SESSION);
      if (token && session) this.use(JSON.parse(session) as MatrixSession, token);
    } catch (err) {
      this.opts.log.warn({ err }, 'stored Matrix session unusable; log in again');
    }
  }

  private use(session: MatrixSession, accessToken: string): void {
    this.session = session;
    this.client = new MatrixHttp(session.homeserver, accessToken, {
      userId: session.userId,
      deviceId: session.deviceId,
    });
    this.status.enabled = true;
    this.status.logged_in = true;
    this.status.user_id = session.userId;
  }
}

export class NotLoggedInError extends Error {
  constructor() {
    super(
      'the bridge is not logged in to Matrix (matrix.login, or matrix.username/password in the configuration)',
    );
    this.name = 'NotLoggedInError';
  }
}
