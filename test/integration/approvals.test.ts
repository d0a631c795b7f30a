/**
 * Approvals and incident containment on a real bridge process (embedded Temporal, Docker,
 * Synapse): a reference agent container asks over its own socket; operators answer over HTTP
 * (the gateway, with a token from `armorclaw gateway token create`) and in the admin room as a
 * person reads and writes it; the bridge is killed with SIGKILL with a request pending and with
 * an incident in force, and picks both up where they were.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { PROJECT_ROOT, removeDir, type BridgeProcess } from '../support/bridge-process';
import { auditEntries } from '../support/containers';
import { ensureAgentImage, ensureDocker } from '../support/docker';
import {
  bridgeSlot,
  rpc,
  roomMessages,
  setupMatrixWorld,
  startBridge,
  stopAgents,
  teardownMatrixWorld,
  waitFor,
  type BridgeSlot,
  type MatrixWorld,
} from '../support/matrix-scenario';

jest.setTimeout(240_000);

const hex = (n: number) => randomBytes(n).toString('hex');
const CLI = path.join(PROJECT_ROOT, 'cli', 'armorclaw.js');

let w: MatrixWorld | undefined;
let slot: BridgeSlot | undefined;
let bridge: BridgeProcess | undefined;
let adminRoom: string;
let gatewayPort: number;
let token: string;
let endpoint: string;
const names = new Set<string>();

/** The agent's own socket: what the container reaches at /run/armorclaw/bridge.sock. */
const agent = async (method: string, params?: unknown) => rpc(endpoint, method, params, 30_000);

/** POST /rpc on the gateway with the spec's envelope. */
function gateway(method: string, params: unknown, bearer = token): Promise<any> {
  const body = JSON.stringify({ id: `t-${hex(3)}`, version: '2.0', method, params });
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: gatewayPort,
        path: '/rpc',
        method: 'POST',
        agent: false,
        headers: { 'content-type': 'application/json', authorization: `Bearer ${bearer}` },
      },
      (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve(JSON.parse(text)));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Runs the `armorclaw` CLI against the bridge's socket; its stdout. */
function cli(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, ARMORCLAW_SOCKET: bridge!.socketPath },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.once('error', reject);
    child.once('close', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`armorclaw ${args[0]}: exit ${code}: ${err}`)),
    );
  });
}

const createToken = async (name: string): Promise<string> =>
  JSON.parse(await cli(['gateway', 'token', 'create', name, '--json'])).token;

/** GET /status with the token: the gateway's operational snapshot. */
function getStatus(): Promise<any> {
  return new Promise((resolve, reject) => {
    http
      .get(
        {
          host: '127.0.0.1',
          port: gatewayPort,
          path: '/status',
          agent: false,
          headers: { authorization: `Bearer ${token}` },
        },
        (res) => {
          let text = '';
          res.on('data', (d) => (text += d));
          res.on('end', () => resolve(JSON.parse(text)));
        },
      )
      .on('error', reject);
  });
}

async function start(): Promise<void> {
  bridge = await startBridge(slot!);
  gatewayPort = Number(new URL(await bridge.gatewayUrl()).port);
}

/** m.notice bodies of the admin room, oldest first. */
const notices = async (): Promise<string[]> =>
  (await roomMessages(w!, adminRoom))
    .filter((e) => e.content.msgtype === 'm.notice')
    .map((e) => String(e.content.body))
    .reverse();

const request = async (capability = 'shell.exec') => {
  const r = await agent('approval.request', { capability, reason: `integration ${hex(3)}` });
  expect(r.error).toBeUndefined();
  expect(r.result).toMatchObject({ status: 'pending', capability });
  return r.result.request_id as string;
};

