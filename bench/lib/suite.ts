/** Settings every suite gets from `bench/run.ts`, read once from the environment. */
export interface BenchSettings {
  warmupMs: number;
  measureMs: number;
  connectionCounts: number[];
  /** Where results go: docs/benchmarks/. */
  outDir: string;
}

export interface Suite {
  name: string;
  /** Runs the suite and writes its files under `settings.outDir`; returns the paths written. */
  run(settings: BenchSettings): Promise<string[]>;
  /**
   * How long the suite should take at most; `run.ts` stops everything past the sum of all
   * suites' budgets. Without it, a suite gets {@link DEFAULT_SUITE_BUDGET_MS}.
   */
  budgetMs?(settings: BenchSettings): number;
}

export const DEFAULT_SUITE_BUDGET_MS = 5 * 60_000;
