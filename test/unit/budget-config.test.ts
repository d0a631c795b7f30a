import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, loadConfig } from '../../config/load';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'armorclaw-budget-config-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const load = (env: NodeJS.ProcessEnv, configFile?: string) =>
  loadConfig({ env: { HOME: dir, ...env }, uid: 1000, configFile });

function problemsOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.join('\n');
    throw err;
  }
  throw new Error('expected a ConfigError');
}

const MODELS = {
  'gpt-4o': { input_per_1k_usd: 0.0025, output_per_1k_usd: 0.01 },
  'claude-3-5-sonnet': { input_per_1k_usd: 0.003, output_per_1k_usd: 0.015 },
};

describe('budget settings', () => {
  test('defaults: no limits, thresholds 50/80/95 %, no prices, unknown models refused', () => {
    expect(load({}).budget).toEqual({
      dailyLimitUsd: 0,
      monthlyLimitUsd: 0,
      runLimitUsd: 0,
      alertThresholds: [0.5, 0.8, 0.95],
      models: {},
      unknownModelCost: 'refuse',
    });
  });

  test('from the TOML file: numbers, a number list, the models table', () => {
    const file = path.join(dir, 'c.toml');
    writeFileSync(
      file,
      [
        '[budget]',
        'daily_limit_usd = 5',
        'monthly_limit_usd = 100.5',
        'run_limit_usd = 0.75',
        'alert_thresholds = [0.9, 0.25]',
        'unknown_model_cost = "gpt-4o"',
        '[budget.models."gpt-4o"]',
        'input_per_1k_usd = 0.0025',
        'output_per_1k_usd = 0.01',
        '[budget.models.claude-3-5-sonnet]',
        'input_per_1k_usd = 0.003',
        'output_per_1k_usd = 0.015',
        '',
      ].join('\n'),
    );
    expect(load({}, file).budget).toEqual({
      dailyLimitUsd: 5,
      monthlyLimitUsd: 100.5,
      runLimitUsd: 0.75,
      alertThresholds: [0.25, 0.9],
      models: MODELS,
      unknownModelCost: 'gpt-4o',
    });
  });

  test('from the environment: numbers, comma-separated thresholds, models as JSON', () => {
    const c = load({
      ARMORCLAW_BUDGET_DAILY_LIMIT_USD: '2.5',
      ARMORCLAW_BUDGET_MONTHLY_LIMIT_USD: '40',
      ARMORCLAW_BUDGET_RUN_LIMIT_USD: '1.5',
      ARMORCLAW_BUDGET_ALERT_THRESHOLDS: '0.8, 0.5,0.8',
      ARMORCLAW_BUDGET_MODELS: JSON.stringify(MODELS),
    });
    expect(c.budget).toMatchObject({
      dailyLimitUsd: 2.5,
      monthlyLimitUsd: 40,
      runLimitUsd: 1.5,
      alertThresholds: [0.5, 0.8],
      models: MODELS,
    });
  });

  test.each([
    [
      { ARMORCLAW_BUDGET_DAILY_LIMIT_USD: 'lots' },
      'budget.daily_limit_usd (env ARMORCLAW_BUDGET_DAILY_LIMIT_USD): expected a number, got "lots"',
    ],
    [
      { ARMORCLAW_BUDGET_MONTHLY_LIMIT_USD: '-1' },
      'budget.monthly_limit_usd (env ARMORCLAW_BUDGET_MONTHLY_LIMIT_USD): must be at least 0',
    ],
    [{ ARMORCLAW_BUDGET_DAILY_LIMIT_USD: '1e3' }, 'expected a number'],
    [
      { ARMORCLAW_BUDGET_ALERT_THRESHOLDS: '0.5,half' },
      'budget.alert_thresholds (env ARMORCLAW_BUDGET_ALERT_THRESHOLDS): expected a list of numbers',
    ],
    [{ ARMORCLAW_BUDGET_ALERT_THRESHOLDS: '0.5,1.5' }, 'must be at most 1'],
    [{ ARMORCLAW_BUDGET_ALERT_THRESHOLDS: '0,0.5' }, 'between 0 and 1 (exclusive)'],
    [
      { ARMORCLAW_BUDGET_MODELS: '{not json' },
      'budget.models (env ARMORCLAW_BUDGET_MODELS): expected a JSON object',
    ],
    [
      { ARMORCLAW_BUDGET_MODELS: '[1]' },
      'budget.models (env ARMORCLAW_BUDGET_MODELS): expected a table, got an array',
    ],
    [
      { ARMORCLAW_BUDGET_MODELS: '{"m":{"input_per_1k_usd":1}}' },
      'budget.models (env ARMORCLAW_BUDGET_MODELS): m.output_per_1k_usd',
    ],
    [
      { ARMORCLAW_BUDGET_UNKNOWN_MODEL_COST: 'gpt-9' },
      'budget.unknown_model_cost: must be "refuse" or a model of budget.models, got "gpt-9"',
    ],
  ])('%o', (env, message) => {
    expect(problemsOf(() => load(env as NodeJS.ProcessEnv))).toContain(message);
  });

  test('a bad price in the file names the file', () => {
    const file = path.join(dir, 'c.toml');
    writeFileSync(file, '[budget.models.m]\ninput_per_1k_usd = "cheap"\noutput_per_1k_usd = 1\n');
    expect(problemsOf(() => load({}, file))).toContain(
      `budget.models (in ${file}): m.input_per_1k_usd: expected a number of USD from 0 to 1000, got "cheap"`,
    );
  });
});
