import fc from 'fast-check';
import {
  addSpend,
  dayPeriod,
  emptyLedger,
  evaluateLedger,
  limitReached,
  monthPeriod,
  nextPeriodBoundaryMs,
  priceFor,
  reportCostMicroUsd,
  rollLedger,
  thresholdsReached,
  toMicroUsd,
  toUsd,
  type BudgetLedger,
  type BudgetLimits,
} from '../../services/budget';
import { parseModelPrices } from '../../formats/model-prices';

const T0 = Date.UTC(2025, 0, 15, 12, 0, 0); // 2025-01-15T12:00Z
const PRICES = {
  'gpt-4o': { input_per_1k_usd: 0.0025, output_per_1k_usd: 0.01 },
  cheap: { input_per_1k_usd: 0.0001, output_per_1k_usd: 0.0002 },
};
const LIMITS: BudgetLimits = {
  dailyLimitUsd: 1,
  monthlyLimitUsd: 10,
  alertThresholds: [0.5, 0.8, 0.95],
};

/** Spends `usd` on a fresh-or-given ledger and evaluates it. */
function spend(ledger: BudgetLedger, usd: number, limits = LIMITS) {
  return evaluateLedger(addSpend(ledger, toMicroUsd(usd)), limits);
}

describe('pricing', () => {
  test('cost in micro-dollars from per-1k prices', () => {
    // 1000 in × $0.0025 + 2000 out × $0.01 = $0.0025 + $0.02
    expect(reportCostMicroUsd(PRICES['gpt-4o'], 1_000, 2_000)).toBe(22_500);
    expect(reportCostMicroUsd(PRICES['gpt-4o'], 0, 0)).toBe(0);
    // 1 token at $0.0001/1k = 0.1 µUSD: rounds to 0, ten of them to 1.
    expect(reportCostMicroUsd(PRICES.cheap, 1, 0)).toBe(0);
    expect(reportCostMicroUsd(PRICES.cheap, 10, 0)).toBe(1);
  });

  test('the largest report stays a safe integer', () => {
    const big = { input_per_1k_usd: 1_000, output_per_1k_usd: 1_000 };
    expect(Number.isSafeInteger(reportCostMicroUsd(big, 1e9, 1e9))).toBe(true);
  });

  test('unknown models: refused, or priced as a named model', () => {
    expect(priceFor(PRICES, 'refuse', 'gpt-4o')).toBe(PRICES['gpt-4o']);
    expect(priceFor(PRICES, 'refuse', 'mystery')).toBeUndefined();
    expect(priceFor(PRICES, 'gpt-4o', 'mystery')).toBe(PRICES['gpt-4o']);
    // Not fooled by Object.prototype.
    expect(priceFor(PRICES, 'refuse', 'constructor')).toBeUndefined();
    expect(priceFor(PRICES, 'toString', 'mystery')).toBeUndefined();
  });

  test('micro-dollar conversions', () => {
    expect(toMicroUsd(0.1 + 0.2)).toBe(300_000);
    expect(toUsd(1_234_567)).toBe(1.234567);
  });
});

describe('periods (UTC)', () => {
  test('day and month keys', () => {
    expect(dayPeriod(T0)).toBe('2025-01-15');
    expect(monthPeriod(T0)).toBe('2025-01');
    expect(dayPeriod(Date.UTC(2025, 0, 31, 23, 59, 59, 999))).toBe('2025-01-31');
    expect(dayPeriod(Date.UTC(2025, 1, 1))).toBe('2025-02-01');
  });

  test('the next boundary is the next UTC midnight, across months and years', () => {
    expect(nextPeriodBoundaryMs(T0)).toBe(Date.UTC(2025, 0, 16));
    expect(nextPeriodBoundaryMs(Date.UTC(2025, 0, 16))).toBe(Date.UTC(2025, 0, 17));
    expect(nextPeriodBoundaryMs(Date.UTC(2025, 0, 31, 18))).toBe(Date.UTC(2025, 1, 1));
    expect(nextPeriodBoundaryMs(Date.UTC(2024, 11, 31, 23, 59))).toBe(Date.UTC(2025, 0, 1));
    expect(nextPeriodBoundaryMs(Date.UTC(2024, 1, 28, 1))).toBe(Date.UTC(2024, 1, 29));
  });

  test('property: the boundary is after ms, within a day, and starts another day', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: Date.UTC(2200, 0, 1) }), (ms) => {
        const b = nextPeriodBoundaryMs(ms);
        expect(b).toBeGreaterThan(ms);
        expect(b - ms).toBeLessThanOrEqual(86_400_000);
        expect(dayPeriod(b)).not.toBe(dayPeriod(ms));
        expect(dayPeriod(b - 1)).toBe(dayPeriod(ms));
      }),
    );
  });

  test('rolling: a new day keeps the month; a new month resets both; same period is a no-op', () => {
    let l = spend(emptyLedger(T0), 0.6).ledger;
    expect(rollLedger(l, T0 + 1_000)).toBe(l);
    const nextDay = rollLedger(l, Date.UTC(2025, 0, 16, 0, 0, 1));
    expect(nextDay.day).toMatchObject({ period: '2025-01-16', spentMicroUsd: 0, alerted: [] });
    expect(nextDay.month).toBe(l.month);
    l = spend(l, 0.5).ledger;
    const nextMonth = rollLedger(l, Date.UTC(2025, 1, 1));
    expect(nextMonth.day.period).toBe('2025-02-01');
    expect(nextMonth.month).toMatchObject({ period: '2025-02', spentMicroUsd: 0, reports: 0 });
  });
});

