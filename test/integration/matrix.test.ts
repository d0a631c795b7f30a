// Matrix (docs/api.md, "matrix.*") against a real Synapse and the real bridge
// process: status and login, an agent container bound to a room answering a person by push,
// matrix.receive returning the same events (10 per call), matrix.subscribe notifications with
// room/type filters and a stalled subscriber that blocks nobody, matrix.send exactly once with
// its receipt, bad params, zero trust (untrusted sender / room dropped and audited), no flood of
// history on the first sync, chat.send over the HTTP gateway (once per key, threads, trusted
// rooms only, pacing), and no password or access token in output, history or state files.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Socket } from 'node:net';
import type { BridgeProcess } from '../support/bridge-process';
import { removeDir } from '../support/bridge-process';
import {
  auditEntries,
  filesContaining,
  TEMPORAL_CLI,
  temporalClient,
  temporalHistoryText,
} from '../support/containers';
import { ensureAgentImage } from '../support/docker';
import { gatewayClient } from '../support/gateway-client';
import { ProviderStub } from '../support/provider-stub';
import { call } from '../support/socket-clients';
import {
  bridgeSlot,
  countBody,
  drainReceive,
  nonce,
  roomMessages,
  RpcStream,
  setupMatrixWorld,
  sleep,
  stalledSubscriber,
  startAgent,
  startBridge,
  stopAgents,
  synapseTokens,
  teardownMatrixWorld,
  waitFor,
  waitForBody,
  type BridgeSlot,
  type MatrixWorld,
} from '../support/matrix-scenario';

jest.setTimeout(180_000);

/** A room id the bridge trusts that does not exist on the homeserver. */
const goneRoom = () => `!gone-room:${w.syn.serverName}`;
/** chat.send's pacing on the test bridge: small, so the test reaches it. */
const CHAT_SENDS_PER_MINUTE = 5;

let w: MatrixWorld;
let slot: BridgeSlot;
let bridge: BridgeProcess;
/** The model behind the agents' provider proxy (paid providers are out of reach in tests). */
let stub: ProviderStub;
const names = new Set<string>();
/** Bodies alice said before the bridge ever logged in: none may be delivered. */
const beforeLogin: string[] = [];
/** Every access token the bridge held (collected as it logs in), for the leak scan. */
const bridgeTokens = new Set<string>();
/** Every event id `matrix.receive` returned in this file, with how often. */
const received = new Map<string, number>();
/** Timings, printed at the end. */
const timings: Record<string, unknown> = {};

const say = (roomId: string, body: string, who = w.alice) =>
  w.syn.client.sendText(who.accessToken, roomId, body);

async function receiveAll(): Promise<any[]> {
  const events = await drainReceive(bridge.socketPath);
  for (const e of events) received.set(e.event_id, (received.get(e.event_id) ?? 0) + 1);
  return events;
}

const collectTokens = () => {
  for (const t of synapseTokens(w, w.bot.userId)) bridgeTokens.add(t);
  for (const t of synapseTokens(w, w.bot2.userId)) bridgeTokens.add(t);
};

beforeAll(async () => {
  await ensureAgentImage();
  const t0 = Date.now();
  w = await setupMatrixWorld();
  timings.synapse_start_ms = w.syn.lastStartMs;
  // History the bridge must never deliver: said before it logs in for the first time.
  for (const room of [w.rooms.agent, w.rooms.other]) {
    for (let i = 0; i < 3; i++) {
      const body = `!echo before-login-${i}-${nonce()}`;
      beforeLogin.push(body);
      await say(room, body);
    }
  }
  stub = await ProviderStub.start();
  slot = await bridgeSlot(w, {
    ARMORCLAW_PROXY_BASE_URLS: JSON.stringify({ openai: stub.url }),
    ARMORCLAW_GATEWAY_CHAT_SENDS_PER_MINUTE: String(CHAT_SENDS_PER_MINUTE),
    // Trusted, but no such room on the homeserver: a send there is refused by Synapse.
    ARMORCLAW_MATRIX_TRUSTED_ROOMS: [w.rooms.agent, w.rooms.other, w.rooms.late, goneRoom()].join(
      ',',
    ),
  });
  const b0 = Date.now();
  bridge = await startBridge(slot);
  timings.bridge_connected_ms = Date.now() - b0;
  timings.setup_ms = Date.now() - t0;
  collectTokens();
});

