// Matrix under faults: the bridge killed with SIGKILL between an event's
// arrival and its delivery to the agent, and during a matrix.send; Synapse restarted
// mid-session. Afterwards every event was delivered exactly once (to the agent, which answers
// once, and to matrix.receive) and every send appears exactly once in the room.
import { removeDir, spawnBridge, type BridgeProcess } from '../support/bridge-process';
import { ensureAgentImage } from '../support/docker';
import { call } from '../support/socket-clients';
import {
  bridgeSlot,
  countBody,
  drainReceive,
  nonce,
  rpc,
  setupMatrixWorld,
  sleep,
  startAgent,
  startBridge,
  stopAgents,
  teardownMatrixWorld,
  waitFor,
  waitForStatus,
  type BridgeSlot,
  type MatrixWorld,
} from '../support/matrix-scenario';

jest.setTimeout(300_000);

let w: MatrixWorld;
let slot: BridgeSlot;
let bridge: BridgeProcess;
const names = new Set<string>();
/** Every event id `matrix.receive` returned in this file, with how often. */
const received = new Map<string, number>();
const timings: Record<string, unknown> = {};

const say = (roomId: string, body: string) =>
  w.syn.client.sendText(w.alice.accessToken, roomId, body);

async function receiveAll(): Promise<any[]> {
  const events = await drainReceive(bridge.socketPath);
  for (const e of events) received.set(e.event_id, (received.get(e.event_id) ?? 0) + 1);
  return events;
}

/** SIGKILL (the embedded Temporal dev server dies with the bridge), then the same dir and ports. */
async function killBridge(): Promise<void> {
  await bridge.stop('SIGKILL');
}

async function restartBridge(): Promise<number> {
  const t0 = Date.now();
  bridge = await startBridge(slot);
  return Date.now() - t0;
}

/** Waits until `body` is in the room at least once; returns the wait in ms. */
async function waitInRoom(roomId: string, body: string, timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  await waitFor(`"${body}" in the room`, async () => (await countBody(w, roomId, body)) > 0, {
    timeoutMs,
    intervalMs: 200,
  });
  return Date.now() - t0;
}

beforeAll(async () => {
  await ensureAgentImage();
  w = await setupMatrixWorld();
  slot = await bridgeSlot(w);
  bridge = await startBridge(slot);
  const agent = await startAgent(w, bridge.socketPath, w.rooms.agent, names);
  timings.agent_ready_ms = agent.readyMs;
  await receiveAll();
});

afterAll(async () => {
  await stopAgents(
    bridge?.socketPath,
    names,
    [slot?.dir, w?.secretsDir].filter(Boolean) as string[],
  );
  await bridge?.stop();
  if (slot) removeDir(slot.dir);
  await teardownMatrixWorld(w);
  console.info(`matrix-faults timings: ${JSON.stringify(timings, null, 2)}`);
});