describe('thresholds and limits', () => {
  test('each threshold is announced once per period', () => {
    let l = emptyLedger(T0);
    const announced: number[] = [];
    for (let i = 0; i < 9; i++) {
      const r = spend(l, 0.1);
      l = r.ledger;
      for (const e of r.events) if (e.kind === 'threshold') announced.push(e.threshold);
    }
    // $0.90 spent of $1: 0.5 at $0.50, 0.8 at $0.80; nothing twice.
    expect(announced).toEqual([0.5, 0.8]);
    expect(l.day.alerted).toEqual([0.5, 0.8]);
    expect(l.day.reports).toBe(9);
  });

  test('a report past several thresholds announces only the highest, and marks all', () => {
    const r = spend(emptyLedger(T0), 0.85);
    expect(r.events).toEqual([
      expect.objectContaining({ kind: 'threshold', scope: 'day', threshold: 0.8 }),
    ]);
    expect(r.ledger.day.alerted).toEqual([0.5, 0.8]);
    expect(spend(r.ledger, 0.01).events).toEqual([]);
  });

  test('reaching the limit is one exceeded event; its thresholds are not announced', () => {
    const r = spend(emptyLedger(T0), 1);
    expect(r.events).toEqual([
      {
        kind: 'exceeded',
        scope: 'day',
        period: '2025-01-15',
        spentMicroUsd: 1_000_000,
        limitMicroUsd: 1_000_000,
      },
    ]);
    expect(r.ledger.day).toMatchObject({ alerted: [0.5, 0.8, 0.95], exceededNoticed: true });
    // More spend: nothing new.
    expect(spend(r.ledger, 0.5).events).toEqual([]);
  });

  test('day and month are judged separately', () => {
    // Monthly $10: $5.50 over days crosses the monthly 0.5 while each day stays low.
    let l = emptyLedger(T0);
    const events: string[] = [];
    for (let d = 0; d < 11; d++) {
      l = rollLedger(l, T0 + d * 86_400_000);
      const r = spend(l, 0.5, { ...LIMITS, dailyLimitUsd: 0 });
      l = r.ledger;
      for (const e of r.events) events.push(`${e.kind}:${e.scope}:${e.period}`);
    }
    expect(events).toEqual(['threshold:month:2025-01']);
  });

  test('no limit, no events', () => {
    const r = spend(emptyLedger(T0), 1e6, {
      dailyLimitUsd: 0,
      monthlyLimitUsd: 0,
      alertThresholds: [0.5],
    });
    expect(r.events).toEqual([]);
    expect(limitReached(1e12, 0)).toBe(false);
    expect(thresholdsReached(1e12, 0, [0.5], [])).toEqual([]);
  });

  test('a raised limit clears exceeded; reaching the new one is acted on again', () => {
    let r = spend(emptyLedger(T0), 1.2);
    expect(r.events.map((e) => e.kind)).toEqual(['exceeded']);
    r = evaluateLedger(r.ledger, { ...LIMITS, dailyLimitUsd: 2 });
    expect(r.events).toEqual([]);
    expect(r.ledger.day.exceededNoticed).toBe(false);
    r = spend(r.ledger, 0.8, { ...LIMITS, dailyLimitUsd: 2 });
    expect(r.events).toEqual([
      expect.objectContaining({ kind: 'exceeded', limitMicroUsd: 2_000_000 }),
    ]);
  });

  test('a lowered limit that the spend already passed is exceeded at once', () => {
    const l = spend(emptyLedger(T0), 0.3).ledger;
    const r = evaluateLedger(l, { ...LIMITS, dailyLimitUsd: 0.25 });
    expect(r.events).toEqual([expect.objectContaining({ kind: 'exceeded', scope: 'day' })]);
  });

  test('property: over any spend sequence, each threshold fires at most once per period', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 400_000 }), { maxLength: 60 }), (costs) => {
        let l = emptyLedger(T0);
        const fired = new Map<string, number>();
        let exceededEvents = 0;
        for (const c of costs) {
          const r = evaluateLedger(addSpend(l, c), LIMITS);
          l = r.ledger;
          for (const e of r.events) {
            if (e.kind === 'exceeded') exceededEvents++;
            else {
              const k = `${e.scope}-${e.threshold}`;
              fired.set(k, (fired.get(k) ?? 0) + 1);
            }
          }
        }
        for (const n of fired.values()) expect(n).toBe(1);
        expect(exceededEvents).toBeLessThanOrEqual(2);
        const spent = costs.reduce((a, b) => a + b, 0);
        expect(l.day.spentMicroUsd).toBe(spent);
        expect(l.day.exceededNoticed).toBe(spent >= 1_000_000);
      }),
    );
  });
});

describe('the budget.models table', () => {
  test('valid prices pass', () => {
    expect(parseModelPrices(PRICES)).toEqual({ ok: true, prices: PRICES });
    expect(parseModelPrices({})).toEqual({ ok: true, prices: {} });
  });

  test.each([
    [[], 'expected a table'],
    [{ m: 3 }, 'm: expected { input_per_1k_usd, output_per_1k_usd }'],
    [
      { m: { input_per_1k_usd: 1 } },
      'm.output_per_1k_usd: expected a number of USD from 0 to 1000, got nothing',
    ],
    [
      { m: { input_per_1k_usd: -1, output_per_1k_usd: 1 } },
      'm.input_per_1k_usd: expected a number',
    ],
    [{ m: { input_per_1k_usd: '1', output_per_1k_usd: 1 } }, 'got "1"'],
    [{ m: { input_per_1k_usd: 1, output_per_1k_usd: 1, cached: 1 } }, 'm: unknown field cached'],
  ])('%j is refused: %s', (table, message) => {
    const r = parseModelPrices(table);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.problems.join('\n')).toContain(message);
  });
});
