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

# esbuild as installed with tsx (resolved from tsx if npm nested it).
#   bundle inputs      prints every source file the bundle is made of, one per line
#   bundle <outfile>   writes the bundle
# Either way it refuses a bundle that pulls in a package (node_modules): the agent runs on Node
# built-ins only, and werift/Opus in particular must never end up in the image.
bundle() {
  node -e '
const path = require("node:path");
let esbuild;
try {
  esbuild = require("esbuild");
} catch {
  esbuild = require(require.resolve("esbuild", { paths: [path.dirname(require.resolve("tsx"))] }));
}
const [what, outfile] = process.argv.slice(1);
const result = esbuild.buildSync({
  entryPoints: ["agent/main.ts"],
  outfile: outfile || "main.js",
  write: what !== "inputs",
  metafile: true,
  bundle: true,
  platform: "node",
  target: "node20",
  format: "cjs",
  legalComments: "none",
  logLevel: "warning",
});
const inputs = Object.keys(result.metafile.inputs).sort();
const packages = inputs.filter((f) => f.includes("node_modules/"));
if (packages.length > 0) {
  console.error("[agent-image] refusing: the agent bundle imports packages: " + packages.join(", "));
  process.exit(1);
}
if (what === "inputs") process.stdout.write(inputs.join("\n") + "\n");
' "$@"
}

# What the image is made of: every file the bundle is built from (agent/ and the media/ files it
# imports), this recipe, and which node it carries.
source_hash() {
  local inputs
  inputs=$(bundle inputs) || exit 1
  {
    while IFS= read -r f; do
      printf '%s %s\n' "$f" "$(sha256sum <"$f" | cut -d' ' -f1)"
    done <<<"$inputs"
    printf 'recipe %s\n' "$(sha256sum <scripts/build-agent-image.sh | cut -d' ' -f1)"
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
