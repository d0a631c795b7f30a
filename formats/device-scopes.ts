/**
 * What a paired device may ask the bridge to do (VoiceClaw bridge spec, "Security Model"). A
 * device holds one scope; every operation it may request is a row of `DEVICE_OPERATIONS` naming
 * the scopes that allow it. Nothing is allowed by omission: an operation without a row is refused
 * under every scope, `full` included, so `full` is the explicit list of its rows and a new
 * operation is unreachable from devices until someone writes its row.
 *
 * Operation names are the gateway/socket method names where one exists (`agent.run`,
 * `chat.send`, `status`) and the spec's WebSocket `kind` otherwise (`chatCompletions`); tool
 * operations use the capability names of formats/capabilities.ts (`shell.exec`, `fs.delete`).
 * Pure data, shared by the registry, the device socket and the docs.
 */

export const DEVICE_SCOPES = ['chat_only', 'tools_safe', 'full'] as const;
export type DeviceScope = (typeof DEVICE_SCOPES)[number];

/** What a device gets when pairing does not say otherwise (the spec's default). */
export const DEFAULT_DEVICE_SCOPE: DeviceScope = 'tools_safe';

/**
 * Why an operation sits in the scopes it does. `tools_safe` never allows the three classes the
 * spec blocks by default: `fs_destructive`, `shell` and `admin` (a unit test holds it to that).
 */
export type DeviceOperationClass =
  | 'read' // the bridge's own liveness and status
  | 'chat' // a model reply, no tools
  | 'agent' // an agent turn, whose tools are gated by the agent's own approvals
  | 'tool_read' // reads a workspace or files, changes nothing
  | 'fs_destructive' // overwrites, moves or deletes files
  | 'shell' // runs arbitrary commands
  | 'admin'; // changes what the bridge runs or schedules

export interface DeviceOperation {
  class: DeviceOperationClass;
  scopes: readonly DeviceScope[];
}

const ALL: readonly DeviceScope[] = ['chat_only', 'tools_safe', 'full'];
const TOOLS: readonly DeviceScope[] = ['tools_safe', 'full'];
const FULL: readonly DeviceScope[] = ['full'];

/** Every operation a device may request, and under which scopes. */
export const DEVICE_OPERATIONS = {
  status: { class: 'read', scopes: ALL },
  health: { class: 'read', scopes: ALL },
  chatCompletions: { class: 'chat', scopes: ALL },
  'chat.send': { class: 'chat', scopes: ALL },
  'agent.run': { class: 'agent', scopes: TOOLS },
  'agent.wait': { class: 'agent', scopes: TOOLS },
  'workspace.status': { class: 'tool_read', scopes: TOOLS },
  'workspace.semantic_search': { class: 'tool_read', scopes: TOOLS },
  'advisor.explain_function': { class: 'tool_read', scopes: TOOLS },
  'fs.read': { class: 'tool_read', scopes: TOOLS },
  'fs.list': { class: 'tool_read', scopes: TOOLS },
  // Writing can overwrite: the spec's "destructive filesystem actions" include it.
  'fs.write': { class: 'fs_destructive', scopes: FULL },
  'fs.move': { class: 'fs_destructive', scopes: FULL },
  'fs.delete': { class: 'fs_destructive', scopes: FULL },
  'shell.exec': { class: 'shell', scopes: FULL },
  start: { class: 'admin', scopes: FULL },
  stop: { class: 'admin', scopes: FULL },
  'cron.add': { class: 'admin', scopes: FULL },
  'cron.list': { class: 'admin', scopes: FULL },
  'cron.remove': { class: 'admin', scopes: FULL },
} as const satisfies Readonly<Record<string, DeviceOperation>>;

export type DeviceOperationName = keyof typeof DEVICE_OPERATIONS;

/**
 * Operations no device may request whatever its scope: they manage devices, keys, approvals and
 * incidents, so a device holding them could widen its own access or undo its own revocation.
 * They have no row above; this list exists so tests and docs can say so by name.
 */
export const NEVER_FROM_DEVICES = [
  'pair.start',
  'devices.list',
  'devices.revoke',
  'devices.rotate',
  'devices.set_scope',
  'approval.resolve',
  'incident.lift',
  'store_key',
  'get_key',
] as const;

export function isDeviceScope(value: unknown): value is DeviceScope {
  return typeof value === 'string' && (DEVICE_SCOPES as readonly string[]).includes(value);
}

/** Whether a device holding `scope` may request `operation`; unknown names are refused. */
export function scopeAllows(scope: string, operation: string): boolean {
  if (!isDeviceScope(scope)) return false;
  if (!Object.prototype.hasOwnProperty.call(DEVICE_OPERATIONS, operation)) return false;
  const row: DeviceOperation = DEVICE_OPERATIONS[operation as DeviceOperationName];
  return row.scopes.includes(scope);
}

/** The operations `scope` allows, in table order. */
export function operationsAllowed(scope: DeviceScope): DeviceOperationName[] {
  return (Object.keys(DEVICE_OPERATIONS) as DeviceOperationName[]).filter((op) =>
    scopeAllows(scope, op),
  );
}
