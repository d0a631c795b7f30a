/**
 * A bridge's host worker in a process of its own, to be killed with -9 in the middle of an
 * activity: a worker on `hostTaskQueue(<host id>)` with the fake container activities, whose
 * `removeSecretsFile` never finishes. It prints one JSON line when it polls (`{"ready":true}`)
 * and one when the removal starts (`{"started":"removeSecretsFile"}`).
 *
 *   node --import tsx test/support/host-process.ts <temporal address> <host id>
 */
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { hostTaskQueue } from '../../workflows/definitions';
import { FakeContainerHost } from './fake-container-activities';

async function main(): Promise<void> {
  const [address, hostId] = process.argv.slice(2);
  if (!address || !hostId) throw new Error('usage: host-process.ts <temporal address> <host id>');
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const fake = new FakeContainerHost({
    removeSecretsFile: () => {
      process.stdout.write(`${JSON.stringify({ started: 'removeSecretsFile' })}\n`);
      return new Promise<void>(() => undefined);
    },
  });
  const worker = await Worker.create({
    connection: await NativeConnection.connect({ address }),
    taskQueue: hostTaskQueue(hostId),
    activities: fake.hostActivities,
  });
  process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
  await worker.run();
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
