/**
 * An agent that serves a paired device (its container runs the device's session) gets no
 * capability its device's scope does not allow: `approval.request` is refused at once (-32005),
 * audited with the reason, and never reaches an operator. Other agents' requests go on to the
 * approval workflow (here a fake client that records the start).
 */
import pino from 'pino';
import { RpcDispatcher } from '../../rpc/dispatcher';
import { registerAgentApprovalMethods } from '../../rpc/methods/approvals';

const CONTAINER = 'armorclaw-openclaw-session-0123456789ab-1';

function agentSocket(scope: string | undefined) {
  const audits: Array<{ event_type: string; details: Record<string, unknown> }> = [];
  const started: unknown[] = [];
  const client = {
    workflow: {
      start: async (_wf: unknown, opts: unknown) => {
        started.push(opts);
        throw new Error('the fake client starts nothing');
      },
    },
  };
  const dispatcher = new RpcDispatcher(pino({ level: 'silent' }));
  registerAgentApprovalMethods(dispatcher, CONTAINER, {
    settings: { client: client as never, taskQueue: 'q', hostId: 'h', requestTimeoutMs: 60_000 },
    incident: { toolIsolationEnabled: async () => false, log: async () => undefined },
    audit: (e) => audits.push(e),
    deviceScope: (name) => (name === CONTAINER ? scope : undefined),
    log: pino({ level: 'silent' }),
  });
  const request = (capability: string) =>
    dispatcher.call('approval.request', { capability, reason: 'the user asked for it' });
  return { request, audits, started };
}

test.each([
  ['chat_only', 'fs.write'],
  ['tools_safe', 'shell.exec'],
  ['tools_safe', 'fs.delete'],
  ['full', 'payments.spend'],
  ['revoked', 'fs.write'],
])('a %s device agent asking for %s is refused without asking anyone', async (scope, cap) => {
  const agent = agentSocket(scope);
  const answer = await agent.request(cap);
  expect(answer).toMatchObject({ ok: false, error: { code: -32005 } });
  expect(JSON.stringify(answer)).toContain(scope);
  expect(agent.started).toHaveLength(0);
  expect(agent.audits).toEqual([
    {
      event_type: 'approval_refused',
      session_id: CONTAINER,
      details: { capability: cap, reason: 'device_scope', scope },
    },
  ]);
});

test.each([
  ['full', 'shell.exec'],
  ['full', 'fs.delete'],
  [undefined, 'shell.exec'],
])('a %s agent asking for %s goes on to the approval workflow', async (scope, cap) => {
  const agent = agentSocket(scope);
  await agent.request(cap);
  expect(agent.started).toHaveLength(1);
  expect(agent.audits.filter((a) => a.details.reason === 'device_scope')).toEqual([]);
});
