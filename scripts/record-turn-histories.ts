/**
 * Records `agentTurnWorkflow` histories from real turns for the replay tests: the real bridge
 * (embedded Temporal, real Docker, the reference agent in proxy mode asking the provider stub
 * through the bridge's provider proxy), turns asked for over the HTTP gateway as clients ask:
 *
 * - ended: `agent.run`, answered, collected by `agent.wait`;
 * - ended-uncollected: answered, never collected, completed when `gateway.turn.retention` passed;
 * - expired: the model slower than `gateway.turn.timeout`; collected as RUN_UNAVAILABLE;
 * - failed-delivery: the session's agent killed mid-turn, no retries left;
 * - failed-bind: an isolated turn whose agent cannot start (its image is missing). The gateway
 *   takes the image from the bridge's settings, so this one is started as `cron.add` starts
 *   turns (sessions/turns.ts) with the gateway's own input, the image changed;
 * - ended-isolated: an isolated `cron.add` job firing once, on its own agent, stopped after.
 *
 * Saves test/replay/histories/agent-turn-<end>-v<version>.json and fails if the stored key, the
 * gateway token or the master key shows in one, raw or encoded, in any payload.
 *
 *   node --import tsx scripts/record-turn-histories.ts
 *
 * Takes about two minutes. Keep old files when the workflow changes.
 */
import type { Client } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { startTurnWorkflow } from '../sessions/turns';
import { containerWorkflowId, turnWorkflowId, type AgentTurnInput } from '../workflows/definitions';
import { inspectContainer, removeTestContainers, waitFor } from '../test/support/containers';
import { docker, ensureAgentImage, ensureDocker } from '../test/support/docker';
import { gatewayClient, type GatewayClient } from '../test/support/gateway-client';
import { ProviderStub } from '../test/support/provider-stub';
import { call } from '../test/support/socket-clients';
import { RECORDING_TOKEN, VERSION, recordingBridge, saveHistory } from './recording';

const MASTER_KEY = 'c3'.repeat(32);
const KEY_ID = 'rec';
/** The whole turn's limit: a fresh reference agent starts and answers well within it. */
const TURN_TIMEOUT_MS = 20_000;
/** How long an answer waits for agent.wait: the uncollected turn's history ends after it. */
const RETENTION_MS = 6_000;
const STUB_ANSWER = 'tok0 tok1 tok2 ';
const session = (id: string) => ({
  sessionId: id,
  channelId: `web-${id}`,
  channelKind: 'web' as const,
});

/** The gateway's answer envelope, as far as the recorder reads it. */
interface Envelope {
  ok: boolean;
  result?: { assistantText?: string; containerName?: string };
  error?: { code: string; message: string };
}

/** agent.wait until the turn is over (RUN_UNAVAILABLE "still running" means: wait again). */
async function waitTurn(gw: GatewayClient, runId: string): Promise<Envelope> {
  for (;;) {
    const r = await gw.rpc('agent.wait', { runId, timeoutMs: 30_000 });
    if (r.body.ok || !/still running/.test(r.body.error?.message ?? '')) return r.body;
  }
}

function check(what: string, ok: boolean, got: unknown): void {
  if (!ok) throw new Error(`${what}: got ${JSON.stringify(got)}`);
}

/** The input `agent.run` gave a turn, read back from its history. */
async function turnInput(client: Client, runId: string): Promise<AgentTurnInput> {
  const history = await client.workflow.getHandle(turnWorkflowId(runId)).fetchHistory();
  const payload =
    history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
  if (!payload) throw new Error(`turn ${runId} has no input`);
  return defaultPayloadConverter.fromPayload<AgentTurnInput>(payload);
}

