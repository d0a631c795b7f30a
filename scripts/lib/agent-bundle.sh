#!/usr/bin/env bash
# The reference agent's bundle, shared by scripts/build-agent-image.sh (armorclaw/agent:v1) and
# scripts/build-openclaw-image.sh (armorclaw/openclaw:<version>, where it is the entrypoint that
# runs OpenClaw behind the bridge). Sourced, not run; the caller is at the repository root.
#
#   agent_bundle inputs             prints every source file the bundle is made of, one per line
#   agent_bundle build <outfile>    writes the bundle (agent/main.ts and what it imports, one file)
#   agent_bundle_sources_hash       a hash of those files' paths and contents (no recipe, no node)
#
# esbuild as installed with tsx (resolved from tsx if npm nested it). Either way it refuses a
# bundle that pulls in a package (node_modules): the agent runs on Node built-ins only, and
# werift/Opus in particular must never end up in an image. Messages are prefixed with
# AGENT_BUNDLE_LOG_PREFIX (default "[agent-bundle]").

agent_bundle() {
  AGENT_BUNDLE_LOG_PREFIX=${AGENT_BUNDLE_LOG_PREFIX:-[agent-bundle]} node -e '
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
  console.error(process.env.AGENT_BUNDLE_LOG_PREFIX + " refusing: the agent bundle imports packages: " + packages.join(", "));
  process.exit(1);
}
if (what === "inputs") process.stdout.write(inputs.join("\n") + "\n");
' "$@"
}

# One line per bundle input: "<path> <sha256>", in the bundle's (sorted) order.
agent_bundle_input_lines() {
  local inputs f
  inputs=$(agent_bundle inputs) || return 1
  while IFS= read -r f; do
    printf '%s %s\n' "$f" "$(sha256sum <"$f" | cut -d' ' -f1)"
  done <<<"$inputs"
}

agent_bundle_sources_hash() {
  local lines
  lines=$(agent_bundle_input_lines) || return 1
  printf '%s\n' "$lines" | sha256sum | cut -c1-32
}
