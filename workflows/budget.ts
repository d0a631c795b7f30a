import {
  allHandlersFinished,
  condition,
  continueAsNew,
  executeChild,
  log,
  ParentClosePolicy,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { BudgetActivities } from '../activities/budget';
import type { SharedActivities } from '../activities/container-types';
// The one services/ module allowed here: pure arithmetic, no Node, no clock (see its header).
import {
  addSpend,
  BUDGET_SCOPES,
  emptyLedger,
  evaluateLedger,
  limitMicroUsd,
  limitReached,
  MAX_REPORT_TOKENS,
  nextPeriodBoundaryMs,
  rollLedger,
  toUsd,
  type BudgetEvent,
  type BudgetLedger,
  type BudgetScope,
} from '../services/budget';
import {
  budgetConfigureUpdate,
  budgetReportSignal,
  budgetStatusQuery,
  type BudgetPeriodStatus,
  type BudgetPolicy,
  type BudgetReport,
  type BudgetStatus,
  type BudgetWorkflowInput,
} from './definitions';
import type { matrixSendWorkflow } from './matrix-send';
import { ArmorclawKind, ArmorclawState } from './search-attributes';

const DEFAULT_MAX_HISTORY_EVENTS = 2_000;
const SCOPE_WORD: Record<BudgetScope, string> = { day: 'daily', month: 'monthly' };

/**
 * The budget (workflow id `budget`, one per namespace): the spend of the current UTC day and
 * month, durably. Usage arrives as `budget-report` signals, already priced: metered by the
 * provider proxy, or reported by agents themselves (`budget.report`, kept apart in the status as
 * self-reported); the pure ledger functions of services/budget.ts decide what a new total means
 * and this workflow acts:
 *
 * - a threshold reached → one `budget_warning` audit entry and one m.notice to the admin room,
 *   once per period and threshold (ids derived from both, so retries and replays never repeat);
 * - a limit reached → one `budget_exceeded` audit entry, `budget-exceeded` to every open
 *   container run, an m.notice; `exceeded` stays true until the period ends or the limit rises,
 *   and an agent that still reports meanwhile is told to end too.
 *
 * Periods follow workflow time: a report counts in the period in which Temporal processes it,
 * and a timer at the next UTC midnight rolls the periods over with no outside trigger.
 */
export async function budgetWorkflow(input: BudgetWorkflowInput): Promise<never> {
  const audit = proxyActivities<SharedActivities>({
    startToCloseTimeout: '30s',
    retry: { initialInterval: '1s', maximumInterval: '30s' },
  });
  const runs = proxyActivities<BudgetActivities>({
    startToCloseTimeout: '60s',
    retry: { initialInterval: '1s', maximumInterval: '30s' },
  });

  // Alert and audit keys start with the workflow id: `budget-<period>-<threshold>` in the bridge.
  const keyPrefix = workflowInfo().workflowId;
  let policy = input.policy;
  let ledger: BudgetLedger = rollLedger(input.ledger ?? emptyLedger(Date.now()), Date.now());
  const stopped = new Set(input.stopped ?? []);
  const queue: BudgetReport[] = [];
  let reevaluate = true;
  let effectsInFlight = 0;
  let stopSweepInFlight = false;
  let publishedState: string | undefined;

  const limitOf = (scope: BudgetScope) => limitMicroUsd(policy, scope);
  const exceededIn = (scope: BudgetScope) =>
    limitReached(ledger[scope].spentMicroUsd, limitOf(scope));
  const exceeded = () => BUDGET_SCOPES.some(exceededIn);

  const periodStatus = (scope: BudgetScope): BudgetPeriodStatus => {
    const p = ledger[scope];
    const limit = limitOf(scope);
    return {
      period: p.period,
      spent_usd: toUsd(p.spentMicroUsd),
      limit_usd: limit > 0 ? toUsd(limit) : null,
      exceeded: exceededIn(scope),
      thresholds_alerted: [...p.alerted],
      reports: p.reports,
      metered_usd: toUsd(p.spentMicroUsd - (p.selfReportedMicroUsd ?? 0)),
      self_reported_usd: toUsd(p.selfReportedMicroUsd ?? 0),
    };
  };
  const status = (): BudgetStatus => ({
    day: periodStatus('day'),
    month: periodStatus('month'),
    exceeded: exceeded(),
    alert_thresholds: [...policy.alertThresholds],
    admin_room: policy.adminRoomId ?? null,
  });

  setHandler(budgetStatusQuery, status);
  setHandler(budgetReportSignal, (report) => {
    // A signal cannot be refused; the bridge validated it, so a bad one is a bug to log.
    const problem = reportProblem(report);
    if (problem) log.warn('budget report dropped', { problem });
    else queue.push(report);
  });
  setHandler(
    budgetConfigureUpdate,
    (next) => {
      policy = next;
      reevaluate = true;
      return status();
    },
    { validator: validatePolicy },
  );

  const publishState = () => {
    const state = exceeded() ? 'Exceeded' : 'Active';
    if (state === publishedState) return;
    publishedState = state;
    upsertSearchAttributes([
      { key: ArmorclawKind, value: 'budget' },
      { key: ArmorclawState, value: state },
    ]);
  };

  /** Runs an effect beside the loop (reports keep flowing); failures are logged, never thrown. */
  const launch = (what: string, effect: () => Promise<void>) => {
    effectsInFlight++;
    effect()
      .catch((err) => log.error(`budget: ${what} failed`, { error: String(err) }))
      .finally(() => effectsInFlight--);
  };

  /** One m.notice to the admin room, exactly once: the child's id is the Matrix txn id. */
  const alert = async (key: string, body: string) => {
    const roomId = policy.adminRoomId;
    if (!roomId) return;
    try {
      await executeChild<typeof matrixSendWorkflow>('matrixSendWorkflow', {
        workflowId: `${key}-alert`,
        args: [{ hostId: policy.hostId, roomId, msgtype: 'm.notice', body }],
        parentClosePolicy: ParentClosePolicy.ABANDON,
      });
    } catch (err) {
      // Audited already; Matrix being down or logged out must not stall the budget.
      log.warn('budget alert not delivered', { key, error: String(err) });
    }
  };

  const details = (e: BudgetEvent) => ({
    scope: e.scope,
    period: e.period,
    spent_usd: toUsd(e.spentMicroUsd),
    limit_usd: toUsd(e.limitMicroUsd),
    // null: no matrix.admin_room configured, so no Matrix alert was sent.
    alert_room: policy.adminRoomId ?? null,
  });

  const announceThreshold = async (e: Extract<BudgetEvent, { kind: 'threshold' }>) => {
    const key = `${keyPrefix}-${e.period}-${e.threshold}`;
    await audit.recordAudit({
      event_type: 'budget_warning',
      dedupe_key: key,
      details: { ...details(e), threshold: e.threshold },
    });
    await alert(
      key,
      `ArmorClaw budget: ${Math.round(e.threshold * 100)}% of the ${SCOPE_WORD[e.scope]} limit ` +
        `reached: ${usd(e.spentMicroUsd)} of ${usd(e.limitMicroUsd)} spent in ${e.period} (UTC).`,
    );
  };

  const enforceLimit = async (e: Extract<BudgetEvent, { kind: 'exceeded' }>) => {
    // The limit is part of the key: a limit raised and reached again is a new event.
    const key = `${keyPrefix}-${e.period}-exceeded-${e.limitMicroUsd}`;
    await audit.recordAudit({
      event_type: 'budget_exceeded',
      dedupe_key: key,
      details: details(e),
    });
    stopSweepInFlight = true;
    let count = 0;
    try {
      const { signalled } = await runs.signalBudgetExceeded({});
      for (const name of signalled) stopped.add(name);
      count = signalled.length;
    } finally {
      stopSweepInFlight = false;
    }
    await alert(
      key,
      `ArmorClaw budget exceeded: ${usd(e.spentMicroUsd)} of the ${SCOPE_WORD[e.scope]} limit of ` +
        `${usd(e.limitMicroUsd)} spent in ${e.period} (UTC). ${count} running agent session(s) ` +
        'stopped; new sessions are refused until the period ends or the limit is raised.',
    );
  };

  /** Agents that report while the budget is exceeded and were not reached by the sweep. */
  const stopLateReporters = (reports: BudgetReport[]) => {
    const late = [...new Set(reports.map((r) => r.container_name))].filter((n) => !stopped.has(n));
    if (late.length === 0) return;
    for (const name of late) stopped.add(name);
    launch('stopping late reporters', async () => {
      await runs.signalBudgetExceeded({ containerNames: late });
    });
  };

  const maxHistoryEvents = input.maxHistoryEvents ?? DEFAULT_MAX_HISTORY_EVENTS;
  for (;;) {
    const now = Date.now();
    const rolled = rollLedger(ledger, now);
    if (rolled !== ledger) {
      ledger = rolled;
      reevaluate = true;
    }
    const reports = queue.splice(0);
    if (reports.length > 0 || reevaluate) {
      reevaluate = false;
      // Exceeded before this batch: the sweep has run (or runs now) for the runs open back then.
      const exceededBefore = exceeded();
      for (const r of reports) ledger = addSpend(ledger, r.cost_micro_usd, r.source !== 'proxy');
      const evaluated = evaluateLedger(ledger, policy);
      ledger = evaluated.ledger;
      if (!exceeded()) stopped.clear();
      let sweeping = stopSweepInFlight;
      for (const e of evaluated.events) {
        if (e.kind === 'threshold') {
          launch(`threshold ${e.threshold}`, () => announceThreshold(e));
        } else {
          sweeping = true;
          launch(`${e.scope} limit`, () => enforceLimit(e));
        }
      }
      if (exceededBefore && exceeded() && !sweeping) stopLateReporters(reports);
      publishState();
    }

    const info = workflowInfo();
    if (info.continueAsNewSuggested || info.historyLength > maxHistoryEvents) {
      // Effects hold state (who was stopped) and handlers may still be running: finish first.
      await condition(() => effectsInFlight === 0 && allHandlersFinished());
      if (queue.length === 0 && !reevaluate) {
        await continueAsNew<typeof budgetWorkflow>({
          policy,
          ledger,
          stopped: [...stopped],
          maxHistoryEvents: input.maxHistoryEvents,
        });
      }
      continue;
    }
    const untilBoundaryMs = Math.max(1, nextPeriodBoundaryMs(now) - now);
    await condition(() => queue.length > 0 || reevaluate, untilBoundaryMs);
  }
}

const usd = (microUsd: number): string => `$${toUsd(microUsd).toFixed(2)}`;

const isCount = (n: unknown, max: number): boolean =>
  typeof n === 'number' && Number.isSafeInteger(n) && n >= 0 && n <= max;

function reportProblem(r: BudgetReport): string | undefined {
  if (typeof r !== 'object' || r === null) return 'not an object';
  if (typeof r.container_name !== 'string' || r.container_name === '') return 'container_name';
  if (typeof r.model !== 'string' || r.model === '' || r.model.length > 128) return 'model';
  if (!isCount(r.input_tokens, MAX_REPORT_TOKENS)) return 'input_tokens';
  if (!isCount(r.output_tokens, MAX_REPORT_TOKENS)) return 'output_tokens';
  if (!isCount(r.cost_micro_usd, Number.MAX_SAFE_INTEGER)) return 'cost_micro_usd';
  if (r.source !== undefined && r.source !== 'proxy' && r.source !== 'agent') return 'source';
  return undefined;
}

function validatePolicy(p: BudgetPolicy): void {
  const limit = (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v >= 0;
  if (!limit(p.dailyLimitUsd) || !limit(p.monthlyLimitUsd)) {
    throw new Error('limits must be numbers of USD, 0 or more');
  }
  if (
    !Array.isArray(p.alertThresholds) ||
    !p.alertThresholds.every((t) => typeof t === 'number' && t > 0 && t < 1)
  ) {
    throw new Error('alert thresholds must be fractions between 0 and 1');
  }
  if (typeof p.hostId !== 'string' || p.hostId === '') throw new Error('hostId is required');
  if (p.adminRoomId !== undefined && typeof p.adminRoomId !== 'string') {
    throw new Error('adminRoomId must be a room id');
  }
}
