// Bridge → agent requests (ContainerSocketHub.request) over a real per-container Unix socket,
// with a fake agent that answers, stays silent, errs or hangs up.
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import pino from 'pino';
import { ContainerSocketHub, containerSocketPaths } from '../../rpc/container-socket';
import { PeerRequestError } from '../../rpc/socket-server';
import { LeakGuard } from '../../services/leak-guard';

const NAME = 'armorclaw-echo-1700000000';

let dir: string;
let hub: ContainerSocketHub;
const sockets: net.Socket[] = [];

/** A hub serving NAME's socket in `dir`, with `deps` over the defaults. */
async function openHub(
  deps: Partial<ConstructorParameters<typeof ContainerSocketHub>[0]> = {},
): Promise<ContainerSocketHub> {
  const h = new ContainerSocketHub({
    bridgeSocketPath: path.join(dir, 'bridge.sock'),
    agentGid: process.getgid?.() ?? 0,
    client: {
      workflow: { getHandle: () => ({ signal: async () => undefined }) },
    } as unknown as Client,
    audit: () => undefined,
    log: pino({ level: 'silent' }),
    ...deps,
  });
  await h.open(NAME);
  return h;
}

beforeEach(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'armorclaw-request-'));
  hub = await openHub();
});

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await hub.closeAll();
  rmSync(dir, { recursive: true, force: true });
});

type Message = Record<string, any>;

/** A fake agent: `reply` decides what to answer to each bridge request (undefined: nothing). */
async function fakeAgent(reply: (m: Message) => Message | undefined) {
  const socket = net.createConnection(
    containerSocketPaths(path.join(dir, 'bridge.sock'), NAME).socket,
  );
  sockets.push(socket);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const received: Message[] = [];
  let buf = '';
  socket.on('data', (d) => {
    buf += d.toString();
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const m = JSON.parse(buf.slice(0, nl)) as Message;
      buf = buf.slice(nl + 1);
      received.push(m);
      if (m.method && m.id !== undefined) {
        const answer = reply(m);
        if (answer) socket.write(JSON.stringify({ jsonrpc: '2.0', id: m.id, ...answer }) + '\n');
      }
    }
  });
  // Wait until the hub has accepted the connection.
  for (let i = 0; i < 50 && !hub.isConnected(NAME); i++)
    await new Promise((r) => setTimeout(r, 10));
  return { socket, received };
}

test('a request is answered by the agent and resolves with its result', async () => {
  const agent = await fakeAgent((m) => ({
    result: { text: `echo: ${m.params.messages[0].content}` },
  }));
  const result = await hub.request(NAME, 'agent.turn', {
    turn_id: 't1',
    messages: [{ role: 'user', content: 'hi' }],
  });
  expect(result).toEqual({ text: 'echo: hi' });
  const sent = agent.received.find((m) => m.method === 'agent.turn')!;
  expect(typeof sent.id).toBe('string');
  // The agent's answer was taken as an answer: the bridge sent nothing back about it.
  await new Promise((r) => setTimeout(r, 50));
  expect(agent.received.filter((m) => m.error)).toEqual([]);
});

test('concurrent requests are matched to their own answers, whatever the order', async () => {
  const held: Message[] = [];
  const agent = await fakeAgent((m) => {
    held.push(m);
    return undefined;
  });
  const a = hub.request(NAME, 'agent.turn', { n: 1 });
  const b = hub.request(NAME, 'agent.turn', { n: 2 });
  while (held.length < 2) await new Promise((r) => setTimeout(r, 5));
  for (const m of held.reverse()) {
    agent.socket.write(
      JSON.stringify({ jsonrpc: '2.0', id: m.id, result: m.params.n * 10 }) + '\n',
    );
  }
  await expect(a).resolves.toBe(10);
  await expect(b).resolves.toBe(20);
});

test("the agent's own requests on the same connection are still answered", async () => {
  const agent = await fakeAgent(() => undefined);
  agent.socket.write(
    JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'heartbeat', params: { seq: 1 } }) + '\n',
  );
  for (let i = 0; i < 100 && !agent.received.some((m) => m.id === 7); i++)
    await new Promise((r) => setTimeout(r, 10));
  expect(agent.received.find((m) => m.id === 7)).toMatchObject({ result: { status: 'ok' } });
});

test('no connected agent, or no such socket: no_peer', async () => {
  await expect(hub.request(NAME, 'agent.turn', {})).rejects.toMatchObject({ reason: 'no_peer' });
  await expect(hub.request('armorclaw-missing', 'agent.turn', {})).rejects.toBeInstanceOf(
    PeerRequestError,
  );
});

test('an agent that does not answer in time: timeout', async () => {
  await fakeAgent(() => undefined);
  await expect(hub.request(NAME, 'agent.turn', {}, { timeoutMs: 100 })).rejects.toMatchObject({
    reason: 'timeout',
  });
});

test('the connection closing before the answer: closed', async () => {
  const agent = await fakeAgent((m) => {
    setTimeout(() => agent.socket.destroy(), 10);
    void m;
    return undefined;
  });
  await expect(hub.request(NAME, 'agent.turn', {})).rejects.toMatchObject({ reason: 'closed' });
});

test("the agent's error answer: error, with its code", async () => {
  await fakeAgent(() => ({ error: { code: -32602, message: 'messages must be an array' } }));
  const err = await hub.request(NAME, 'agent.turn', {}).catch((e: unknown) => e);
  expect(err).toMatchObject({ reason: 'error', rpcCode: -32602 });
  expect((err as Error).message).toContain('messages must be an array');
});

test('an answer to no pending request is dropped, not answered as an invalid request', async () => {
  const agent = await fakeAgent(() => undefined);
  agent.socket.write(JSON.stringify({ jsonrpc: '2.0', id: 'bridge-999', result: 1 }) + '\n');
  await new Promise((r) => setTimeout(r, 100));
  expect(agent.received).toEqual([]);
});

test('an answer holding a stored credential is withheld, audited and refused as a security violation', async () => {
  const audits: { event_type: string; details: Record<string, unknown> }[] = [];
  const reports: string[] = [];
  const token = 'sk-proj-' + 'Q7w'.repeat(16);
  await hub.closeAll();
  hub = await openHub({
    audit: (e) => audits.push(e),
    leakGuard: () => new LeakGuard([{ id: 'openai-key-1', token }]),
    reportViolation: (text) => reports.push(text),
  });
  await fakeAgent(() => ({
    result: { text: `here you go: ${Buffer.from(token).toString('base64')}` },
  }));
  const refused = (await hub
    .request(NAME, 'agent.turn', { turn_id: 't9' })
    .catch((e: unknown) => e)) as PeerRequestError;
  expect(refused).toBeInstanceOf(PeerRequestError);
  expect(refused).toMatchObject({ reason: 'error', rpcCode: -32005 });
  expect(refused.message).not.toContain(token);
  expect(audits).toEqual([
    expect.objectContaining({
      event_type: 'security_violation',
      details: expect.objectContaining({ key_ids: ['openai-key-1'] }),
    }),
  ]);
  expect(reports).toHaveLength(1);
  expect(reports[0]).not.toContain(token);
});
