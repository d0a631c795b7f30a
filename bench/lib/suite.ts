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
}