afterAll(async () => {
  await stopAgents(
    bridge?.socketPath,
    names,
    [slot?.dir, w?.secretsDir].filter(Boolean) as string[],
  );
  await bridge?.stop();
  await stub?.close();
  if (slot) removeDir(slot.dir);
  await teardownMatrixWorld(w);
  console.info(`matrix.test timings: ${JSON.stringify(timings, null, 2)}`);
});

test('matrix.status: enabled, connected, logged in as the bot', async () => {
  const st = await call(bridge.socketPath, 'matrix.status');
  expect(st.result).toEqual({
    enabled: true,
    status: 'connected',
    user_id: w.bot.userId,
    logged_in: true,
  });
  const health = (await call(bridge.socketPath, 'health')).result;
  expect(health.checks.matrix.status).toBe('ok');
});

test('an agent bound to a room answers a person by push, once; matrix.receive returns the same event', async () => {
  const agent = await startAgent(w, bridge.socketPath, w.rooms.agent, names);
  timings.agent_ready_ms = agent.readyMs;

  const word = `hello-${nonce()}`;
  const t0 = Date.now();
  const eventId = await say(w.rooms.agent, `!echo ${word}`);
  await waitForBody(w, w.rooms.agent, `echo: ${word}`);
  timings.echo_roundtrip_ms = Date.now() - t0;
  // Settle: a redelivery (every 5 s while unacknowledged) would show up as a second echo.
  await sleep(6_000);
  expect(await countBody(w, w.rooms.agent, `echo: ${word}`)).toBe(1);
  expect(await countBody(w, w.rooms.agent, `!echo ${word}`)).toBe(1);
  const echo = (await roomMessages(w, w.rooms.agent)).find(
    (e) => e.content.body === `echo: ${word}`,
  )!;
  expect(echo.sender).toBe(w.bot.userId);

  const events = await receiveAll();
  const mine = events.filter((e) => e.event_id === eventId);
  expect(mine).toHaveLength(1);
  const e = mine[0];
  // The spec's shape, exactly these fields.
  expect(Object.keys(e).sort()).toEqual(
    ['content', 'event_id', 'origin', 'room_id', 'sender', 'type'].sort(),
  );
  expect(e).toMatchObject({
    type: 'm.room.message',
    room_id: w.rooms.agent,
    sender: w.alice.userId,
    content: { msgtype: 'm.text', body: `!echo ${word}` },
    event_id: eventId,
  });
  expect(e.origin).toMatch(/^\d{13}$/);
  // The bot's own echo is not an inbound event.
  expect(events.some((x) => x.event_id === echo.event_id)).toBe(false);
});

test('!ask: the agent answers with its model’s reply, reached through the proxy from its network-none container', async () => {
  stub.reset();
  const t0 = Date.now();
  await say(w.rooms.agent, `!ask what is the weather on the moon ${nonce()}?`);
  // The stub streams `tok0 tok1 tok2 `; the agent joins the pieces.
  await waitForBody(w, w.rooms.agent, 'tok0 tok1 tok2 ', 60_000);
  timings.ask_roundtrip_ms = Date.now() - t0;
  const asked = stub.requests.filter((r) => r.url === '/v1/chat/completions');
  expect(asked).toHaveLength(1);
  // The stored key (startAgent stores `sk-mx-…`), swapped in by the proxy for the placeholder.
  expect(asked[0]!.headers.authorization).toMatch(/^Bearer sk-mx-[0-9a-f]+$/);
  expect(JSON.parse(asked[0]!.body)).toMatchObject({ stream: true });
  await receiveAll();
});

