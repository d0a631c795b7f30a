/**
 * The workflow code replay tests run recorded histories against: bundled from source (as the
 * tests and `npm run dev` run it), and the minified file in dist/ that `npm start` loads
 * (scripts/build.ts; built here if it is not current, quick when it is).
 */
import path from 'node:path';
import type { WorkflowBundle, WorkflowBundlePath } from '@temporalio/worker';
import { WORKFLOW_BUNDLE_FILE, workflowBundle } from '../../worker/workers';
import { buildDist, PROJECT_ROOT } from './bridge-process';

export type BundleKind = 'source' | 'built';
export const BUNDLE_KINDS: BundleKind[] = ['source', 'built'];
export const BUILT_BUNDLE = path.join(PROJECT_ROOT, 'dist', WORKFLOW_BUNDLE_FILE);

let built = false;

/** Builds dist/ once per test file (what setup does). */
export function ensureBuilt(): void {
  if (built) return;
  buildDist();
  built = true;
}

export async function replayBundle(kind: BundleKind): Promise<WorkflowBundle | WorkflowBundlePath> {
  if (kind === 'source') return workflowBundle();
  ensureBuilt();
  return { codePath: BUILT_BUNDLE };
}

/** Every file with every kind of bundle, for `test.each`. */
export const withBundles = (files: string[]): Array<[string, BundleKind]> =>
  files.flatMap((f) => BUNDLE_KINDS.map((k): [string, BundleKind] => [f, k]));
