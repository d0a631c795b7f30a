// @ts-check
const js = require('@eslint/js');
const tseslint = require('typescript-eslint');
const globals = require('globals');
const { builtinModules } = require('node:module');

// Workflow code runs in Temporal's deterministic sandbox: no Node APIs, no I/O, no clocks.
const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];

module.exports = tseslint.config(
  { ignores: ['node_modules/**', '.tools/**', '.state/**', 'docs/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
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
    // Runs inside budgetWorkflow's sandbox too: no Node APIs, no imports but types.
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
    files: [
      'cli/**/*.ts',
      'bench/**/*.ts',
      'scripts/**/*.ts',
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