test('matrix.receive returns at most 10 events per call, oldest first', async () => {
  await receiveAll();
  const sub = await RpcStream.connect(bridge.socketPath);
  try {
    const s = (await sub.request('matrix.subscribe', { room_ids: [w.rooms.other] })).result
      .subscription;
    const bodies = Array.from({ length: 12 }, (_, i) => `batch-${i}-${nonce()}`);
    const ids: string[] = [];
    for (const b of bodies) ids.push(await say(w.rooms.other, b));
    // The push is the barrier: once the subscriber has all 12, they are stored.
    await sub.until('12 pushes', () => sub.events(s).length >= 12, 15_000);

    const first = (await call(bridge.socketPath, 'matrix.receive')).result;
    expect(first.count).toBe(10);
    expect(first.events).toHaveLength(10);
    const second = (await call(bridge.socketPath, 'matrix.receive')).result;
    expect(second.count).toBe(2);
    expect(second.events).toHaveLength(2);
    const third = (await call(bridge.socketPath, 'matrix.receive')).result;
    expect(third).toEqual({ events: [], count: 0 });
    const got = [...first.events, ...second.events];
    for (const e of got) received.set(e.event_id, (received.get(e.event_id) ?? 0) + 1);
    expect(got.map((e: any) => e.event_id)).toEqual(ids);
    expect(got.map((e: any) => e.content.body)).toEqual(bodies);
  } finally {
    sub.close();
  }
});

test('matrix.subscribe pushes matrix.event notifications, filtered by room and type; unsubscribe stops them', async () => {
  const c = await RpcStream.connect(bridge.socketPath);
  try {
    const subOf = async (params: unknown) => {
      const r = await c.request('matrix.subscribe', params);
      expect(r.error).toBeUndefined();
      expect(r.result.subscription).toEqual(expect.any(String));
      return r.result.subscription as string;
    };
    const agentRoom = await subOf({ room_ids: [w.rooms.agent], types: ['m.room.message'] });
    const otherRoom = await subOf({ room_ids: [w.rooms.other] });
    const encryptedOnly = await subOf({ types: ['m.room.encrypted'] });
    const everything = await subOf({});
    expect(new Set([agentRoom, otherRoom, encryptedOnly, everything]).size).toBe(4);

    const sentAt = new Map<string, number>();
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const t = Date.now();
      const id = await say(w.rooms.agent, `sub-${i}-${nonce()}`);
      sentAt.set(id, t);
      ids.push(id);
    }
    await c.until(
      '3 pushes',
      () => c.events(agentRoom).length >= 3 && c.events(everything).length >= 3,
    );
    timings.subscribe_push_latency_ms = c
      .events(agentRoom)
      .map((n) => n.at - sentAt.get(n.params.event.event_id)!);
    const n0 = c.events(agentRoom)[0]!;
    expect(n0.method).toBe('matrix.event');
    expect(Object.keys(n0.params).sort()).toEqual(['event', 'subscription']);
    expect(n0.params.event).toMatchObject({
      type: 'm.room.message',
      room_id: w.rooms.agent,
      sender: w.alice.userId,
      event_id: ids[0],
    });
    expect(c.events(agentRoom).map((n) => n.params.event.event_id)).toEqual(ids);
    expect(c.events(everything).map((n) => n.params.event.event_id)).toEqual(ids);
    await sleep(1_500);
    expect(c.events(otherRoom)).toHaveLength(0);
    expect(c.events(encryptedOnly)).toHaveLength(0);
    // Exactly once per subscription.
    expect(c.events(agentRoom)).toHaveLength(3);

    const un = await c.request('matrix.unsubscribe', { subscription: agentRoom });
    expect(un.result).toEqual({ subscription: agentRoom, status: 'unsubscribed' });
    const again = await c.request('matrix.unsubscribe', { subscription: agentRoom });
    expect(again.error?.code).toBe(-32602);
    const bad = await c.request('matrix.subscribe', { room_ids: 'nope' });
    expect(bad.error?.code).toBe(-32602);

    const after = await say(w.rooms.agent, `after-unsubscribe-${nonce()}`);
    await c.until('push after unsubscribe', () =>
      c.events(everything).some((n) => n.params.event.event_id === after),
    );
    await sleep(1_000);
    expect(c.events(agentRoom)).toHaveLength(3);
  } finally {
    c.close();
  }
  await receiveAll();
});

