// @ts-check
const js = require('@eslint/js');
const tseslint = require('typescript-eslint');
const globals = require('globals');
const { builtinModules } = require('node:module');
const importX = require('eslint-plugin-import-x');
const { layerConfigs } = require('./eslint.layers');

// Workflow code runs in Temporal's deterministic sandbox: no Node APIs, no I/O, no clocks.
const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];

module.exports = tseslint.config(
  { ignores: ['node_modules/**', '.tools/**', '.state/**', 'docs/**', 'coverage/**', 'dist/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  ...layerConfigs(importX),
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      'no-console': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      '@typescript-eslint/no-require-imports': 'off',
    },
  },
  {
    // A promise nobody awaits or handles loses its rejection (an unhandled rejection kills the
    // process) and its ordering; a deliberate fire-and-forget says so with `void` and a reason.
    // Typed, so it needs the TypeScript program: every .ts file is in tsconfig.json. The whole
    // tree, tests too (a forgotten `await expect(...).rejects` passes silently), lints in about
    // 40 s on 2 busy cores.
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: __dirname },
    },
    rules: { '@typescript-eslint/no-floating-promises': 'error' },
  },
  {
    files: ['workflows/**/*.ts', 'machines/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: nodeBuiltins.map((name) => ({
            name,
            message: 'Workflow code runs in a deterministic sandbox: no Node APIs.',
          })),
          patterns: [
            {
              group: ['**/activities', '**/activities/*'],
              allowTypeImports: true,
              message: 'Workflows import activity types only: use `import type`.',
            },
            {
              group: [
                '**/services/*',
                // Pure arithmetic shared with the RPC layer; kept sandbox-safe by the block below.
                '!**/services/budget',
                '**/rpc/*',
                '**/worker/*',
                '**/config/*',
                '**/media/*',
                'pino',
                'dockerode',
                'better-sqlite3',
              ],
              allowTypeImports: true,
              message:
                'Workflow code may import only @temporalio/workflow, @temporalio/common, xstate, machines/ and types.',
            },
          ],
        },
      ],
    },
  },
  {
    // Runs inside budgetWorkflow's sandbox too: no Node APIs; its one runtime import,
    // formats/model-prices.ts, is pure and imports nothing (the block below).
    files: ['services/budget.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: nodeBuiltins.map((name) => ({
            name,
            message: 'services/budget.ts runs in the workflow sandbox: no Node APIs.',
          })),
        },
      ],
    },
  },
  {
    // formats/ is shared by config/ and services/, which may not import each other; it stays
    // importable from anywhere, the workflow sandbox included, by importing nothing itself.
    files: ['formats/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        { patterns: [{ group: ['*'], message: 'formats/ modules import nothing.' }] },
      ],
    },
  },
  {
    files: [
      'cli/**/*.ts',
      'bench/**/*.ts',
      'scripts/**/*.ts',
      // Command-line helpers run by hand inside images (smoke tests): they talk on stdout.
      'docker/**/*.mjs',
      'test/**/*.ts',
      'config/generate-sample.ts',
    ],
    rules: { 'no-console': 'off' },
  },
  {
    // Tests read JSON-RPC responses whose shape is the thing under test.
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
);
