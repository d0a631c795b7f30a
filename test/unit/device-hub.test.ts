/**
 * The bridge's device hub (worker/devices.ts) tells which agent serves which device: the session
 * agents of `device-<bridgeId>` carry that device's scope into their approval requests.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { sessionContainerPrefix } from '../../activities/turn';
import { deviceSessionId } from '../../devices/chat-completions';
import { DeviceHub } from '../../worker/devices';

let dir: string;
beforeEach(() => (dir = mkdtempSync(path.join(os.tmpdir(), 'device-hub-'))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

test("a device's session agents carry its scope; a revoked device's carry none", () => {
  const secrets = new Map<string, string>();
  const hub = new DeviceHub(
    { stateDir: dir, turns: { agentType: 'openclaw' } as never },
    {
      getSecret: (k) => secrets.get(k),
      putSecret: (k, v) => void secrets.set(k, v),
      deleteSecret: (k) => void secrets.delete(k),
    },
    () => undefined,
    pino({ level: 'silent' }),
  );
  const pair = (scope: 'chat_only' | 'tools_safe' | 'full') => {
    const { pairCode } = hub.registry.startPairing({ scope });
    return hub.registry.completePairing({
      pairCode,
      device: { name: 'Phone', os: 'ios', bridgeVersion: '1.0.0' },
      pubKey: 'cHVibGljLWtleS0wMTIzNDU2Nzg5',
      address: '10.0.0.1',
    });
  };
  const a = pair('chat_only');
  const b = pair('full');
  const agentOf = (bridgeId: string, generation: number) =>
    `${sessionContainerPrefix('openclaw', deviceSessionId(bridgeId))}-${generation}`;
  expect(hub.deviceScopeOf(agentOf(a.bridgeId, 1))).toBe('chat_only');
  expect(hub.deviceScopeOf(agentOf(a.bridgeId, 7))).toBe('chat_only');
  expect(hub.deviceScopeOf(agentOf(b.bridgeId, 1))).toBe('full');
  // Another session's agent, or another agent type's: no device.
  expect(hub.deviceScopeOf(`${sessionContainerPrefix('openclaw', 's1')}-1`)).toBeUndefined();
  expect(
    hub.deviceScopeOf(`${sessionContainerPrefix('echo', deviceSessionId(a.bridgeId))}-1`),
  ).toBeUndefined();
  hub.registry.setScope(a.bridgeId, 'tools_safe');
  expect(hub.deviceScopeOf(agentOf(a.bridgeId, 1))).toBe('tools_safe');
  hub.registry.revoke(a.bridgeId);
  expect(hub.deviceScopeOf(agentOf(a.bridgeId, 1))).toBe('revoked');
});