test('a subscriber that never reads blocks nobody; the durable copy stays for matrix.receive', async () => {
  await receiveAll();
  const stalled: Socket[] = [];
  for (let i = 0; i < 2; i++) stalled.push(await stalledSubscriber(bridge.socketPath));
  const live = await RpcStream.connect(bridge.socketPath);
  try {
    const s = (await live.request('matrix.subscribe', { room_ids: [w.rooms.other] })).result
      .subscription;
    // Big events, so the stalled connections' kernel buffers and the bridge's limit fill up.
    const filler = 'x'.repeat(12_000);
    const N = 150;
    const sentAt = new Map<string, number>();
    for (let i = 0; i < N; i++) {
      const t = Date.now();
      const id = await say(w.rooms.other, `flood-${i} ${filler}`);
      sentAt.set(id, t);
    }
    await live.until(`${N} pushes`, () => live.events(s).length >= N, 30_000);
    const lat = live
      .events(s)
      .map((n) => n.at - sentAt.get(n.params.event.event_id)!)
      .sort((a, b) => a - b);
    timings.flood_push_latency_ms = {
      p50: lat[Math.floor(lat.length * 0.5)],
      p95: lat[Math.floor(lat.length * 0.95)],
      max: lat[lat.length - 1],
    };
    expect(live.events(s)).toHaveLength(N);
    // Timely: every push within a few seconds of the send, despite the stalled readers.
    expect(lat[lat.length - 1]).toBeLessThan(5_000);
    // The bridge still answers at once.
    const t = Date.now();
    expect((await call(bridge.socketPath, 'matrix.status')).result.status).toBe('connected');
    expect(Date.now() - t).toBeLessThan(1_000);
    // Nothing lost for polling clients.
    const events = await receiveAll();
    const flood = events.filter((e) => String(e.content.body).startsWith('flood-'));
    expect(flood).toHaveLength(N);
    expect(new Set(flood.map((e) => e.event_id))).toEqual(new Set(sentAt.keys()));
  } finally {
    live.close();
    for (const x of stalled) x.destroy();
  }
});

test('matrix.send returns {event_id, room_id}; the message is in the room once; m.notice is honoured', async () => {
  const text = `rpc-send-${nonce()}`;
  const t0 = Date.now();
  const r = await call(bridge.socketPath, 'matrix.send', { room_id: w.rooms.other, message: text });
  timings.matrix_send_ms = Date.now() - t0;
  expect(r.error).toBeUndefined();
  expect(Object.keys(r.result).sort()).toEqual(['event_id', 'room_id']);
  expect(r.result.room_id).toBe(w.rooms.other);
  expect(r.result.event_id).toMatch(/^\$/);
  const inRoom = (await roomMessages(w, w.rooms.other)).filter((e) => e.content.body === text);
  expect(inRoom).toHaveLength(1);
  expect(inRoom[0]).toMatchObject({
    event_id: r.result.event_id,
    sender: w.bot.userId,
    content: { msgtype: 'm.text', body: text },
  });
  // Answered by the bridge's own send: the send's workflow was terminated before it ran (had it
  // run, its history would hold an activity), its reason the receipt.
  const temporal = await temporalClient(slot.temporalPort);
  try {
    const run = await waitFor(
      'the terminated send workflow',
      async () => {
        for await (const wf of temporal.client.workflow.list({
          query: `WorkflowType = 'matrixSendWorkflow' AND ExecutionStatus = 'Terminated'`,
        })) {
          const history = await temporal.client.workflow.getHandle(wf.workflowId).fetchHistory();
          const reason = history.events?.at(-1)?.workflowExecutionTerminatedEventAttributes?.reason;
          if (reason === `delivered: ${r.result.event_id}`) return history;
        }
        return undefined;
      },
      { timeoutMs: 15_000, intervalMs: 250 },
    );
    expect(run.events?.some((e) => e.activityTaskScheduledEventAttributes)).toBe(false);
  } finally {
    await temporal.close();
  }

  const notice = `rpc-notice-${nonce()}`;
  const n = await call(bridge.socketPath, 'matrix.send', {
    room_id: w.rooms.agent,
    message: notice,
    msgtype: 'm.notice',
  });
  expect(n.result.room_id).toBe(w.rooms.agent);
  const noticeEvents = (await roomMessages(w, w.rooms.agent)).filter(
    (e) => e.content.body === notice,
  );
  expect(noticeEvents).toHaveLength(1);
  expect(noticeEvents[0]!.content.msgtype).toBe('m.notice');
  expect(noticeEvents[0]!.event_id).toBe(n.result.event_id);

  // A room the bot is not in: the homeserver refuses; reported, not retried forever.
  const foreign = await w.syn.client.createRoom(w.alice.accessToken, { name: 'not the bot' });
  const refused = await call(bridge.socketPath, 'matrix.send', { room_id: foreign, message: 'x' });
  expect(refused.error?.code).toBe(-32603);
  expect(refused.error?.message).toMatch(/send failed/i);
});

