/**
 * Records `approvalWorkflow` and `incidentWorkflow` histories from real runs for the replay
 * tests: the real bridge (embedded Temporal), requests started as the agent socket starts them,
 * announced to an admin room the bridge is not logged in to (the child send fails and is
 * absorbed), then approved and used up, approved and left to its TTL, denied, left to expire; and
 * the incident bundled (with a token hash), logged and lifted. Saves
 * test/replay/histories/approval-<end>-v<version>.json and incident-lifted-v<version>.json.
 *
 *   node --import tsx scripts/record-approval-histories.ts
 *
 * The incident workflow never ends: its history is of an open run. Keep old files when a
 * workflow changes.
 */
import { createHash } from 'node:crypto';
import type { Client } from '@temporalio/client';
import {
  resolveApproval,
  startApprovalRequest,
  useGrant,
  type ApprovalSettings,
} from '../sessions/approvals';
import { IncidentControl } from '../sessions/incident';
import { approvalWorkflowId, INCIDENT_WORKFLOW_ID } from '../workflows/definitions';
import { waitFor } from '../test/support/containers';
import { RECORDING_TOKEN, VERSION, recordingBridge, saveHistory } from './recording';

const HOST = 'recorder';

async function closed(client: Client, workflowId: string): Promise<void> {
  await client.workflow.getHandle(workflowId).result();
}

async function main(): Promise<void> {
  const recording = await recordingBridge({
    ARMORCLAW_MASTER_KEY: 'a7'.repeat(32),
    ARMORCLAW_HOST_ID: HOST,
    ARMORCLAW_MATRIX_ADMIN_ROOM: '!admin:example.org',
  });
  const { bridge, client } = recording;
  const settings = (requestTimeoutMs: number): ApprovalSettings => ({
    client,
    taskQueue: 'armorclaw',
    hostId: HOST,
    requestTimeoutMs,
    adminRoomId: '!admin:example.org',
  });
  const ask = (timeoutMs = 600_000) =>
    startApprovalRequest(settings(timeoutMs), {
      capability: 'shell.exec',
      reason: 'run the test suite',
      containerName: 'armorclaw-recorder',
    }).then((r) => r.requestId);
  const save = async (id: string, name: string) => {
    await closed(client, approvalWorkflowId(id));
    console.log(
      `${name} -> ${saveHistory(bridge, approvalWorkflowId(id), `${name}-v${VERSION}.json`)}`,
    );
  };
  try {
    const spent = await ask();
    await resolveApproval(client, spent, {
      decision: 'approve',
      by: 'gateway:token:rec',
      grantUses: 2,
    });
    await useGrant(client, spent, 'armorclaw-recorder');
    await useGrant(client, spent, 'armorclaw-recorder');
    await save(spent, 'approval-spent');

    const ttl = await ask();
    await resolveApproval(client, ttl, {
      decision: 'approve',
      by: 'matrix:@ops:example.org',
      grantTtlMs: 2_000,
      grantUses: 3,
    });
    await useGrant(client, ttl, 'armorclaw-recorder');
    await save(ttl, 'approval-grant-expired');

    const denied = await ask();
    await resolveApproval(client, denied, {
      decision: 'deny',
      by: 'gateway:token:rec',
      reason: 'not now',
    });
    await save(denied, 'approval-denied');

    await save(await ask(2_000), 'approval-expired');

    const incident = new IncidentControl(client, 0);
    const hash = createHash('sha256').update(RECORDING_TOKEN).digest('hex');
    await incident.bundle([hash], 'gateway:token:rec');
    await incident.log({
      kind: 'proactive_send_refused',
      detail: { channel: '!room:example.org' },
    });
    await waitFor('the policy log', async () => (await incident.status()).policyLogs.length === 2);
    await incident.lift('gateway:token:rec');
    const file = saveHistory(bridge, INCIDENT_WORKFLOW_ID, `incident-lifted-v${VERSION}.json`);
    console.log(`incident -> ${file}`);
  } finally {
    await recording.close();
  }
}

void main().catch((err) => {
  console.error(err);
  process.exit(1);
});
