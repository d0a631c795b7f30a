/**
 * Which roles may call each method (docs/gateway.md, "Scopes"). The spec's METHOD_SCOPES as
 * written, then the bridge's socket methods offered over HTTP and the bridge's own additions.
 * A method registered without a row here is refused at start (gateway/server.ts), so nothing is
 * reachable by accident.
 */
import type { GatewayRole } from './protocol';

const ALL: readonly GatewayRole[] = ['local', 'remote', 'admin'];
const ADMIN_LOCAL: readonly GatewayRole[] = ['admin', 'local'];
const ADMIN: readonly GatewayRole[] = ['admin'];

/** The spec's table, unchanged. */
export const METHOD_SCOPES: Readonly<Record<string, readonly GatewayRole[]>> = {
  'agent.run': ALL,
  'agent.wait': ALL,
  'chat.send': ALL,
  'cron.add': ADMIN_LOCAL,
  'incident.bundle': ADMIN,
  'approval.list': ADMIN_LOCAL,
  'approval.resolve': ADMIN_LOCAL,
  'approval.capabilities': ADMIN_LOCAL,
  'advisor.file_change': ALL,
  'workspace.status': ALL,
  'workspace.semantic_search': ALL,
  'trace.ingest': ALL,
  'advisor.explain_function': ALL,
};

/** The bridge's additions to the spec's methods. */
export const BRIDGE_EXTRA_SCOPES: Readonly<Record<string, readonly GatewayRole[]>> = {
  'cron.list': ADMIN_LOCAL,
  'cron.remove': ADMIN_LOCAL,
  // Incident mode is lifted by an admin only (as it is bundled); its state is an operator read.
  'incident.lift': ADMIN,
  'incident.status': ADMIN_LOCAL,
};

/**
 * The socket API's methods over HTTP (gateway/methods/bridge.ts). Reads of the bridge's state
 * are open to every role; anything that starts, stops or spends is admin or local; the keystore,
 * the audit log and the Matrix login are admin only (admin is an authenticated loopback caller).
 * The Matrix subscriptions are not offered: HTTP has no channel to push on.
 */
export const SOCKET_METHOD_SCOPES: Readonly<Record<string, readonly GatewayRole[]>> = {
  status: ALL,
  health: ALL,
  'budget.status': ALL,
  'matrix.status': ALL,
  start: ADMIN_LOCAL,
  stop: ADMIN_LOCAL,
  'containers.list': ADMIN_LOCAL,
  'containers.status': ADMIN_LOCAL,
  attach_config: ADMIN_LOCAL,
  list_configs: ADMIN_LOCAL,
  'matrix.send': ADMIN_LOCAL,
  'matrix.receive': ADMIN_LOCAL,
  'webrtc.start': ADMIN_LOCAL,
  'webrtc.end': ADMIN_LOCAL,
  'webrtc.ice_candidate': ADMIN_LOCAL,
  'webrtc.list': ADMIN_LOCAL,
  'budget.report': ADMIN,
  store_key: ADMIN,
  get_key: ADMIN,
  list_keys: ADMIN,
  'matrix.login': ADMIN,
  'webrtc.get_audit_log': ADMIN,
  'audit.tail': ADMIN,
  'audit.verify': ADMIN,
  // Paired devices: issuing codes and changing devices is an admin's (never a device's).
  'pair.start': ADMIN,
  'devices.list': ADMIN,
  'devices.revoke': ADMIN,
  'devices.rotate': ADMIN,
  'devices.set_scope': ADMIN,
  'relay.status': ADMIN,
  // The hosts sharing the cluster: an operator's.
  'hosts.list': ADMIN,
  'hosts.reap': ADMIN,
};

/** Every method's roles: the spec's, the bridge's additions, the socket methods. */
export const GATEWAY_SCOPES: Readonly<Record<string, readonly GatewayRole[]>> = {
  ...SOCKET_METHOD_SCOPES,
  ...BRIDGE_EXTRA_SCOPES,
  ...METHOD_SCOPES,
};

/** Whether `role` may call `method`; a method with no row may be called by nobody. */
export function roleMayCall(method: string, role: GatewayRole): boolean {
  const roles = Object.prototype.hasOwnProperty.call(GATEWAY_SCOPES, method)
    ? GATEWAY_SCOPES[method]
    : undefined;
  return roles?.includes(role) ?? false;
}