beforeAll(async () => {
  await ensureDocker();
  await ensureAgentImage();
  w = await setupMatrixWorld();
  adminRoom = await w.syn.client.createRoom(w.alice.accessToken, {
    invite: [w.bot.userId, w.mallory.userId],
    name: 'armorclaw admin',
  });
  await w.syn.client.join(w.bot.accessToken, adminRoom);
  await w.syn.client.join(w.mallory.accessToken, adminRoom);
  slot = await bridgeSlot(w, {
    ARMORCLAW_MATRIX_ADMIN_ROOM: adminRoom,
    // mallory may talk to the bridge, but only alice answers approvals.
    ARMORCLAW_MATRIX_TRUSTED_SENDERS: `${w.alice.userId},${w.mallory.userId}`,
    ARMORCLAW_MATRIX_TRUSTED_ROOMS: [w.rooms.agent, adminRoom].join(','),
    ARMORCLAW_APPROVALS_ADMINS: w.alice.userId,
  });
  await start();
  token = await createToken('approvals-it');
  const keyId = `approvals-key-${hex(4)}`;
  const sock = bridge!.socketPath;
  expect(
    (await rpc(sock, 'store_key', { id: keyId, provider: 'openai', token: `sk-${hex(8)}` })).error,
  ).toBeUndefined();
  const started = await rpc(sock, 'start', { key_id: keyId, ttl: '30m' }, 90_000);
  expect(started.error).toBeUndefined();
  names.add(started.result.container_name);
  endpoint = started.result.endpoint;
}, 240_000);

afterAll(async () => {
  const dirs = [slot?.dir, w?.secretsDir].filter((d): d is string => !!d);
  await stopAgents(bridge?.socketPath, names, dirs);
  await bridge?.stop();
  await teardownMatrixWorld(w);
  if (slot) removeDir(slot.dir);
}, 120_000);

test('request → pending → approved over HTTP → grant used up; answers for what is over', async () => {
  const id = await request();
  expect((await agent('approval.status', { request_id: id })).result).toMatchObject({
    request_id: id,
    status: 'pending',
  });
  // Announced in the admin room with how to answer.
  await waitFor('the request notice', async () =>
    (await notices()).some(
      (n) => n.includes(`Approval request ${id}`) && n.includes(`approve ${id}`),
    ),
  );
  await waitFor('the request in approval.list', async () => {
    const r = await gateway('approval.list', { status: 'pending' });
    return r.ok && r.result.requests.some((q: any) => q.requestId === id);
  });
  expect(
    (await agent('approval.use', { capability: 'shell.exec', request_id: id })).result,
  ).toEqual({ allowed: false, reason: 'not_approved' });

  const resolved = await gateway('approval.resolve', {
    requestId: id,
    decision: 'approve',
    grantUses: 2,
    grantTtlMs: 600_000,
  });
  expect(resolved).toMatchObject({
    ok: true,
    result: { request: { requestId: id, status: 'approved', grant: { uses: 2, usesLeft: 2 } } },
  });
  expect(resolved.result.request.resolvedBy).toMatch(/^gateway:/);
  await waitFor('the grant in approval.capabilities', async () => {
    const r = await gateway('approval.capabilities', {});
    return r.result.grants.some((g: any) => g.requestId === id && g.usesLeft === 2);
  });

  // Without a request id: found among the agent's grants for the capability.
  expect((await agent('approval.use', { capability: 'shell.exec' })).result).toEqual({
    allowed: true,
    request_id: id,
    uses_left: 1,
  });
  expect(
    (await agent('approval.use', { capability: 'shell.exec', request_id: id })).result,
  ).toEqual({ allowed: true, request_id: id, uses_left: 0 });
  expect(
    (await agent('approval.use', { capability: 'shell.exec', request_id: id })).result,
  ).toEqual({ allowed: false, reason: 'exhausted' });
  expect((await agent('approval.use', { capability: 'fs.delete' })).result).toEqual({
    allowed: false,
    reason: 'no_grant',
  });

  const again = await gateway('approval.resolve', { requestId: id, decision: 'deny' });
  expect(again).toMatchObject({ ok: false, error: { code: 'BAD_REQUEST' } });
  expect(again.error.message).toContain('not pending');
  const unknown = await gateway('approval.resolve', {
    requestId: 'abcdefabcdef',
    decision: 'deny',
  });
  expect(unknown).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });
  expect(
    (await agent('approval.request', { capability: 'rm.rf', reason: 'x' })).error,
  ).toMatchObject({ code: -32602 });

  // The workflow writes its entries after it answered: wait for the last one.
  await waitFor('the audit entries of the request', async () => {
    const kinds = auditEntries(bridge!.stateDir, { limit: 500 })
      .filter((e) => e.details.request_id === id)
      .map((e) => e.event_type);
    return [
      'approval_requested',
      'approval_approved',
      'approval_grant_used',
      'approval_grant_ended',
    ].every((k) => kinds.includes(k));
  });
});

