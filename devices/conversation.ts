/**
 * One device connection, whatever carries it: the gateway's own WebSocket (devices/socket.ts)
 * or a socket the relay holds and forwards over the bridge's link (devices/relay-link.ts). The
 * transport hands in each text message and the close; this decides, through the device service:
 * authentication (a token from the upgrade's header, or the first `auth` message within 10 s),
 * then invokes, concurrently up to `MAX_IN_FLIGHT`, each answered with a result frame.
 */
import type { Logger } from 'pino';
import {
  DEVICE_AUTH_TIMEOUT_MS,
  DEVICE_CLOSE,
  isFrameProblem,
  parseDeviceFrame,
  type DeviceFrameId,
} from '../formats/device-frames';
import { GatewayError } from '../gateway/protocol';
import { DeviceRefusal, type DeviceService, type DeviceSession } from './service';

const MAX_IN_FLIGHT = 16;

/** What a conversation needs of its transport. */
export interface DeviceChannel {
  /** Sends one text message (dropped if the channel is closed). */
  send(text: string): void;
  /** Closes the channel with a WebSocket close code. */
  close(code: number, reason: string): void;
}

export class DeviceConversation {
  private session: DeviceSession | undefined;
  private token: string | undefined;
  private inFlight = 0;
  private authTimer: NodeJS.Timeout | undefined;
  private waitingForAuth: boolean;

  constructor(
    private readonly service: DeviceService,
    private readonly channel: DeviceChannel,
    private readonly address: string,
    private readonly log: Logger,
    /** Called once when the connection stops waiting for its auth message (or closes). */
    private readonly onAuthWaitOver: () => void = () => undefined,
  ) {
    this.waitingForAuth = false;
  }

  /**
   * Starts the conversation: admits `headerToken` at once, or waits for an `auth` message. The
   * caller has checked a header token already (devices/service.ts `refusal`).
   */
  start(headerToken: string | undefined): void {
    if (headerToken !== undefined) {
      this.admit(headerToken);
      return;
    }
    this.waitingForAuth = true;
    this.authTimer = setTimeout(
      () => this.channel.close(DEVICE_CLOSE.authTimeout, 'no auth message in time'),
      DEVICE_AUTH_TIMEOUT_MS,
    );
  }

  /** One text message from the device. */
  onText(text: string): void {
    const frame = parseDeviceFrame(text);
    if (isFrameProblem(frame)) {
      return this.sendError(frame.id, new GatewayError('BAD_REQUEST', frame.problem));
    }
    if (frame.type === 'ping') return this.send({ type: 'pong' });
    if (frame.type === 'auth') {
      if (this.session) {
        return this.sendError(null, new GatewayError('BAD_REQUEST', 'already authenticated'));
      }
      this.stopWaitingForAuth();
      return this.admit(frame.token);
    }
    const { session, token } = this;
    if (!session || token === undefined) {
      return this.channel.close(
        DEVICE_CLOSE.unauthorized,
        'authenticate first: {"type":"auth","token":"…"}',
      );
    }
    if (this.inFlight >= MAX_IN_FLIGHT) {
      return this.sendError(
        frame.id,
        new GatewayError(
          'RATE_LIMITED',
          `at most ${MAX_IN_FLIGHT} requests in flight per connection`,
          1,
        ),
      );
    }
    this.inFlight += 1;
    this.service
      .invoke(session, token, frame.kind, frame.body)
      .then(
        (payload) =>
          this.send({ id: frame.id, type: 'result', ok: true, payload: payload ?? null }),
        (err: unknown) =>
          this.sendError(
            frame.id,
            err instanceof GatewayError ? err : new GatewayError('INTERNAL', 'Internal error'),
          ),
      )
      .finally(() => (this.inFlight -= 1))
      .catch((err: unknown) => this.log.warn({ err }, 'device answer failed'));
  }

  /** A binary message: not part of the protocol, answered and otherwise ignored. */
  onBinary(): void {
    this.sendError(null, new GatewayError('BAD_REQUEST', 'messages are JSON text'));
  }

  /** The transport closed. */
  onClosed(): void {
    this.stopWaitingForAuth();
    this.session?.release();
    this.session = undefined;
  }

  /** Admits the connection with `presented`, or closes it with the refusal's code. */
  private admit(presented: string): void {
    try {
      this.session = this.service.connect(presented, this.address, {
        close: (code, reason) => this.channel.close(code, reason),
      });
      this.token = presented;
      this.send(this.service.ready(this.session));
    } catch (err) {
      if (!(err instanceof DeviceRefusal)) throw err;
      this.channel.close(err.closeCode, err.message);
    }
  }

  private stopWaitingForAuth(): void {
    if (!this.waitingForAuth) return;
    this.waitingForAuth = false;
    clearTimeout(this.authTimer);
    this.onAuthWaitOver();
  }

  private send(frame: unknown): void {
    this.channel.send(JSON.stringify(frame));
  }

  private sendError(id: DeviceFrameId | null, err: GatewayError): void {
    this.send({ id, type: 'result', ok: false, error: { code: err.code, message: err.message } });
  }
}
