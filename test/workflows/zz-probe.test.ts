import { createTimeSkippingEnv, bundleWorkflows, createContainerRunWorkers } from '../support/temporal';
import { FakeContainerHost, KEY_ID } from '../support/fake-container-activities';
import { containerRunWorkflow } from '../../workflows';
import { containerStatusQuery, SHARED_TASK_QUEUE, waitActiveUpdate, stopUpdate, secretsAckedSignal } from '../../workflows/definitions';
import { ArmorclawState } from '../../workflows/search-attributes';

test('probe', async () => {
  const env = await createTimeSkippingEnv();
  const bundle = await bundleWorkflows();
  const fake = new FakeContainerHost();
  const workers = await createContainerRunWorkers({ env, workflowBundle: bundle, hostId: 'h1', hostActivities: fake.hostActivities, sharedActivities: fake.sharedActivities });
  await workers.run(async () => {
    const handle = await env.client.workflow.start(containerRunWorkflow, {
      taskQueue: SHARED_TASK_QUEUE,
      workflowId: 'container-x1',
      args: [{ containerName: 'x1', keyId: KEY_ID, agentType: 't', image: 'i', hostId: 'h1', ttlMs: 3_600_000, secretsDeadlineMs: 10_000, healthCheckIntervalMs: 30_000, network: 'none' }],
    });
    const t0 = await env.currentTimeMs();
    const r = await handle.executeUpdate(waitActiveUpdate);
    console.log('active', r, (await env.currentTimeMs()) - t0);
    await new Promise((res) => setTimeout(res, 3000));
    console.log('after 3s real', (await env.currentTimeMs()) - t0, await handle.query(containerStatusQuery));
    await handle.signal(secretsAckedSignal);
    await new Promise((res) => setTimeout(res, 500));
    console.log('after ack', (await env.currentTimeMs()) - t0, (await handle.query(containerStatusQuery)).secrets_removed);
    const res = await handle.result();
    console.log('result', res, (await env.currentTimeMs()) - t0, fake.calls.map((c) => [c.name, c.scheduledMs - t0]));
    const d = await handle.describe();
    console.log(d.searchAttributes, d.typedSearchAttributes.get(ArmorclawState));
    try {
      console.log(await handle.executeUpdate(stopUpdate, { args: [{}] }));
    } catch (e) {
      console.log('second stop', (e as Error).constructor.name, (e as Error).message, (e as any).cause);
    }
  });
  await env.teardown();
});
