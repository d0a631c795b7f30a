#!/usr/bin/env bash
# A production-shaped Temporal cluster on this machine, for bridges on this and other hosts
# (docs/deploy.md): the Temporal server (frontend, history, matching and worker in one process)
# built from Go modules, on a project-local PostgreSQL 15 (Debian's postgresql-15), plus the
# Temporal Web UI server. Bridges use it with TEMPORAL_ADDRESS.
#
#   bash scripts/temporal-cluster.sh install     # build the binaries once (cached; then instant)
#   bash scripts/temporal-cluster.sh start [--dir DIR] [--port N] [--pg-port N] [--ui-port N]
#                                          [--namespace NS]
#       # stdout: exactly one line, TEMPORAL_ADDRESS=127.0.0.1:N
#   bash scripts/temporal-cluster.sh status [--dir DIR]
#   bash scripts/temporal-cluster.sh stop [--dir DIR]
#
# Measured on the 2-core development machine: `install` into an empty cache directory 470 s
# (7.8 min) with an empty Go build cache (the modules already in the Go module cache), 12 s when
# the Go build cache is warm; `start` on a fresh DIR 4 s (initdb, schemas, server healthy,
# namespace usable, Web UI); `start` after `kill -9` of the server 1 s; `start` of a running
# cluster 0.15 s; `install` when installed 0.01 s.
#
# install: go.temporal.io/server cmd/server (as temporal-server) and cmd/tools/sql (as
# temporal-sql-tool) at TEMPORAL_SERVER_VERSION with `go install`, and the Web UI server
# github.com/temporalio/ui-server/v2 cmd/server (as temporal-ui-server; the UI's assets are
# embedded in it) at TEMPORAL_UI_SERVER_VERSION with `go build` in the module
# docker/temporal/ui-server/ (its go.mod says why), all under GOTOOLCHAIN=$GO_TOOLCHAIN (the
# server module needs a newer Go than the machine's; the go command fetches that toolchain from
# the Go module proxy), into
#   ${ARMORCLAW_CACHE_DIR:-/var/cache/armorclaw}/temporal-server-<version>/
#     bin/temporal-server, bin/temporal-sql-tool, bin/temporal-ui-server
#     schema/postgresql/v12/      the SQL schemas, copied from the server module's source
#     .done                       what was built; .lock serialises concurrent installs
# (as non-root without ARMORCLAW_CACHE_DIR: ${XDG_CACHE_HOME:-~/.cache}/armorclaw/).
#
# start (DIR defaults to .state/cluster; ports 7233, 5433, 8233; namespace `default`):
#   DIR/pg/                   PostgreSQL's data (initdb as the `postgres` OS user when run as
#                             root), on 127.0.0.1:PG_PORT and a socket in DIR/pg-sock/;
#                             log DIR/postgres.log. Role `temporal` with a password
#                             generated once into DIR/pg-password (0600); databases
#                             `temporal` and `temporal_visibility`, schemas by temporal-sql-tool.
#   DIR/temporal.yaml         the server's config (0600: it holds the password), rendered from
#                             docker/temporal/server.yaml.tmpl; DIR/dynamicconfig.yaml
#   DIR/temporal-server.pid   the server's pid; log DIR/temporal-server.log. The server uses
#                             ports PORT..PORT+8 (docker/temporal/cluster-lib.sh), bound to
#                             127.0.0.1: give two clusters ports at least 10 apart.
#   DIR/temporal-ui.pid       the Web UI server's pid (http://127.0.0.1:UI_PORT); its config
#                             DIR/ui/cluster.yaml, log DIR/temporal-ui.log
# Everything that already runs for DIR is reused; a server whose pid file names a dead process
# (kill -9) is started again on the same database. A server or PostgreSQL of DIR that runs on
# other ports than asked for is an error (stop it first). TEMPORAL_CLUSTER_LOG_LEVEL sets the
# server's log level (default warn).
# Progress goes to stderr as `[temporal-cluster] …`.
# The TC_* variables are read by tc_render (docker/temporal/cluster-lib.sh) through indirection.
# shellcheck disable=SC2034
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

