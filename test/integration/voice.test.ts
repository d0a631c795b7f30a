/**
 * Voice calls end to end through the real bridge process: real Temporal, Docker (the reference
 * agent in echo mode), Synapse (an end-to-end encrypted room), werift as the caller. A call is
 * placed with `webrtc.start` (the caller's offer inside), a 440 Hz tone goes in and the agent's
 * echo comes back; then the limits (room lists, E2EE, membership, rate, concurrency), each with
 * its code and audit entry; then a bridge killed mid-call: the call ends Failed, its agent stops.
 */
import { rms, zeroCrossingFrequency } from '../../media/audio-analysis';
import { callStatusQuery, callWorkflowId } from '../../workflows/definitions';
import { temporalHistoryText } from '../support/containers';
import { waitFor, type MatrixUser } from '../support/matrix-scenario';
import {
  caller,
  joinedRoom,
  matrixUser,
  startVoiceWorld,
  type VoiceWorld,
} from '../support/voice-scenario';

jest.setTimeout(180_000);

let v: VoiceWorld | undefined;
let keyId: string;
const rooms: Record<'voice' | 'plain' | 'blocked', string> = { voice: '', plain: '', blocked: '' };
const users: Record<'carol' | 'dave' | 'erin' | 'frank', MatrixUser> = {} as never;

const call = (method: string, params?: unknown) => v!.call(method, params);
const callResult = (sessionId: string) => v!.callResult(sessionId);

beforeAll(async () => {
  v = await startVoiceWorld(async (w) => {
    for (const name of ['carol', 'dave', 'erin', 'frank'] as const) {
      users[name] = await matrixUser(w, name);
    }
    rooms.voice = await joinedRoom(w, 'voice', { members: Object.values(users) });
    rooms.plain = await joinedRoom(w, 'plain', { encrypted: false });
    rooms.blocked = await joinedRoom(w, 'blocked');
    return {
      ARMORCLAW_MATRIX_TRUSTED_ROOMS: [w.rooms.agent, ...Object.values(rooms)].join(','),
      ARMORCLAW_VOICE_BLOCKED_ROOMS: rooms.blocked,
      ARMORCLAW_VOICE_RATE_LIMIT_CALLS: '2',
      ARMORCLAW_VOICE_MAX_CONCURRENT_CALLS: '2',
    };
  });
  keyId = v.keyId;
}, 180_000);

afterAll(() => v?.stop(), 120_000);

