/**
 * The workflow bundle `npm start` loads is minified by scripts/build.ts (every replay test runs
 * its histories against it too); its source map still leads to our TypeScript, line by line.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT } from '../support/bridge-process';
import { BUILT_BUNDLE, ensureBuilt } from '../support/replay';

jest.setTimeout(240_000);

test('the built bundle is minified, with a source map to our TypeScript and no copies of it', () => {
  ensureBuilt();
  const code = readFileSync(BUILT_BUNDLE, 'utf8');
  const at = code.lastIndexOf('base64,');
  const map = JSON.parse(Buffer.from(code.slice(at + 'base64,'.length), 'base64').toString());
  expect(map.sources).toContain(path.join(PROJECT_ROOT, 'workflows', 'container-run.ts'));
  expect(map.names).toEqual([]);
  expect(map.sourcesContent).toBeUndefined();
  // Minified: a few lines, where the bundler's output has one per statement.
  expect(code.slice(0, at).split('\n').length).toBeLessThan(100);
  expect(code.length).toBeLessThan(1_000_000);
});
