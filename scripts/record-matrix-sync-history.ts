/**
 * Records a `matrixSyncWorkflow` history from a real run for the replay tests: the real bridge
 * (its embedded Temporal) logged in to a real Synapse as the bot, three messages from a trusted
 * person taken through `matrix.receive`, and a homeserver restart in between (failed sync calls,
 * the backoff, the quick call after it). Saves `temporal workflow show --output json` under
 * test/replay/histories/matrix-sync-v<version>.json.
 *
 *   node --import tsx scripts/record-matrix-sync-history.ts
 *
 * The sync of an account never ends, so every deploy meets one in flight: replay proves today's
 * code takes the same decisions over it. Keep old files when the workflow changes.
 */
import { randomBytes } from 'node:crypto';
import { matrixSyncStatusQuery, matrixSyncWorkflowId } from '../workflows/definitions';
import { rpc, waitFor } from '../test/support/containers';
import { startSynapse } from '../test/support/synapse';
import { VERSION, recordingBridge, saveHistory } from './recording';

async function main(): Promise<void> {
  const syn = await startSynapse();
  try {
    const botPassword = `pw-${randomBytes(8).toString('hex')}`;
    const alicePassword = `pw-${randomBytes(8).toString('hex')}`;
    const bot = await syn.registerUser('bot', botPassword);
    const alice = await syn.registerUser('alice', alicePassword);
    const room = await syn.client.createRoom(alice.accessToken, { invite: [bot.userId] });
    await syn.client.join(bot.accessToken, room);

    const recording = await recordingBridge({
      ARMORCLAW_MASTER_KEY: 'd6'.repeat(32),
      ARMORCLAW_MATRIX_HOMESERVER: syn.baseUrl,
      ARMORCLAW_MATRIX_USERNAME: 'bot',
      ARMORCLAW_MATRIX_PASSWORD: botPassword,
      ARMORCLAW_MATRIX_TRUSTED_SENDERS: alice.userId,
      ARMORCLAW_MATRIX_TRUSTED_ROOMS: room,
      ARMORCLAW_MATRIX_SYNC_TIMEOUT: '2s',
    });
    const { bridge, client } = recording;
    const sync = client.workflow.getHandle(matrixSyncWorkflowId(bot.userId));
    try {
      const sock = bridge.socketPath;
      const taken: string[] = [];
      const receive = async (n: number) =>
        waitFor(`${n} messages taken`, async () => {
          const r = await rpc(sock, 'matrix.receive');
          taken.push(...r.result.events.map((e: { content: { body: string } }) => e.content.body));
          return taken.length >= n;
        });
      await waitFor(
        'the sync to run',
        async () => (await sync.query(matrixSyncStatusQuery)).synced,
      );
      await syn.client.sendText(alice.accessToken, room, 'first');
      await receive(1);
      await syn.restart({ downMs: 3_000 });
      await syn.client.sendText(alice.accessToken, room, 'second');
      await syn.client.sendText(alice.accessToken, room, 'third');
      await receive(3);
      const file = saveHistory(
        bridge,
        matrixSyncWorkflowId(bot.userId),
        `matrix-sync-v${VERSION}.json`,
        [botPassword, alicePassword, bot.accessToken, alice.accessToken],
      );
      console.log(`matrix-sync -> ${file}`);
    } finally {
      await recording.close();
    }
  } finally {
    await syn.stop();
  }
}

void main().catch((err) => {
  console.error(err);
  process.exit(1);
});
