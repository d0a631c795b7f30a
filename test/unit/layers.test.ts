/**
 * The layer lint (eslint.layers.js) is real: an upward import fails `npx eslint`, a downward one
 * passes. Probes are linted as text under a file name inside the layer; nothing is written.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';

jest.setTimeout(60_000);

const ROOT = path.join(__dirname, '..', '..');

/**
 * ESLint loads its config with a dynamic import, which jest's module sandbox cannot do, so the
 * probes are linted by the real ESLint in a child process, all in one run.
 */
function lintProbes(probes: Array<[file: string, code: string]>): string[][] {
  const script = `
    const { ESLint } = require('eslint');
    const probes = JSON.parse(process.argv[1]);
    (async () => {
      // Probes exist only as text, outside the TypeScript program: lint them untyped (the
      // layer rules need no types).
      const eslint = new ESLint({
        cwd: process.cwd(),
        overrideConfig: {
          languageOptions: { parserOptions: { projectService: false, project: null } },
          rules: { '@typescript-eslint/no-floating-promises': 'off' },
        },
      });
      const out = [];
      for (const [file, code] of probes) {
        const [r] = await eslint.lintText(code, { filePath: require('path').resolve(file) });
        out.push(r.messages.map((m) => m.ruleId + ': ' + m.message));
      }
      process.stdout.write(JSON.stringify(out));
    })();`;
  return JSON.parse(
    execFileSync(process.execPath, ['-e', script, JSON.stringify(probes)], {
      cwd: ROOT,
      encoding: 'utf8',
    }),
  );
}

const upward: Array<[string, string, string]> = [
  [
    'services/probe.ts',
    "import { ErrorCode } from '../rpc/errors';\nexport const c = ErrorCode;\n",
    'services/ may not import rpc/',
  ],
  [
    'machines/probe.ts',
    "import { settings } from '../config/settings';\nexport const s = settings;\n",
    'machines/ may not import config/',
  ],
  [
    'activities/probe.ts',
    "import { RpcDispatcher } from '../rpc/dispatcher';\nexport const d = RpcDispatcher;\n",
    'activities/ may not import rpc/',
  ],
  [
    'media/probe.ts',
    "import { start } from '../worker/main';\nexport const s = start;\n",
    'media/ may not import worker/',
  ],
  [
    'agent/probe.ts',
    "import { ErrorCode } from '../rpc/errors';\nexport const c = ErrorCode;\n",
    'agent/ may import only framer.ts from rpc/',
  ],
];
const downward: Array<[string, string]> = [
  [
    'rpc/probe.ts',
    "import { ErrorCode } from './errors';\nimport { settings } from '../config/settings';\nexport const c = [ErrorCode, settings];\n",
  ],
  [
    'agent/probe.ts',
    "import { JsonStreamFramer } from '../rpc/framer';\nexport const f = JsonStreamFramer;\n",
  ],
  [
    'worker/probe.ts',
    "import { RpcDispatcher } from '../rpc/dispatcher';\nexport const d = RpcDispatcher;\n",
  ],
];

// rpc/dispatcher.ts imports rpc/errors.ts: an errors.ts that imported the dispatcher back closes
// a cycle.
const cycle: [string, string] = [
  'rpc/errors.ts',
  "import { RpcDispatcher } from './dispatcher';\nexport const d = RpcDispatcher;\n",
];

let results: string[][];
beforeAll(() => {
  results = lintProbes([...upward.map(([f, c]) => [f, c] as [string, string]), ...downward, cycle]);
});

test('an import cycle fails', () => {
  expect(results[results.length - 1]).toEqual([
    expect.stringMatching(/^import-x\/no-cycle: Dependency cycle detected/),
  ]);
});

describe('layers import downward only', () => {
  test.each(upward.map((p, i) => [...p, i] as const))(
    '%s importing upward fails',
    (_file, _code, message, i) => {
      const layerProblems = results[i]!.filter((p) => p.startsWith('import-x/'));
      expect(layerProblems).toEqual([expect.stringMatching(/^import-x\/no-restricted-paths: /)]);
      expect(layerProblems[0]).toContain(message);
    },
  );

  test.each(downward.map((p, i) => [...p, upward.length + i] as const))(
    '%s importing downward passes',
    (_file, _code, i) => {
      expect(results[i]).toEqual([]);
    },
  );
});