test('matrix.send: bad params are -32602', async () => {
  const bad = async (params: unknown) =>
    (await call(bridge.socketPath, 'matrix.send', params)).error;
  expect((await bad({ room_id: 'not-a-room', message: 'x' }))?.code).toBe(-32602);
  expect((await bad({ room_id: '#alias:armorclaw.test', message: 'x' }))?.code).toBe(-32602);
  expect((await bad({ room_id: w.rooms.other }))?.code).toBe(-32602);
  expect((await bad({ message: 'x' }))?.code).toBe(-32602);
  expect((await bad({ room_id: w.rooms.other, message: '' }))?.code).toBe(-32602);
  expect((await bad({ room_id: w.rooms.other, message: 'x', msgtype: 'm.image' }))?.code).toBe(
    -32602,
  );
  expect((await bad({ room_id: w.rooms.other, message: 42 }))?.code).toBe(-32602);
  expect((await bad(undefined))?.code).toBe(-32602);
  // None of them reached the room.
  expect((await roomMessages(w, w.rooms.other)).filter((e) => e.content.body === 'x')).toHaveLength(
    0,
  );
});

test('an untrusted sender in a trusted room is dropped before anyone sees it, and audited', async () => {
  await receiveAll();
  const live = await RpcStream.connect(bridge.socketPath);
  try {
    const s = (await live.request('matrix.subscribe', {})).result.subscription;
    const word = `mallory-${nonce()}`;
    const eventId = await say(w.rooms.agent, `!echo ${word}`, w.mallory);
    const entry = await waitFor(
      'the security_violation audit entry',
      () =>
        auditEntries(bridge.stateDir, { event_type: 'security_violation' }).find(
          (e) => e.details.event_id === eventId,
        ),
      { timeoutMs: 15_000, intervalMs: 200 },
    );
    expect(entry).toMatchObject({
      event_type: 'security_violation',
      room_id: w.rooms.agent,
      user_id: w.mallory.userId,
      details: { reason: 'untrusted_sender', event_id: eventId },
    });
    // A trusted message after it is delivered: the sync went past mallory's event.
    const later = await say(w.rooms.agent, `after-mallory-${nonce()}`);
    await live.until('the trusted message', () =>
      live.events(s).some((n) => n.params.event.event_id === later),
    );
    await sleep(3_000);
    expect(live.events(s).some((n) => n.params.event.event_id === eventId)).toBe(false);
    expect(await countBody(w, w.rooms.agent, `echo: ${word}`)).toBe(0);
    const events = await receiveAll();
    expect(events.some((e) => e.event_id === eventId)).toBe(false);
    expect(events.some((e) => e.event_id === later)).toBe(true);
    // Audited once.
    expect(
      auditEntries(bridge.stateDir, { event_type: 'security_violation' }).filter(
        (e) => e.details.event_id === eventId,
      ),
    ).toHaveLength(1);
  } finally {
    live.close();
  }
});

test('a trusted person in an untrusted room is dropped and audited as untrusted_room', async () => {
  await receiveAll();
  const eventId = await say(w.rooms.untrusted, `!echo untrusted-room-${nonce()}`);
  const entry = await waitFor(
    'the untrusted_room audit entry',
    () =>
      auditEntries(bridge.stateDir, { event_type: 'security_violation' }).find(
        (e) => e.details.event_id === eventId,
      ),
    { timeoutMs: 15_000, intervalMs: 200 },
  );
  expect(entry).toMatchObject({
    room_id: w.rooms.untrusted,
    user_id: w.alice.userId,
    details: { reason: 'untrusted_room' },
  });
  const events = await receiveAll();
  expect(events.some((e) => e.room_id === w.rooms.untrusted)).toBe(false);
});