test('answered in the admin room: a non-admin reply is ignored and audited, an admin approves', async () => {
  const id = await request('fs.write');
  await waitFor('the request notice', async () =>
    (await notices()).some((n) => n.includes(`Approval request ${id}`)),
  );
  await w!.syn.client.sendText(w!.mallory.accessToken, adminRoom, `approve ${id}`);
  await waitFor('the ignored reply in the audit log', async () =>
    auditEntries(bridge!.stateDir, { event_type: 'approval_reply_ignored' }).some(
      (e) => e.details.request_id === id && e.user_id === w!.mallory.userId,
    ),
  );
  expect((await agent('approval.status', { request_id: id })).result.status).toBe('pending');

  await w!.syn.client.sendText(w!.alice.accessToken, adminRoom, `approve ${id} 5m 1`);
  await waitFor('the approval', async () => {
    const r = await agent('approval.status', { request_id: id });
    return r.result?.status === 'approved';
  });
  const status = (await agent('approval.status', { request_id: id })).result;
  expect(status.grant).toMatchObject({ uses: 1, uses_left: 1, ttl_ms: 300_000, active: true });
  await waitFor('the confirmation', async () =>
    (await notices()).some(
      (n) => n.includes(`Approval ${id}`) && n.includes('approved by matrix:'),
    ),
  );
  expect((await agent('approval.use', { capability: 'fs.write', request_id: id })).result).toEqual({
    allowed: true,
    request_id: id,
    uses_left: 0,
  });
  expect((await agent('approval.use', { capability: 'fs.write', request_id: id })).result).toEqual({
    allowed: false,
    reason: 'exhausted',
  });
  // A deny for a request that is over is answered with why, in the room.
  await w!.syn.client.sendText(w!.alice.accessToken, adminRoom, `deny ${id}`);
  await waitFor('the refusal notice', async () =>
    (await notices()).some((n) => n.includes(`Approval ${id}:`) && n.includes('not pending')),
  );
});

test('kill -9 with a pending request: still pending after the restart, then resolvable', async () => {
  const id = await request('network.egress');
  await bridge!.stop('SIGKILL');
  await start();
  await waitFor('the agent socket again', async () => {
    const r = await agent('approval.status', { request_id: id }).catch(() => undefined);
    return r?.result?.status === 'pending';
  });
  const denied = await gateway('approval.resolve', {
    requestId: id,
    decision: 'deny',
    reason: 'no egress today',
  });
  expect(denied).toMatchObject({
    ok: true,
    result: { request: { status: 'denied', resolutionReason: 'no egress today' } },
  });
  expect((await agent('approval.status', { request_id: id })).result).toMatchObject({
    status: 'denied',
    resolution_reason: 'no egress today',
  });
});