test('kill -9 between arrival and delivery: the agent answers each message once, receive returns each once', async () => {
  const words = Array.from({ length: 5 }, (_, i) => `crash-${i}-${nonce()}`);
  const ids: string[] = [];
  const received0 = new Set<string>();
  const restarts: number[] = [];

  // 1: said and fully handled before any kill; receive takes it before the kill.
  ids.push(await say(w.rooms.agent, `!echo ${words[0]}`));
  await waitInRoom(w.rooms.agent, `echo: ${words[0]}`, 15_000);
  await waitFor(
    'receive to return message 1',
    async () => {
      for (const e of await receiveAll()) received0.add(e.event_id);
      return received0.has(ids[0]!);
    },
    { timeoutMs: 10_000, intervalMs: 100 },
  );

  // 2: killed right after it was said (it arrives, or is being stored, or is being pushed).
  ids.push(await say(w.rooms.agent, `!echo ${words[1]}`));
  await sleep(30);
  await killBridge();
  // 3: said while the bridge is down.
  ids.push(await say(w.rooms.agent, `!echo ${words[2]}`));
  restarts.push(await restartBridge());

  // 4: killed while the agent is most likely answering (push → agent → matrix.send workflow).
  ids.push(await say(w.rooms.agent, `!echo ${words[3]}`));
  await sleep(250);
  await killBridge();
  restarts.push(await restartBridge());

  // 5: said after the restarts.
  ids.push(await say(w.rooms.agent, `!echo ${words[4]}`));
  timings.crash_restart_ms = restarts;

  const t0 = Date.now();
  const waits: number[] = [];
  for (const word of words) waits.push(await waitInRoom(w.rooms.agent, `echo: ${word}`, 90_000));
  timings.crash_all_echoes_after_restart_ms = Date.now() - t0;
  // Past the agent's redelivery period (5 s) and a Temporal activity retry: duplicates would show.
  await sleep(8_000);
  const counts: Record<string, number> = {};
  for (const word of words) counts[word] = await countBody(w, w.rooms.agent, `echo: ${word}`);
  timings.crash_echo_counts = counts;
  for (const word of words) {
    expect({ word, echoes: counts[word] }).toEqual({ word, echoes: 1 });
    expect(await countBody(w, w.rooms.agent, `!echo ${word}`)).toBe(1);
  }

  // matrix.receive: each of the five exactly once, across the kills.
  const after = await receiveAll();
  const all = [...received0, ...after.map((e) => e.event_id)];
  for (const id of ids) expect(all.filter((x) => x === id)).toHaveLength(1);
  for (const id of ids) expect(received.get(id)).toBe(1);
});

test('kill -9 during matrix.send: the message appears in the room exactly once', async () => {
  const results: Array<Record<string, unknown>> = [];
  for (const delayMs of [50, 120, 200]) {
    const text = `send-crash-${delayMs}-${nonce()}`;
    const answer = rpc(
      bridge.socketPath,
      'matrix.send',
      { room_id: w.rooms.other, message: text },
      30_000,
    ).then(
      (r) => ({ ok: true as const, r }),
      (err: Error) => ({ ok: false as const, err: err.message }),
    );
    await sleep(delayMs);
    await killBridge();
    const atKill = await countBody(w, w.rooms.other, text);
    const settled = await answer;
    const restartMs = await restartBridge();
    // The send workflow is retried with the same transaction id once the bridge is back.
    let appearedMs: number | undefined;
    try {
      appearedMs = await waitInRoom(w.rooms.other, text, 45_000);
    } catch {
      appearedMs = undefined;
    }
    await sleep(3_000);
    const count = await countBody(w, w.rooms.other, text);
    results.push({
      delayMs,
      inRoomAtKill: atKill,
      rpcAnswered: settled.ok ? JSON.stringify((settled as any).r) : (settled as any).err,
      restartMs,
      appearedAfterRestartMs: appearedMs,
      count,
    });
    timings.send_crash = results;
  }
  for (const r of results)
    expect({ delayMs: r.delayMs, count: r.count }).toEqual({ delayMs: r.delayMs, count: 1 });
});

test("kill -9 while the homeserver holds the send: the send's workflow delivers it, once", async () => {
  // The bridge answers a send with its own PUT and terminates the send's delayed workflow; here
  // the PUT cannot be answered (Synapse stopped), so the bridge dies with it pending, and the
  // workflow, started with the send, must deliver the message when the bridge is back.
  const text = `send-stalled-${nonce()}`;
  const pid = w.syn.pid()!;
  process.kill(pid, 'SIGSTOP');
  let stopped = true;
  try {
    const answer = rpc(
      bridge.socketPath,
      'matrix.send',
      { room_id: w.rooms.other, message: text },
      30_000,
    ).catch(() => undefined);
    await sleep(1_000);
    await killBridge();
    await answer;
    process.kill(pid, 'SIGCONT');
    stopped = false;
    await restartBridge();
    timings.send_stalled_appeared_ms = await waitInRoom(w.rooms.other, text, 60_000);
    await sleep(3_000);
    expect(await countBody(w, w.rooms.other, text)).toBe(1);
  } finally {
    if (stopped) process.kill(pid, 'SIGCONT');
  }
});

