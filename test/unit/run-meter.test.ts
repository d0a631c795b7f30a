/**
 * The run meter on its own (sessions/run-meter.ts): the proxy's routes and refusals, the price
 * of what it meters, the run limit's cut and audit, the global limit's cut, and the recording of
 * usage through Temporal signals, retried while refused. Temporal is a recording fake here; the
 * real workflows are in test/workflows and test/integration/armoured-agent.test.ts.
 */
import pino from 'pino';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { RunMeter, type RunMeterDeps } from '../../sessions/run-meter';
import type { BudgetStatus, ContainerRunStatus } from '../../workflows/definitions';

const PRICES = {
  cheap: { input_per_1k_usd: 1, output_per_1k_usd: 2 },
  dear: { input_per_1k_usd: 3, output_per_1k_usd: 10 },
};
const USAGE = { model: 'cheap', inputTokens: 11, outputTokens: 7 }; // $0.025

interface Sent {
  workflowId: string;
  signal: string;
  args: unknown[];
}

/** A Temporal client that records signals and answers queries from `answers`. */
function fakeClient(answers: {
  budget?: Partial<BudgetStatus>;
  run?: Partial<ContainerRunStatus>;
  failSignals?: number;
  closed?: boolean;
}) {
  const sent: Sent[] = [];
  let failures = answers.failSignals ?? 0;
  const client = {
    workflow: {
      getHandle: (workflowId: string) => ({
        async signal(def: { name: string }, ...args: unknown[]) {
          if (failures > 0) {
            failures--;
            throw new Error('unavailable');
          }
          if (answers.closed && workflowId.startsWith('container-')) {
            throw new WorkflowNotFoundError(
              'workflow execution already completed',
              workflowId,
              undefined,
            );
          }
          sent.push({ workflowId, signal: def.name, args });
        },
        async query() {
          return workflowId === 'budget' ? answers.budget : answers.run;
        },
      }),
    },
  } as unknown as Client;
  return { client, sent };
}

function meter(client: Client, extra: Partial<RunMeterDeps> = {}) {
  const cuts: Array<[string, string]> = [];
  const audits: Parameters<RunMeterDeps['audit']>[0][] = [];
  const tokens: Array<[string, number]> = [];
  const m = new RunMeter({
    client,
    prices: PRICES,
    unknownModel: 'refuse',
    globalLimited: false,
    cut: (name, reason) => cuts.push([name, reason]),
    onTokens: (name, n) => tokens.push([name, n]),
    audit: (e) => audits.push(e),
    log: pino({ level: 'silent' }),
    signalBackoffMs: 1,
    ...extra,
  });
  return { m, cuts, audits, tokens };
}

const run = (limitMicroUsd = 0, spentMicroUsd = 0) => ({
  provider: 'openai' as const,
  keyId: 'k1',
  limitMicroUsd,
  spentMicroUsd,
});

test('routes exist only while open; a run without a limit is always allowed', async () => {
  const { client } = fakeClient({});
  const { m } = meter(client);
  expect(m.lookup('r1')).toBeUndefined();
  m.open('r1', run());
  expect(m.lookup('r1')).toEqual({ active: true, provider: 'openai', keyId: 'k1' });
  await m.record('r1', USAGE);
  expect(m.allow('r1')).toBe(true);
  m.close('r1');
  expect(m.lookup('r1')).toBeUndefined();
});

test('usage is priced and signalled to the run and to the budget as metered; the call counts tokens', async () => {
  const { client, sent } = fakeClient({});
  const { m, tokens } = meter(client);
  m.open('r1', run());
  await m.record('r1', USAGE);
  expect(sent).toEqual([
    {
      workflowId: 'container-r1',
      signal: 'run-usage',
      args: [{ model: 'cheap', input_tokens: 11, output_tokens: 7, cost_micro_usd: 25_000 }],
    },
    {
      workflowId: 'budget',
      signal: 'budget-report',
      args: [
        {
          container_name: 'r1',
          model: 'cheap',
          input_tokens: 11,
          output_tokens: 7,
          cost_micro_usd: 25_000,
          source: 'proxy',
        },
      ],
    },
  ]);
  expect(tokens).toEqual([['r1', 18]]);
  expect(m.spentMicroUsd('r1')).toBe(25_000);
});

test('a model without a price is charged at the dearest configured price, not for free', async () => {
  const { client, sent } = fakeClient({});
  const { m } = meter(client);
  m.open('r1', run());
  await m.record('r1', { ...USAGE, model: 'mystery' });
  // 11 × $3/1k + 7 × $10/1k = $0.103
  expect((sent[0]!.args[0] as { cost_micro_usd: number }).cost_micro_usd).toBe(103_000);
});

