/**
 * What paired devices may do, whatever carries their messages (the gateway's WebSocket today):
 * redeem a pairing code, hold connections, invoke operations, be revoked.
 *
 * Every invoke is checked afresh, in this order: the device's token still names a live device
 * (a revocation or rotation takes effect on the next message even before its socket closes), the
 * device's scope allows the operation (formats/device-scopes.ts, the one table), the device's
 * rate, the inbound risk score (gateway/risk.ts). Then the operation runs: `chatCompletions` on
 * the device's agent (devices/chat-completions.ts), anything else as the gateway method of that
 * name. Each invoke leaves a `gateway_request` audit entry with subject `device:<bridgeId>`.
 *
 * A revocation (close code 4403) or rotation (4409) closes the device's open connections at once
 * (the registry's event), so a device that lost its right to connect is off within a second.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { operationsAllowed, scopeAllows, type DeviceScope } from '../formats/device-scopes';
import { DEVICE_CLOSE } from '../formats/device-frames';
import {
  DeviceRegistryError,
  type DeviceRecord,
  type DeviceRegistry,
  type DeviceRegistryEvent,
} from '../services/device-registry';
import type { GatewayAuditWriter } from '../gateway/audit';
import { GatewayError, type GatewayCaller, type GatewayMethods } from '../gateway/protocol';
import { MethodRateLimiter } from '../gateway/rate-limit';
import { AuthFailureTracker, RISK_BLOCK_THRESHOLD, scoreInboundRisk } from '../gateway/risk';

/** One open connection of a device, as its transport lets the service close it. */
export interface DeviceSink {
  close(code: number, reason: string): void;
}

/** A connection that authenticated: what the service knows of it. */
export interface DeviceSession {
  readonly device: DeviceRecord;
  readonly address: string;
  /** Ends the connection's membership (call when the transport closes). */
  release(): void;
}

export type DeviceChat = (device: DeviceRecord, body: unknown) => Promise<unknown>;

export interface DeviceServiceOptions {
  registry: DeviceRegistry;
  methods: GatewayMethods;
  chat: DeviceChat;
  audit: GatewayAuditWriter;
  ratePerMinute: number;
  maxConnectionsPerDevice: number;
  log: Logger;
}

/** Why a connection is refused, with the close code its transport should use. */
export class DeviceRefusal extends Error {
  constructor(
    readonly closeCode: number,
    message: string,
  ) {
    super(message);
    this.name = 'DeviceRefusal';
  }
}

/** Pairing answers: the spec's result, or a gateway error code with the registry's reason. */
export type PairAnswer =
  | { ok: true; status: 200; body: { bridgeId: string; wsToken: string; scope: DeviceScope } }
  | {
      ok: false;
      status: number;
      body: { ok: false; error: { code: string; reason: string; message: string } };
      retryAfterSeconds?: number;
    };

const PAIR_STATUS: Record<string, { status: number; code: string }> = {
  invalid_request: { status: 400, code: 'BAD_REQUEST' },
  invalid_code: { status: 401, code: 'AUTH_INVALID' },
  expired: { status: 410, code: 'AUTH_INVALID' },
  used: { status: 409, code: 'AUTH_INVALID' },
  locked_out: { status: 429, code: 'RATE_LIMITED' },
};

export class DeviceService {
  private readonly connections = new Map<string, Set<DeviceSink>>();
  private readonly limiter: MethodRateLimiter;
  private readonly authFailures = new AuthFailureTracker();

  constructor(private readonly options: DeviceServiceOptions) {
    this.limiter = new MethodRateLimiter({
      ratePerMinute: options.ratePerMinute,
      methodRates: {},
    });
  }

  /** `POST /api/bridge/pair/complete`: redeems a code for a device, its token and its scope. */
  pairComplete(body: unknown, address: string): PairAnswer {
    const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
    try {
      const paired = this.options.registry.completePairing({
        pairCode: b.pairCode,
        device: b.device,
        pubKey: b.pubKey,
        address,
      });
      return { ok: true, status: 200, body: paired };
    } catch (err) {
      if (!(err instanceof DeviceRegistryError)) throw err;
      const mapped = PAIR_STATUS[err.code] ?? { status: 400, code: 'BAD_REQUEST' };
      return {
        ok: false,
        status: mapped.status,
        body: { ok: false, error: { code: mapped.code, reason: err.code, message: err.message } },
        ...(err.retryAfterMs !== undefined
          ? { retryAfterSeconds: Math.ceil(err.retryAfterMs / 1000) }
          : {}),
      };
    }
  }

  /** Why a connection presenting `token` would be refused now, or undefined. */
  refusal(token: unknown): DeviceRefusal | undefined {
    const verdict = this.options.registry.verifyDeviceToken(token);
    if (!verdict.ok) {
      return verdict.reason === 'revoked'
        ? new DeviceRefusal(DEVICE_CLOSE.revoked, 'this device is revoked: pair it again')
        : new DeviceRefusal(DEVICE_CLOSE.unauthorized, 'unknown device token');
    }
    const open = this.connections.get(verdict.device.bridgeId)?.size ?? 0;
    if (open >= this.options.maxConnectionsPerDevice) {
      return new DeviceRefusal(
        DEVICE_CLOSE.tooManyConnections,
        `this device already has ${open} open connections (devices.max_connections)`,
      );
    }
    return undefined;
  }

