import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { Logger } from 'pino';
import { budgetExceededSignal, containerWorkflowId } from '../workflows/definitions';
import { ArmorclawKind } from '../workflows/search-attributes';

export interface BudgetActivityDeps {
  client: Client;
  log: Logger;
}

const CONTAINER_PREFIX = 'container-';

/**
 * What `budgetWorkflow` does to the world beyond audit and Matrix: tell container runs that the
 * budget is spent. Runs on the shared queue; it needs only Temporal.
 */
export function createBudgetActivities(deps: BudgetActivityDeps) {
  /** Open container runs, from Temporal's visibility store (not any one bridge's memory). */
  async function listOpenContainerRuns(): Promise<string[]> {
    const names: string[] = [];
    const query = `${ArmorclawKind.name} = 'container' AND ExecutionStatus = 'Running'`;
    for await (const wf of deps.client.workflow.list({ query })) {
      if (wf.workflowId.startsWith(CONTAINER_PREFIX))
        names.push(wf.workflowId.slice(CONTAINER_PREFIX.length));
    }
    return names;
  }

  /**
   * Signals `budget-exceeded` to the named container runs, or to every open one when none are
   * named. A run that has ended meanwhile is skipped. Answers the names it reached.
   */
  async function signalBudgetExceeded(args: {
    containerNames?: string[];
  }): Promise<{ signalled: string[] }> {
    // Calls first: told before their agents stop, they end as budget_exceeded, not agent_died.
    if (!args.containerNames) {
      const query = `${ArmorclawKind.name} = 'call' AND ExecutionStatus = 'Running'`;
      for await (const wf of deps.client.workflow.list({ query })) {
        await deps.client.workflow
          .getHandle(wf.workflowId)
          .signal(budgetExceededSignal)
          .catch((err) => {
            if (!(err instanceof WorkflowNotFoundError)) throw err;
          });
      }
    }
    const names = args.containerNames ?? (await listOpenContainerRuns());
    const signalled: string[] = [];
    for (const name of names) {
      try {
        await deps.client.workflow
          .getHandle(containerWorkflowId(name))
          .signal(budgetExceededSignal);
        signalled.push(name);
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) continue;
        throw err;
      }
    }
    deps.log.warn({ containers: signalled }, 'budget exceeded: container runs told to end');
    return { signalled };
  }

  return { signalBudgetExceeded };
}

export type BudgetActivities = ReturnType<typeof createBudgetActivities>;
