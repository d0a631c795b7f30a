// agent.run / agent.wait handlers (gateway/methods/agent.ts) with a stand-in Temporal client:
// params as the spec writes them, the gateway.session limits (BAD_REQUEST naming the limit), the
// credential setting (RUN_UNAVAILABLE), and how each collection outcome is answered. The real
// workflow is the workflows and integration tiers'.
import { WorkflowNotFoundError, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { registerAgentMethods } from '../../gateway/methods/agent';
import { GatewayMethods, type GatewayCaller } from '../../gateway/protocol';
import { KeystoreError } from '../../services/keystore';
import { TURN_COLLECTED, type AgentTurnInput } from '../../workflows/definitions';

const caller: GatewayCaller = { role: 'local', subject: 'local', auditId: 'req_x', address: '::1' };

interface Started {
  workflowId: string;
  args: [AgentTurnInput];
}

function setup(opts: { keyId?: string; keyMissing?: boolean; update?: () => Promise<unknown> }) {
  const started: Started[] = [];
  const client = {
    workflow: {
      start: async (_name: string, o: Started) => {
        started.push(o);
        return {};
      },
      getHandle: () => ({ executeUpdate: opts.update ?? (async () => undefined) }),
    },
  } as unknown as Client;
  const methods = new GatewayMethods();
  registerAgentMethods(methods, {
    client,
    keystore: {
      get: () => {
        if (opts.keyMissing) throw new KeystoreError('not_found', 'no such key');
        return {} as never;
      },
    },
    config: {
      hostId: 'h1',
      hostGraceMs: 60_000,
      temporal: { taskQueue: 'armorclaw' } as never,
      budget: { runLimitUsd: 0 } as never,
      containers: {
        defaultImage: 'armorclaw/agent:v1',
        agentTypes: { echo: { image: 'armorclaw/agent:v1' } },
        secretsDeadlineMs: 10_000,
        healthCheckIntervalMs: 30_000,
        network: 'none',
        secretsMode: 'proxy',
      } as never,
      turns: {
        maxMessagesPerTurn: 3,
        maxMessageChars: 10,
        keyId: 'keyId' in opts ? opts.keyId : 'k1',
        agentType: 'echo',
        agentTtlMs: 3_600_000,
        timeoutMs: 300_000,
        retentionMs: 3_600_000,
        maxWaitMs: 50_000,
        maxRetries: 3,
        backoffMs: 1_000,
      },
    },
  });
  const call = (method: string, params: unknown) => methods.get(method)!(params, caller);
  return { call, started };
}

const session = { sessionId: 's1', channelId: 'c1', channelKind: 'web' };
const msg = (content: string) => ({ role: 'user', content });

test('agent.run starts a turn bound to the session and answers its runId', async () => {
  const { call, started } = setup({});
  const { runId } = (await call('agent.run', { session, messages: [msg('hi')] })) as {
    runId: string;
  };
  expect(runId).toMatch(/^[0-9a-f-]{36}$/);
  expect(started[0]!.workflowId).toBe(`turn-${runId}`);
  expect(started[0]!.args[0]).toMatchObject({
    session,
    messages: [msg('hi')],
    binding: 'session',
    run: { keyId: 'k1', agentType: 'echo', hostId: 'h1' },
    maxRetries: 3,
  });
});

test('the message limits are BAD_REQUEST naming the setting', async () => {
  const { call } = setup({});
  await expect(
    call('agent.run', { session, messages: [msg('a'), msg('b'), msg('c'), msg('d')] }),
  ).rejects.toMatchObject({
    code: 'BAD_REQUEST',
    message: expect.stringContaining('gateway.session.max_messages_per_turn'),
  });
  await expect(
    call('agent.run', { session, messages: [msg('ok'), msg('x'.repeat(11))] }),
  ).rejects.toMatchObject({
    code: 'BAD_REQUEST',
    message: expect.stringMatching(/messages\[1\]\.content.*gateway\.session\.max_message_chars/),
  });
});

test('malformed params are BAD_REQUEST', async () => {
  const { call } = setup({});
  for (const params of [
    {},
    { session, messages: [] },
    { session: { ...session, channelKind: 'fax' }, messages: [msg('a')] },
    { session: { channelId: 'c', channelKind: 'dm' }, messages: [msg('a')] },
    { session, messages: [{ role: 'user' }] },
    { session, messages: [msg('a')], extra: 1 },
  ]) {
    await expect(call('agent.run', params)).rejects.toMatchObject({ code: 'BAD_REQUEST' });
  }
  await expect(call('agent.wait', { runId: 'a b' })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
});

test('no usable credential for gateway turns is RUN_UNAVAILABLE', async () => {
  await expect(
    setup({ keyId: undefined }).call('agent.run', { session, messages: [msg('a')] }),
  ).rejects.toMatchObject({
    code: 'RUN_UNAVAILABLE',
    message: expect.stringContaining('gateway.agent.key_id'),
  });
  await expect(
    setup({ keyMissing: true }).call('agent.run', { session, messages: [msg('a')] }),
  ).rejects.toMatchObject({ code: 'RUN_UNAVAILABLE' });
});

test('agent.wait: the result, still running, a failure, and gone', async () => {
  const result = {
    runId: 'r1',
    assistantText: 'answer',
    events: [{ type: 'answered', at: '2026-01-01T00:00:00.000Z' }],
    state: 'Ended',
    model: 'm',
    endReason: 'answered',
  };
  await expect(
    setup({ update: async () => ({ status: 'done', result }) }).call('agent.wait', { runId: 'r1' }),
  ).resolves.toEqual({
    runId: 'r1',
    assistantText: 'answer',
    events: result.events,
    model: 'm',
  });
  await expect(
    setup({ update: async () => ({ status: 'running', state: 'Active' }) }).call('agent.wait', {
      runId: 'r1',
    }),
  ).rejects.toMatchObject({
    code: 'RUN_UNAVAILABLE',
    message: expect.stringContaining('still running'),
  });
  await expect(
    setup({
      update: async () => ({
        status: 'done',
        result: { ...result, state: 'Failed', endDetail: 'agent not connected' },
      }),
    }).call('agent.wait', { runId: 'r1' }),
  ).rejects.toMatchObject({
    code: 'RUN_UNAVAILABLE',
    message: 'run r1 failed: agent not connected',
  });
  await expect(
    setup({
      update: async () => {
        throw new WorkflowNotFoundError('gone', 'turn-r1', undefined);
      },
    }).call('agent.wait', { runId: 'r1' }),
  ).rejects.toMatchObject({ code: 'NOT_FOUND' });
  await expect(
    setup({
      update: async () => {
        throw new WorkflowUpdateFailedError(
          'failed',
          ApplicationFailure.nonRetryable('the turn was collected', TURN_COLLECTED),
        );
      },
    }).call('agent.wait', { runId: 'r1' }),
  ).rejects.toMatchObject({ code: 'NOT_FOUND' });
});
