/**
 * Paired devices' part of the composition root: the one device registry of the bridge (its
 * events audited and passed to the device service, which closes a revoked device's sockets),
 * and the device endpoints the gateway serves when `devices.enabled`.
 */
import type { Logger } from 'pino';
import type { BridgeConfig } from '../config/load';
import { chatCompletion } from '../devices/chat-completions';
import { deviceRoutes } from '../devices/http';
import { devicePageRoutes } from '../devices/pages';
import { DeviceService } from '../devices/service';
import { DeviceSocketServer } from '../devices/socket';
import type { GatewayAuditWriter } from '../gateway/audit';
import type { AgentMethodsDeps } from '../gateway/methods/agent';
import type { GatewayMethods } from '../gateway/protocol';
import type { GatewayServerOptions } from '../gateway/server';
import type { AppendAuditInput } from '../services/audit-log-entry';
import {
  DeviceRegistry,
  deviceRegistryPath,
  type DeviceRegistryEvent,
} from '../services/device-registry';
import type { GatewayTokenStore } from '../services/gateway-tokens';

/** The registry, and what the socket methods ask of the device endpoints once they run. */
export class DeviceHub {
  readonly registry: DeviceRegistry;
  private service: DeviceService | undefined;
  private baseUrl: string | undefined;

  constructor(
    config: Pick<BridgeConfig, 'stateDir'>,
    private readonly audit: (entry: AppendAuditInput) => void,
  ) {
    this.registry = DeviceRegistry.open(deviceRegistryPath(config.stateDir), {
      onEvent: (e) => this.onEvent(e),
    });
  }

  /** The link a device opens to pair: the pairing page with the code in its fragment. */
  pairUrl(pairCode: string): string | undefined {
    // The fragment never reaches a server's logs.
    return this.baseUrl ? `${this.baseUrl}/pair#${pairCode}` : undefined;
  }

  connections(bridgeId: string): number {
    return this.service?.connectionCount(bridgeId) ?? 0;
  }

  /** Called when the device endpoints serve (`baseUrl`: where devices reach them). */
  attach(service: DeviceService, baseUrl: string): void {
    this.service = service;
    this.baseUrl = baseUrl.replace(/\/$/, '');
  }

  detach(): void {
    this.service?.closeAll();
    this.service = undefined;
    this.baseUrl = undefined;
  }

  private onEvent(event: DeviceRegistryEvent): void {
    const { type, ...details } = event;
    this.audit({ event_type: type, details });
    this.service?.onRegistryEvent(event);
  }
}

export interface DeviceEndpoints {
  routes: NonNullable<GatewayServerOptions['routes']>;
  upgrade: NonNullable<GatewayServerOptions['upgrade']>;
  /** Tells the hub where devices reach the bridge (after the gateway listens). */
  serving(gatewayUrl: string): void;
  close(): void;
}

/** The device endpoints on the gateway, or undefined when `devices.enabled` is off. */
export function deviceEndpoints(deps: {
  config: BridgeConfig;
  hub: DeviceHub;
  methods: GatewayMethods;
  agent: AgentMethodsDeps;
  audit: GatewayAuditWriter;
  tokens: Pick<GatewayTokenStore, 'verify'>;
  auth: GatewayServerOptions['auth'];
  log: Logger;
}): DeviceEndpoints | undefined {
  const settings = deps.config.devices;
  if (!settings.enabled) return undefined;
  const log = deps.log.child({ component: 'devices' });
  const service = new DeviceService({
    registry: deps.hub.registry,
    methods: deps.methods,
    chat: (device, body) => chatCompletion(deps.agent, device, body),
    audit: deps.audit,
    ratePerMinute: settings.ratePerMinute,
    maxConnectionsPerDevice: settings.maxConnectionsPerDevice,
    log,
  });
  const sockets = new DeviceSocketServer({
    service,
    pingIntervalMs: settings.pingIntervalMs,
    log,
  });
  return {
    routes: {
      ...deviceRoutes({
        service,
        registry: deps.hub.registry,
        auth: deps.auth,
        tokens: deps.tokens,
      }),
      ...devicePageRoutes(),
    },
    upgrade: (req, socket, head) => sockets.handleUpgrade(req, socket, head),
    serving: (gatewayUrl) => deps.hub.attach(service, settings.publicUrl ?? gatewayUrl),
    close: () => {
      deps.hub.detach();
      sockets.close();
    },
  };
}
