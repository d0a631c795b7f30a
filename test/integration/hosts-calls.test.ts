/**
 * Calls across hosts, on the production-shaped cluster (scripts/temporal-cluster.sh): bridge A
 * holds a live call (a werift caller, the reference agent, Synapse), bridge B shares the cluster
 * and the Matrix account. B lists A's call and refuses a second one under the one-call cap the
 * deployment shares. A is killed with -9 and stays down: B sees the call end Failed (media lost)
 * within the host's grace, its admission slot is free again, and the call's agent run is lost
 * with its host and torn down when A returns. Back up, a call on A is ended through B.
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
import { bridgeEnv, startBridge, waitForStatus } from '../support/matrix-scenario';
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
  // B is logged in as the same bot (its own device) with the same one-call cap.
  b = await spawnBridge({
    dir,
    env: bridgeEnv(v.w, {
      TEMPORAL_ADDRESS: cluster.address,
      ARMORCLAW_HOST_ID: `calls-b-${randomBytes(3).toString('hex')}`,
      ARMORCLAW_HOST_GRACE: `${GRACE_S}s`,
      ARMORCLAW_MATRIX_DEVICE_ID: 'ARMORCLAW-B',
      ARMORCLAW_MATRIX_TRUSTED_ROOMS: [v.w.rooms.agent, room].join(','),
      ARMORCLAW_VOICE_MAX_CONCURRENT_CALLS: '1',
    }),
  });
  await waitForStatus(b.socketPath, 'connected', 60_000);
  // Each bridge has its own keystore: the operator adds the provider key to B too.
  const stored = await rpc(b.socketPath, 'store_key', {
    id: v.keyId,
    provider: 'openai',
    token: `sk-${randomBytes(16).toString('hex')}`,
  });
  expect(stored.error).toBeUndefined();
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

/** A call through A with a werift caller, connected. */
async function liveCallOnA() {
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
  return { c, r };
}

test('A killed -9 mid-call: B sees the call end Failed within the grace, the slot is free, the agent is torn down when A returns', async () => {
  const { c, r } = await liveCallOnA();
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
  // The cap (one call) is the deployment's, not a host's: B refuses a second call while A's
  // call holds the only slot.
  const second = await onB('webrtc.start', {
    room_id: room,
    user_id: v!.w.alice.userId,
    key_id: v!.keyId,
    ttl: '5m',
  });
  expect(second.error).toEqual({ code: -32003, message: '1 calls in progress, the maximum is 1' });

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

test('a live call on A is ended through B: the call is Ended and A lets its peer go', async () => {
  const { c, r } = await liveCallOnA();

  const ended = await onB('webrtc.end', { session_id: r.session_id });
  expect(ended.error).toBeUndefined();
  expect(ended.result).toMatchObject({
    session_id: r.session_id,
    status: 'terminated',
    state: 'Ended',
    end_reason: 'user_hangup',
  });
  const handle = cluster.client.workflow.getHandle(callWorkflowId(r.session_id));
  expect(await handle.result()).toMatchObject({ state: 'Ended', end_reason: 'user_hangup' });
  // A, which holds the media, closed its peer: it no longer takes candidates for the session.
  const late = await v!.call('webrtc.ice_candidate', {
    session_id: r.session_id,
    candidate: { candidate: 'candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host', sdpMid: '0' },
  });
  expect(late.error?.message).toBe(`Session not found: ${r.session_id}`);
  // Ending it again, through either bridge, finds no live call.
  expect((await onB('webrtc.end', { session_id: r.session_id })).error?.message).toBe(
    `Session not found: ${r.session_id}`,
  );
  await c.peer.close();
});