async function main(): Promise<void> {
  await ensureDocker();
  await ensureAgentImage();
  const stub = await ProviderStub.start({});
  const recording = await recordingBridge({
    ARMORCLAW_MASTER_KEY: MASTER_KEY,
    ARMORCLAW_PROXY_BASE_URLS: JSON.stringify({ openai: stub.url }),
    ARMORCLAW_SECRETS_MODE: 'proxy',
    ARMORCLAW_GATEWAY_AGENT_KEY_ID: KEY_ID,
    ARMORCLAW_GATEWAY_TURN_TIMEOUT: `${TURN_TIMEOUT_MS / 1000}s`,
    ARMORCLAW_GATEWAY_TURN_RETENTION: `${RETENTION_MS / 1000}s`,
    // A delivery that loses its agent fails the turn at once rather than wait for it to return.
    ARMORCLAW_GATEWAY_TURN_MAX_RETRIES: '0',
  });
  const { bridge, client } = recording;
  let gw: GatewayClient | undefined;
  try {
    const stored = await call(bridge.socketPath, 'store_key', {
      id: KEY_ID,
      provider: 'openai',
      token: RECORDING_TOKEN,
    });
    if (stored.error) throw new Error(`store_key: ${JSON.stringify(stored.error)}`);
    gw = await gatewayClient(bridge, 'recorder');
    const secrets = [gw.token, MASTER_KEY];
    const save = async (runId: string, end: string) => {
      const workflowId = turnWorkflowId(runId);
      await client.workflow.getHandle(workflowId).result();
      const file = saveHistory(bridge, workflowId, `agent-turn-${end}-v${VERSION}.json`, secrets);
      console.log(`${end}: ${workflowId} -> ${file}`);
    };
    const run = async (sessionId: string, content: string): Promise<string> =>
      (
        await gw!.result('agent.run', {
          session: session(sessionId),
          messages: [{ role: 'user', content }],
        })
      ).runId;

    // Ended and collected; the session's agent starts with it.
    const ended = await run('rec-1', 'what is on today?');
    const answer = await waitTurn(gw, ended);
    check('the answered turn', answer.ok && answer.result?.assistantText === STUB_ANSWER, answer);
    check(
      'the key reached the model through the proxy only',
      stub.requests.at(-1)?.headers.authorization === `Bearer ${RECORDING_TOKEN}`,
      stub.requests.at(-1)?.headers.authorization,
    );
    const sessionAgent = answer.result?.containerName ?? '';
    await save(ended, 'ended');

    // Answered, never collected: the workflow completes when its retention passes.
    const uncollected = await run('rec-1', 'and tomorrow?');
    await save(uncollected, 'ended-uncollected');
    const late = await gw.rpc('agent.wait', { runId: uncollected });
    check('the uncollected answer is gone', late.body.error?.code === 'NOT_FOUND', late.body);

    // A model slower than the turn's limit: Expired, and agent.wait says so once.
    stub.options = { ...stub.options, delayMs: TURN_TIMEOUT_MS };
    const expired = await run('rec-1', 'take your time');
    const outOfTime = await waitTurn(gw, expired);
    check(
      'the expired turn',
      outOfTime.error?.code === 'RUN_UNAVAILABLE' && /expired/.test(outOfTime.error.message),
      outOfTime,
    );
    await save(expired, 'expired');

    // The session's agent killed while it waits for its model: the delivery fails, no retry left.
    stub.options = { ...stub.options, delayMs: 3_000 };
    const asked = stub.requests.length;
    const failed = await run('rec-1', 'are you there?');
    await waitFor('the model call', () => stub.requests.length > asked, { timeoutMs: 30_000 });
    await docker(['kill', sessionAgent]);
    const died = await waitTurn(gw, failed);
    check(
      'the failed delivery',
      died.error?.code === 'RUN_UNAVAILABLE' && /failed/.test(died.error.message),
      died,
    );
    await save(failed, 'failed-delivery');
    stub.options = { ...stub.options, delayMs: 0 };

    // An isolated turn whose agent cannot start: binding fails.
    const template = await turnInput(client, ended);
    const unbound = 'rec-bind-failed';
    await startTurnWorkflow(client, 'armorclaw', unbound, {
      ...template,
      session: session('rec-2'),
      binding: 'isolated',
      run: { ...template.run, image: 'armorclaw/missing:v0' },
    });
    const noAgent = await waitTurn(gw, unbound);
    check('the unbound turn', noAgent.error?.code === 'RUN_UNAVAILABLE', noAgent);
    await save(unbound, 'failed-bind');

    // An isolated cron job firing once: its own agent, stopped when the turn ends.
    const { job } = await gw.result('cron.add', {
      type: 'at',
      expression: '1s',
      isolated: true,
      message: 'tick',
    });
    const fired = await waitFor(
      'the cron turn',
      async () => {
        const query = `WorkflowId STARTS_WITH 'turn-cron-${job.id}'`;
        for await (const wf of client.workflow.list({ query })) return wf.workflowId;
        return undefined;
      },
      { timeoutMs: 30_000, intervalMs: 500 },
    );
    const isolated = fired.slice(turnWorkflowId('').length);
    const ticked = await waitTurn(gw, isolated);
    check('the isolated turn', ticked.ok && ticked.result?.assistantText === STUB_ANSWER, ticked);
    await save(isolated, 'ended-isolated');
    const own = ticked.result?.containerName ?? '';
    check('an agent of its own', own !== sessionAgent && /-turn-/.test(own), own);
    const agentRun = client.workflow.getHandle(containerWorkflowId(own));
    await agentRun.result().catch(() => undefined);
    check('its agent run over', (await agentRun.describe()).status.name !== 'RUNNING', own);
    check('its container removed', (await inspectContainer(own)) === undefined, own);
    await gw.rpc('cron.remove', { id: job.id });
  } finally {
    await recording.close(() => removeTestContainers([], [bridge.dir, recording.secretsDir]));
    await stub.close();
  }
}

void main().catch((err) => {
  console.error(err);
  process.exit(1);
});
