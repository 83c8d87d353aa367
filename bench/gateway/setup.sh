#!/usr/bin/env bash
# Installs what the gateway bench needs, outside the git tree, once (idempotent: each step is
# skipped when its result is already there).
#   - nginx and wrk from Debian (nginx-light is enough: `return` and keep-alive);
#   - LiteLLM proxy, pinned, in its own virtual environment;
#   - Portkey's gateway, pinned, from npm (its build/start-server.js is run with node directly).
# BENCH_WORK (default /var/tmp/switchyard-bench) is where the peers live.
set -euo pipefail
work=${BENCH_WORK:-/var/tmp/switchyard-bench}
LITELLM_VERSION=1.106.12
PORTKEY_VERSION=1.15.2
mkdir -p "$work"

if ! command -v nginx >/dev/null || ! command -v wrk >/dev/null; then
  echo "setup: apt-get install nginx-light wrk" >&2
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light wrk >/dev/null
fi

venv=$work/litellm-venv
if [ "$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("litellm"))' 2>/dev/null)" != "$LITELLM_VERSION" ]; then
  echo "setup: litellm[proxy]==$LITELLM_VERSION into $venv (a few minutes)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q "litellm[proxy]==$LITELLM_VERSION"
fi

# @hono/node-server is pinned to 1.14.1: from 1.14.2 on, its lightweight Response keeps the
# upstream fetch response's immutable headers, and every streamed request through Portkey fails
# with "TypeError: immutable" in updateHeaders (Portkey-AI/gateway issue 1389). npm would
# otherwise pick the newest 1.x that @portkey-ai/gateway's range allows.
pk=$work/portkey
HONO_NODE_SERVER_VERSION=1.14.1
if [ "$(node -p "require('$pk/node_modules/@portkey-ai/gateway/package.json').version" 2>/dev/null)" != "$PORTKEY_VERSION" ] ||
  [ "$(node -p "require('$pk/node_modules/@hono/node-server/package.json').version" 2>/dev/null)" != "$HONO_NODE_SERVER_VERSION" ] ||
  [ -d "$pk/node_modules/@portkey-ai/gateway/node_modules/@hono/node-server" ]; then
  echo "setup: @portkey-ai/gateway@$PORTKEY_VERSION into $pk" >&2
  rm -rf "$pk" && mkdir -p "$pk"
  cat > "$pk/package.json" <<JSON
{
  "name": "switchyard-bench-portkey",
  "private": true,
  "dependencies": { "@portkey-ai/gateway": "$PORTKEY_VERSION", "@hono/node-server": "$HONO_NODE_SERVER_VERSION" },
  "overrides": { "@hono/node-server": "\$@hono/node-server" }
}
JSON
  (cd "$pk" && npm install --no-audit --no-fund -q >/dev/null 2>&1)
fi
