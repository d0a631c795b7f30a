import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflows, createContainerRunWorkers, TEST_SERVER_PATH } from '../support/temporal';
import { FakeContainerHost, KEY_ID } from '../support/fake-container-activities';
import { containerRunWorkflow } from '../../workflows';
import { SHARED_TASK_QUEUE, waitActiveUpdate } from '../../workflows/definitions';

test('unregistered', async () => {
  const env = await TestWorkflowEnvironment.createTimeSkipping({ server: { executable: { type: 'existing-path', path: TEST_SERVER_PATH } } });
  const bundle = await bundleWorkflows();
  const fake = new FakeContainerHost();
  const workers = await createContainerRunWorkers({ env, workflowBundle: bundle, hostId: 'h1', hostActivities: fake.hostActivities, sharedActivities: fake.sharedActivities });
  await workers.run(async () => {
    const handle = await env.client.workflow.start(containerRunWorkflow, {
      taskQueue: SHARED_TASK_QUEUE, workflowId: 'container-x1',
      args: [{ containerName: 'x1', keyId: KEY_ID, agentType: 't', image: 'i', hostId: 'h1', ttlMs: 60_000, secretsDeadlineMs: 10_000, healthCheckIntervalMs: 3_600_000, network: 'none' }],
    });
    await Promise.race([handle.executeUpdate(waitActiveUpdate).then((r) => console.log('active', r)), new Promise((r) => setTimeout(r, 5000))]);
    const h = await handle.fetchHistory();
    console.log(JSON.stringify(h.events?.map((e) => [e.eventType, e.workflowTaskFailedEventAttributes?.failure?.message]), null, 0));
    await handle.terminate();
  });
  await env.teardown();
});
