import { WorkflowIdConflictPolicy } from '@temporalio/common';
import type { Client } from '@temporalio/client';
import type { Logger } from 'pino';
import { z } from 'zod';
import {
  MAX_REPORT_TOKENS,
  priceFor,
  reportCostMicroUsd,
  toUsd,
  type ModelPrices,
  type UnknownModelPolicy,
} from '../../services/budget';
import {
  BUDGET_WORKFLOW_ID,
  budgetConfigureUpdate,
  budgetReportSignal,
  budgetStatusQuery,
  type BudgetPolicy,
  type BudgetStatus,
  type BudgetWorkflowInput,
} from '../../workflows/definitions';
import { ArmorclawKind, ArmorclawState } from '../../workflows/search-attributes';
import type { RpcDispatcher } from '../dispatcher';
import { ErrorCode, RpcError, internalError, invalidParams } from '../errors';
import { noParams, parseParams } from '../params';
import type { budgetWorkflow } from '../../workflows/budget';

/** How long a budget read may take before `start` gives up on it (and refuses). */
const STATUS_DEADLINE_MS = 5_000;

/**
 * Starts the budget workflow unless it runs (USE_EXISTING), then applies this bridge's policy:
 * limits and prices may have changed since the last start; the totals stay.
 */
export async function ensureBudgetWorkflow(
  client: Client,
  taskQueue: string,
  policy: BudgetPolicy,
): Promise<BudgetStatus> {
  const input: BudgetWorkflowInput = { policy };
  const handle = await client.workflow.start<typeof budgetWorkflow>('budgetWorkflow', {
    taskQueue,
    workflowId: BUDGET_WORKFLOW_ID,
    args: [input],
    workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
    typedSearchAttributes: [
      { key: ArmorclawKind, value: 'budget' },
      { key: ArmorclawState, value: 'Active' },
    ],
  });
  return handle.executeUpdate(budgetConfigureUpdate, { args: [policy] });
}

/** The budget workflow's status, bounded in time; throws -32603 when it cannot be read. */
export async function readBudgetStatus(client: Client, log: Logger): Promise<BudgetStatus> {
  try {
    return await client.connection.withDeadline(Date.now() + STATUS_DEADLINE_MS, () =>
      client.workflow.getHandle(BUDGET_WORKFLOW_ID).query(budgetStatusQuery),
    );
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'budget status unavailable');
    throw internalError('Internal error: budget status unavailable');
  }
}

export interface BudgetGate {
  /** Throws -32006 when the budget is exceeded, -32603 when it cannot be read (fail closed). */
  check(): Promise<void>;
}

/**
 * What `start` asks before (and again after) starting a run. With no limit configured there is
 * nothing to enforce and nothing is queried. With one, an unreadable budget refuses the start:
 * a spending control that lets agents run while it cannot count is not one.
 */
export function createBudgetGate(deps: {
  client: Client;
  limited: boolean;
  log: Logger;
}): BudgetGate {
  return {
    async check() {
      if (!deps.limited) return;
      const status = await readBudgetStatus(deps.client, deps.log);
      if (status.exceeded) {
        const which = [status.day, status.month].find((p) => p.exceeded) ?? status.day;
        throw new RpcError(
          ErrorCode.BudgetExceeded,
          `Budget exceeded: $${which.spent_usd.toFixed(2)} of $${(which.limit_usd ?? 0).toFixed(2)} spent in ${which.period}`,
        );
      }
    },
  };
}

/** `budget.status`: the budget workflow's status query (its shape: `BudgetStatus`). */
export function registerBudgetMethods(
  dispatcher: RpcDispatcher,
  deps: { client: Client; log: Logger },
): void {
  dispatcher.addMethod('budget.status', async (params) => {
    parseParams(noParams, params);
    return readBudgetStatus(deps.client, deps.log);
  });
}

export interface AgentBudgetDeps {
  client: Client;
  prices: ModelPrices;
  unknownModel: UnknownModelPolicy;
  /** Told of every recorded report (a call on this agent counts its tokens). */
  onUsage?(containerName: string, tokens: number): void;
}

const reportParams = z.strictObject({
  model: z.string().min(1).max(128),
  input_tokens: z.number().int().min(0).max(MAX_REPORT_TOKENS),
  output_tokens: z.number().int().min(0).max(MAX_REPORT_TOKENS),
});

/**
 * The agent's `budget.report` on its own socket: priced here, at arrival, from `budget.models`
 * (so a later price change never reprices the past), then signalled to the budget workflow.
 * The container is the socket's, never a parameter: an agent can only spend its own budget line.
 */
export function registerAgentBudgetMethods(
  dispatcher: RpcDispatcher,
  containerName: string,
  deps: AgentBudgetDeps,
): void {
  dispatcher.addMethod('budget.report', async (params) => {
    const p = parseParams(reportParams, params);
    const price = priceFor(deps.prices, deps.unknownModel, p.model);
    if (!price) {
      throw invalidParams(`Invalid params: no price configured for model ${p.model}`);
    }
    const cost = reportCostMicroUsd(price, p.input_tokens, p.output_tokens);
    try {
      await deps.client.workflow.getHandle(BUDGET_WORKFLOW_ID).signal(budgetReportSignal, {
        container_name: containerName,
        model: p.model,
        input_tokens: p.input_tokens,
        output_tokens: p.output_tokens,
        cost_micro_usd: cost,
        source: 'agent',
      });
    } catch {
      throw internalError('Internal error: usage not recorded (budget unavailable)');
    }
    deps.onUsage?.(containerName, p.input_tokens + p.output_tokens);
    return { status: 'recorded', cost_usd: toUsd(cost) };
  });
}
