/**
 * `findContainerRun` against a recorded stand-in for the client's visibility list: a Docker id
 * the store does not show yet is looked for again until it appears or the lag bound passes.
 */
import type { Client } from '@temporalio/client';
import { findContainerRun, VISIBILITY_LAG_MS } from '../../sessions/containers';

/** A client whose `workflow.list` answers with nothing for the first `missCount` queries. */
function visibility(missCount: number) {
  const queries: string[] = [];
  const client = {
    workflow: {
      list: ({ query }: { query: string }) => {
        queries.push(query);
        const found = queries.length > missCount;
        return (async function* () {
          if (found) yield { workflowId: 'container-armorclaw-a-1' };
        })();
      },
    },
  } as unknown as Client;
  return { client, queries };
}

const ID = 'abcdef0123456789abcdef0123456789';

test('an id the store shows only on the third look is found', async () => {
  const v = visibility(2);
  await expect(findContainerRun(v.client, ID, { open: true })).resolves.toBe(
    'container-armorclaw-a-1',
  );
  expect(v.queries).toHaveLength(3);
  expect(v.queries[0]).toContain(`ArmorclawContainerId STARTS_WITH '${ID}'`);
  expect(v.queries[0]).toContain(`ExecutionStatus = 'Running'`);
});

test('an id no run has is given up after the lag bound, not before', async () => {
  const v = visibility(Infinity);
  const t0 = Date.now();
  await expect(findContainerRun(v.client, ID)).resolves.toBeUndefined();
  const took = Date.now() - t0;
  expect(took).toBeGreaterThanOrEqual(VISIBILITY_LAG_MS);
  expect(v.queries.length).toBeGreaterThan(2);
  expect(v.queries[0]).not.toContain('ExecutionStatus');
});

test('a reference that is neither a name nor a hex id asks nothing', async () => {
  const v = visibility(0);
  await expect(findContainerRun(v.client, 'not-an-id')).resolves.toBeUndefined();
  await expect(findContainerRun(v.client, 'abc123')).resolves.toBeUndefined();
  expect(v.queries).toHaveLength(0);
});
