/**
 * Budget arithmetic: what a usage report costs, which UTC day and month a moment belongs to, and
 * what a new total means against the limits (a threshold to announce, a limit reached).
 *
 * Pure and clock-free on purpose: the RPC layer prices reports with it, and `budgetWorkflow`
 * runs the ledger functions inside Temporal's deterministic sandbox (the one `services/` module
 * the workflow lint admits), so nothing here may touch Node, a clock or randomness.
 *
 * Money is counted in integer micro-dollars (1 µUSD = $0.000001): sums of floats drift, and a
 * threshold compared against a drifted total could fire one report late or never.
 *
 * The price table's shape and its parser are in formats/model-prices.ts (import-free, so the
 * sandbox may load it and config/ may validate the table without importing services/).
 */
import { REFUSE_UNKNOWN_MODELS, type ModelPrice } from '../formats/model-prices';

export type ModelPrices = Readonly<Record<string, ModelPrice>>;

/**
 * How a model missing from the price table is charged: `refuse` (the report is rejected, so an
 * agent cannot spend unseen) or the name of a configured model whose prices apply.
 */
export type UnknownModelPolicy = string;

export const MICRO_USD_PER_USD = 1_000_000;
/** Largest token count one report may carry (keeps every product a safe integer). */
export const MAX_REPORT_TOKENS = 1_000_000_000;

export type BudgetScope = 'day' | 'month';
export const BUDGET_SCOPES: readonly BudgetScope[] = ['day', 'month'];

/** Limits and alert thresholds; a limit of 0 means none. */
export interface BudgetLimits {
  dailyLimitUsd: number;
  monthlyLimitUsd: number;
  /** Fractions of each limit, each in (0, 1), announced once per period. */
  alertThresholds: readonly number[];
}

/** The spend of one period (a UTC day or month) and what was already announced in it. */
export interface PeriodLedger {
  /** `YYYY-MM-DD` for a day, `YYYY-MM` for a month (UTC). */
  period: string;
  spentMicroUsd: number;
  /** The part of `spentMicroUsd` agents reported themselves (absent in older ledgers: 0). */
  selfReportedMicroUsd?: number;
  reports: number;
  /** Thresholds announced (or passed over) in this period, ascending. */
  alerted: number[];
  /** Whether reaching the limit has been acted on (audit, alert, stop) in this period. */
  exceededNoticed: boolean;
}

export interface BudgetLedger {
  day: PeriodLedger;
  month: PeriodLedger;
}

/** Something the budget workflow must act on, found by `evaluateLedger`. */
export type BudgetEvent =
  | {
      kind: 'threshold';
      scope: BudgetScope;
      period: string;
      threshold: number;
      spentMicroUsd: number;
      limitMicroUsd: number;
    }
  | {
      kind: 'exceeded';
      scope: BudgetScope;
      period: string;
      spentMicroUsd: number;
      limitMicroUsd: number;
    };

/** The price that applies to `model`, or undefined when the report must be refused. */
export function priceFor(
  prices: ModelPrices,
  unknownModel: UnknownModelPolicy,
  model: string,
): ModelPrice | undefined {
  if (Object.prototype.hasOwnProperty.call(prices, model)) return prices[model];
  if (unknownModel === REFUSE_UNKNOWN_MODELS) return undefined;
  return Object.prototype.hasOwnProperty.call(prices, unknownModel)
    ? prices[unknownModel]
    : undefined;
}

/** Cost of a report in micro-dollars, rounded to the nearest one. */
export function reportCostMicroUsd(
  price: ModelPrice,
  inputTokens: number,
  outputTokens: number,
): number {
  // µUSD per token = (USD per 1k tokens) × 1e6 / 1e3.
  return Math.round(
    inputTokens * price.input_per_1k_usd * 1_000 + outputTokens * price.output_per_1k_usd * 1_000,
  );
}

/** Dollars as micro-dollars. */
export const toMicroUsd = (usd: number): number => Math.round(usd * MICRO_USD_PER_USD);
/** Micro-dollars as dollars (for status and messages). */
export const toUsd = (microUsd: number): number => microUsd / MICRO_USD_PER_USD;

/** The UTC day of `ms`, `YYYY-MM-DD`. */
export const dayPeriod = (ms: number): string => new Date(ms).toISOString().slice(0, 10);
/** The UTC month of `ms`, `YYYY-MM`. */
export const monthPeriod = (ms: number): string => new Date(ms).toISOString().slice(0, 7);

