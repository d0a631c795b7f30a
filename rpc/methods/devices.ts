/**
 * Paired devices and the relay link, managed over the socket (`armorclaw pair`, `armorclaw
 * devices …`, `armorclaw relay link|status|unlink`) and, for an admin, over the gateway (the
 * relay link's credential only over the socket): only someone who can reach the socket, or an
 * authenticated loopback admin, issues pairing codes or changes devices. A device itself never reaches these methods
 * (formats/device-scopes.ts NEVER_FROM_DEVICES). Codes and tokens leave the bridge once, in
 * `pair.start`'s and `devices.rotate`'s answers; lists carry ids, metadata, scopes and dates.
 */
import { z } from 'zod';
import { DEFAULT_DEVICE_SCOPE, DEVICE_SCOPES } from '../../formats/device-scopes';
import {
  DeviceRegistryError,
  type DeviceRecord,
  type DeviceRegistry,
} from '../../services/device-registry';
import { ErrorCode, RpcError, invalidParams } from '../errors';
import { noParams, parseParams } from '../params';
import type { RpcDispatcher } from '../dispatcher';

export interface DeviceMethodsDeps {
  registry: DeviceRegistry;
  /** The link a device opens to pair (its QR code), or undefined when devices are not served. */
  pairUrl: (pairCode: string) => string | undefined;
  /** Open device WebSockets of a device (0 when it is not connected). */
  connections: (bridgeId: string) => number;
  /** The relay link (`relay.*`): a bad URL or credential throws an RpcError (-32602). */
  relay: {
    link(url: string, credential: string): unknown;
    unlink(): unknown;
    status(): unknown;
  };
}

const BRIDGE_ID = z
  .string()
  .regex(/^br_[0-9a-f]{16}$/, 'must be a device id (br_ + 16 hex digits)');
const startParams = z.strictObject({ scope: z.enum(DEVICE_SCOPES).optional() });
const deviceParams = z.strictObject({ bridgeId: BRIDGE_ID });
const scopeParams = z.strictObject({ bridgeId: BRIDGE_ID, scope: z.enum(DEVICE_SCOPES) });
const linkParams = z.strictObject({
  url: z.string().min(1).max(2048),
  credential: z.string().min(1).max(256),
});

/** A device as listed: the registry's record and whether it is connected now. */
export interface ListedDevice extends DeviceRecord {
  connections: number;
}

export function registerDeviceMethods(dispatcher: RpcDispatcher, deps: DeviceMethodsDeps): void {
  const { registry } = deps;
  const listed = (d: DeviceRecord): ListedDevice => ({
    ...d,
    connections: d.revokedAt === null ? deps.connections(d.bridgeId) : 0,
  });

  dispatcher.addMethod('pair.start', (params) => {
    const { scope } = parseParams(startParams, params);
    const started = mapErrors(() => registry.startPairing(scope ? { scope } : {}));
    const pairUrl = deps.pairUrl(started.pairCode);
    return {
      pairCode: started.pairCode,
      expiresAt: started.expiresAt,
      scope: scope ?? DEFAULT_DEVICE_SCOPE,
      ...(pairUrl ? { pairUrl } : {}),
    };
  });
  dispatcher.addMethod('devices.list', (params) => {
    parseParams(noParams, params);
    return { devices: registry.list().map(listed) };
  });
  dispatcher.addMethod('devices.revoke', (params) => {
    const { bridgeId } = parseParams(deviceParams, params);
    return { device: listed(mapErrors(() => registry.revoke(bridgeId))) };
  });
  dispatcher.addMethod('devices.rotate', (params) => {
    const { bridgeId } = parseParams(deviceParams, params);
    return mapErrors(() => registry.rotate(bridgeId));
  });
  dispatcher.addMethod('devices.set_scope', (params) => {
    const { bridgeId, scope } = parseParams(scopeParams, params);
    return { device: listed(mapErrors(() => registry.setScope(bridgeId, scope))) };
  });
  dispatcher.addMethod('relay.link', (params) => {
    const { url, credential } = parseParams(linkParams, params);
    return deps.relay.link(url, credential);
  });
  dispatcher.addMethod('relay.unlink', (params) => {
    parseParams(noParams, params);
    return deps.relay.unlink();
  });
  dispatcher.addMethod('relay.status', (params) => {
    parseParams(noParams, params);
    return deps.relay.status();
  });
}

function mapErrors<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (!(err instanceof DeviceRegistryError)) throw err;
    if (err.code === 'not_found') throw new RpcError(ErrorCode.SessionNotFound, err.message);
    throw invalidParams(`Invalid params: ${err.message}`);
  }
}
