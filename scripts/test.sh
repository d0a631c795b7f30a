#!/usr/bin/env bash
# Runs every test tier after installing what they need. This is the README's test command and
# what CI runs (.ci/run).  Extra arguments go to jest, e.g. `bash scripts/test.sh --selectProjects unit`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
echo "[test] typecheck and lint" >&2
# Side by side (one core each): both only read the tree.
npx tsc -p . --noEmit &
typecheck=$!
npx eslint . &
lint=$!
wait "$typecheck"
wait "$lint"
echo "[test] config sample is current" >&2
node --import tsx -e "
const { readFileSync } = require('node:fs');
const { renderSampleConfig } = require('./config/sample');
if (readFileSync('docs/config.sample.toml', 'utf8') !== renderSampleConfig()) {
  console.error('docs/config.sample.toml is stale: run npm run gen:config-sample');
  process.exit(1);
}"
echo "[test] jest" >&2
# Integration tests start real services; they run one file at a time on our 2 cores.
npx jest --ci --runInBand "$@"
