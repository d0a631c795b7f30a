#!/usr/bin/env bash
# The README's start command: install what is missing, then run the bridge in the foreground
# with its embedded defaults (or whatever ARMORCLAW_* / TEMPORAL_* say).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec npm start --silent