test('restarts, graceful or not, resume the sync at once, however many there were', async () => {
  await receiveAll();
  const resumeMs: number[] = [];
  const words: string[] = [];
  for (let i = 0; i < 4; i++) {
    await bridge.stop(i % 2 === 0 ? 'SIGTERM' : 'SIGKILL');
    const word = `while-down-${i}-${nonce()}`;
    words.push(word);
    await say(w.rooms.agent, `!echo ${word}`);
    bridge = await spawnBridge({
      dir: slot.dir,
      env: slot.env,
      temporalPort: slot.temporalPort,
      uiPort: slot.uiPort,
    });
    // From the socket answering to the sync running again.
    resumeMs.push(await waitForStatus(bridge.socketPath, 'connected', 60_000));
  }
  timings.sync_resume_after_restart_ms = resumeMs;
  for (const ms of resumeMs) expect(ms).toBeLessThan(10_000);
  for (const word of words) await waitInRoom(w.rooms.agent, `echo: ${word}`, 30_000);
  await sleep(6_000);
  for (const word of words) expect(await countBody(w, w.rooms.agent, `echo: ${word}`)).toBe(1);
  const events = await receiveAll();
  for (const word of words) {
    expect(events.filter((e) => e.content?.body === `!echo ${word}`)).toHaveLength(1);
  }
});

test('Synapse restarted mid-session: disconnected then connected; sends and messages land once', async () => {
  await receiveAll();
  expect((await call(bridge.socketPath, 'matrix.status')).result.status).toBe('connected');

  const t0 = Date.now();
  const restart = w.syn.restart({ downMs: 3_000 });
  const disconnectedMs = await waitForStatus(bridge.socketPath, 'disconnected', 15_000);
  timings.synapse_outage_seen_after_ms = disconnectedMs;
  const health = (await call(bridge.socketPath, 'health')).result;
  expect(health.status).toBe('unhealthy');
  expect(health.checks.matrix.status).not.toBe('ok');
  const st = (await call(bridge.socketPath, 'matrix.status')).result;
  expect(st).toMatchObject({ enabled: true, status: 'disconnected', logged_in: true });

  // A send issued during the outage.
  const outageText = `during-outage-${nonce()}`;
  const sendStarted = Date.now();
  const outageSend = rpc(
    bridge.socketPath,
    'matrix.send',
    {
      room_id: w.rooms.other,
      message: outageText,
    },
    120_000,
  ).then((r) => ({ r, ms: Date.now() - sendStarted }));

  await restart;
  const synapseBackAt = Date.now();
  timings.synapse_down_total_ms = synapseBackAt - t0;
  timings.synapse_restart_ms = w.syn.lastStartMs;
  const reconnectMs = await waitForStatus(bridge.socketPath, 'connected', 60_000);
  timings.bridge_reconnected_after_synapse_back_ms = reconnectMs;
  expect((await call(bridge.socketPath, 'health')).result.checks.matrix.status).toBe('ok');

  const sent = await outageSend;
  timings.outage_send = {
    answer: sent.r.result ?? sent.r.error,
    total_ms: sent.ms,
    after_synapse_back_ms: sendStarted + sent.ms - synapseBackAt,
  };
  expect(sent.r.error).toBeUndefined();
  expect(sent.r.result.room_id).toBe(w.rooms.other);

  // Messages said after the homeserver is back: the agent answers once, receive returns once.
  const words = [`after-outage-1-${nonce()}`, `after-outage-2-${nonce()}`];
  const ids: string[] = [];
  for (const word of words) ids.push(await say(w.rooms.agent, `!echo ${word}`));
  for (const word of words) await waitInRoom(w.rooms.agent, `echo: ${word}`, 30_000);
  await sleep(6_000);
  for (const word of words) expect(await countBody(w, w.rooms.agent, `echo: ${word}`)).toBe(1);
  expect(await countBody(w, w.rooms.other, outageText)).toBe(1);
  const events = await receiveAll();
  for (const id of ids) expect(events.filter((e) => e.event_id === id)).toHaveLength(1);
  // Nothing returned twice by matrix.receive in this whole file.
  expect([...received.entries()].filter(([, n]) => n !== 1)).toEqual([]);
});
