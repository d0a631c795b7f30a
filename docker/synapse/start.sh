#!/bin/sh
# Generates homeserver.yaml (SQLite, listener on 0.0.0.0:8008, no stats) once, then runs Synapse.
set -eu
: "${SYNAPSE_SERVER_NAME:?set SYNAPSE_SERVER_NAME}"
CONFIG=/data/homeserver.yaml
if [ ! -f "$CONFIG" ]; then
  python -m synapse.app.homeserver \
    --server-name "$SYNAPSE_SERVER_NAME" \
    --config-path "$CONFIG" \
    --data-directory /data \
    --generate-config \
    --report-stats=no
  # The generated listener is loopback-only; the bridge reaches it over the compose network.
  sed -i -e '/^  - bind_addresses:$/{n;N;s/.*/    - 0.0.0.0/}' "$CONFIG"
fi
exec python -m synapse.app.homeserver --config-path "$CONFIG"
