#!/usr/bin/env bash
# What a Temporal cluster on PostgreSQL needs in both of its homes: scripts/temporal-cluster.sh
# (the server on this machine, built from Go modules) and docker/temporal/entrypoint.sh (the
# image of docker-compose.cluster.yml). Sourced, not run; needs bash 4.
#
#   tc_ports PORT             sets the TC_*_PORT variables of the port layout around PORT
#   tc_render TEMPLATE        prints TEMPLATE with every {{NAME}} replaced by $TC_NAME
#   tc_schema SQL_TOOL DIR    creates the two databases when missing and brings both schemas to
#                             the newest versions under DIR (a copy of the server module's
#                             schema/postgresql/v12); running it again changes nothing
#   tc_ensure_namespace URL NS RETENTION_S WAIT_S
#                             registers namespace NS through the frontend's HTTP API at URL when
#                             it is missing, and returns once NS is usable
#
# The templates beside this file: server.yaml.tmpl (the server), ui.yaml.tmpl (the Web UI),
# and dynamicconfig.yaml (used as is).
#
# The TC_* variables are read by tc_render through indirection, which shellcheck cannot see.
# shellcheck disable=SC2034

# The services of one server process, on PORT..PORT+8 (leave 10 ports between two clusters):
#   PORT     frontend gRPC (what clients and bridges dial: TEMPORAL_ADDRESS)
#   PORT+1   history gRPC          PORT+5  frontend membership
#   PORT+2   matching gRPC         PORT+6  history membership
#   PORT+3   worker gRPC           PORT+7  matching membership
#   PORT+4   frontend HTTP API     PORT+8  worker membership
tc_ports() {
  local p=$1
  if [[ ! "$p" =~ ^[0-9]+$ ]] || ((p < 1 || p + 8 > 65535)); then
    printf 'tc_ports: bad port %s (PORT..PORT+8 must be valid ports)\n' "$p" >&2
    return 1
  fi
  TC_FRONTEND_GRPC_PORT=$p
  TC_HISTORY_GRPC_PORT=$((p + 1))
  TC_MATCHING_GRPC_PORT=$((p + 2))
  TC_WORKER_GRPC_PORT=$((p + 3))
  TC_FRONTEND_HTTP_PORT=$((p + 4))
  TC_FRONTEND_MEMBERSHIP_PORT=$((p + 5))
  TC_HISTORY_MEMBERSHIP_PORT=$((p + 6))
  TC_MATCHING_MEMBERSHIP_PORT=$((p + 7))
  TC_WORKER_MEMBERSHIP_PORT=$((p + 8))
}

# Placeholders stand inside single-quoted YAML strings (or are plain numbers), so a value's
# single quotes are doubled; a value may not span lines. Comment lines are copied unchanged.
tc_render() {
  local template=$1 line out rest name var value
  while IFS= read -r line || [[ -n "$line" ]]; do
    if [[ "$line" =~ ^[[:space:]]*# ]]; then
      printf '%s\n' "$line"
      continue
    fi
    out=
    while [[ "$line" == *'{{'*'}}'* ]]; do
      out+=${line%%'{{'*}
      rest=${line#*'{{'}
      name=${rest%%'}}'*}
      line=${rest#*'}}'}
      var=TC_$name
      if [[ ! "$name" =~ ^[A-Z][A-Z0-9_]*$ ]] || [[ -z "${!var+set}" ]]; then
        printf 'tc_render: %s: %s is not set\n' "$template" "$var" >&2
        return 1
      fi
      value=${!var}
      if [[ "$value" == *$'\n'* ]]; then
        printf 'tc_render: %s: %s spans lines\n' "$template" "$var" >&2
        return 1
      fi
      out+=${value//\'/\'\'}
    done
    printf '%s\n' "$out$line"
  done <"$template"
}

# The connection comes from the environment temporal-sql-tool reads itself: SQL_HOST, SQL_PORT,
# SQL_USER and SQL_PASSWORD (so the password is never on a command line). The databases are
# TC_DB_NAME and TC_VISIBILITY_DB_NAME; the user needs CREATEDB unless they exist. The tool's
# log lines go to stderr and stdout; callers redirect them.
tc_schema() {
  local tool=$1 dir=$2 db schema
  for db in "$TC_DB_NAME:temporal" "$TC_VISIBILITY_DB_NAME:visibility"; do
    schema=$dir/${db#*:}/versioned
    db=${db%%:*}
    [[ -d "$schema" ]] || {
      printf 'tc_schema: no schema directory %s\n' "$schema" >&2
      return 1
    }
    # create-database ignores an existing database; setup-schema -v 0.0 only adds the version
    # tables (and keeps a newer version); update-schema applies what is newer than the database.
    SQL_PLUGIN=postgres12 SQL_DATABASE=$db "$tool" create-database --defaultdb postgres || return 1
    SQL_PLUGIN=postgres12 SQL_DATABASE=$db "$tool" setup-schema -v 0.0 || return 1
    SQL_PLUGIN=postgres12 SQL_DATABASE=$db "$tool" update-schema -d "$schema" || return 1
  done
}

# The frontend's HTTP API (PORT+4) answers as the gRPC API does. A new namespace reaches each
# service's namespace cache a few seconds after it is registered: NS is usable once visibility
# lists its workflows and history answers "workflow not found" (not "namespace not found") for
# a workflow that does not exist. Prints "registered" when it registered NS. Needs curl.
tc_ensure_namespace() {
  local url=$1 ns=$2 retention=$3 deadline=$((SECONDS + $4)) code body
  while :; do
    code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "$url/api/v1/namespaces/$ns") || true
    [[ "$code" == 200 ]] && break
    if [[ "$code" == 404 ]]; then
      body=$(curl -s -m 10 -X POST -H 'content-type: application/json' \
        -d "{\"namespace\":\"$ns\",\"workflowExecutionRetentionPeriod\":\"${retention}s\"}" \
        "$url/api/v1/namespaces") || true
      if [[ "$body" == '{}' ]]; then
        echo registered
        continue
      fi
      [[ "$body" == *NamespaceAlreadyExists* ]] && continue
    fi
    if ((SECONDS >= deadline)); then
      printf 'tc_ensure_namespace: %s: namespace %s: HTTP %s %s\n' "$url" "$ns" "$code" "$body" >&2
      return 1
    fi
    sleep 0.5
  done
  while :; do
    code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "$url/api/v1/namespaces/$ns/workflows?pageSize=1") || true
    body=$(curl -s -m 5 "$url/api/v1/namespaces/$ns/workflows/armorclaw-namespace-probe") || true
    [[ "$code" == 200 && "$body" == *"workflow not found"* ]] && return 0
    if ((SECONDS >= deadline)); then
      printf 'tc_ensure_namespace: namespace %s is not usable: list HTTP %s, describe %s\n' "$ns" "$code" "$body" >&2
      return 1
    fi
    sleep 0.5
  done
}
