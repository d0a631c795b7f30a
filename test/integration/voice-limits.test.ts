/**
 * Voice calls at their limits, through the real bridge (Temporal, Docker, Synapse) and a real
 * coturn: a relay-only caller using the TURN credentials `webrtc.start` issued (and negotiating
 * over the WSS signaling server); the TTL ending the call and its credentials with it; the
 * per-call talk-time and token budgets (a warning notice in the room, then the hard stop); the
 * agent's container killed mid-call; and the global budget refusing calls (-32006).
 */
import { spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import WebSocket from 'ws';
import { rms, zeroCrossingFrequency } from '../../media/audio-analysis';
import { AudioPeer, type AudioPeerOptions } from '../../media/peer';
import { containerSocketPaths } from '../../rpc/container-socket';
import { callWorkflowId } from '../../workflows/definitions';
import { startCoturn, type Coturn } from '../support/coturn';
import { temporalHistoryText } from '../support/containers';
import { nonce, rpc, sleep, waitFor } from '../support/matrix-scenario';
import { caller, joinedRoom, startVoiceWorld, type VoiceWorld } from '../support/voice-scenario';

jest.setTimeout(180_000);

const TURN_SECRET = `turn-secret-${nonce()}${nonce()}`;
const MODELS = { 'test-model': { input_per_1k_usd: 0.01, output_per_1k_usd: 0.01 } };

let turn: Coturn | undefined;
let v: VoiceWorld | undefined;
let room: string;

const call = (method: string, params?: unknown) => v!.call(method, params);
const callResult = (sessionId: string) => v!.callResult(sessionId);

beforeAll(async () => {
  turn = await startCoturn(TURN_SECRET);
  v = await startVoiceWorld(async (w) => {
    room = await joinedRoom(w, 'voice limits');
    return {
      ARMORCLAW_MATRIX_TRUSTED_ROOMS: room,
      ARMORCLAW_VOICE_TURN_URLS: turn!.url,
      ARMORCLAW_VOICE_TURN_SECRET: TURN_SECRET,
      ARMORCLAW_VOICE_RATE_LIMIT_CALLS: '100',
      ARMORCLAW_VOICE_MAX_CALL_DURATION: '8s',
      ARMORCLAW_VOICE_MAX_CALL_TOKENS: '1000',
      ARMORCLAW_VOICE_BUDGET_WARNING_FRACTION: '0.5',
      ARMORCLAW_BUDGET_DAILY_LIMIT_USD: '1',
      ARMORCLAW_BUDGET_MODELS: JSON.stringify(MODELS),
    };
  });
}, 180_000);

afterAll(async () => {
  await v?.stop();
  turn?.proc.kill();
  // werift 0.24 leaks the UDP socket of a refused TURN allocation (see media-turn.test.ts).
  const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles();
  for (const h of handles) if (h instanceof dgram.Socket) h.unref();
}, 120_000);

async function startCall(extra: Record<string, unknown> = {}) {
  const res = await call('webrtc.start', {
    room_id: room,
    user_id: v!.w.alice.userId,
    key_id: v!.keyId,
    ...extra,
  });
  expect(res.error).toBeUndefined();
  v!.names.add(res.result.container_name);
  return res.result;
}

/** A caller that connects with its offer inside `webrtc.start`. */
async function connectedCall(extra: Record<string, unknown> = {}) {
  const c = await caller();
  const r = await startCall({ sdp_offer: c.offerSdp, ...extra });
  await c.peer.acceptAnswer(r.sdp_answer);
  await c.peer.waitConnected(15_000);
  return { peer: c.peer, r };
}

/** The signaling path: hello with the call token, an offer, the bridge's answer. */
async function signal(url: string, sessionId: string, token: string, offerSdp: string) {
  const ws = new WebSocket(url, { rejectUnauthorized: false });
  const messages: Array<{ type: string; payload: Record<string, unknown> }> = [];
  ws.on('message', (d) => messages.push(JSON.parse(String(d))));
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  ws.send(JSON.stringify({ type: 'hello', session_id: sessionId, payload: { token } }));
  ws.send(JSON.stringify({ type: 'offer', session_id: sessionId, payload: { sdp: offerSdp } }));
  const answer = await waitFor('the answer over signaling', () =>
    messages.find((m) => m.type === 'answer'),
  );
  return { ws, messages, answerSdp: String(answer.payload.sdp) };
}

test('relay only through coturn with the issued TURN credentials, negotiated over signaling', async () => {
  const r = await startCall({ ttl: '2m' });
  const creds = r.turn_credentials;
  expect(creds).toMatchObject({ ttl: 120, urls: [turn!.url] });
  const [expiry, session] = String(creds.username).split(':');
  expect(session).toBe(r.session_id);
  expect(Math.abs(Number(expiry) - (Date.now() / 1000 + 120))).toBeLessThan(10);

  const relayOnly: AudioPeerOptions = {
    turn: { urls: creds.urls, username: creds.username, credential: creds.password },
    iceTransportPolicy: 'relay',
  };
  const c = await caller({ ...relayOnly, additionalHostAddresses: [] });
  const candidates = c.offerSdp.split(/\r?\n/).filter((l) => l.startsWith('a=candidate'));
  expect(candidates.length).toBeGreaterThan(0);
  expect(candidates.every((l) => / typ relay /.test(l))).toBe(true);
  const sig = await signal(r.signaling_url, r.session_id, r.token, c.offerSdp);
  await c.peer.acceptAnswer(sig.answerSdp);
  await c.peer.waitConnected(15_000);
  await c.play(2);
  const last = Buffer.concat(c.heard.slice(-40));
  expect(Math.abs(zeroCrossingFrequency(last) - 440)).toBeLessThan(10);
  expect(rms(last)).toBeGreaterThan(0.25);

  // The same credentials with a wrong password get no relay.
  await expect(
    AudioPeer.offer({
      ...relayOnly,
      turn: { ...relayOnly.turn!, credential: 'd3Jvbmc=' } as AudioPeerOptions['turn'],
    }),
  ).rejects.toThrow(/no TURN relay candidate/);

  // Neither the token nor the TURN password reaches the bridge's logs or Temporal history.
  expect(v!.bridge.output()).not.toContain(r.token);
  expect(v!.bridge.output()).not.toContain(creds.password);
  const history = await temporalHistoryText(v!.slot.temporalPort, callWorkflowId(r.session_id));
  expect(history).not.toContain(creds.password);
  expect(history).not.toContain(r.token);
  await call('webrtc.end', { session_id: r.session_id });
  await waitFor('the bye on signaling', () => sig.messages.find((m) => m.type === 'bye'));
  sig.ws.close();
  await c.peer.close();
});

test('the TTL ends the call (Expired) and its TURN credentials expire with it', async () => {
  const r = await startCall({ ttl: '3s' });
  expect(r.turn_credentials.ttl).toBe(3);
  const result = await callResult(r.session_id);
  expect(result).toMatchObject({ state: 'Expired', end_reason: 'ttl_expired' });
  await sleep(1_500);
  const creds = r.turn_credentials;
  await expect(
    AudioPeer.offer({
      turn: { urls: creds.urls, username: creds.username, credential: creds.password },
      iceTransportPolicy: 'relay',
    }),
  ).rejects.toThrow(/no TURN relay candidate/);
});

test('talk-time budget: a warning notice in the room at half, the call ends at the limit', async () => {
  const { peer, r } = await connectedCall();
  const result = await callResult(r.session_id);
  expect(result).toMatchObject({ state: 'Ended', end_reason: 'budget_exceeded' });
  // The notice went to the room through matrixSendWorkflow (exactly once, keyed by the call);
  // the room is end-to-end encrypted, so people see it as an m.room.encrypted event.
  const sent = (await v!.client.workflow
    .getHandle(`${callWorkflowId(r.session_id)}-budget-warning`)
    .result()) as { event_id: string; room_id: string };
  expect(sent.room_id).toBe(room);
  const event = await waitFor('the notice in the room', async () =>
    (await v!.w.syn.client.messages(v!.w.alice.accessToken, room, 200)).find(
      (e) => e.event_id === sent.event_id,
    ),
  );
  expect(event).toMatchObject({ sender: v!.w.bot.userId, type: 'm.room.encrypted' });
  const log = (await call('webrtc.get_audit_log', { session_id: r.session_id })).result.entries;
  expect(log.map((e: { event_type: string }) => e.event_type)).toEqual([
    'call_ended',
    'budget_warning',
    'call_created',
  ]);
  await peer.close();
});

test('per-call tokens: usage the agent reports during the call ends it at the limit', async () => {
  const { peer, r } = await connectedCall();
  const endpoint = containerSocketPaths(v!.bridge.socketPath, r.container_name).endpoint;
  const report = (tokens: number) =>
    rpc(endpoint, 'budget.report', { model: 'test-model', input_tokens: tokens, output_tokens: 0 });
  expect((await report(600)).result).toMatchObject({ status: 'recorded' });
  await waitFor('the budget warning', async () =>
    (await call('webrtc.get_audit_log', { session_id: r.session_id })).result.entries.find(
      (e: { event_type: string }) => e.event_type === 'budget_warning',
    ),
  );
  expect((await report(500)).result).toMatchObject({ status: 'recorded' });
  expect(await callResult(r.session_id)).toMatchObject({
    state: 'Ended',
    end_reason: 'budget_exceeded',
  });
  await peer.close();
});

test("the agent's container killed mid-call: the call fails (agent_died) and is cleaned up", async () => {
  const { peer, r } = await connectedCall();
  const killed = spawnSync('/usr/bin/docker', ['kill', r.container_name], { encoding: 'utf8' });
  expect(killed.status).toBe(0);
  const result = await callResult(r.session_id);
  expect(result).toMatchObject({ state: 'Failed', end_reason: 'agent_died' });
  const log = (await call('webrtc.get_audit_log', { session_id: r.session_id })).result.entries;
  expect(log[0]).toMatchObject({
    event_type: 'call_ended',
    details: { state: 'Failed', reason: 'agent_died' },
  });
  expect((await call('webrtc.list')).result.sessions).toEqual([]);
  await peer.close();
});

test('the global budget spent: running calls end and new ones are refused with -32006', async () => {
  const { peer, r } = await connectedCall({ ttl: '5m' });
  const endpoint = containerSocketPaths(v!.bridge.socketPath, r.container_name).endpoint;
  // 100,000 tokens at $0.01 per 1k: the whole $1 of the day.
  const spent = await rpc(endpoint, 'budget.report', {
    model: 'test-model',
    input_tokens: 100_000,
    output_tokens: 0,
  });
  expect(spent.result).toMatchObject({ status: 'recorded' });
  expect(await callResult(r.session_id)).toMatchObject({
    state: 'Ended',
    end_reason: 'budget_exceeded',
  });
  const refused = await call('webrtc.start', {
    room_id: room,
    user_id: v!.w.alice.userId,
    key_id: v!.keyId,
  });
  expect(refused.error).toMatchObject({ code: -32006 });
  const log = (await call('webrtc.get_audit_log', { limit: 5 })).result.entries;
  expect(log[0]).toMatchObject({
    event_type: 'call_rejected',
    details: { reason: 'budget_exceeded' },
  });
  await peer.close();
});