test("a trusted invite is joined by itself, and the room's past is not delivered", async () => {
  await receiveAll();
  const room = w.rooms.late;
  const past: string[] = [];
  for (let i = 0; i < 3; i++) past.push(await say(room, `!echo before-join-${i}-${nonce()}`));
  await w.syn.client.invite(w.alice.accessToken, room, w.bot.userId);
  const t0 = Date.now();
  await waitFor(
    'the bot to join on the invite',
    async () =>
      (
        await w.syn.client.request(
          'GET',
          `/_matrix/client/v3/rooms/${encodeURIComponent(room)}/joined_members`,
          w.alice.accessToken,
        )
      ).joined[w.bot.userId] !== undefined,
    { timeoutMs: 20_000, intervalMs: 100 },
  );
  timings.auto_join_ms = Date.now() - t0;
  const now = await say(room, `after-join-${nonce()}`);
  const got = await waitFor(
    'the message after the join',
    async () => {
      const events = await receiveAll();
      for (const e of events) expect(past).not.toContain(e.event_id);
      return events.find((e) => e.event_id === now);
    },
    { timeoutMs: 20_000, intervalMs: 200 },
  );
  expect(got.room_id).toBe(room);
  for (const id of past) expect(received.has(id)).toBe(false);
});

test('the first sync does not flood: what was said before the bridge logged in is never delivered', async () => {
  await receiveAll();
  const bodies = new Set(beforeLogin);
  // Nothing said before login was ever returned by matrix.receive, in any test of this file...
  const seen = [...received.keys()];
  expect(seen.length).toBeGreaterThan(0);
  const all = [
    ...(await roomMessages(w, w.rooms.agent)),
    ...(await roomMessages(w, w.rooms.other)),
  ];
  const beforeIds = all.filter((e) => bodies.has(String(e.content.body))).map((e) => e.event_id);
  expect(beforeIds).toHaveLength(beforeLogin.length);
  for (const id of beforeIds) expect(received.has(id)).toBe(false);
  // ...and the agent never answered any of it.
  for (const b of beforeLogin) {
    expect(await countBody(w, w.rooms.agent, b.replace('!echo ', 'echo: '))).toBe(0);
  }
  // Every event returned by matrix.receive in this file was returned exactly once.
  expect([...received.values()].every((n) => n === 1)).toBe(true);
});

test('matrix.login over RPC: wrong password is -32602; a second bot account logs in', async () => {
  const wrong = await call(bridge.socketPath, 'matrix.login', {
    username: w.bot2.localpart,
    password: 'definitely-wrong',
  });
  expect(wrong.error?.code).toBe(-32602);
  expect((await call(bridge.socketPath, 'matrix.login', { username: 'bot2' })).error?.code).toBe(
    -32602,
  );
  // The failed attempt changed nothing.
  expect((await call(bridge.socketPath, 'matrix.status')).result.user_id).toBe(w.bot.userId);

  const ok = await call(bridge.socketPath, 'matrix.login', {
    username: w.bot2.localpart,
    password: w.bot2.password,
  });
  expect(ok.result).toEqual({ status: 'logged_in', user_id: w.bot2.userId });
  collectTokens();
  const st = (await call(bridge.socketPath, 'matrix.status')).result;
  expect(st).toMatchObject({ enabled: true, logged_in: true, user_id: w.bot2.userId });

  // Back to the bot; the sync carries on as it and delivers again.
  const back = await call(bridge.socketPath, 'matrix.login', {
    username: w.bot.localpart,
    password: w.bot.password,
  });
  expect(back.result).toEqual({ status: 'logged_in', user_id: w.bot.userId });
  collectTokens();
  await receiveAll();
  const id = await say(w.rooms.other, `after-relogin-${nonce()}`);
  const got = await waitFor(
    'the event after re-login',
    async () => (await receiveAll()).find((e) => e.event_id === id),
    { timeoutMs: 20_000, intervalMs: 200 },
  );
  expect(got.sender).toBe(w.alice.userId);
});