test('a call: offer in webrtc.start, the echo agent sends the 440 Hz tone back; end cleans up', async () => {
  const c = await caller();
  const started = await call('webrtc.start', {
    room_id: rooms.voice,
    user_id: v!.w.alice.userId,
    key_id: keyId,
    ttl: '5m',
    sdp_offer: c.offerSdp,
  });
  expect(started.error).toBeUndefined();
  const r = started.result;
  v!.names.add(r.container_name);
  expect(r).toMatchObject({
    session_id: expect.stringMatching(/^[0-9a-f-]{36}$/),
    sdp_answer: expect.stringMatching(/^v=0/),
    signaling_url: expect.stringMatching(/^wss:\/\/.+\/webrtc$/),
    token: expect.stringMatching(/^eyJ/),
    call_url: expect.stringContaining('/call#session='),
  });
  await c.peer.acceptAnswer(r.sdp_answer);
  await c.peer.waitConnected(15_000);

  const live = await waitFor(
    'the call Live in webrtc.list',
    async () => {
      const list = (await call('webrtc.list')).result;
      const s = list.sessions.find((x: { session_id: string }) => x.session_id === r.session_id);
      return s?.state === 'connected' ? list : undefined;
    },
    { timeoutMs: 15_000 },
  );
  expect(live.active_sessions).toBeGreaterThanOrEqual(1);

  await c.play(3);
  const echoed = Buffer.concat(c.heard.slice(-50)); // the last second
  expect(zeroCrossingFrequency(echoed)).toBeGreaterThan(430);
  expect(zeroCrossingFrequency(echoed)).toBeLessThan(450);
  expect(rms(echoed)).toBeGreaterThan(0.25); // sent at 0.5 peak ≈ 0.354 RMS

  // The agent itself reports hearing the tone (its notify, in its run's status).
  const heardByAgent = await waitFor(
    'the agent to report the tone',
    async () => {
      const status = await v!.agentRun(r.container_name);
      return status.notifications.find((n) => /audio_in frequency_hz=4[34]\d/.test(n.message));
    },
    { timeoutMs: 10_000 },
  );
  expect(heardByAgent).toBeDefined();

  const status = await v!.client.workflow
    .getHandle(callWorkflowId(r.session_id))
    .query(callStatusQuery);
  expect(status).toMatchObject({ state: 'Active', user_state: 'Live', room_id: rooms.voice });

  const ended = await call('webrtc.end', { session_id: r.session_id, reason: 'user_hangup' });
  expect(ended.result).toMatchObject({
    session_id: r.session_id,
    status: 'terminated',
    duration: expect.stringMatching(/^\d+m\d+s$/),
  });
  expect((await callResult(r.session_id)).state).toBe('Ended');
  // The agent started for the call stopped with it: ended when the call ended (so the call's
  // slot is free at once), its container removed right after.
  expect((await v!.agentRun(r.container_name)).state).toBe('Ended');
  expect(await v!.agentRunCleanedUp(r.container_name)).toMatchObject({ state: 'Ended' });
  // Ending twice: the session is gone.
  expect((await call('webrtc.end', { session_id: r.session_id })).error?.code).toBe(-32004);

  const log = (await call('webrtc.get_audit_log', { session_id: r.session_id })).result.entries;
  expect(log.map((e: { event_type: string }) => e.event_type)).toEqual([
    'call_ended',
    'call_created',
  ]);
  expect(log[0]).toMatchObject({
    room_id: rooms.voice,
    user_id: v!.w.alice.userId,
    details: { reason: 'user_hangup', state: 'Ended' },
  });
  // Neither the token, the SDP nor any ICE password reached Temporal history.
  const history = await temporalHistoryText(v!.slot.temporalPort, callWorkflowId(r.session_id));
  expect(history).not.toContain(r.token);
  expect(history).not.toContain('a=fingerprint');
  expect(history).not.toContain('ice-pwd');
  expect(v!.bridge.output()).not.toContain(r.token);
  await c.peer.close();
});

/** Starts a call that is expected to be refused; answers the error and the audit entries. */
async function refused(params: Record<string, unknown>) {
  const res = await call('webrtc.start', { container_name: 'armorclaw-none', ...params });
  expect(res.error).toBeDefined();
  return res.error as { code: number; message: string };
}

test('room lists, E2EE and membership: -32001 / -32005 with audit entries', async () => {
  const before = (await call('webrtc.get_audit_log', { limit: 1000 })).result.entries.length;
  expect(await refused({ room_id: rooms.blocked, user_id: v!.w.alice.userId })).toMatchObject({
    code: -32001,
    message: expect.stringContaining('blocked'),
  });
  expect(
    await refused({ room_id: v!.w.rooms.untrusted, user_id: v!.w.alice.userId }),
  ).toMatchObject({
    code: -32001,
  });
  expect(await refused({ room_id: rooms.plain, user_id: v!.w.alice.userId })).toMatchObject({
    code: -32005,
    message: expect.stringContaining('encrypted'),
  });
  expect(await refused({ room_id: rooms.voice, user_id: v!.w.mallory.userId })).toMatchObject({
    code: -32005,
    message: expect.stringContaining('joined'),
  });
  expect(await refused({ room_id: rooms.voice })).toMatchObject({ code: -32005 });
  // The refusal answers as soon as the call is over; its audit entry is written in the same
  // step of the workflow, a moment later.
  const log = await waitFor(
    'the five refusals in the audit log',
    async () => {
      const entries = (await call('webrtc.get_audit_log', { limit: 1000 })).result.entries;
      return entries.length - before >= 5 ? entries : undefined;
    },
    { timeoutMs: 10_000 },
  );
  const fresh = log
    .slice(0, log.length - before)
    .map((e: { event_type: string; details: { reason: string } }) => [
      e.event_type,
      e.details.reason,
    ]);
  expect(fresh).toEqual([
    ['security_violation', 'caller_unknown'],
    ['security_violation', 'caller_not_member'],
    ['security_violation', 'room_not_encrypted'],
    ['call_rejected', 'room_not_allowed'],
    ['call_rejected', 'room_blocked'],
  ]);
  // Bad input is -32602, and the bridge keeps serving.
  expect((await call('webrtc.start', { room_id: 'nope' })).error?.code).toBe(-32602);
  expect(
    (await call('webrtc.start', { room_id: rooms.voice, ttl: '9h', key_id: keyId })).error?.code,
  ).toBe(-32602);
  expect((await call('webrtc.end', { session_id: 'session-unknown' })).error?.code).toBe(-32004);
  expect(
    (
      await call('webrtc.ice_candidate', {
        session_id: '00000000-0000-4000-8000-000000000000',
        candidate: {
          candidate: 'candidate:1 1 UDP 1 127.0.0.1 9 typ host',
          sdpMid: '0',
          sdpMLineIndex: 0,
        },
      })
    ).error?.code,
  ).toBe(-32004);
});