/** The next UTC midnight after `ms`: where a day (and possibly a month) ends. */
export function nextPeriodBoundaryMs(ms: number): number {
  const d = new Date(ms);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1);
}

const emptyPeriod = (period: string): PeriodLedger => ({
  period,
  spentMicroUsd: 0,
  selfReportedMicroUsd: 0,
  reports: 0,
  alerted: [],
  exceededNoticed: false,
});

/** A ledger with nothing spent in the periods of `ms`. */
export const emptyLedger = (ms: number): BudgetLedger => ({
  day: emptyPeriod(dayPeriod(ms)),
  month: emptyPeriod(monthPeriod(ms)),
});

/** The ledger as of `ms`: a period that has ended starts over (its alerts with it). */
export function rollLedger(ledger: BudgetLedger, ms: number): BudgetLedger {
  const day = dayPeriod(ms);
  const month = monthPeriod(ms);
  if (ledger.day.period === day && ledger.month.period === month) return ledger;
  return {
    day: ledger.day.period === day ? ledger.day : emptyPeriod(day),
    month: ledger.month.period === month ? ledger.month : emptyPeriod(month),
  };
}

/**
 * Adds one report's cost to both periods (the caller rolls the ledger first); `selfReported`
 * when the agent reported it rather than the provider proxy metering it.
 */
export function addSpend(
  ledger: BudgetLedger,
  costMicroUsd: number,
  selfReported = false,
): BudgetLedger {
  const add = (p: PeriodLedger): PeriodLedger => ({
    ...p,
    spentMicroUsd: p.spentMicroUsd + costMicroUsd,
    selfReportedMicroUsd: (p.selfReportedMicroUsd ?? 0) + (selfReported ? costMicroUsd : 0),
    reports: p.reports + 1,
  });
  return { day: add(ledger.day), month: add(ledger.month) };
}

export const limitMicroUsd = (limits: BudgetLimits, scope: BudgetScope): number =>
  toMicroUsd(scope === 'day' ? limits.dailyLimitUsd : limits.monthlyLimitUsd);

/** Whether `spent` has reached `limit` (a limit of 0 is no limit). Reaching it counts. */
export const limitReached = (spentMicroUsd: number, limitMicro: number): boolean =>
  limitMicro > 0 && spentMicroUsd >= limitMicro;

/** Thresholds of `thresholds` that `spent` has reached and `alerted` does not hold, ascending. */
export function thresholdsReached(
  spentMicroUsd: number,
  limitMicro: number,
  thresholds: readonly number[],
  alerted: readonly number[],
): number[] {
  if (limitMicro <= 0) return [];
  return [...thresholds]
    .filter((t) => !alerted.includes(t) && spentMicroUsd >= t * limitMicro)
    .sort((a, b) => a - b);
}

/**
 * What the ledger's totals mean against `limits`, and the ledger with those events marked done.
 *
 * - Each threshold is announced at most once per period. A report that passes several at once
 *   announces only the highest (the lower ones are marked, never announced later: stale news).
 * - Reaching a limit is one `exceeded` event per period; its thresholds are marked without being
 *   announced (the `exceeded` alert says more). If the limit is later raised above the spend, the
 *   mark is cleared, so reaching the new limit is acted on again.
 */
export function evaluateLedger(
  ledger: BudgetLedger,
  limits: BudgetLimits,
): { ledger: BudgetLedger; events: BudgetEvent[] } {
  const events: BudgetEvent[] = [];
  const next = { ...ledger };
  for (const scope of BUDGET_SCOPES) {
    const p = ledger[scope];
    const limit = limitMicroUsd(limits, scope);
    const reached = thresholdsReached(p.spentMicroUsd, limit, limits.alertThresholds, p.alerted);
    const exceeded = limitReached(p.spentMicroUsd, limit);
    const alerted = reached.length ? [...p.alerted, ...reached].sort((a, b) => a - b) : p.alerted;
    const base = { scope, period: p.period, spentMicroUsd: p.spentMicroUsd, limitMicroUsd: limit };
    if (exceeded && !p.exceededNoticed) {
      events.push({ kind: 'exceeded', ...base });
    } else if (!exceeded && reached.length > 0) {
      events.push({ kind: 'threshold', ...base, threshold: reached[reached.length - 1]! });
    }
    next[scope] = { ...p, alerted, exceededNoticed: exceeded };
  }
  return { ledger: next, events };
}
