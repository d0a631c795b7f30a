/**
 * What the provider proxy needs to know about runs, and where what it meters goes.
 *
 * For each run with a proxy socket it holds the route (provider, key id, limit, spend so far)
 * and answers the proxy's two questions on every request, synchronously: which run is this
 * (`lookup`), and may it spend more (`allow`). Usage the proxy reads from a response is priced
 * here and recorded durably: as `run-usage` to the run's workflow (whose machine ends the run at
 * its limit) and as a `budget-report` to the budget workflow (day and month, alerts, the global
 * hard stop), then counted against a call on the agent. A run or the budget that reaches its
 * limit has its streams in flight cut at once: the workflows' stops follow a moment later.
 *
 * The spend held here is a mirror for fast refusals; the totals of record are the workflows'.
 * A restarted bridge rebuilds the mirror from the runs' status (`restore`).
 */
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { Logger } from 'pino';
import type { ModelPrice } from '../formats/model-prices';
import { isProvider, type Provider } from '../formats/providers';
import {
  priceFor,
  reportCostMicroUsd,
  toMicroUsd,
  toUsd,
  type ModelPrices,
  type UnknownModelPolicy,
} from '../services/budget';
import {
  BUDGET_WORKFLOW_ID,
  budgetReportSignal,
  budgetStatusQuery,
  containerStatusQuery,
  containerWorkflowId,
  runUsageSignal,
  type BudgetStatus,
} from '../workflows/definitions';
import { isClosedWorkflowError } from './workflow-errors';

/** A run as the proxy serves it. */
export interface MeteredRun {
  provider: Provider;
  keyId: string;
  /** 0: no per-run limit. */
  limitMicroUsd: number;
  spentMicroUsd: number;
}

/** Tokens a provider response used, as the proxy read them. */
export interface MeteredUsage {
  model: string;
  inputTokens: number;
  outputTokens: number;
}

export interface RunMeterDeps {
  client: Client;
  prices: ModelPrices;
  unknownModel: UnknownModelPolicy;
  /** Whether a daily or monthly limit is configured (else the budget is never read). */
  globalLimited: boolean;
  /** Ends a run's requests in flight with `reason` (the proxy's cut). */
  cut(containerName: string, reason: string): void;
  /** Tokens counted against a call on this agent, if there is one. */
  onTokens?(containerName: string, tokens: number): void;
  audit(entry: {
    event_type: string;
    session_id: string;
    dedupe_key?: string;
    details: Record<string, unknown>;
  }): void;
  log: Logger;
  /** Attempts and first pause of a signal Temporal refuses (default 6, 250 ms doubling). */
  signalAttempts?: number;
  signalBackoffMs?: number;
}

const RUN_LIMIT_REASON = "this run's spending limit is reached";
const GLOBAL_LIMIT_REASON = 'the spending limit of the bridge is reached';
/** The budget's status is read again at most this often while usage flows. */
const GLOBAL_REFRESH_MS = 1_000;

/** Routes, refusals and recording of metered usage for the runs the proxy serves. */
export class RunMeter {
  private readonly runs = new Map<string, MeteredRun & { cutForLimit: boolean }>();
  private globalExceeded = false;
  private refreshing: Promise<void> | undefined;
  private refreshAgain = false;
  private lastRefresh = 0;
  private readonly dearest: ModelPrice | undefined;
  private readonly unpriced = new Set<string>();

  constructor(private readonly deps: RunMeterDeps) {
    this.dearest = dearestPrice(deps.prices);
  }

  /** Starts serving `containerName` (a new run, or one restored after a restart). */
  open(containerName: string, run: MeteredRun): void {
    this.runs.set(containerName, { ...run, cutForLimit: false });
    if (this.deps.globalLimited) void this.refreshGlobal();
  }

  close(containerName: string): void {
    this.runs.delete(containerName);
  }