test('per-user rate limit (-32002) and the concurrent cap (-32003), audited', async () => {
  // One agent for the calls that get through (one call at a time on it).
  const agent = await call('start', { key_id: keyId, ttl: '10m' });
  expect(agent.error).toBeUndefined();
  const containerName = agent.result.container_name as string;
  v!.names.add(containerName);
  const place = (user: MatrixUser, extra: Record<string, unknown> = {}) =>
    call('webrtc.start', {
      room_id: rooms.voice,
      user_id: user.userId,
      container_name: containerName,
      ...extra,
    });

  for (let i = 0; i < 2; i++) {
    const ok = await place(users.carol);
    expect(ok.error).toBeUndefined();
    expect((await call('webrtc.end', { session_id: ok.result.session_id })).result.status).toBe(
      'terminated',
    );
  }
  const limited = await place(users.carol);
  expect(limited.error).toMatchObject({ code: -32002 });

  const a = await place(users.dave);
  expect(a.error).toBeUndefined();
  const b = await call('webrtc.start', {
    room_id: rooms.voice,
    user_id: users.erin.userId,
    key_id: keyId,
  });
  expect(b.error).toBeUndefined();
  v!.names.add(b.result.container_name);
  const capped = await place(users.frank);
  expect(capped.error).toMatchObject({ code: -32003 });
  const list = (await call('webrtc.list')).result;
  expect(list.sessions.map((s: { session_id: string }) => s.session_id)).toEqual(
    expect.arrayContaining([a.result.session_id, b.result.session_id]),
  );
  for (const s of [a, b]) await call('webrtc.end', { session_id: s.result.session_id });
  // A slot is free again.
  const again = await place(users.frank);
  expect(again.error).toBeUndefined();
  await call('webrtc.end', { session_id: again.result.session_id });

  const log = (await call('webrtc.get_audit_log', { limit: 50 })).result.entries;
  const rejected = log
    .filter((e: { event_type: string }) => e.event_type === 'call_rejected')
    .map((e: { user_id: string; details: { reason: string } }) => [e.user_id, e.details.reason]);
  expect(rejected).toEqual(
    expect.arrayContaining([
      [users.carol.userId, 'rate_limited'],
      [users.frank.userId, 'max_concurrent'],
    ]),
  );
  await call('stop', { container_id: containerName });
});

test('the bridge killed mid-call: the call ends Failed on restart and its agent is stopped', async () => {
  const c = await caller();
  const started = await call('webrtc.start', {
    room_id: rooms.voice,
    user_id: users.dave.userId,
    key_id: keyId,
    sdp_offer: c.offerSdp,
  });
  expect(started.error).toBeUndefined();
  const r = started.result;
  v!.names.add(r.container_name);
  await c.peer.acceptAnswer(r.sdp_answer);
  await c.peer.waitConnected(15_000);
  await c.play(1);

  await v!.restart();
  const result = await Promise.race([
    callResult(r.session_id),
    new Promise((r) => setTimeout(r, 60_000)).then(() => undefined),
  ]);
  expect(result).toMatchObject({ state: 'Failed', end_reason: 'media_lost' });
  const run = await v!.agentRunCleanedUp(r.container_name, 30_000);
  expect(run.state).toBe('Ended');
  const log = (await call('webrtc.get_audit_log', { session_id: r.session_id })).result.entries;
  expect(log[0]).toMatchObject({
    event_type: 'call_ended',
    details: { state: 'Failed', reason: 'media_lost' },
  });
  await c.peer.close();
});
