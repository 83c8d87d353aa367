#!/usr/bin/env bash
# Install Claude Code (npm @anthropic-ai/claude-code) into its own prefix, for brain's test of
# `brain claude --local` (tests/test_claude_code_real.py) and for trying it on this machine.
#
#   scripts/install-claude-code.sh [PREFIX]      (default: .test-tools/claude-code in the project)
#
# Idempotent: when PREFIX already holds the pinned version, it does nothing. It prints the path
# of the `claude` executable on its last line, so CI can do
#   export BRAIN_TEST_CLAUDE="$(scripts/install-claude-code.sh /opt/claude-code | tail -n 1)"
#
# Pinned to the version brain's test was run with; the package is ~400 MB (a native binary).
set -euo pipefail

CLAUDE_CODE_VERSION="2.1.332"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix="${1:-$here/.test-tools/claude-code}"
exe="$prefix/node_modules/.bin/claude"

if ! command -v npm >/dev/null 2>&1; then
    echo "install-claude-code: npm is not installed (Node.js 18 or newer brings it)" >&2
    exit 1
fi

installed=""
if [[ -x "$exe" ]]; then
    installed="$("$exe" --version 2>/dev/null | awk '{print $1}' || true)"
fi

if [[ "$installed" == "$CLAUDE_CODE_VERSION" ]]; then
    echo "install-claude-code: Claude Code $installed is already in $prefix" >&2
else
    echo "install-claude-code: installing @anthropic-ai/claude-code@$CLAUDE_CODE_VERSION into $prefix" >&2
    mkdir -p "$prefix"
    npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error \
        "@anthropic-ai/claude-code@$CLAUDE_CODE_VERSION" >&2
    got="$("$exe" --version 2>/dev/null | awk '{print $1}' || true)"
    if [[ "$got" != "$CLAUDE_CODE_VERSION" ]]; then
        echo "install-claude-code: expected Claude Code $CLAUDE_CODE_VERSION, got '${got}'" >&2
        exit 1
    fi
fi

echo "$exe"
