/**
 * A call on a host that dies, on the production-shaped cluster (scripts/temporal-cluster.sh):
 * bridge A holds a live call (a werift caller, the reference agent, Synapse), bridge B shares the
 * cluster. A is killed with -9 and stays down: B sees the call end Failed (media lost) within the
 * host's grace, its admission slot is free again, and the call's agent run is lost with its host
 * and torn down when A returns.
 */
import { mkdtempSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  admissionStatusQuery,
  callStatusQuery,
  callWorkflowId,
  type VoiceCallResult,
} from '../../workflows/definitions';
import { removeDir, spawnBridge, type BridgeProcess } from '../support/bridge-process';
import { startCluster, type Cluster } from '../support/cluster';
import { rpc, waitFor } from '../support/containers';
import { docker } from '../support/docker';
import { startBridge } from '../support/matrix-scenario';
import { caller, joinedRoom, startVoiceWorld, type VoiceWorld } from '../support/voice-scenario';

jest.setTimeout(240_000);

const GRACE_S = 10;

let cluster: Cluster;
let v: VoiceWorld | undefined;
let b: BridgeProcess | undefined;
let room = '';
const hostA = `calls-a-${randomBytes(3).toString('hex')}`;

beforeAll(async () => {
  cluster = await startCluster();
  v = await startVoiceWorld(async (w) => {
    room = await joinedRoom(w, 'voice');
    return {
      TEMPORAL_ADDRESS: cluster.address,
      ARMORCLAW_HOST_ID: hostA,
      ARMORCLAW_HOST_GRACE: `${GRACE_S}s`,
      ARMORCLAW_HEALTH_CHECK_INTERVAL: '2s',
      ARMORCLAW_MATRIX_TRUSTED_ROOMS: [w.rooms.agent, room].join(','),
      ARMORCLAW_VOICE_MAX_CONCURRENT_CALLS: '1',
    };
  });
  const dir = mkdtempSync(path.join('/tmp', 'armorclaw-calls-b-'));
  b = await spawnBridge({
    dir,
    env: {
      TEMPORAL_ADDRESS: cluster.address,
      ARMORCLAW_HOST_ID: `calls-b-${randomBytes(3).toString('hex')}`,
      ARMORCLAW_MASTER_KEY: v.w.masterKey,
      ARMORCLAW_SECRETS_DIR: v.w.secretsDir,
    },
  });
}, 240_000);

afterAll(async () => {
  if (b) {
    await b.stop('SIGKILL');
    removeDir(b.dir);
  }
  if (v && v.bridge.child.exitCode === null && v.bridge.child.signalCode === null) await v.stop();
  else if (v) {
    // A is down: start it again so `stop` can clean its agents up through it.
    v.bridge = await startBridge(v.slot);
    await v.stop();
  }
  await cluster?.stop();
}, 180_000);

const onB = (method: string, params?: unknown) => rpc(b!.socketPath, method, params, 60_000);

test('A killed -9 mid-call: B sees the call end Failed within the grace, the slot is free, the agent is torn down when A returns', async () => {
  const c = await caller();
  const started = await v!.call('webrtc.start', {
    room_id: room,
    user_id: v!.w.alice.userId,
    key_id: v!.keyId,
    ttl: '5m',
    sdp_offer: c.offerSdp,
  });
  expect(started.error).toBeUndefined();
  const r = started.result;
  v!.names.add(r.container_name);
  await c.peer.acceptAnswer(r.sdp_answer);
  await c.peer.waitConnected(15_000);
  // B lists the call of A's host, live.
  await waitFor(
    'B to list the call as connected',
    async () => {
      const list = (await onB('webrtc.list')).result;
      const s = list.sessions.find((x: { session_id: string }) => x.session_id === r.session_id);
      return s?.state === 'connected';
    },
    { timeoutMs: 15_000, intervalMs: 200 },
  );

  await v!.bridge.stop('SIGKILL');
  const killedAt = Date.now();
  const handle = cluster.client.workflow.getHandle(callWorkflowId(r.session_id));
  await waitFor(
    'the call to fail',
    async () => (await handle.query(callStatusQuery)).state === 'Failed',
    { timeoutMs: 60_000, intervalMs: 200 },
  );
  expect(Date.now() - killedAt).toBeLessThanOrEqual((GRACE_S + 2) * 1000);
  // Its cleanup does not wait for the dead host either (the peer's close is given up).
  const result = (await handle.result()) as VoiceCallResult;
  expect(Date.now() - killedAt).toBeLessThanOrEqual((GRACE_S + 20) * 1000);
  expect(result).toMatchObject({ state: 'Failed', end_reason: 'media_lost' });
  expect(result.end_detail).toBe(`host ${hostA} did not come back within ${GRACE_S}s`);
  await waitFor(
    'B to list the call as ended',
    async () => {
      const list = (await onB('webrtc.list')).result;
      return !list.sessions.some((x: { session_id: string }) => x.session_id === r.session_id);
    },
    { timeoutMs: 15_000, intervalMs: 200 },
  );

  // The slot is free (the cap is one call): the admission does not wait for the dead host.
  const admission = await cluster.client.workflow
    .getHandle('call-admission')
    .query(admissionStatusQuery);
  expect(admission.active).toEqual([]);

  // The call's agent ran on A: stopped, waiting for A to tear its container down.
  const agent = await v!.agentRun(r.container_name);
  expect(agent).toMatchObject({ cleanup_done: false });
  expect(['Ended', 'Failed']).toContain(agent.state);
  expect((await docker(['inspect', '--type', 'container', r.container_name])).code).toBe(0);

  v!.bridge = await startBridge(v!.slot);
  await v!.agentRunCleanedUp(r.container_name, 60_000);
  expect((await docker(['inspect', '--type', 'container', r.container_name])).code).not.toBe(0);
  await c.peer.close();
});
