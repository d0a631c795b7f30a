/**
 * `approvalWorkflow` and `incidentWorkflow` on the time-skipping test server with in-memory
 * activities (the audit log, the admin room with the homeserver's txn-id dedupe): request →
 * approve → uses consumed → exhausted; deny; a request that expires unanswered; a grant whose TTL
 * runs out; concurrent uses of the last use (exactly one allowed); incident bundle, policy log,
 * lift, and its state carried across continue-as-new. Each test runs on its own server: time
 * skipping is global to one.
 */
import { WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { AuditArgs } from '../../activities/container-types';
import type { SendMatrixMessageArgs } from '../../activities/matrix';
import {
  readApproval,
  resolveApproval,
  startApprovalRequest,
  useGrant,
  type ApprovalSettings,
} from '../../sessions/approvals';
import { ensureIncidentWorkflow, IncidentControl } from '../../sessions/incident';
import {
  approvalUseUpdate,
  approvalWorkflowId,
  hostTaskQueue,
  INCIDENT_WORKFLOW_ID,
  incidentBundleUpdate,
  SHARED_TASK_QUEUE,
  type ApprovalRecord,
} from '../../workflows/definitions';
import { eventually, settleAbandonedChecks } from '../support/activity-recorder';
import { bundleWorkflows, createTimeSkippingEnv } from '../support/temporal';

const ADMIN_ROOM = '!admin:test.local';
const HOST = 'ahost';
const REQUEST_TIMEOUT_MS = 15 * 60_000;
const H1 = '1'.repeat(64);
const H2 = '2'.repeat(64);

let workflowBundle: WorkflowBundleWithSourceMap;

beforeAll(async () => {
  workflowBundle = await bundleWorkflows();
}, 120_000);

class FakeWorld {
  readonly audit: AuditArgs[] = [];
  readonly room = new Map<string, SendMatrixMessageArgs>();
  readonly shared = {
    recordAudit: async (a: AuditArgs) => {
      if (!this.audit.some((x) => x.dedupe_key === a.dedupe_key)) this.audit.push(a);
    },
  };
  readonly host = {
    sendMatrixMessage: async (a: SendMatrixMessageArgs) => {
      if (!this.room.has(a.txnId)) this.room.set(a.txnId, a);
      return { event_id: `$e-${a.txnId}` };
    },
  };
  auditTypes(): string[] {
    return this.audit.map((a) => a.event_type);
  }
}

interface World {
  env: TestWorkflowEnvironment;
  client: Client;
  world: FakeWorld;
  settings: ApprovalSettings;
  request(containerName?: string, capability?: 'shell.exec' | 'fs.write'): Promise<string>;
  result(requestId: string): Promise<ApprovalRecord>;
}

/** A fresh test server with workers on both queues for `fn`. */
async function withWorld<T>(fn: (w: World) => Promise<T>): Promise<T> {
  const env = await createTimeSkippingEnv();
  const world = new FakeWorld();
  try {
    const shared = await Worker.create({
      connection: env.nativeConnection,
      taskQueue: SHARED_TASK_QUEUE,
      workflowBundle,
      activities: world.shared,
    });
    const host = await Worker.create({
      connection: env.nativeConnection,
      taskQueue: hostTaskQueue(HOST),
      activities: world.host,
    });
    const settings: ApprovalSettings = {
      client: env.client,
      taskQueue: SHARED_TASK_QUEUE,
      hostId: HOST,
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
      adminRoomId: ADMIN_ROOM,
    };
    return await shared.runUntil(
      host.runUntil(() =>
        fn({
          env,
          client: env.client,
          world,
          settings,
          request: async (containerName = 'armorclaw-agent-1', capability = 'shell.exec') =>
            (
              await startApprovalRequest(settings, {
                capability,
                reason: 'run the test suite',
                containerName,
              })
            ).requestId,
          result: (id) => env.client.workflow.getHandle(approvalWorkflowId(id)).result(),
        }),
      ),
    );
  } finally {
    await settleAbandonedChecks();
    await env.teardown();
  }
}

describe('approval requests', () => {
  test('request → announced once → approved → uses consumed → exhausted', () =>
    withWorld(async ({ client, world, request, result }) => {
      const id = await request();
      expect(id).toMatch(/^[0-9a-f]{12}$/);
      await eventually(() => expect(world.room.size).toBe(1));
      const notice = world.room.get(`approval-${id}-requested`)!;
      expect(notice).toMatchObject({ roomId: ADMIN_ROOM, msgtype: 'm.notice' });
      expect(notice.body).toContain(`Approval request ${id}`);
      expect(notice.body).toContain('shell.exec');
      expect(notice.body).toContain('run the test suite');
      expect(notice.body).toContain(`approve ${id}`);
      expect(notice.body).toContain(`deny ${id}`);
      expect(await readApproval(client, id)).toMatchObject({ status: 'pending', state: 'Pending' });
      // Nothing to use before the answer.
      expect(await useGrant(client, id, 'armorclaw-agent-1')).toEqual({
        allowed: false,
        reason: 'not_approved',
      });

      const approved = await resolveApproval(client, id, {
        decision: 'approve',
        by: 'gateway:token:ops',
        grantUses: 2,
        grantTtlMs: 60_000,
      });
      expect(approved).toMatchObject({
        status: 'approved',
        resolvedBy: 'gateway:token:ops',
        grant: { uses: 2, usesLeft: 2, ttlMs: 60_000, active: true },
      });
      expect(await useGrant(client, id, 'armorclaw-agent-1')).toEqual({
        allowed: true,
        usesLeft: 1,
      });
      expect(await useGrant(client, id, 'armorclaw-agent-1')).toEqual({
        allowed: true,
        usesLeft: 0,
      });
      const end = await result(id);
      expect(end).toMatchObject({
        status: 'approved',
        state: 'Spent',
        grant: { usesLeft: 0, active: false, endReason: 'exhausted' },
      });
      // Over: a further use is refused, from the closed run's record.
      expect(await useGrant(client, id, 'armorclaw-agent-1')).toEqual({
        allowed: false,
        reason: 'exhausted',
      });
      await expect(
        resolveApproval(client, id, { decision: 'deny', by: 'gateway:token:ops' }),
      ).rejects.toMatchObject({ code: 'not_pending' });
      expect(world.auditTypes()).toEqual([
        'approval_requested',
        'approval_approved',
        'approval_grant_ended',
      ]);
      expect(world.audit[1]!.details).toMatchObject({
        request_id: id,
        capability: 'shell.exec',
        resolved_by: 'gateway:token:ops',
        grant_uses: 2,
      });
      await eventually(() => expect(world.room.has(`approval-${id}-approved`)).toBe(true));
    }));

  test('deny: final, audited with who and why; a second answer is refused', () =>
    withWorld(async ({ client, world, request, result }) => {
      const id = await request();
      const denied = await resolveApproval(client, id, {
        decision: 'deny',
        by: 'matrix:@ops:test.local',
        reason: 'not during the freeze',
      });
      expect(denied).toMatchObject({ status: 'denied', resolutionReason: 'not during the freeze' });
      expect(await result(id)).toMatchObject({ status: 'denied', state: 'Denied' });
      expect(world.audit.find((a) => a.event_type === 'approval_denied')).toMatchObject({
        details: { resolved_by: 'matrix:@ops:test.local', reason: 'not during the freeze' },
      });
      await expect(
        resolveApproval(client, id, { decision: 'approve', by: 'gateway:x' }),
      ).rejects.toMatchObject({ code: 'not_pending' });
    }));

  test('an unanswered request expires after the request timeout', () =>
    withWorld(async ({ world, request, result }) => {
      const id = await request();
      const end = await result(id);
      expect(end).toMatchObject({ status: 'expired', state: 'Expired' });
      expect(Date.parse(end.endedAt!) - Date.parse(end.createdAt)).toBe(REQUEST_TIMEOUT_MS);
      expect(world.auditTypes()).toEqual(['approval_requested', 'approval_expired']);
    }));

  test("a grant's TTL ends it with its uses left", () =>
    withWorld(async ({ client, request, result }) => {
      const id = await request();
      await resolveApproval(client, id, {
        decision: 'approve',
        by: 'gateway:x',
        grantUses: 5,
        grantTtlMs: 30 * 60_000,
      });
      expect(await useGrant(client, id, 'armorclaw-agent-1')).toEqual({
        allowed: true,
        usesLeft: 4,
      });
      const end = await result(id);
      expect(end).toMatchObject({
        state: 'Spent',
        grant: { usesLeft: 4, active: false, endReason: 'expired' },
      });
      expect(end.endedAt).toBe(end.grant!.expiresAt);
      expect(await useGrant(client, id, 'armorclaw-agent-1')).toEqual({
        allowed: false,
        reason: 'expired',
      });
    }));

  test('concurrent uses: exactly as many allowed as there were uses, the last one once', () =>
    withWorld(async ({ client, request }) => {
      const id = await request();
      await resolveApproval(client, id, { decision: 'approve', by: 'gateway:x', grantUses: 3 });
      const handle = client.workflow.getHandle(approvalWorkflowId(id));
      const results = await Promise.all(
        Array.from({ length: 8 }, () =>
          handle
            .executeUpdate(approvalUseUpdate, { args: [{ containerName: 'armorclaw-agent-1' }] })
            .catch(() => ({ allowed: false as const, reason: 'closed' })),
        ),
      );
      const allowed = results.filter((r) => r.allowed);
      expect(allowed).toHaveLength(3);
      expect(allowed.map((r) => (r.allowed ? r.usesLeft : -1)).sort()).toEqual([0, 1, 2]);
    }));

  test("another agent can neither use nor see the grant's uses go", () =>
    withWorld(async ({ client, request }) => {
      const id = await request('armorclaw-agent-1');
      await resolveApproval(client, id, { decision: 'approve', by: 'gateway:x', grantUses: 1 });
      expect(await useGrant(client, id, 'armorclaw-agent-2')).toEqual({
        allowed: false,
        reason: 'not_yours',
      });
      await expect(
        client.workflow
          .getHandle(approvalWorkflowId(id))
          .executeUpdate(approvalUseUpdate, { args: [{ containerName: 'armorclaw-agent-2' }] }),
      ).rejects.toBeInstanceOf(WorkflowUpdateFailedError);
      expect(await readApproval(client, id)).toMatchObject({ grant: { usesLeft: 1 } });
    }));

  test('an idempotency key names one request: a retry gets the first back, whatever its state', () =>
    withWorld(async ({ client, settings }) => {
      const ask = (capability: 'shell.exec' | 'fs.write' = 'shell.exec') =>
        startApprovalRequest(settings, {
          capability,
          reason: 'retry after a lost answer',
          containerName: 'armorclaw-agent-1',
          idempotencyKey: 'step-7',
        });
      const first = await ask();
      const again = await ask();
      expect(again.requestId).toBe(first.requestId);
      await resolveApproval(client, first.requestId, { decision: 'approve', by: 'gateway:x' });
      expect(await ask()).toMatchObject({ requestId: first.requestId, status: 'approved' });
      await expect(ask('fs.write')).rejects.toMatchObject({ code: 'not_pending' });
      // Another agent's same key is another request.
      const other = await startApprovalRequest(settings, {
        capability: 'shell.exec',
        reason: 'x',
        containerName: 'armorclaw-agent-2',
        idempotencyKey: 'step-7',
      });
      expect(other.requestId).not.toBe(first.requestId);
    }));

  test('an unknown request is not found', () =>
    withWorld(async ({ client }) => {
      await expect(readApproval(client, 'abcdefabcdef')).rejects.toMatchObject({
        code: 'not_found',
      });
      await expect(
        resolveApproval(client, 'abcdefabcdef', { decision: 'deny', by: 'x' }),
      ).rejects.toMatchObject({ code: 'not_found' });
    }));
});

describe('incident', () => {
  test('bundle → contained with the revoked hashes and policy logs → lift', () =>
    withWorld(async ({ client }) => {
      await ensureIncidentWorkflow(client, SHARED_TASK_QUEUE);
      const incident = new IncidentControl(client, 0);
      expect(await incident.status()).toMatchObject({ active: false, proactiveDisabled: false });
      const bundled = await incident.bundle([H1], 'gateway:token:ops');
      expect(bundled).toMatchObject({
        active: true,
        proactiveDisabled: true,
        toolIsolation: true,
        revokedTokenHashes: [H1],
        bundledBy: 'gateway:token:ops',
      });
      expect(await incident.proactiveSendsDisabled()).toBe(true);
      expect(await incident.toolIsolationEnabled()).toBe(true);
      // The flags are in the memo too: readable with no worker (a bridge just restarted).
      const desc = await client.workflow.getHandle(INCIDENT_WORKFLOW_ID).describe();
      expect(desc.memo?.incident).toMatchObject({ active: true, since: bundled.since });
      await incident.log({ kind: 'approval_refused', detail: { container: 'armorclaw-a' } });
      await eventually(async () =>
        expect((await incident.status()).policyLogs.map((l) => l.kind)).toEqual([
          'incident_bundle',
          'approval_refused',
        ]),
      );
      expect((await incident.bundle([H1, H2], 'gateway:token:ops')).revokedTokenHashes).toEqual([
        H1,
        H2,
      ]);
      const lifted = await incident.lift('gateway:token:admin');
      expect(lifted).toMatchObject({
        active: false,
        proactiveDisabled: false,
        toolIsolation: false,
        liftedBy: 'gateway:token:admin',
      });
      expect(await incident.toolIsolationEnabled()).toBe(false);
    }));

  test('refuses anything but SHA-256 hashes: a raw token never reaches history', () =>
    withWorld(async ({ client }) => {
      await ensureIncidentWorkflow(client, SHARED_TASK_QUEUE);
      await expect(
        client.workflow.getHandle(INCIDENT_WORKFLOW_ID).executeUpdate(incidentBundleUpdate, {
          args: [{ tokenHashes: ['acgw_not-a-hash'], by: 'x' }],
        }),
      ).rejects.toBeInstanceOf(WorkflowUpdateFailedError);
      const history = await client.workflow.getHandle(INCIDENT_WORKFLOW_ID).fetchHistory();
      expect(JSON.stringify(history)).not.toContain('acgw_not-a-hash');
    }));

  test('the state carries across continue-as-new', () =>
    withWorld(async ({ client }) => {
      await client.workflow.start('incidentWorkflow', {
        taskQueue: SHARED_TASK_QUEUE,
        workflowId: INCIDENT_WORKFLOW_ID,
        args: [{ maxHistoryEvents: 20 }],
      });
      const incident = new IncidentControl(client, 0);
      await incident.bundle([H1], 'gateway:a');
      for (let i = 0; i < 15; i++)
        await incident.log({ kind: 'proactive_send_refused', detail: { i } });
      const firstRun = (await client.workflow.getHandle(INCIDENT_WORKFLOW_ID).describe()).runId;
      await eventually(async () => {
        const desc = await client.workflow.getHandle(INCIDENT_WORKFLOW_ID).describe();
        expect(desc.runId).not.toBe(firstRun);
      });
      await eventually(async () => {
        const s = await incident.status();
        expect(s).toMatchObject({ active: true, revokedTokenHashes: [H1] });
        expect(s.policyLogs.filter((l) => l.kind === 'proactive_send_refused')).toHaveLength(15);
      });
    }));
});