  /** The proxy's route for a request on `containerName`'s socket. */
  lookup(
    containerName: string,
  ): { active: boolean; provider: Provider; keyId: string } | undefined {
    const run = this.runs.get(containerName);
    return run && { active: true, provider: run.provider, keyId: run.keyId };
  }

  /** Whether `containerName` may send another request upstream. */
  allow(containerName: string): true | { reason: string } {
    const run = this.runs.get(containerName);
    if (run && overLimit(run)) return { reason: RUN_LIMIT_REASON };
    if (this.globalExceeded) {
      // Refused requests record nothing: look again now and then, or a raised limit (or a new
      // day) would go unnoticed by the runs already open.
      if (Date.now() - this.lastRefresh >= GLOBAL_REFRESH_MS) void this.refreshGlobal();
      return { reason: GLOBAL_LIMIT_REASON };
    }
    return true;
  }

  /** The run's spend as the mirror holds it (micro-dollars), for tests and status. */
  spentMicroUsd(containerName: string): number | undefined {
    return this.runs.get(containerName)?.spentMicroUsd;
  }

  /**
   * Prices `usage` and records it durably; cuts the run's streams when it reaches its limit.
   * Resolves when both workflows have the record (or it was given up on, logged).
   */
  async record(containerName: string, usage: MeteredUsage): Promise<void> {
    const cost = this.price(usage);
    const run = this.runs.get(containerName);
    if (run) {
      run.spentMicroUsd += cost;
      if (overLimit(run) && !run.cutForLimit) {
        run.cutForLimit = true;
        this.deps.cut(containerName, RUN_LIMIT_REASON);
        this.deps.audit({
          event_type: 'budget_exceeded',
          session_id: containerName,
          dedupe_key: `${containerWorkflowId(containerName)}/run-limit`,
          details: {
            scope: 'run',
            spent_usd: toUsd(run.spentMicroUsd),
            limit_usd: toUsd(run.limitMicroUsd),
          },
        });
      }
    }
    const tokens = { input_tokens: usage.inputTokens, output_tokens: usage.outputTokens };
    await Promise.all([
      this.signal(`run ${containerName}`, async () => {
        try {
          await this.deps.client.workflow
            .getHandle(containerWorkflowId(containerName))
            .signal(runUsageSignal, { model: usage.model, ...tokens, cost_micro_usd: cost });
        } catch (err) {
          // A response that finished after its run ended: the budget still counts it.
          if (!isClosedWorkflowError(err)) throw err;
        }
      }),
      this.signal('budget', () =>
        this.deps.client.workflow.getHandle(BUDGET_WORKFLOW_ID).signal(budgetReportSignal, {
          container_name: containerName,
          model: usage.model,
          ...tokens,
          cost_micro_usd: cost,
          source: 'proxy',
        }),
      ),
    ]);
    this.deps.onTokens?.(containerName, usage.inputTokens + usage.outputTokens);
    if (this.deps.globalLimited) await this.refreshGlobal();
  }

