/**
 * Replays recorded `voiceCallWorkflow` histories (scripts/record-voice-histories.ts) against
 * today's workflow code: a change that would take other decisions over a call in flight fails
 * here, before it ships. Calls last minutes, so a deploy always meets some mid-call.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { bundleWorkflowCode, DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { replayBundle, withBundles } from '../support/replay';
import { callWorkflowId, type VoiceCallInput } from '../../workflows/definitions';

const REPO = path.resolve(__dirname, '../..');
const HISTORIES = path.join(__dirname, 'histories');
const files = readdirSync(HISTORIES).filter(
  (f) => f.startsWith('voice-call-') && f.endsWith('.json'),
);

const load = (file: string): unknown =>
  JSON.parse(readFileSync(path.join(HISTORIES, file), 'utf8'));

/**
 * The recorded run's workflow id, `call-<sessionId>` from its input: the workflow derives audit
 * dedupe keys and its budget notice's child id from it, so replay must use the same one.
 */
function workflowIdOf(json: unknown): string {
  const started = historyFromJSON(json).events?.[0]?.workflowExecutionStartedEventAttributes;
  const data = started?.input?.payloads?.[0]?.data;
  if (!data) throw new Error('history has no workflow input');
  const input = JSON.parse(Buffer.from(data).toString('utf8')) as VoiceCallInput;
  return callWorkflowId(input.sessionId);
}

jest.setTimeout(120_000);

// The nondeterminism below is expected: keep core's warning about it (and worker chatter) out.
try {
  Runtime.install({
    logger: new DefaultLogger('ERROR'),
    telemetryOptions: { logging: { filter: { core: 'ERROR', other: 'ERROR' }, forward: {} } },
  });
} catch {
  // Installed already in this process: keep it.
}

test('there is a recorded history for every terminal state', () => {
  for (const label of [
    'ended-hangup',
    'ended-agent-starting',
    'ended-budget',
    'expired',
    'failed-ice',
    'failed-agent-died',
    'failed-rejected',
  ]) {
    expect(files.some((f) => f.startsWith(`voice-call-${label}-v`))).toBe(true);
  }
});

test.each(files)('%s carries no call token or SDP in any payload', (file) => {
  // Payload data is base64 in the file: decoded, a token or SDP anywhere would show.
  const text = JSON.stringify(load(file), function (this: Record<string, unknown>, key, value) {
    const raw = this[key];
    return key === 'data' && typeof raw === 'string'
      ? Buffer.from(raw, 'base64').toString('utf8')
      : value;
  });
  // Positive control: decoded arguments show (every call closes its media with its session).
  expect(text).toContain('"reason\\":');
  expect(text).toContain('closeCallMedia');
  for (const forbidden of ['a=fingerprint', 'a=ice-pwd', 'eyJ']) {
    expect(text).not.toContain(forbidden);
  }
});

test.each(withBundles(files))('%s replays against the %s workflow code', async (file, kind) => {
  const history = load(file);
  expect(workflowIdOf(history)).toMatch(/^call-/);
  await Worker.runReplayHistory(
    { workflowBundle: await replayBundle(kind) },
    history,
    workflowIdOf(history),
  );
});

test('a changed workflow is caught as nondeterministic', async () => {
  // The changed workflow is generated outside the repo: it audits once before the real call
  // starts, a command the recorded histories do not have.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'armorclaw-changed-voice-'));
  try {
    const workflowsPath = path.join(dir, 'changed-voice-call.ts');
    writeFileSync(
      workflowsPath,
      [
        `import { proxyActivities } from '@temporalio/workflow';`,
        `import { voiceCallWorkflow as original } from ${JSON.stringify(path.join(REPO, 'workflows', 'voice-call'))};`,
        `const { recordAudit } = proxyActivities<{ recordAudit(a: unknown): Promise<void> }>({`,
        `  startToCloseTimeout: '10s',`,
        `});`,
        `export async function voiceCallWorkflow(input: Parameters<typeof original>[0]) {`,
        `  await recordAudit({ event_type: 'changed', dedupe_key: 'changed' });`,
        `  return original(input);`,
        `}`,
      ].join('\n'),
    );
    const changed = await bundleWorkflowCode({
      workflowsPath,
      logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} },
      // Resolve the SDK and xstate from the repo, as the real workflow code does.
      webpackConfigHook: (config) => {
        config.resolve = {
          ...config.resolve,
          modules: [path.join(REPO, 'node_modules'), 'node_modules'],
        };
        return config;
      },
    });
    const file = files.find((f) => f.startsWith('voice-call-ended-hangup-'))!;
    const history = load(file);
    await expect(
      Worker.runReplayHistory({ workflowBundle: changed }, history, workflowIdOf(history)),
    ).rejects.toMatchObject({ name: 'DeterminismViolationError' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
