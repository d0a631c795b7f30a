#!/usr/bin/env bash
# Makes sure a Docker engine answers and the agent images are current: the reference agent
# `armorclaw/agent:v1` (agent_type "echo") and OpenClaw `armorclaw/openclaw:<version>` ("openclaw").
#   - no engine: installs Debian's docker.io when dockerd is missing, starts dockerd in the
#     background (log .tools/dockerd.log, pid .tools/dockerd.pid) and waits for it;
#   - agent image missing or built from other sources / another node: rebuilds it offline
#     (scripts/build-agent-image.sh);
#   - OpenClaw image: scripts/build-openclaw-image.sh (from its cache outside the clone; the first
#     build on a machine fetches Node 24 and OpenClaw from npm, about a minute and a half).
# Idempotent; with the engine running and the images current it takes about a second.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TOOLS="$ROOT/.tools"
IMAGE=armorclaw/agent:v1
START_TIMEOUT_S=30

log() { printf '[docker] %s\n' "$*" >&2; }

docker_bin() {
  if [[ -x /usr/bin/docker ]]; then
    echo /usr/bin/docker
  else
    command -v docker || true
  fi
}
DOCKER=$(docker_bin)

engine_up() { [[ -n "$DOCKER" ]] && timeout 10 "$DOCKER" info >/dev/null 2>&1; }

dockerd_bin() {
  command -v dockerd 2>/dev/null || { [[ -x /usr/sbin/dockerd ]] && echo /usr/sbin/dockerd; } || true
}

# Whether the pid in this file is a live dockerd.
dockerd_alive() {
  local pid
  [[ -f "$1" ]] || return 1
  pid=$(cat "$1" 2>/dev/null || true)
  [[ "$pid" =~ ^[0-9]+$ ]] && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == dockerd ]]
}
# The one this script started, or any other (dockerd's own pid file, e.g. a package's init script).
some_dockerd_alive() { dockerd_alive "$TOOLS/dockerd.pid" || dockerd_alive /var/run/docker.pid; }

mkdir -p "$TOOLS"
# One at a time: concurrent runs would start two daemons or build the image twice.
exec 9>"$TOOLS/docker.lock"
flock 9

if ! engine_up; then
  if [[ $(id -u) -ne 0 ]]; then
    why=$({ [[ -n "$DOCKER" ]] && "$DOCKER" info 2>&1 >/dev/null; } | head -n 1 || true)
    log "no Docker engine answers${why:+ ($why)}; starting one needs root: sudo bash scripts/docker.sh"
    exit 1
  fi
  if [[ -z "$(dockerd_bin)" ]]; then
    log "apt-get install docker.io"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >/dev/null
  fi
  DOCKER=$(docker_bin)
  DOCKERD=$(dockerd_bin)
  if [[ -z "$DOCKER" || -z "$DOCKERD" ]]; then
    log "docker.io is installed but docker/dockerd cannot be found"
    exit 1
  fi
  if some_dockerd_alive; then
    log "dockerd is starting; waiting"
  else
    log "starting dockerd (log: .tools/dockerd.log)"
    if [[ -f "$TOOLS/dockerd.log" ]]; then mv -f "$TOOLS/dockerd.log" "$TOOLS/dockerd.log.1"; fi
    # Its own session, so it outlives this script and the terminal or CI step that ran it.
    setsid nohup "$DOCKERD" >"$TOOLS/dockerd.log" 2>&1 </dev/null 9>&- &
    echo $! >"$TOOLS/dockerd.pid"
  fi
  deadline=$((SECONDS + START_TIMEOUT_S))
  until engine_up; do
    if ((SECONDS >= deadline)) || ! some_dockerd_alive; then
      if ((SECONDS >= deadline)); then
        log "dockerd did not answer within ${START_TIMEOUT_S}s; last lines of .tools/dockerd.log:"
      else
        log "dockerd exited; last lines of .tools/dockerd.log:"
      fi
      tail -n 30 "$TOOLS/dockerd.log" >&2 || true
      exit 1
    fi
    sleep 0.2
  done
  log "engine up: $("$DOCKER" info --format '{{.ServerVersion}} ({{.Driver}})')"
fi

# --- the reference agent image -----------------------------------------------------------------
want=$(bash scripts/build-agent-image.sh --print-hash)
have=$("$DOCKER" image inspect -f '{{ index .Config.Labels "armorclaw.agent.hash" }}' "$IMAGE" 2>/dev/null || true)
if [[ "$have" != "$want" ]]; then
  if [[ -z "$have" ]]; then log "building $IMAGE"; else log "rebuilding $IMAGE (sources changed)"; fi
  bash scripts/build-agent-image.sh >/dev/null
fi

# --- the OpenClaw image (agent_type "openclaw"): cached outside the clone, quick when current --
bash scripts/build-openclaw-image.sh >/dev/null