  /**
   * Admits a connection presenting `token`, or throws a DeviceRefusal (unknown token, revoked
   * device, too many connections). `sink` is closed when the device is revoked or rotated.
   */
  connect(token: unknown, address: string, sink: DeviceSink): DeviceSession {
    const refused = this.refusal(token);
    if (refused) {
      if (refused.closeCode === DEVICE_CLOSE.unauthorized) this.authFailures.record(address);
      throw refused;
    }
    const verdict = this.options.registry.verifyDeviceToken(token);
    if (!verdict.ok) throw new DeviceRefusal(DEVICE_CLOSE.unauthorized, 'unknown device token');
    const device = verdict.device;
    let open = this.connections.get(device.bridgeId);
    if (!open) this.connections.set(device.bridgeId, (open = new Set()));
    open.add(sink);
    const set = open;
    return {
      device,
      address,
      release: () => {
        set.delete(sink);
        if (set.size === 0 && this.connections.get(device.bridgeId) === set) {
          this.connections.delete(device.bridgeId);
        }
      },
    };
  }

  /** What a connected device is told when it is admitted. */
  ready(session: DeviceSession): {
    type: 'ready';
    bridgeId: string;
    scope: DeviceScope;
    operations: string[];
  } {
    const { bridgeId, scope } = session.device;
    return { type: 'ready', bridgeId, scope, operations: operationsAllowed(scope) };
  }

  /** Open connections of a device. */
  connectionCount(bridgeId: string): number {
    return this.connections.get(bridgeId)?.size ?? 0;
  }

  /**
   * Runs one invoke of a connected device: the payload to answer, or a GatewayError. `token` is
   * the one the connection authenticated with, checked again now.
   */
  async invoke(
    session: DeviceSession,
    token: string,
    kind: string,
    body: unknown,
  ): Promise<unknown> {
    const started = performance.now();
    const auditId = `req_${randomUUID()}`;
    const subject = `device:${session.device.bridgeId}`;
    let outcome: 'ok' | GatewayError['code'] = 'ok';
    try {
      return await this.run(session, token, kind, body, { auditId, subject });
    } catch (err) {
      if (err instanceof GatewayError) {
        outcome = err.code;
        throw err;
      }
      outcome = 'INTERNAL';
      this.options.log.error({ err, kind, auditId }, 'device operation failed');
      throw new GatewayError('INTERNAL', `Internal error (audit id ${auditId})`);
    } finally {
      this.options.audit.record({
        auditId,
        method: kind,
        role: 'remote',
        subject,
        address: session.address,
        outcome,
        latencyMs: performance.now() - started,
      });
    }
  }

  private async run(
    session: DeviceSession,
    token: string,
    kind: string,
    body: unknown,
    ids: { auditId: string; subject: string },
  ): Promise<unknown> {
    // The device as it is now: revoked, rotated or re-scoped since the connection opened.
    const verdict = this.options.registry.verifyDeviceToken(token);
    if (!verdict.ok) {
      throw new GatewayError(
        'AUTH_INVALID',
        verdict.reason === 'revoked' ? 'this device is revoked' : 'this device token was replaced',
      );
    }
    const device = verdict.device;
    if (!scopeAllows(device.scope, kind)) {
      throw new GatewayError(
        'AUTH_ROLE_MISMATCH',
        `${kind} is not allowed to a device with scope ${device.scope} (allowed: ${operationsAllowed(device.scope).join(', ')})`,
      );
    }
    const rate = this.limiter.take('device', ids.subject);
    if (!rate.ok) {
      throw new GatewayError(
        'RATE_LIMITED',
        `too many requests from this device; retry after ${rate.retryAfterSeconds} s`,
        rate.retryAfterSeconds,
      );
    }
    const risk = scoreInboundRisk(kind, body, {
      recentAuthFailures: this.authFailures.count(session.address),
    });
    if (risk.score >= RISK_BLOCK_THRESHOLD) {
      throw new GatewayError(
        'RISK_BLOCKED',
        `request blocked by inbound risk scoring (score ${risk.score} ≥ ${RISK_BLOCK_THRESHOLD}: ${risk.rules.join(', ')})`,
      );
    }
    if (kind === 'chatCompletions') return this.options.chat(device, body);
    const handler = this.options.methods.get(kind);
    if (!handler) {
      // A row of the scope table that is not an operation of its own (an agent's tool).
      throw new GatewayError(
        'NOT_FOUND',
        `${kind} is not an operation a device invokes here; it is a tool the agent uses on the device's turns`,
      );
    }
    const caller: GatewayCaller = {
      role: 'remote',
      subject: ids.subject,
      auditId: ids.auditId,
      address: session.address,
    };
    return handler(body, caller);
  }

  /** The registry's events: a revoked or rotated device's connections are closed now. */
  onRegistryEvent(event: DeviceRegistryEvent): void {
    if (event.type !== 'device_revoked' && event.type !== 'device_rotated') return;
    const open = this.connections.get(event.bridgeId);
    if (!open) return;
    this.connections.delete(event.bridgeId);
    const [code, reason] =
      event.type === 'device_revoked'
        ? [DEVICE_CLOSE.revoked, 'device revoked']
        : [
            DEVICE_CLOSE.rotated,
            'device token replaced: connect with the new token, or pair again',
          ];
    for (const sink of open) {
      try {
        sink.close(code, reason);
      } catch (err) {
        this.options.log.warn({ err }, 'closing a device connection failed');
      }
    }
  }

  /** Closes every device connection (the bridge is stopping). */
  closeAll(): void {
    for (const open of this.connections.values()) {
      for (const sink of open) sink.close(1001, 'the bridge is stopping');
    }
    this.connections.clear();
  }
}