TEMPORAL_SERVER_VERSION=1.32.2
TEMPORAL_UI_SERVER_VERSION=2.58.1
# go.temporal.io/server 1.32 needs Go >= 1.26.10; this is the toolchain approved for it.
GO_TOOLCHAIN=go1.27.3

log() { printf '[temporal-cluster] %s\n' "$*" >&2; }
die() {
  log "$*"
  exit 1
}

# shellcheck source=lib/cache-dir.sh
source scripts/lib/cache-dir.sh
# shellcheck source=../docker/temporal/cluster-lib.sh
source docker/temporal/cluster-lib.sh

CACHE="$(armorclaw_cache_base)/temporal-server-$TEMPORAL_SERVER_VERSION"
BIN="$CACHE/bin"
SCHEMA="$CACHE/schema/postgresql/v12"
STAMP_WANT="server $TEMPORAL_SERVER_VERSION ui-server $TEMPORAL_UI_SERVER_VERSION toolchain $GO_TOOLCHAIN \
module $(cat docker/temporal/ui-server/go.mod docker/temporal/ui-server/go.sum | sha256sum | cut -c1-16)"

# --- install ----------------------------------------------------------------------------------
installed() { [[ -f "$CACHE/.done" && "$(<"$CACHE/.done")" == "$STAMP_WANT" ]]; }

find_go() {
  if command -v go >/dev/null 2>&1; then
    command -v go
  elif [[ -x /usr/local/go/bin/go ]]; then
    echo /usr/local/go/bin/go
  else
    die "no Go toolchain: install Go (any version able to fetch $GO_TOOLCHAIN) or put it on PATH"
  fi
}

cmd_install() {
  installed && return 0
  mkdir -p "$CACHE"
  # One build per cache directory at a time; whoever waited finds it done.
  exec 8>"$CACHE/.lock"
  flock 8
  if installed; then
    exec 8>&-
    return 0
  fi
  local go start=$SECONDS work server_dir
  go=$(find_go)
  export GOTOOLCHAIN=$GO_TOOLCHAIN
  work="$CACHE/build"
  rm -rf "$work"
  mkdir -p "$work/server" "$work/ui"
  log "building temporal-server and temporal-sql-tool $TEMPORAL_SERVER_VERSION (go install; minutes on a cold cache)"
  GOBIN="$work/server" "$go" install \
    "go.temporal.io/server/cmd/server@v$TEMPORAL_SERVER_VERSION" \
    "go.temporal.io/server/cmd/tools/sql@v$TEMPORAL_SERVER_VERSION" 8>&-
  # The Web UI server from its own small module (docker/temporal/ui-server/go.mod says why).
  log "building temporal-ui-server $TEMPORAL_UI_SERVER_VERSION (go build)"
  "$go" build -C docker/temporal/ui-server -o "$work/ui/server" \
    github.com/temporalio/ui-server/v2/cmd/server 8>&-

  server_dir=$(cd "$work" && "$go" mod download -json "go.temporal.io/server@v$TEMPORAL_SERVER_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [[ -d "$server_dir/schema/postgresql/v12" ]] || die "no schema/postgresql/v12 in the server module ($server_dir)"

  local got
  got=$("$work/server/server" --version)
  [[ "$got" == *" $TEMPORAL_SERVER_VERSION" ]] || die "temporal-server --version printed '$got'"
  got=$("$work/ui/server" --version)
  [[ "$got" == *"$TEMPORAL_UI_SERVER_VERSION"* ]] || die "temporal-ui-server --version printed '$got'"

  rm -rf "$BIN" "$CACHE/schema"
  mkdir -p "$BIN" "$(dirname "$SCHEMA")"
  mv "$work/server/server" "$BIN/temporal-server"
  mv "$work/server/sql" "$BIN/temporal-sql-tool"
  mv "$work/ui/server" "$BIN/temporal-ui-server"
  # The module cache is read-only; the copy must not be.
  cp -R "$server_dir/schema/postgresql/v12" "$SCHEMA"
  chmod -R u+w,go+rX "$CACHE/schema"
  rm -rf "$work"
  echo "$STAMP_WANT" >"$CACHE/.done"
  exec 8>&-
  log "installed into $CACHE ($((SECONDS - start)) s)"
}

# --- shared by start, stop, status -------------------------------------------------------------
DIR="$ROOT/.state/cluster"
PORT=7233
PG_PORT=5433
UI_PORT=8233
NAMESPACE=default

parse_flags() {
  local allowed=$1
  shift
  while (($#)); do
    local flag=$1
    [[ " $allowed " == *" $flag "* ]] || die "unknown option $flag (usage: see the top of $0)"
    (($# >= 2)) || die "$flag needs a value"
    case "$flag" in
      --dir) DIR=$2 ;;
      --port) PORT=$2 ;;
      --pg-port) PG_PORT=$2 ;;
      --ui-port) UI_PORT=$2 ;;
      --namespace) NAMESPACE=$2 ;;
    esac
    shift 2
  done
  for p in "$PORT" "$PG_PORT" "$UI_PORT"; do
    if [[ ! "$p" =~ ^[0-9]+$ ]] || ((p < 1 || p > 65535)); then die "bad port $p"; fi
  done
  [[ "$NAMESPACE" =~ ^[A-Za-z0-9._-]+$ ]] || die "bad namespace '$NAMESPACE'"
}

