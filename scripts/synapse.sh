#!/usr/bin/env bash
# Installs the Matrix homeserver Synapse (PyPI `matrix-synapse`) into its own virtualenv, kept in
# the build cache (scripts/lib/cache-dir.sh) and linked as .tools/synapse-venv (apart from
# .tools/venv so its many dependencies never meet the Temporal binaries'). The integration tests
# start it through test/support/synapse.ts. Idempotent: with the pinned version installed (stamp
# file) it only makes the link.
#
# On Linux x86_64/aarch64 with Python 3.11 every dependency comes as a wheel, so no compiler and
# no Debian -dev package is needed. Only when pip has to build something from source (another
# architecture or Python) does this script install the build dependencies below with apt-get
# (as root) and retry.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SYNAPSE_VERSION=1.163.2
# shellcheck source=lib/cache-dir.sh
source scripts/lib/cache-dir.sh
PYTHON=$(command -v python3.11 || command -v python3)
PY_VERSION=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
# The venv lives outside the clone, keyed by the versions, and every clone links to it: the
# install takes about a minute, the link nothing. (A venv cannot move, so it is built in place.)
VENV="$(armorclaw_cache_base)/synapse-$SYNAPSE_VERSION-py$PY_VERSION"
LINK="$ROOT/.tools/synapse-venv"
STAMP="$VENV/.armorclaw-synapse"
BUILD_DEPS=(build-essential python3-dev libffi-dev libssl-dev libjpeg-dev libxslt1-dev zlib1g-dev
  pkg-config cargo rustc)

log() { printf '[synapse] %s\n' "$*" >&2; }

want="matrix-synapse==$SYNAPSE_VERSION"
link_venv() {
  mkdir -p "$ROOT/.tools"
  if [[ -d "$LINK" && ! -L "$LINK" ]]; then rm -rf "$LINK"; fi
  ln -sfn "$VENV" "$LINK"
}
installed() { [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" && -x "$VENV/bin/python" ]]; }
if installed; then
  link_venv
  exit 0
fi

# One install at a time, whichever clone asks.
mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
flock 9
if installed; then
  link_venv
  exit 0
fi
if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi

pip_install() {
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "$@" "$want"
}

started=$SECONDS
log "pip install $want"
if ! pip_install --only-binary=:all: 2>"$VENV/pip-wheels.log"; then
  log "no wheel for every dependency here (see $VENV/pip-wheels.log); building from source"
  missing=()
  for p in "${BUILD_DEPS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if (( ${#missing[@]} )); then
    if [[ $(id -u) -ne 0 ]]; then
      log "missing Debian build dependencies: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})"
      exit 1
    fi
    log "apt-get install ${missing[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  pip_install --prefer-binary
fi

# Refuse to stamp an installation that cannot even import.
"$VENV/bin/python" -c 'import synapse.app.homeserver' >/dev/null
echo "$want" >"$STAMP"
log "installed $want in $((SECONDS - started)) s"
link_venv