test('chat.send over the HTTP gateway: once per idempotency key, into a thread, trusted rooms only, busy rooms paced', async () => {
  const gw = await gatewayClient(bridge, 'chat');
  const room = w.rooms.other;
  const text = `gateway hello ${nonce()}`;
  const first = await gw.result('chat.send', { channelId: room, text, idempotencyKey: 'hello-1' });
  expect(first).toEqual({
    delivered: true,
    channelId: room,
    eventId: expect.stringMatching(/^\$/),
  });
  // A client that lost the answer sends again with the same key: the same receipt, no second post.
  const again = await gw.result('chat.send', { channelId: room, text, idempotencyKey: 'hello-1' });
  expect(again.eventId).toBe(first.eventId);

  const reply = `in the thread ${nonce()}`;
  await gw.result('chat.send', { channelId: room, text: reply, threadId: first.eventId });
  await waitForBody(w, room, reply);
  expect(await countBody(w, room, text)).toBe(1);
  const threaded = (await roomMessages(w, room)).find((e) => e.content.body === reply);
  expect(threaded?.content['m.relates_to']).toMatchObject({
    rel_type: 'm.thread',
    event_id: first.eventId,
  });

  const refused = await gw.rpc('chat.send', { channelId: w.rooms.untrusted, text: 'let me in' });
  expect(refused.status).toBe(403);
  expect(refused.body).toMatchObject({
    ok: false,
    auditId: expect.stringMatching(/^req_/),
    error: { code: 'FORBIDDEN', message: expect.stringContaining('matrix.trusted_rooms') },
  });

  // What the homeserver refuses is INTERNAL with its reason; the bridge goes on serving.
  const failed = await gw.rpc('chat.send', { channelId: goneRoom(), text: 'anyone there?' });
  expect(failed.status).toBe(500);
  expect(failed.body).toMatchObject({
    ok: false,
    error: { code: 'INTERNAL', message: expect.stringContaining('the message was not sent') },
  });

  // The slot allows CHAT_SENDS_PER_MINUTE a room a minute; three went to this room above.
  for (let i = 3; i < CHAT_SENDS_PER_MINUTE; i++) {
    expect(await gw.result('chat.send', { channelId: room, text: `fill ${i}` })).toMatchObject({
      delivered: true,
    });
  }
  const paced = await gw.result('chat.send', { channelId: room, text: `paced ${nonce()}` });
  expect(paced).toEqual({ delivered: false, reason: 'paced', retryAfterMs: expect.any(Number) });
  expect(paced.retryAfterMs).toBeGreaterThan(0);
  expect(paced.retryAfterMs).toBeLessThanOrEqual(60_000);
  const urgent = `urgent ${nonce()}`;
  expect(
    await gw.result('chat.send', { channelId: room, text: urgent, urgent: true }),
  ).toMatchObject({ delivered: true });
  await waitForBody(w, room, urgent);
});

test('no password or access token in the output, Temporal history or state files', async () => {
  collectTokens();
  expect(bridgeTokens.size).toBeGreaterThanOrEqual(2);
  const secrets = [...bridgeTokens, w.bot.password, w.bot2.password];

  const out = bridge.output();
  for (const s of secrets) expect(out.includes(s)).toBe(false);

  const run = promisify(execFile);
  const address = `127.0.0.1:${slot.temporalPort}`;
  const { stdout } = await run(TEMPORAL_CLI, [
    'workflow',
    'list',
    '--address',
    address,
    '--query',
    "WorkflowType = 'matrixSendWorkflow' OR WorkflowType = 'matrixSyncWorkflow'",
    '--output',
    'json',
  ]);
  const ids: string[] = JSON.parse(stdout || '[]').map((x: any) => x.execution.workflowId);
  expect(ids.some((id) => id.startsWith('matrix-send-'))).toBe(true);
  expect(ids.some((id) => id.startsWith('matrix-sync-'))).toBe(true);
  timings.workflows_scanned = ids.length;
  for (const id of ids.slice(0, 30)) {
    const history = await temporalHistoryText(slot.temporalPort, id);
    for (const s of secrets) expect(history.includes(s)).toBe(false);
  }

  for (const s of secrets) expect(filesContaining(bridge.stateDir, s)).toEqual([]);
  for (const s of secrets) expect(filesContaining(slot.dir, s)).toEqual([]);
});