test('incident.bundle revokes a token in use, isolates tools, survives kill -9, and is lifted', async () => {
  const suspect = await createToken('suspect');
  expect((await gateway('approval.list', {}, suspect)).ok).toBe(true);
  const granted = await request('keys.use');
  await gateway('approval.resolve', { requestId: granted, decision: 'approve', grantUses: 5 });

  const bundle = await gateway('incident.bundle', { tokens: [suspect] });
  expect(bundle.ok).toBe(true);
  expect(bundle.result).toMatchObject({ proactiveDisabled: true, active: true });
  expect(bundle.result.revokedTokenHashes).toHaveLength(1);
  expect(bundle.result.revokedTokenHashes[0]).toMatch(/^[0-9a-f]{64}$/);
  expect(bundle.result.isolatedTools).toContain('shell.exec');
  expect(JSON.stringify(bundle)).not.toContain(suspect);
  expect(await gateway('approval.list', {}, suspect)).toMatchObject({
    ok: false,
    error: { code: 'AUTH_INVALID' },
  });

  const isolated = async () => {
    const refused = await agent('approval.request', { capability: 'shell.exec', reason: 'x' });
    expect(refused.error).toMatchObject({ code: -32005 });
    expect((await agent('approval.use', { capability: 'keys.use' })).result).toEqual({
      allowed: false,
      reason: 'tool_isolation',
    });
  };
  await isolated();
  const proactive = () =>
    gateway('chat.send', {
      channelId: w!.rooms.agent,
      text: `good morning ${Date.now()}`,
      proactive: true,
    });
  expect(await proactive()).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
  // Answers to people still go out: only sends the bridge starts by itself are held.
  expect(
    await gateway('chat.send', {
      channelId: w!.rooms.agent,
      text: 'an answer during the incident',
    }),
  ).toMatchObject({ ok: true, result: { delivered: true } });

  await bridge!.stop('SIGKILL');
  await start();
  await waitFor(
    'the agent socket again',
    async () =>
      (await agent('approval.status', { request_id: granted }).catch(() => undefined))?.result,
  );
  // The operator on this host sees it too.
  expect(JSON.parse(await cli(['incident', 'status', '--json']))).toMatchObject({
    active: true,
    proactive_disabled: true,
    tool_isolation: true,
    revoked_token_hashes: bundle.result.revokedTokenHashes,
  });
  const status = await gateway('incident.status', {});
  expect(status).toMatchObject({ ok: true, result: { active: true, proactiveDisabled: true } });
  expect(status.result.policyLogs.map((l: any) => l.kind)).toEqual(
    expect.arrayContaining([
      'incident_bundle',
      'approval_refused',
      'grant_use_refused',
      'proactive_send_refused',
    ]),
  );
  expect(await gateway('approval.list', {}, suspect)).toMatchObject({
    error: { code: 'AUTH_INVALID' },
  });
  await isolated();
  expect(await proactive()).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
  const another = await request('shell.exec').catch(() => undefined);
  expect(another).toBeUndefined();
  const refusedGrant = await gateway('approval.resolve', {
    requestId: 'abcdefabcdef',
    decision: 'approve',
  });
  expect(refusedGrant).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
  const snapshot = await getStatus();
  expect(snapshot.incident).toMatchObject({
    proactiveSendsDisabled: true,
    toolIsolationEnabled: true,
  });
  expect(snapshot.approvals.activeCapabilities).toContain('keys.use');

  const lifted = await gateway('incident.lift', {});
  expect(lifted).toMatchObject({ ok: true, result: { active: false, proactiveDisabled: false } });
  expect(await proactive()).toMatchObject({ ok: true, result: { delivered: true } });
  expect((await agent('approval.use', { capability: 'keys.use' })).result).toMatchObject({
    allowed: true,
    request_id: granted,
    uses_left: 4,
  });
  await request('shell.exec');
  // Revoked stays revoked.
  expect(await gateway('approval.list', {}, suspect)).toMatchObject({
    error: { code: 'AUTH_INVALID' },
  });
  expect(bridge!.output()).not.toContain(suspect);
});

test("a grant's TTL ends it: a use after it is refused as expired", async () => {
  const id = await request('fs.delete');
  const approved = await gateway('approval.resolve', {
    requestId: id,
    decision: 'approve',
    grantTtlMs: 2_000,
    grantUses: 10,
  });
  expect(approved).toMatchObject({ ok: true, result: { request: { grant: { usesLeft: 10 } } } });
  expect((await agent('approval.use', { capability: 'fs.delete', request_id: id })).result).toEqual(
    { allowed: true, request_id: id, uses_left: 9 },
  );
  await waitFor('the grant to expire', async () => {
    const r = await agent('approval.status', { request_id: id });
    return r.result?.grant?.end_reason === 'expired';
  });
  expect((await agent('approval.use', { capability: 'fs.delete', request_id: id })).result).toEqual(
    { allowed: false, reason: 'expired' },
  );
  expect((await agent('approval.status', { request_id: id })).result).toMatchObject({
    status: 'approved',
    grant: { uses_left: 9, active: false, end_reason: 'expired' },
  });
});
