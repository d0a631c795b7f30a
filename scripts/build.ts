/**
 * Builds what `npm start` runs: the bridge compiled to JavaScript in `dist/` (tsc), the files
 * its pages and threads read beside their modules, and the workflow bundle the worker loads
 * instead of bundling at every start. Skips all of it when `dist/` was built from the same
 * sources (a hash of them is kept in `dist/.build-key`), so setup can call it every time.
 *
 *   node --import tsx scripts/build.ts [--force]
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { transformSync } from 'esbuild';
import { byLine, type SourceMap } from './lib/source-map';

const ROOT = path.join(__dirname, '..');
const DIST = path.join(ROOT, 'dist');
const KEY_FILE = path.join(DIST, '.build-key');
const BUILD_CONFIG = 'tsconfig.build.json';

interface BuildConfig {
  include: string[];
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && !e.parentPath.split(path.sep).includes('node_modules'))
    .map((e) => path.join(e.parentPath, e.name))
    .sort();
}

/** Every file the build reads from the tree, and the settings it builds with. */
function sourceKey(folders: string[]): string {
  const hash = createHash('sha256');
  const inputs = [BUILD_CONFIG, 'tsconfig.json', 'package-lock.json', 'scripts/build.ts'];
  for (const f of [...inputs.map((f) => path.join(ROOT, f)), ...folders.flatMap(filesUnder)]) {
    hash.update(path.relative(ROOT, f)).update('\0').update(readFileSync(f)).update('\0');
  }
  hash.update(process.version);
  return hash.digest('hex');
}

/**
 * The bundle minified, with a source map at the grain of source lines (esbuild composes its map
 * with the bundler's, so frames still lead to our TypeScript and the SDK's sources) and no
 * copies of the sources. The worker keeps the code, and its workflow thread parses the whole
 * map (it maps a stack for every promise a workflow makes) and keeps it for as long as the
 * bridge runs: this bundle and map cost about 10 MB less there than webpack's
 * (docs/benchmarks/lean.md). Names are kept: error classes and workflow functions are known by
 * them.
 */
function minified(code: string, file: string): string {
  const out = transformSync(code, {
    loader: 'js',
    minify: true,
    keepNames: true,
    sourcemap: 'external',
    sourcesContent: false,
    sourcefile: file,
  });
  const map = byLine(JSON.parse(out.map) as SourceMap);
  const data = Buffer.from(JSON.stringify(map)).toString('base64');
  return `${out.code}//# sourceMappingURL=data:application/json;base64,${data}\n`;
}

async function main(): Promise<void> {
  const force = process.argv.includes('--force');
  const config = JSON.parse(readFileSync(path.join(ROOT, BUILD_CONFIG), 'utf8')) as BuildConfig;
  const folders = config.include.map((f) => path.join(ROOT, f));
  const key = sourceKey(folders);
  if (!force && existsSync(KEY_FILE) && readFileSync(KEY_FILE, 'utf8') === key) {
    console.error('[build] dist/ is current');
    return;
  }
  const t0 = Date.now();
  rmSync(DIST, { recursive: true, force: true });
  const tsc = spawnSync(
    process.execPath,
    [require.resolve('typescript/bin/tsc'), '-p', BUILD_CONFIG],
    {
      cwd: ROOT,
      stdio: 'inherit',
    },
  );
  if (tsc.status !== 0) throw new Error(`tsc failed (exit ${tsc.status})`);
  // Pages, scripts and styles that modules serve from beside themselves.
  for (const folder of folders) {
    for (const file of filesUnder(folder)) {
      if (file.endsWith('.ts')) continue;
      cpSync(file, path.join(DIST, path.relative(ROOT, file)));
    }
  }
  // Loaded only now: the SDK's bundler takes a second to load, wasted when dist/ is current.
  const { createWorkflowBundle, WORKFLOW_BUNDLE_FILE } =
    require('../worker/workers') as typeof import('../worker/workers');
  const bundle = await createWorkflowBundle();
  const file = path.join(DIST, WORKFLOW_BUNDLE_FILE);
  writeFileSync(file, minified(bundle.code, file));
  writeFileSync(KEY_FILE, key);
  console.error(`[build] dist/ built in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

main().catch((err: unknown) => {
  console.error(`[build] ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
