#!/usr/bin/env bash
# Entrypoint of the Temporal image (docker/temporal/Dockerfile) of docker-compose.cluster.yml;
# the same steps as `scripts/temporal-cluster.sh start`, through the same docker/temporal/
# cluster-lib.sh and templates. One command per container:
#
#   server      wait for PostgreSQL, create or update both schemas (idempotent), write the
#               config (0600) and run temporal-server: frontend gRPC 7233, the other services on
#               7234..7241 (tc_ports), all on the container's address
#   ui          the Web UI server on 8233, for the frontend at TEMPORAL_ADDRESS
#   namespace   one-shot: register TEMPORAL_NAMESPACE when missing, wait until it is usable
#   health      exit 0 when the frontend of this container answers (the health check)
#
# Environment: POSTGRES_HOST (postgres), POSTGRES_PORT (5432), POSTGRES_USER (temporal),
# POSTGRES_PASSWORD (required by `server`; removed from the environment before the server
# starts, which reads it from its config file), TEMPORAL_LOG_LEVEL (warn),
# TEMPORAL_NUM_HISTORY_SHARDS (4; fixed once the database exists), TEMPORAL_ADDRESS
# (temporal:7233; `ui` and `namespace`), TEMPORAL_NAMESPACE (default),
# TEMPORAL_RETENTION_HOURS (72).
# The TC_* variables are read by tc_render (cluster-lib.sh) through indirection.
# shellcheck disable=SC2034
set -euo pipefail
HERE=/opt/temporal
CONFIG_DIR=/etc/temporal

log() { printf '[temporal-%s] %s\n' "${COMMAND:-entrypoint}" "$*" >&2; }
die() {
  log "$*"
  exit 1
}

# shellcheck source=cluster-lib.sh
source "$HERE/cluster-lib.sh"

PORT=7233
tc_ports "$PORT"
NAMESPACE=${TEMPORAL_NAMESPACE:-default}
[[ "$NAMESPACE" =~ ^[A-Za-z0-9._-]+$ ]] || die "bad TEMPORAL_NAMESPACE '$NAMESPACE'"

cmd_server() {
  local host=${POSTGRES_HOST:-postgres} port=${POSTGRES_PORT:-5432} i
  [[ -n "${POSTGRES_PASSWORD:-}" ]] || die "POSTGRES_PASSWORD is not set"
  for ((i = 0; ; i++)); do
    (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null && break
    ((i < 120)) || die "PostgreSQL at $host:$port does not answer"
    sleep 1
  done
  TC_DB_NAME=temporal
  TC_VISIBILITY_DB_NAME=temporal_visibility
  log "schemas on $host:$port (create or update)"
  SQL_HOST=$host SQL_PORT=$port SQL_USER=${POSTGRES_USER:-temporal} SQL_PASSWORD=$POSTGRES_PASSWORD \
    tc_schema /usr/local/bin/temporal-sql-tool "$HERE/schema/postgresql/v12" >/tmp/schema.log 2>&1 ||
    die "schema setup failed: $(tail -n 20 /tmp/schema.log)"

  TC_LOG_LEVEL=${TEMPORAL_LOG_LEVEL:-warn}
  TC_NUM_HISTORY_SHARDS=${TEMPORAL_NUM_HISTORY_SHARDS:-4}
  TC_PG_ADDRESS=$host:$port
  TC_PG_USER=${POSTGRES_USER:-temporal}
  TC_PG_PASSWORD=$POSTGRES_PASSWORD
  # Bound to every address of the container; the others reach it at its own address.
  TC_BIND_IP=0.0.0.0
  TC_BROADCAST_ADDRESS=$(hostname -i | awk '{ print $1 }')
  TC_DYNAMIC_CONFIG_FILE=$HERE/dynamicconfig.yaml
  (
    umask 077
    tc_render "$HERE/server.yaml.tmpl" >"$CONFIG_DIR/temporal.yaml"
  )
  unset POSTGRES_PASSWORD TC_PG_PASSWORD
  log "temporal-server $(temporal-server --version | awk '{ print $NF }') on :$PORT ($TC_BROADCAST_ADDRESS)"
  exec temporal-server --config-file "$CONFIG_DIR/temporal.yaml" --allow-no-auth start
}

cmd_ui() {
  TC_FRONTEND_ADDRESS=${TEMPORAL_ADDRESS:-temporal:7233}
  TC_UI_BIND_IP=0.0.0.0
  TC_UI_PORT=8233
  TC_NAMESPACE=$NAMESPACE
  mkdir -p "$CONFIG_DIR/ui"
  tc_render "$HERE/ui.yaml.tmpl" >"$CONFIG_DIR/ui/cluster.yaml"
  exec temporal-ui-server --root "$CONFIG_DIR" --config ui --env cluster start
}

cmd_namespace() {
  local address=${TEMPORAL_ADDRESS:-temporal:7233} out
  # The frontend's HTTP API, in the port layout of the server at that address.
  tc_ports "${address##*:}"
  out=$(tc_ensure_namespace "http://${address%:*}:$TC_FRONTEND_HTTP_PORT" "$NAMESPACE" \
    $((${TEMPORAL_RETENTION_HOURS:-72} * 3600)) 180) || die "namespace $NAMESPACE is not usable"
  if [[ "$out" == *registered* ]]; then
    log "registered namespace $NAMESPACE"
  else
    log "namespace $NAMESPACE exists"
  fi
}

cmd_health() {
  curl -fsS -m 3 -o /dev/null "http://127.0.0.1:$TC_FRONTEND_HTTP_PORT/api/v1/cluster-info"
}

COMMAND=${1:-server}
case "$COMMAND" in
  server) cmd_server ;;
  ui) cmd_ui ;;
  namespace) cmd_namespace ;;
  health) cmd_health ;;
  *) die "usage: entrypoint.sh server | ui | namespace | health" ;;
esac
