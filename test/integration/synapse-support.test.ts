// The Synapse test helper (test/support/synapse.ts) against the real homeserver it starts: users
// through the shared-secret admin API, a room two users talk in, /sync and /messages, transaction
// id idempotency (what the bridge's exactly-once sends rely on), data surviving restart(), and
// stop() leaving no process behind.
import { existsSync } from 'node:fs';
import {
  startSynapse,
  type MatrixEvent,
  type MatrixSession,
  type SynapseHandle,
} from '../support/synapse';

jest.setTimeout(120_000);

let hs: SynapseHandle;
let alice: MatrixSession;
let bob: MatrixSession;
let roomId: string;

const texts = (events: MatrixEvent[]) =>
  events.filter((e) => e.type === 'm.room.message').map((e) => e.content.body);

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

beforeAll(async () => {
  hs = await startSynapse();
  // Visible in the test output: CI time matters.
  console.info(`synapse up in ${hs.lastStartMs} ms at ${hs.baseUrl}`);
});

afterAll(async () => {
  await hs?.stop();
});

test('creates users through the shared-secret admin API', async () => {
  alice = await hs.registerUser('alice', 'alice-pw', true);
  bob = await hs.registerUser('bob', 'bob-pw');
  expect(alice.userId).toBe(`@alice:${hs.serverName}`);
  expect(bob.userId).toBe(`@bob:${hs.serverName}`);
  expect(alice.accessToken).toBeTruthy();
  expect(bob.deviceId).toBeTruthy();
  const who = await hs.client.request('GET', '/_matrix/client/v3/account/whoami', bob.accessToken);
  expect(who.user_id).toBe(bob.userId);
  // Registration stays closed to everyone else.
  await expect(
    hs.client.request('POST', '/_matrix/client/v3/register', undefined, {
      username: 'mallory',
      password: 'x',
      auth: { type: 'm.login.dummy' },
    }),
  ).rejects.toMatchObject({ status: 403 });
});

test('two users talk in a room; /sync and /messages show the message', async () => {
  const first = await hs.client.sync(alice.accessToken);
  roomId = await hs.client.createRoom(alice.accessToken, {
    invite: [bob.userId],
    name: 'helper test',
  });
  expect(await hs.client.join(bob.accessToken, roomId)).toBe(roomId);

  const eventId = await hs.client.sendText(bob.accessToken, roomId, 'hello from bob');
  expect(eventId).toMatch(/^\$/);

  // Long-poll from alice's previous position until bob's message shows up.
  let since: string = first.next_batch;
  let seen: MatrixEvent | undefined;
  for (let i = 0; i < 10 && !seen; i++) {
    const res = await hs.client.sync(alice.accessToken, since, 5_000);
    since = res.next_batch;
    const events: MatrixEvent[] = res.rooms?.join?.[roomId]?.timeline?.events ?? [];
    seen = events.find((e) => e.event_id === eventId);
  }
  expect(seen).toMatchObject({
    sender: bob.userId,
    content: { msgtype: 'm.text', body: 'hello from bob' },
  });

  const history = await hs.client.messages(alice.accessToken, roomId);
  expect(history[0]).toMatchObject({ event_id: eventId, sender: bob.userId });
});

test('the same transaction id twice is one event', async () => {
  const txn = `once-${Date.now()}`;
  const a = await hs.client.sendText(alice.accessToken, roomId, 'exactly once', txn);
  const b = await hs.client.sendText(alice.accessToken, roomId, 'exactly once', txn);
  expect(b).toBe(a);
  const history = await hs.client.messages(bob.accessToken, roomId);
  expect(history.filter((e) => e.content.body === 'exactly once')).toHaveLength(1);
  // The sender sees its transaction id on the event; other users do not.
  const own = (await hs.client.messages(alice.accessToken, roomId)).find((e) => e.event_id === a);
  expect(own?.unsigned?.transaction_id).toBe(txn);
});

test('restart() keeps users, rooms and history', async () => {
  const pidBefore = hs.pid()!;
  const before = texts(await hs.client.messages(alice.accessToken, roomId));
  await hs.restart();
  console.info(`synapse restarted in ${hs.lastStartMs} ms`);
  expect(alive(pidBefore)).toBe(false);
  expect(hs.pid()).not.toBe(pidBefore);

  // Old tokens still work, passwords still log in, the history is intact.
  expect(texts(await hs.client.messages(alice.accessToken, roomId))).toEqual(before);
  const bob2 = await hs.login('bob', 'bob-pw');
  expect(bob2.userId).toBe(bob.userId);
  expect(texts(await hs.client.messages(bob2.accessToken, roomId))).toEqual(
    expect.arrayContaining(['hello from bob', 'exactly once']),
  );
  // A stable device id can be asked for at login.
  const again = await hs.login('bob', 'bob-pw', bob2.deviceId);
  expect(again.deviceId).toBe(bob2.deviceId);
  await hs.client.sendText(bob2.accessToken, roomId, 'after restart');
  expect(texts(await hs.client.messages(alice.accessToken, roomId))[0]).toBe('after restart');
});

test('stop() leaves no process and no directory', async () => {
  const pid = hs.pid()!;
  const { dir, baseUrl } = hs;
  expect(alive(pid)).toBe(true);
  await hs.stop();
  expect(alive(pid)).toBe(false);
  expect(hs.pid()).toBeUndefined();
  expect(existsSync(dir)).toBe(false);
  await expect(fetch(`${baseUrl}/_matrix/client/versions`)).rejects.toThrow();
});
