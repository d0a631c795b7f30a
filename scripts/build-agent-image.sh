#!/usr/bin/env bash
# Builds the reference agent image `armorclaw/agent:v1` offline, without a registry or a base
# image: agent/main.ts (with what it imports from agent/ and media/) is bundled into one JS file
# (esbuild, already installed with tsx), and a
# root filesystem is assembled from host files — the host's `node` binary, the shared libraries
# `ldd` lists and the dynamic loader, passwd/group entries for uid/gid 10001, the bundle — and
# imported with `docker import`. The image holds no shell and no other program.
#   bash scripts/build-agent-image.sh               # build; prints the image id
#   bash scripts/build-agent-image.sh --print-hash  # the sources' hash, stored as a label
# scripts/docker.sh calls it when the image is missing or its label differs from the hash.
# agent/Dockerfile builds an equivalent image for people with a registry.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
IMAGE=armorclaw/agent:v1
AGENT_UID=10001

log() { printf '[agent-image] %s\n' "$*" >&2; }

NODE_BIN=$(readlink -f "$(command -v node)")

# The bundle (agent/main.ts with what it imports, Node built-ins only): scripts/lib/agent-bundle.sh,
# shared with scripts/build-openclaw-image.sh.
# shellcheck source=lib/agent-bundle.sh
source scripts/lib/agent-bundle.sh
export AGENT_BUNDLE_LOG_PREFIX='[agent-image]'
bundle() { agent_bundle "$@"; }

# What the image is made of: every file the bundle is built from (agent/ and the media/ files it
# imports), this recipe and the bundle's, and which node it carries.
source_hash() {
  local lines
  lines=$(agent_bundle_input_lines) || exit 1
  {
    printf '%s\n' "$lines"
    printf 'recipe %s\n' "$(sha256sum <scripts/build-agent-image.sh | cut -d' ' -f1)"
    printf 'recipe %s\n' "$(sha256sum <scripts/lib/agent-bundle.sh | cut -d' ' -f1)"
    printf 'node %s %s\n' "$NODE_BIN" "$("$NODE_BIN" --version)"
  } | sha256sum | cut -c1-32
}

if [[ "${1:-}" == "--print-hash" ]]; then
  source_hash
  exit 0
fi

if [[ -x /usr/bin/docker ]]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi
HASH=$(source_hash)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/armorclaw-agent-image.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
R="$WORK/root"
mkdir -p "$R"

# --- the bundle ----------------------------------------------------------------------------------
install -d -m 0755 "$R/opt/agent"
bundle build "$R/opt/agent/main.js"
chmod 0644 "$R/opt/agent/main.js"

# --- node, its libraries and the dynamic loader, each at the path the loader expects -----------
install -d -m 0755 "$R/usr/local/bin"
install -m 0755 "$NODE_BIN" "$R/usr/local/bin/node"
copy_lib() {
  local src=$1
  install -d -m 0755 "$R$(dirname "$src")"
  cp -L "$src" "$R$src"
  chmod 0755 "$R$src"
}
if ldd "$NODE_BIN" | grep -q 'not found'; then
  log "node has unresolved libraries:"
  ldd "$NODE_BIN" | grep 'not found' >&2
  exit 1
fi
while read -r lib; do
  copy_lib "$lib"
done < <(ldd "$NODE_BIN" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
interp=$(readelf -l "$NODE_BIN" | sed -n 's/.*Requesting program interpreter: \(.*\)\]/\1/p')
if [[ -n "$interp" && ! -e "$R$interp" ]]; then copy_lib "$interp"; fi

# --- users, and the mount points the container runs with --------------------------------------
install -d -m 0755 "$R/etc"
printf 'root:x:0:0:root:/root:/sbin/nologin\nagent:x:%s:%s:agent:/nonexistent:/sbin/nologin\n' \
  "$AGENT_UID" "$AGENT_UID" >"$R/etc/passwd"
printf 'root:x:0:\nagent:x:%s:\n' "$AGENT_UID" >"$R/etc/group"
chmod 0644 "$R/etc/passwd" "$R/etc/group"
install -d -m 1777 "$R/tmp"
install -d -m 0755 "$R/run/secrets" "$R/run/armorclaw"

# Refuse to ship a shell, whatever a future edit copies in.
if find "$R" \( -name sh -o -name bash -o -name dash -o -name ash -o -name busybox \) | grep -q .; then
  log "refusing: a shell ended up in the root filesystem"
  exit 1
fi

old_id=$("$DOCKER" image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)
id=$(tar -C "$R" --numeric-owner --owner=0 --group=0 --sort=name -c . |
  "$DOCKER" import \
    -c "USER $AGENT_UID:$AGENT_UID" \
    -c 'ENTRYPOINT ["/usr/local/bin/node","/opt/agent/main.js"]' \
    -c 'ENV NODE_ENV=production' \
    -c "LABEL armorclaw.agent.hash=$HASH" \
    -m "armorclaw reference agent (node $("$NODE_BIN" --version))" \
    - "$IMAGE")
# The image it replaced, unless a container still uses it.
if [[ -n "$old_id" && "$old_id" != "$id" ]]; then
  "$DOCKER" image rm "$old_id" >/dev/null 2>&1 || true
fi
log "$IMAGE $id ($("$DOCKER" image inspect -f '{{.Size}}' "$IMAGE" | awk '{ printf "%.0f MB", $1 / 1e6 }'))"
echo "$id"