# Files of DIR.
set_paths() {
  PGDATA="$DIR/pg"
  PGSOCK="$DIR/pg-sock"
  PG_LOG="$DIR/postgres.log"
  PW_FILE="$DIR/pg-password"
  SERVER_CONFIG="$DIR/temporal.yaml"
  SERVER_PID="$DIR/temporal-server.pid"
  SERVER_LOG="$DIR/temporal-server.log"
  UI_PID="$DIR/temporal-ui.pid"
  UI_LOG="$DIR/temporal-ui.log"
}

# PostgreSQL refuses to run as root: as root, its programs run as the `postgres` OS user.
if [[ $(id -u) -eq 0 ]]; then
  PG_OWNER=postgres
  AS_PG=(runuser -u postgres --)
else
  PG_OWNER=$(id -un)
  AS_PG=()
fi
PG_BIN=/usr/lib/postgresql/15/bin

# The pid in FILE when that process is alive and its command line contains every other argument.
pid_of() {
  local file=$1 pid cmdline
  shift
  [[ -f "$file" ]] || return 1
  pid=$(<"$file")
  [[ "$pid" =~ ^[0-9]+$ ]] && [[ -r "/proc/$pid/cmdline" ]] || return 1
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  for want in "$@"; do [[ "$cmdline" == *"$want"* ]] || return 1; done
  echo "$pid"
}
server_pid() { pid_of "$SERVER_PID" temporal-server "$SERVER_CONFIG"; }
ui_pid() { pid_of "$UI_PID" temporal-ui-server "$DIR"; }
pg_running() { [[ -f "$PGDATA/PG_VERSION" ]] && "${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; }
# The port a running PostgreSQL of DIR listens on (line 4 of postmaster.pid).
pg_port() { sed -n 4p "$PGDATA/postmaster.pid" 2>/dev/null; }
# The frontend's gRPC port in the server config of DIR.
config_port() { sed -n '/^  frontend:/,/grpcPort/s/^ *grpcPort: *//p' "$SERVER_CONFIG" 2>/dev/null; }

# The `temporal` CLI the project installs (ARMORCLAW_TEMPORAL_CLI, as for the bridge).
find_cli() {
  TEMPORAL_CLI=${ARMORCLAW_TEMPORAL_CLI:-$ROOT/.tools/venv/bin/temporal}
  [[ -x "$TEMPORAL_CLI" ]] || TEMPORAL_CLI=$(command -v temporal 2>/dev/null) ||
    die "no temporal CLI: run bash scripts/setup.sh (it installs .tools/venv/bin/temporal)"
}
temporal_cli() { timeout 20 "$TEMPORAL_CLI" "$@" --address "127.0.0.1:$PORT"; }
healthy() { temporal_cli operator cluster health >/dev/null 2>&1; }

# True when something accepts connections on 127.0.0.1:$1.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Sends TERM, waits up to $2 seconds, then KILL.
terminate() {
  local pid=$1 wait=$2 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < wait * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

# --- start ------------------------------------------------------------------------------------
start_postgres() {
  if [[ $(id -u) -eq 0 ]]; then
    # The postgres user must reach DIR/pg; the secrets in DIR are 0600 files of root's.
    chmod 0711 "$DIR"
    runuser -u postgres -- test -x "$DIR" ||
      die "the postgres user cannot enter $DIR (a parent directory is closed to it); use --dir elsewhere, e.g. under /tmp or /srv"
  fi
  if [[ ! -f "$PGDATA/PG_VERSION" ]]; then
    log "initdb $PGDATA (as $PG_OWNER)"
    rm -rf "$PGDATA"
    install -d -m 0700 -o "$PG_OWNER" "$PGDATA"
    "${AS_PG[@]}" "$PG_BIN/initdb" -D "$PGDATA" -E UTF8 --locale=C.UTF-8 \
      --auth-local=peer --auth-host=scram-sha-256 >"$DIR/initdb.log" 2>&1 ||
      die "initdb failed: $(tail -n 20 "$DIR/initdb.log")"
    echo "include_if_exists = 'armorclaw.conf'" >>"$PGDATA/postgresql.conf"
  fi
  if pg_running; then
    [[ "$(pg_port)" == "$PG_PORT" ]] ||
      die "PostgreSQL of $DIR runs on port $(pg_port), not $PG_PORT: stop it first (bash $0 stop --dir $DIR)"
    return 0
  fi
  ! port_busy "$PG_PORT" || die "port $PG_PORT is in use (choose another with --pg-port)"
  install -d -m 0755 -o "$PG_OWNER" "$PGSOCK"
  printf '%s\n' \
    "# Written by scripts/temporal-cluster.sh start (included from postgresql.conf)." \
    "listen_addresses = '127.0.0.1'" \
    "port = $PG_PORT" \
    "unix_socket_directories = '${PGSOCK//\'/\'\'}'" \
    "max_connections = 200" \
    "password_encryption = scram-sha-256" >"$PGDATA/armorclaw.conf"
  chown "$PG_OWNER" "$PGDATA/armorclaw.conf"
  [[ -f "$PG_LOG" ]] || install -m 0600 -o "$PG_OWNER" /dev/null "$PG_LOG"
  log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
  # Its own session: a signal to the caller's process group does not reach it.
  setsid -w "${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$PG_LOG" -w -t 60 start \
    </dev/null >/dev/null 2>&1 8>&- 9>&- ||
    die "PostgreSQL did not start: $(tail -n 20 "$PG_LOG")"
}

# The role and its password (once), the databases and their schemas (every start: a no-op
# when they are current).
setup_database() {
  local pw
  if [[ ! -s "$PW_FILE" ]]; then
    (
      umask 077
      od -An -vtx1 -N24 /dev/urandom | tr -d ' \n' >"$PW_FILE.part"
    )
    mv -f "$PW_FILE.part" "$PW_FILE"
  fi
  pw=$(<"$PW_FILE")
  [[ "$pw" =~ ^[0-9a-f]{48}$ ]] || die "$PW_FILE is not what this script wrote; remove it to have a new one"
  # The password travels on psql's stdin, never on a command line.
  "${AS_PG[@]}" "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PGSOCK" -p "$PG_PORT" -d postgres \
    >/dev/null 2>"$DIR/psql.log" <<SQL || die "could not create the temporal role: $(cat "$DIR/psql.log")"
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'temporal') THEN
    CREATE ROLE temporal LOGIN CREATEDB;
  END IF;
END \$\$;
ALTER ROLE temporal WITH LOGIN CREATEDB PASSWORD '$pw';
SQL
  TC_DB_NAME=temporal
  TC_VISIBILITY_DB_NAME=temporal_visibility
  SQL_HOST=127.0.0.1 SQL_PORT=$PG_PORT SQL_USER=temporal SQL_PASSWORD=$pw \
    tc_schema "$BIN/temporal-sql-tool" "$SCHEMA" >"$DIR/schema.log" 2>&1 ||
    die "schema setup failed: $(tail -n 20 "$DIR/schema.log")"
}

write_server_config() {
  local pw
  pw=$(<"$PW_FILE")
  tc_ports "$PORT"
  TC_LOG_LEVEL=${TEMPORAL_CLUSTER_LOG_LEVEL:-warn}
  TC_NUM_HISTORY_SHARDS=4
  TC_PG_ADDRESS=127.0.0.1:$PG_PORT
  TC_PG_USER=temporal
  TC_PG_PASSWORD=$pw
  TC_BIND_IP=127.0.0.1
  TC_BROADCAST_ADDRESS=127.0.0.1
  TC_DYNAMIC_CONFIG_FILE=$DIR/dynamicconfig.yaml
  cp docker/temporal/dynamicconfig.yaml "$DIR/dynamicconfig.yaml.part"
  mv -f "$DIR/dynamicconfig.yaml.part" "$DIR/dynamicconfig.yaml"
  (
    umask 077
    tc_render docker/temporal/server.yaml.tmpl >"$SERVER_CONFIG.part"
  )
  mv -f "$SERVER_CONFIG.part" "$SERVER_CONFIG"
  unset TC_PG_PASSWORD
}

start_server() {
  local pid i
  if pid=$(server_pid); then
    # Running: the config names its port.
    [[ "$(config_port)" == "$PORT" ]] ||
      die "the server of $DIR (pid $pid) runs with other ports than --port $PORT: stop it first"
  else
    for ((i = PORT; i <= PORT + 8; i++)); do
      ! port_busy "$i" || die "port $i is in use: the server needs $PORT..$((PORT + 8)) (choose another --port)"
    done
    write_server_config
    log "starting temporal-server $TEMPORAL_SERVER_VERSION on 127.0.0.1:$PORT"
    printf '\n=== %s start ===\n' "$(date -u +%FT%TZ)" >>"$SERVER_LOG"
    chmod 0600 "$SERVER_LOG"
    setsid nohup "$BIN/temporal-server" --config-file "$SERVER_CONFIG" --allow-no-auth start \
      </dev/null >>"$SERVER_LOG" 2>&1 8>&- 9>&- &
    pid=$!
    echo "$pid" >"$SERVER_PID"
  fi
  for ((i = 0; i < 120; i++)); do
    healthy && return 0
    kill -0 "$pid" 2>/dev/null || die "temporal-server exited; the end of $SERVER_LOG:
$(tail -n 40 "$SERVER_LOG")"
    sleep 0.5
  done
  die "temporal-server is not healthy after 60 s; the end of $SERVER_LOG:
$(tail -n 40 "$SERVER_LOG")"
}

# The namespace, through the frontend's HTTP API (tc_ensure_namespace: it waits until every
# service of the server knows a namespace it registered).
ensure_namespace() {
  local out
  tc_ports "$PORT"
  out=$(tc_ensure_namespace "http://127.0.0.1:$TC_FRONTEND_HTTP_PORT" "$NAMESPACE" $((72 * 3600)) 60 2>&1) ||
    die "namespace $NAMESPACE: $out"
  [[ "$out" != *registered* ]] || log "registered namespace $NAMESPACE (retention 72h)"
}

start_ui() {
  local pid i
  if pid=$(ui_pid); then
    grep -q "^port: $UI_PORT\$" "$DIR/ui/cluster.yaml" ||
      die "the Web UI of $DIR (pid $pid) runs on another port than --ui-port $UI_PORT: stop it first"
    return 0
  fi
  ! port_busy "$UI_PORT" || die "port $UI_PORT is in use (choose another with --ui-port)"
  TC_FRONTEND_ADDRESS=127.0.0.1:$PORT
  TC_UI_BIND_IP=127.0.0.1
  TC_UI_PORT=$UI_PORT
  TC_NAMESPACE=$NAMESPACE
  mkdir -p "$DIR/ui"
  tc_render docker/temporal/ui.yaml.tmpl >"$DIR/ui/cluster.yaml.part"
  mv -f "$DIR/ui/cluster.yaml.part" "$DIR/ui/cluster.yaml"
  log "starting temporal-ui-server $TEMPORAL_UI_SERVER_VERSION on 127.0.0.1:$UI_PORT"
  setsid nohup "$BIN/temporal-ui-server" --root "$DIR" --config ui --env cluster start \
    </dev/null >>"$UI_LOG" 2>&1 8>&- 9>&- &
  pid=$!
  echo "$pid" >"$UI_PID"
  for ((i = 0; i < 100; i++)); do
    curl -fsS -o /dev/null "http://127.0.0.1:$UI_PORT/" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  die "the Web UI did not come up; the end of $UI_LOG:
$(tail -n 20 "$UI_LOG")"
}

cmd_start() {
  parse_flags "--dir --port --pg-port --ui-port --namespace" "$@"
  ((PORT + 8 <= 65535)) || die "--port $PORT: the server needs PORT..PORT+8"
  for p in "$PG_PORT" "$UI_PORT"; do
    ((p < PORT || p > PORT + 8)) || die "port $p is among the server's ports $PORT..$((PORT + 8))"
  done
  [[ "$PG_PORT" != "$UI_PORT" ]] || die "--pg-port and --ui-port are both $PG_PORT"
  command -v curl >/dev/null || die "curl is missing (apt-get install curl)"
  find_cli
  cmd_install
  mkdir -p "$DIR"
  DIR=$(cd "$DIR" && pwd -P)
  set_paths
  # One start (or stop) per DIR at a time.
  exec 9>"$DIR/.lock"
  flock 9
  local start=$SECONDS
  start_postgres
  if ! server_pid >/dev/null; then setup_database; fi
  start_server
  ensure_namespace
  start_ui
  exec 9>&-
  log "ready in $((SECONDS - start)) s: Temporal 127.0.0.1:$PORT (namespace $NAMESPACE), Web UI http://127.0.0.1:$UI_PORT, PostgreSQL 127.0.0.1:$PG_PORT; state in $DIR"
  echo "TEMPORAL_ADDRESS=127.0.0.1:$PORT"
}

# --- stop, status -----------------------------------------------------------------------------
cmd_stop() {
  parse_flags "--dir" "$@"
  [[ -d "$DIR" ]] || return 0
  DIR=$(cd "$DIR" && pwd -P)
  set_paths
  exec 9>"$DIR/.lock"
  flock 9
  local pid
  if pid=$(ui_pid); then
    log "stopping the Web UI (pid $pid)"
    terminate "$pid" 10
  fi
  rm -f "$UI_PID"
  if pid=$(server_pid); then
    log "stopping temporal-server (pid $pid)"
    terminate "$pid" 30
  fi
  rm -f "$SERVER_PID"
  if pg_running; then
    log "stopping PostgreSQL"
    "${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null 2>&1 9>&- ||
      die "pg_ctl stop failed: $(tail -n 20 "$PG_LOG")"
  fi
  exec 9>&-
}

cmd_status() {
  parse_flags "--dir" "$@"
  find_cli
  local pid port all=0
  if [[ ! -d "$DIR" ]]; then
    echo "no cluster in $DIR"
    exit 3
  fi
  DIR=$(cd "$DIR" && pwd -P)
  set_paths
  if pg_running; then
    echo "postgres:        running (127.0.0.1:$(pg_port), data $PGDATA)"
  else
    echo "postgres:        stopped"
    all=3
  fi
  if pid=$(server_pid); then
    port=$(config_port)
    PORT=$port
    if healthy; then
      echo "temporal-server: running (pid $pid, TEMPORAL_ADDRESS=127.0.0.1:$port, healthy)"
    else
      echo "temporal-server: running (pid $pid, 127.0.0.1:$port, not healthy)"
      all=3
    fi
  else
    echo "temporal-server: stopped"
    all=3
  fi
  if pid=$(ui_pid); then
    echo "temporal-ui:     running (pid $pid, http://127.0.0.1:$(sed -n 's/^port: *//p' "$DIR/ui/cluster.yaml"))"
  else
    echo "temporal-ui:     stopped"
    all=3
  fi
  exit "$all"
}

case "${1:-}" in
  install)
    shift
    (($# == 0)) || die "install takes no options"
    cmd_install
    ;;
  start)
    shift
    cmd_start "$@"
    ;;
  stop)
    shift
    cmd_stop "$@"
    ;;
  status)
    shift
    cmd_status "$@"
    ;;
  *) die "usage: $0 install | start [--dir DIR] [--port N] [--pg-port N] [--ui-port N] [--namespace NS] | stop [--dir DIR] | status [--dir DIR]" ;;
esac
