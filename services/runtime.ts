/**
 * How this process runs its own code: compiled (`npm start` runs `dist/`, built by
 * `scripts/build.ts`) or TypeScript from the source tree through tsx (tests, `npm run dev`).
 * Code that starts a thread on another of our files, or looks for the project's tools, asks here.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';

/** True when this module is the compiled one in `dist/`. */
export const COMPILED = path.extname(__filename) === '.js';

/** The checkout: the nearest folder above this file with a package.json (`dist/` has none). */
export const PROJECT_ROOT = ((): string => {
  for (let dir = path.dirname(__filename); ;) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) return path.join(__dirname, '..');
    dir = up;
  }
})();

/**
 * The `eval` source of a worker thread that runs `<dir>/<name>` (`dir` the caller's
 * `__dirname`, `name` without extension): the compiled file when compiled, else the TypeScript
 * through tsx, which the thread loads itself (it does not inherit the parent's loader).
 */
export function threadSource(dir: string, name: string): string {
  if (COMPILED) return `require(${JSON.stringify(path.join(dir, `${name}.js`))});`;
  return `require(${JSON.stringify(require.resolve('tsx/cjs'))});
require(${JSON.stringify(path.join(dir, `${name}.ts`))});`;
}
