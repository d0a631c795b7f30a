#!/usr/bin/env bash
# One command to see OpenClaw answer in a container hardened like every ArmorClaw run: builds
# armorclaw/openclaw:<version> if needed (scripts/build-openclaw-image.sh), starts it with user
# 10001, a read-only root, all capabilities dropped, no-new-privileges, pids and memory limits,
# tmpfs /tmp only (its state goes to /tmp/openclaw-home), Docker's init and network none; runs a fake
# OpenAI-compatible provider on 127.0.0.1:8089 inside the same container (docker exec), where a
# real run has the reference agent's forwarder to the bridge's provider proxy; asks the gateway's
# /v1/chat/completions one question twice (streamed with --stream) and prints the answer, the
# timings, peak memory and peak pids. The container is removed at the end, whatever happens.
# The image's entrypoint is the agent shim (agent/openclaw.ts), which needs a bridge; this smoke
# run bypasses it and starts the gateway itself (`--entrypoint node … openclaw.mjs gateway run`)
# with the baked template config. test/integration/openclaw-image.test.ts runs the shim.
#   bash scripts/openclaw-smoke.sh ["question"] [--stream]
# Environment: OPENCLAW_SMOKE_MEMORY (default 1536m), OPENCLAW_SMOKE_PIDS (default 128),
# OPENCLAW_SMOKE_KEEP_LOGS=1 to print the gateway's log lines at the end.
# Exit 0 when the answer came from the fake provider, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

QUESTION="What is the capital of France?"
STREAM=()
for arg in "$@"; do
  case "$arg" in
    --stream) STREAM=(--stream) ;;
    -*)
      echo "usage: $0 [\"question\"] [--stream]" >&2
      exit 2
      ;;
    *) QUESTION=$arg ;;
  esac
done
MEMORY=${OPENCLAW_SMOKE_MEMORY:-1536m}
PIDS=${OPENCLAW_SMOKE_PIDS:-128}

log() { printf '[openclaw-smoke] %s\n' "$*" >&2; }
now_ms() { date +%s%3N; }
if [[ -x /usr/bin/docker ]]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi

t_build=$(now_ms)
bash scripts/build-openclaw-image.sh >/dev/null
t_built=$(now_ms)
VERSION=$(sed -n 's/^OPENCLAW_VERSION=\${ARMORCLAW_OPENCLAW_VERSION:-\(.*\)}$/\1/p' scripts/build-openclaw-image.sh)
IMAGE=armorclaw/openclaw:${ARMORCLAW_OPENCLAW_VERSION:-$VERSION}

NAME="armorclaw-openclaw-smoke-$$"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/openclaw-smoke.XXXXXX")
cleanup() {
  "$DOCKER" rm -f "$NAME" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# The run's hardening as activities/docker.ts (containerSpec) has it, with more memory (docs/openclaw.md).
log "starting $IMAGE as $NAME (memory $MEMORY, pids $PIDS, network none)"
t_run=$(now_ms)
"$DOCKER" run -d --name "$NAME" \
  --user 10001:10001 \
  --read-only \
  --cap-drop ALL \
  --security-opt no-new-privileges:true \
  --pids-limit "$PIDS" \
  --memory "$MEMORY" --memory-swap "$MEMORY" \
  --tmpfs /tmp:rw,noexec,nosuid,nodev,size=64m \
  --init \
  --network none \
  --restart no \
  --log-driver json-file --log-opt max-size=10m --log-opt max-file=2 \
  --label armorclaw.smoke=openclaw \
  -v "$PWD/docker/openclaw/smoke:/opt/armorclaw-smoke:ro" \
  --entrypoint /usr/local/bin/node \
  "$IMAGE" /opt/openclaw/node_modules/openclaw/openclaw.mjs gateway run >/dev/null
t_started=$(now_ms)
CID=$("$DOCKER" inspect -f '{{.Id}}' "$NAME")

# The fake provider, in the container's own network namespace (loopback only).
"$DOCKER" exec "$NAME" /usr/local/bin/node /opt/armorclaw-smoke/fake-provider.mjs >"$WORK/provider.log" 2>&1 &

t_ask=$(now_ms)
set +e
result=$("$DOCKER" exec "$NAME" /usr/local/bin/node /opt/armorclaw-smoke/ask.mjs "$QUESTION" "${STREAM[@]}")
rc=$?
set -e

# Peak memory and pids of the container's cgroup (v2 or v1).
cg_read() {
  local f
  for f in "$@"; do
    if [[ -r "$f" ]]; then
      cat "$f"
      return
    fi
  done
  echo "?"
}
mem_peak=$(cg_read "/sys/fs/cgroup/system.slice/docker-$CID.scope/memory.peak" \
  "/sys/fs/cgroup/docker/$CID/memory.peak" "/sys/fs/cgroup/memory/docker/$CID/memory.max_usage_in_bytes")
pids_peak=$(cg_read "/sys/fs/cgroup/system.slice/docker-$CID.scope/pids.peak" \
  "/sys/fs/cgroup/docker/$CID/pids.peak" "/sys/fs/cgroup/pids/docker/$CID/pids.peak")
state=$("$DOCKER" inspect -f 'running={{.State.Running}} oom_killed={{.State.OOMKilled}} exit={{.State.ExitCode}}' "$NAME")

node -e '
const [result, tBuild, tBuilt, tRun, tStarted, tAsk, mem, pids, state] = process.argv.slice(1);
let r;
try { r = JSON.parse(result); } catch { r = { ok: false, error: `no answer (${result || "empty"})` }; }
const line = (k, v) => console.log(`${k.padEnd(22)} ${v}`);
line("image check/build", `${tBuilt - tBuild} ms`);
line("docker run", `${tStarted - tRun} ms`);
if (r.ready_ms !== undefined) line("start -> /readyz 200", `${Number(tAsk) - Number(tRun) + r.ready_ms} ms (from docker run)`);
for (const k of ["first", "second"]) {
  if (!r[k]) continue;
  line(`${k} answer`, `${r[k].ms} ms${r[k].first_token_ms !== undefined ? ` (first token ${r[k].first_token_ms} ms)` : ""}`);
}
line("question", JSON.stringify(r.question ?? ""));
line("answer", JSON.stringify(r.first?.answer ?? r.error));
line("peak memory", /^\d+$/.test(mem) ? `${(mem / 2 ** 20).toFixed(0)} MiB` : mem);
line("peak pids", pids);
line("container", state);
' "$result" "$t_build" "$t_built" "$t_run" "$t_started" "$t_ask" "$mem_peak" "$pids_peak" "$state"

echo "--- fake provider (what OpenClaw sent it)"
cat "$WORK/provider.log"
if [[ "${OPENCLAW_SMOKE_KEEP_LOGS:-}" == 1 || $rc -ne 0 ]]; then
  echo "--- gateway log"
  "$DOCKER" logs "$NAME" 2>&1 | tail -n 60
fi
if [[ $rc -ne 0 ]] || ! grep -q '"The fake provider heard: ' <<<"$result"; then
  log "FAILED"
  exit 1
fi
log "ok"
