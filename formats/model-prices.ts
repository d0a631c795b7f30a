/**
 * The `budget.models` price table: its shape, the `refuse` policy for models missing from it,
 * and its validation.
 *
 * Why formats/: config/ validates the table when it loads and services/budget.ts prices usage
 * with it inside the workflow sandbox; neither may import the other, and the sandbox admits only
 * pure code. Modules here import nothing at all, so any layer may use them.
 */

/** Price of one model, in USD per 1,000 tokens. */
export interface ModelPrice {
  input_per_1k_usd: number;
  output_per_1k_usd: number;
}

/** The unknown-model policy that rejects a report for a model missing from the table. */
export const REFUSE_UNKNOWN_MODELS = 'refuse';

/** Validation of the `budget.models` table: the prices, or the problems found. */
export function parseModelPrices(
  table: unknown,
): { ok: true; prices: Record<string, ModelPrice> } | { ok: false; problems: string[] } {
  if (table === null || typeof table !== 'object' || Array.isArray(table)) {
    return {
      ok: false,
      problems: ['expected a table of model = { input_per_1k_usd, output_per_1k_usd }'],
    };
  }
  const prices: Record<string, ModelPrice> = {};
  const problems: string[] = [];
  for (const [model, entry] of Object.entries(table as Record<string, unknown>)) {
    if (model.trim() === '' || model.length > 128) {
      problems.push(`model name "${model}": must be 1 to 128 characters`);
      continue;
    }
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) {
      problems.push(`${model}: expected { input_per_1k_usd, output_per_1k_usd }`);
      continue;
    }
    const e = entry as Record<string, unknown>;
    const extra = Object.keys(e).filter(
      (k) => k !== 'input_per_1k_usd' && k !== 'output_per_1k_usd',
    );
    if (extra.length > 0) problems.push(`${model}: unknown field ${extra.join(', ')}`);
    const price = (field: keyof ModelPrice): number | undefined => {
      const v = e[field];
      if (typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= 1_000) return v;
      problems.push(`${model}.${field}: expected a number of USD from 0 to 1000, got ${show(v)}`);
      return undefined;
    };
    const input = price('input_per_1k_usd');
    const output = price('output_per_1k_usd');
    if (input !== undefined && output !== undefined) {
      prices[model] = { input_per_1k_usd: input, output_per_1k_usd: output };
    }
  }
  return problems.length ? { ok: false, problems } : { ok: true, prices };
}

const show = (v: unknown): string =>
  v === undefined ? 'nothing' : typeof v === 'string' ? `"${v}"` : String(v);
