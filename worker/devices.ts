/**
 * Paired devices' part of the composition root: the one device registry of the bridge (its
 * events audited and passed to the device service, which closes a revoked device's sockets),
 * the relay link (`relay.link`, its credential sealed in the keystore), which agents serve which
 * device (for their approval requests), and the device endpoints the gateway serves when
 * `devices.enabled`.
 */
import type { Logger } from 'pino';
import type { BridgeConfig } from '../config/load';
import { sessionContainerPrefix } from '../activities/turn';
import { chatCompletion, deviceSessionId } from '../devices/chat-completions';
import type { DeviceScope } from '../formats/device-scopes';
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
import type { Keystore } from '../services/keystore';
import { RELAY_CREDENTIAL_PREFIX, relayUrls } from '../formats/relay-frames';
import { RelayLink, type RelayLinkStatus } from '../devices/relay-link';

/** The keystore secret holding the relay link: `{url, credential}`, sealed like a key. */
const RELAY_SECRET = 'relay.link';

interface StoredRelayLink {
  url: string;
  credential: string;
}

/**
 * The registry, the relay link, and what the socket methods ask of the device endpoints once
 * they run.
 */
export class DeviceHub {
  readonly registry: DeviceRegistry;
  private service: DeviceService | undefined;
  private baseUrl: string | undefined;
  private relay: RelayLink | undefined;

  constructor(
    private readonly config: Pick<BridgeConfig, 'stateDir' | 'turns'>,
    private readonly keystore: Pick<Keystore, 'getSecret' | 'putSecret' | 'deleteSecret'>,
    private readonly audit: (entry: AppendAuditInput) => void,
    private readonly log: Logger,
  ) {
    this.registry = DeviceRegistry.open(deviceRegistryPath(config.stateDir), {
      onEvent: (e) => this.onEvent(e),
    });
  }

  /** The link a device opens to pair: the pairing page with the code in its fragment. */
  pairUrl(pairCode: string): string | undefined {
    const base = this.relayPublicUrl() ?? this.baseUrl;
    // The fragment never reaches a server's logs.
    return base ? `${base}/pair#${pairCode}` : undefined;
  }

  /**
   * The scope of the device whose session agent `containerName` is (a device's `chatCompletions`
   * run on `device-<bridgeId>`'s session agents): `revoked` for a revoked device (no scope
   * allows anything to it), undefined for an agent that serves no device.
   */
  deviceScopeOf(containerName: string): DeviceScope | 'revoked' | undefined {
    for (const d of this.registry.list()) {
      const session = deviceSessionId(d.bridgeId);
      const prefix = sessionContainerPrefix(this.config.turns.agentType, session);
      if (containerName.startsWith(`${prefix}-`)) return d.revokedAt === null ? d.scope : 'revoked';
    }
    return undefined;
  }

  connections(bridgeId: string): number {
    return this.service?.connectionCount(bridgeId) ?? 0;
  }

  /** Called when the device endpoints serve (`baseUrl`: where devices reach them directly). */
  attach(service: DeviceService, baseUrl: string | undefined): void {
    this.service = service;
    this.baseUrl = baseUrl?.replace(/\/$/, '');
    this.startRelay();
  }

  detach(): void {
    this.relay?.stop();
    this.relay = undefined;
    this.service?.closeAll();
    this.service = undefined;
    this.baseUrl = undefined;
  }

  /** `relay.link`: stores the relay's URL and this bridge's credential, and dials it. */
  linkRelay(url: string, credential: string): { url: string; linked: true } {
    const urls = relayUrls(url);
    if ('problem' in urls) throw new RelayLinkError(urls.problem);
    if (!RELAY_CREDENTIAL.test(credential)) {
      throw new RelayLinkError(
        'the credential is the acrl_… text `armorclaw relay credential` printed',
      );
    }
    const stored: StoredRelayLink = { url: urls.linkUrl, credential };
    this.keystore.putSecret(RELAY_SECRET, JSON.stringify(stored));
    this.audit({ event_type: 'relay_linked', details: { url: urls.linkUrl } });
    this.relay?.stop();
    this.relay = undefined;
    this.startRelay();
    return { url: urls.linkUrl, linked: true };
  }

  /** `relay.unlink`: forgets the relay and closes the link. */
  unlinkRelay(): { linked: false } {
    this.keystore.deleteSecret(RELAY_SECRET);
    this.relay?.stop();
    this.relay = undefined;
    this.audit({ event_type: 'relay_unlinked', details: {} });
    return { linked: false };
  }

  /** `relay.status`. */
  relayStatus(): {
    linked: boolean;
    connected: boolean;
    reconnects: number;
  } & Partial<RelayLinkStatus> {
    const stored = this.storedRelay();
    if (!stored) return { linked: false, connected: false, reconnects: 0 };
    if (!this.relay) {
      return {
        linked: true,
        url: stored.url,
        connected: false,
        reconnects: 0,
        lastError: 'the device endpoints are off (devices.enabled, gateway.enabled)',
      };
    }
    return { linked: true, ...this.relay.status() };
  }

  private startRelay(): void {
    const stored = this.storedRelay();
    if (!stored || !this.service || this.relay) return;
    this.relay = new RelayLink({
      url: stored.url,
      credential: stored.credential,
      service: this.service,
      http: { service: this.service, registry: this.registry },
      log: this.log.child({ component: 'relay-link' }),
    });
    this.relay.start();
  }

  private storedRelay(): StoredRelayLink | undefined {
    const text = this.keystore.getSecret(RELAY_SECRET);
    return text === undefined ? undefined : (JSON.parse(text) as StoredRelayLink);
  }

  private relayPublicUrl(): string | undefined {
    const stored = this.storedRelay();
    if (!stored) return undefined;
    const urls = relayUrls(stored.url);
    return 'problem' in urls ? undefined : urls.publicUrl;
  }

  private onEvent(event: DeviceRegistryEvent): void {
    const { type, ...details } = event;
    this.audit({ event_type: type, details });
    this.service?.onRegistryEvent(event);
  }
}

/** A relay link refused (a bad URL or credential): the caller's mistake. */
export class RelayLinkError extends Error {
  override name = 'RelayLinkError';
}

const RELAY_CREDENTIAL = new RegExp(`^${RELAY_CREDENTIAL_PREFIX}[A-Za-z0-9_-]{20,100}$`);

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
