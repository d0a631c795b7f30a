import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { TSX_ARGS } from '../../test/support/bridge-process';
import { PROJECT_ROOT } from './child';

/** Builds dist/ as setup does (quick when it is current), for suites that run `npm start`. */
export function ensureBuilt(): void {
  const build = spawnSync(
    process.execPath,
    [...TSX_ARGS, path.join(PROJECT_ROOT, 'scripts', 'build.ts')],
    { cwd: PROJECT_ROOT, encoding: 'utf8', timeout: 300_000 },
  );
  if (build.status !== 0) throw new Error(`the build failed:\n${build.stderr}`);
}
