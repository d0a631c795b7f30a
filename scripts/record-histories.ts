/**
 * Records workflow histories from real runs for the replay tests: starts the real bridge (with
 * its embedded Temporal and the real Docker engine), drives one container run into each terminal
 * state, and saves `temporal workflow show --output json` of each under test/replay/histories/.
 *
 *   node --import tsx scripts/record-histories.ts
 *
 * File names carry the bridge version they were recorded with; keep old ones when the workflow
 * changes, so the replay tests prove new code still replays old histories.
 */
import { containerStatusQuery } from '../workflows/definitions';
import { docker } from '../test/support/docker';
import { call } from '../test/support/socket-clients';
import { RECORDING_TOKEN, VERSION, recordingBridge, saveHistory } from './recording';

/** Distinguishes recordings made under the same version. */
const TAG = process.env.HISTORY_TAG ? `-${process.env.HISTORY_TAG}` : '';

async function main(): Promise<void> {
  const recording = await recordingBridge({
    ARMORCLAW_MASTER_KEY: 'd4'.repeat(32),
    ARMORCLAW_HEALTH_CHECK_INTERVAL: '2s',
  });
  const { bridge, client } = recording;
  const sock = bridge.socketPath;
  const waitClosed = async (name: string) => {
    const handle = client.workflow.getHandle(`container-${name}`);
    await handle.result();
    return (await handle.describe()).status.name;
  };
  try {
    await call(sock, 'store_key', { id: 'rec', provider: 'openai', token: RECORDING_TOKEN });
    const runs: Array<[string, string]> = [];

    const ended = (await call(sock, 'start', { key_id: 'rec', ttl: '10m' })).result;
    await new Promise((r) => setTimeout(r, 1500)); // let the agent ack and notify
    await call(sock, 'stop', { container_id: ended.container_id });
    runs.push(['ended', ended.container_name]);

    const failed = (await call(sock, 'start', { key_id: 'rec', ttl: '10m' })).result;
    await new Promise((r) => setTimeout(r, 1500));
    await docker(['kill', failed.container_name]);
    runs.push(['failed', failed.container_name]);

    const expired = (await call(sock, 'start', { key_id: 'rec', ttl: '5s' })).result;
    runs.push(['expired', expired.container_name]);

    const badImage = await call(sock, 'start', { key_id: 'rec', image: 'armorclaw/missing:v0' });
    if (!badImage.error) throw new Error('expected the start with a missing image to fail');
    const listed = client.workflow.list({
      query: `WorkflowId STARTS_WITH 'container-' AND ArmorclawState = 'Failed'`,
    });
    for await (const wf of listed) {
      const st = await client.workflow
        .getHandle(wf.workflowId)
        .query(containerStatusQuery)
        .catch(() => undefined);
      if (st?.end_reason === 'start_failed')
        runs.push(['start-failed', wf.workflowId.slice('container-'.length)]);
    }

    for (const [label, name] of runs) {
      const status = await waitClosed(name);
      const file = saveHistory(
        bridge,
        `container-${name}`,
        `container-run-${label}-v${VERSION}${TAG}.json`,
      );
      console.log(`${label}: ${name} (${status}) -> ${file}`);
    }
  } finally {
    await recording.close();
  }
}

void main().catch((err) => {
  console.error(err);
  process.exit(1);
});