test('reaching the run limit cuts the run once, audits once, and refuses what follows', async () => {
  const { client } = fakeClient({});
  const { m, cuts, audits } = meter(client);
  m.open('r1', run(50_000));
  m.open('r2', run());
  await m.record('r1', USAGE);
  expect(m.allow('r1')).toBe(true);
  await m.record('r1', USAGE);
  await m.record('r1', USAGE);
  expect(m.allow('r1')).toEqual({ reason: "this run's spending limit is reached" });
  expect(m.allow('r2')).toBe(true);
  expect(cuts).toEqual([['r1', "this run's spending limit is reached"]]);
  expect(audits).toEqual([
    {
      event_type: 'budget_exceeded',
      session_id: 'r1',
      dedupe_key: 'container-r1/run-limit',
      details: { scope: 'run', spent_usd: 0.05, limit_usd: 0.05 },
    },
  ]);
});

test('the global limit, read from the budget, refuses and cuts every run', async () => {
  const { client } = fakeClient({ budget: { exceeded: true } });
  const { m, cuts } = meter(client, { globalLimited: true });
  m.open('r1', run());
  m.open('r2', run());
  await m.record('r1', USAGE);
  expect(m.allow('r1')).toEqual({ reason: 'the spending limit of the bridge is reached' });
  expect(m.allow('r2')).toEqual({ reason: 'the spending limit of the bridge is reached' });
  expect(cuts.map(([name]) => name).sort()).toEqual(['r1', 'r2']);
});

test('signals Temporal refuses are retried; a closed run still leaves the budget its report', async () => {
  const retried = fakeClient({ failSignals: 3 });
  const a = meter(retried.client);
  a.m.open('r1', run());
  await a.m.record('r1', USAGE);
  expect(retried.sent.map((s) => s.signal).sort()).toEqual(['budget-report', 'run-usage']);

  const closed = fakeClient({ closed: true });
  const b = meter(closed.client);
  await b.m.record('gone', USAGE);
  expect(closed.sent.map((s) => s.signal)).toEqual(['budget-report']);
});

test('restore rebuilds a proxy run from its status, spend and limit included; file runs are not served', async () => {
  const proxyRun = fakeClient({
    run: {
      state: 'Active',
      secrets_mode: 'proxy',
      key_id: 'k1',
      usage: { requests: 2, input_tokens: 22, output_tokens: 14, cost_usd: 0.05, limit_usd: 0.06 },
    },
  });
  const { m } = meter(proxyRun.client);
  expect(await m.restore('r1', () => 'anthropic')).toBe(true);
  expect(m.lookup('r1')).toEqual({ active: true, provider: 'anthropic', keyId: 'k1' });
  expect(m.spentMicroUsd('r1')).toBe(50_000);
  await m.record('r1', USAGE);
  expect(m.allow('r1')).toEqual({ reason: "this run's spending limit is reached" });

  const fileRun = fakeClient({
    run: { state: 'Active', secrets_mode: 'file', key_id: 'k1', usage: undefined },
  });
  expect(await meter(fileRun.client).m.restore('r2', () => 'openai')).toBe(false);
  // The run's key was deleted meanwhile: nothing to serve it with.
  expect(await meter(proxyRun.client).m.restore('r3', () => undefined)).toBe(false);
});

test('a dated or pinned version is priced as the model it versions; another model is not', async () => {
  const { client, sent } = fakeClient({});
  const { m } = meter(client);
  const costOf = async (model: string) => {
    sent.length = 0;
    await m.record('r1', { ...USAGE, model });
    return (sent[0]!.args[0] as { cost_micro_usd: number }).cost_micro_usd;
  };
  expect(await costOf('cheap-2024-08-06')).toBe(25_000);
  expect(await costOf('cheap-20241022')).toBe(25_000);
  expect(await costOf('cheap@001')).toBe(25_000);
  // Not a version of `cheap`: a different model, charged at the dearest price.
  expect(await costOf('cheap-mini')).toBe(103_000);
});

test('while the global limit holds, the budget is read again, and a raised limit lets runs through', async () => {
  const budget: Partial<BudgetStatus> = { exceeded: true };
  const { client } = fakeClient({ budget });
  const { m } = meter(client, { globalLimited: true });
  m.open('r1', run());
  await m.record('r1', USAGE);
  expect(m.allow('r1')).not.toBe(true);
  budget.exceeded = false;
  await new Promise((r) => setTimeout(r, 1_100));
  expect(m.allow('r1')).not.toBe(true); // this one asks again
  await waitUntil(() => m.allow('r1') === true);
});

async function waitUntil(ok: () => boolean): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}