  /**
   * Rebuilds `containerName`'s route from its workflow after a restart; false when the run is
   * not one the proxy serves (file mode, over, or its key is gone).
   */
  async restore(
    containerName: string,
    providerOf: (keyId: string) => string | undefined,
  ): Promise<boolean> {
    let status;
    try {
      status = await this.deps.client.workflow
        .getHandle(containerWorkflowId(containerName))
        .query(containerStatusQuery);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError || isClosedWorkflowError(err)) return false;
      throw err;
    }
    if (status.secrets_mode !== 'proxy') return false;
    if (status.state !== 'Pending' && status.state !== 'Active') return false;
    const provider = providerOf(status.key_id);
    if (!isProvider(provider)) return false;
    this.open(containerName, {
      provider,
      keyId: status.key_id,
      limitMicroUsd: status.usage.limit_usd === null ? 0 : toMicroUsd(status.usage.limit_usd),
      spentMicroUsd: toMicroUsd(status.usage.cost_usd),
    });
    return true;
  }

  /**
   * The cost of `usage`: at its model's price, else at the unknown-model policy's; a model with
   * no price at all (the policy is `refuse`, which the proxy cannot do after the fact) is
   * charged at the dearest configured price, so nothing is spent unseen.
   */
  private price(usage: MeteredUsage): number {
    const model = this.pricedName(usage.model);
    const price = priceFor(this.deps.prices, this.deps.unknownModel, model) ?? this.dearest;
    if (!price) return 0;
    return reportCostMicroUsd(price, usage.inputTokens, usage.outputTokens);
  }

  /**
   * The configured model a reported name is priced as: itself, or the configured name it
   * extends with a version suffix (providers answer `gpt-4o-2024-08-06` to a request for
   * `gpt-4o`, `claude-3-5-haiku-20241022` to `claude-3-5-haiku-latest`'s family). A name with
   * no price is logged once.
   */
  private pricedName(model: string): string {
    const { prices } = this.deps;
    if (Object.prototype.hasOwnProperty.call(prices, model)) return model;
    let best = '';
    for (const name of Object.keys(prices)) {
      if (name.length > best.length && model.startsWith(name)) {
        if (VERSION_SUFFIX.test(model.slice(name.length))) best = name;
      }
    }
    if (best) return best;
    if (!this.unpriced.has(model) && this.unpriced.size < 1_000) {
      this.unpriced.add(model);
      this.deps.log.warn({ model }, 'metered a model without a configured price');
    }
    return model;
  }

  /** Sends a signal, retried while Temporal refuses; a record given up on is logged. */
  private async signal(what: string, send: () => Promise<void>): Promise<void> {
    const attempts = this.deps.signalAttempts ?? 6;
    let pause = this.deps.signalBackoffMs ?? 250;
    for (let attempt = 1; ; attempt++) {
      try {
        await send();
        return;
      } catch (err) {
        if (attempt >= attempts) {
          this.deps.log.error(
            { err: (err as Error).message },
            `metered usage not recorded (${what})`,
          );
          return;
        }
        await new Promise((r) => setTimeout(r, pause));
        pause *= 2;
      }
    }
  }

  /** Reads the budget's status (coalesced, at most once a second); cuts everything on exceeded. */
  private async refreshGlobal(): Promise<void> {
    if (this.refreshing) {
      this.refreshAgain = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      do {
        this.refreshAgain = false;
        const wait = this.lastRefresh + GLOBAL_REFRESH_MS - Date.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        this.lastRefresh = Date.now();
        let status: BudgetStatus;
        try {
          status = await this.deps.client.workflow
            .getHandle(BUDGET_WORKFLOW_ID)
            .query(budgetStatusQuery);
        } catch (err) {
          this.deps.log.warn({ err: (err as Error).message }, 'budget status unavailable');
          continue;
        }
        const was = this.globalExceeded;
        this.globalExceeded = status.exceeded;
        if (status.exceeded && !was) {
          for (const name of this.runs.keys()) this.deps.cut(name, GLOBAL_LIMIT_REASON);
        }
      } while (this.refreshAgain);
    })().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }
}

/** What providers append to a model's name for a dated or pinned version of it. */
const VERSION_SUFFIX = /^(-\d{4}-\d{2}-\d{2}|-\d{8}|-\d{3,4}|-latest|@[\w.-]+)$/;

const overLimit = (run: MeteredRun): boolean =>
  run.limitMicroUsd > 0 && run.spentMicroUsd >= run.limitMicroUsd;

/** The configured price with the highest output cost (then input), if any. */
function dearestPrice(prices: ModelPrices): ModelPrice | undefined {
  let dearest: ModelPrice | undefined;
  for (const p of Object.values(prices)) {
    if (
      !dearest ||
      p.output_per_1k_usd > dearest.output_per_1k_usd ||
      (p.output_per_1k_usd === dearest.output_per_1k_usd &&
        p.input_per_1k_usd > dearest.input_per_1k_usd)
    )
      dearest = p;
  }
  return dearest;
}
