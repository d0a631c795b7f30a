/**
 * Records `voiceCallWorkflow` histories for the replay tests: runs the real workflow bundle on
 * the time-skipping test server with the in-memory voice activities (media, agent, audit,
 * Matrix) and the real admission entity (test/support/fake-voice-activities.ts), drives one call
 * into each terminal state, and saves its history in the `temporal workflow show --output json`
 * format under test/replay/histories/voice-call-<case>-v<version>.json.
 *
 *   node --import tsx scripts/record-voice-histories.ts
 *
 * Needs only the test server (`bash scripts/setup.sh`): no Docker, no Matrix, no browser; the
 * call's peers are the media hub's business and never reach the workflow or its history.
 * File names carry the bridge version they were recorded with; keep old ones when the workflow
 * changes, so the replay tests prove new code still replays old histories.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import {
  budgetExceededSignal,
  callHangupSignal,
  callPeerSignal,
  callReadyUpdate,
  callStatusQuery,
  callUsageSignal,
  endCallUpdate,
  type VoiceCallInput,
} from '../workflows/definitions';
import {
  agentNameOf,
  eventually,
  historyText,
  withVoiceEnv,
  type CallHandle,
  type VoiceEnv,
  type VoiceFakeBehaviour,
} from '../test/support/fake-voice-activities';
import { bundleWorkflows } from '../test/support/temporal';

const PROJECT_ROOT = path.resolve(__dirname, '..');
const VERSION: string = require('../package.json').version;
/** Distinguishes recordings made under the same version. */
const TAG = process.env.HISTORY_TAG ? `-${process.env.HISTORY_TAG}` : '';
const OUT = path.join(PROJECT_ROOT, 'test', 'replay', 'histories');

/** Strings that must never be in a call's history (call tokens are JWTs; SDP). */
const FORBIDDEN = ['a=fingerprint', 'a=ice-pwd', 'eyJ'];

interface Case {
  label: string;
  /** The terminal state and reason the recording must have reached. */
  expect: { state: string; end_reason: string };
  input?: Partial<VoiceCallInput>;
  behaviour?: VoiceFakeBehaviour;
  drive(handle: CallHandle, v: VoiceEnv, input: VoiceCallInput): Promise<void>;
}

const connect = async (handle: CallHandle) => {
  await handle.executeUpdate(callReadyUpdate);
  await handle.signal(callPeerSignal, { event: 'connected' });
  await eventually(async () => check((await handle.query(callStatusQuery)).user_state === 'Live'));
};

/** A check for `eventually`: throws until `ok`. */
function check(ok: boolean): void {
  if (!ok) throw new Error('not yet');
}

/** Holds the agent's start until opened. */
const agentStartGate = (() => {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open: () => open() };
})();

const cases: Case[] = [
  {
    label: 'ended-hangup',
    expect: { state: 'Ended', end_reason: 'user_hangup' },
    input: { budget: { maxDurationMs: 3_600_000, maxTokens: 1000, warningFraction: 0.8 } },
    async drive(handle, v) {
      await connect(handle);
      await handle.signal(callUsageSignal, { tokens: 120 });
      await v.env.sleep(5_000);
      await handle.signal(callHangupSignal, { reason: 'user' });
    },
  },
  {
    label: 'ended-budget',
    expect: { state: 'Ended', end_reason: 'budget_exceeded' },
    input: { budget: { maxDurationMs: 120_000, maxTokens: 0, warningFraction: 0.75 } },
    async drive(handle, v) {
      await connect(handle);
      // The warning at 90 s (audit + the Matrix notice child), the hard stop at 2 min.
      await handle.result();
      await eventually(() => check(v.fake.sent.size === 1));
    },
  },
  {
    label: 'ended-budget-signal',
    expect: { state: 'Ended', end_reason: 'budget_exceeded' },
    async drive(handle) {
      await connect(handle);
      await handle.signal(budgetExceededSignal);
    },
  },
  {
    label: 'expired',
    expect: { state: 'Expired', end_reason: 'ttl_expired' },
    async drive(handle) {
      await connect(handle);
      await handle.result();
    },
  },
  {
    label: 'failed-ice',
    expect: { state: 'Failed', end_reason: 'ice_failed' },
    async drive(handle, v) {
      await connect(handle);
      await handle.signal(callPeerSignal, { event: 'failed' });
      await eventually(() => check(v.fake.callsOf('restartCallIce').length === 1));
      await handle.signal(callPeerSignal, { event: 'failed' });
    },
  },
  {
    label: 'failed-agent-died',
    expect: { state: 'Failed', end_reason: 'agent_died' },
    async drive(handle, v, input) {
      await connect(handle);
      await eventually(() => check(v.fake.callsOf('awaitAgentRunEnd').length > 0));
      v.fake.killAgent(agentNameOf(input));
    },
  },
  {
    label: 'failed-rejected',
    expect: { state: 'Failed', end_reason: 'rejected' },
    behaviour: {
      admitCall: () => ({ admitted: false, reason: 'max_concurrent', message: 'recorded refusal' }),
    },
    async drive(handle) {
      await handle.executeUpdate(callReadyUpdate).catch(() => undefined);
    },
  },
  {
    // The hangup overtakes the agent's start: cleanup lets the start settle, then stops the run.
    label: 'ended-agent-starting',
    expect: { state: 'Ended', end_reason: 'user_hangup' },
    behaviour: { startAgentRun: () => agentStartGate.promise },
    async drive(handle, v) {
      await eventually(() => check(v.fake.callsOf('startAgentRun').length === 1));
      await handle.signal(callHangupSignal, { reason: 'user' });
      await eventually(() => check(v.fake.callsOf('closeCallMedia').length === 1));
      agentStartGate.open();
    },
  },
  {
    label: 'ended-rpc',
    expect: { state: 'Ended', end_reason: 'user_hangup' },
    async drive(handle) {
      await connect(handle);
      await handle.executeUpdate(endCallUpdate, { args: [{ reason: 'rpc_end' }] });
    },
  },
];

async function record(c: Case, workflowBundle: WorkflowBundleWithSourceMap): Promise<void> {
  await withVoiceEnv({ workflowBundle, behaviour: c.behaviour, hostId: 'rec-host' }, async (v) => {
    const { handle, input } = await v.start({ sessionId: `rec-${c.label}`, ...c.input });
    await c.drive(handle, v, input);
    const result = await handle.result();
    if (result.state !== c.expect.state || result.end_reason !== c.expect.end_reason) {
      throw new Error(
        `${c.label}: ended ${JSON.stringify(result)}, expected ${JSON.stringify(c.expect)}`,
      );
    }
    const text = await historyText(handle);
    for (const s of FORBIDDEN) {
      if (text.includes(s)) throw new Error(`${c.label}: "${s}" reached the history`);
    }
    const json = historyToJSON(await handle.fetchHistory());
    const file = path.join(OUT, `voice-call-${c.label}-v${VERSION}${TAG}.json`);
    writeFileSync(file, json);
    console.log(
      `${c.label}: ${handle.workflowId} (${result.state} ${result.end_reason}) -> ${path.relative(PROJECT_ROOT, file)}`,
    );
  });
}

async function main(): Promise<void> {
  const only = process.argv.slice(2);
  const workflowBundle = await bundleWorkflows();
  for (const c of cases) {
    if (only.length && !only.includes(c.label)) continue;
    await record(c, workflowBundle);
  }
}

void main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
