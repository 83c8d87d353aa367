#!/usr/bin/env bash
# Install the LiteLLM proxy into its own virtual environment, for brain's integration tests
# (tests/test_apex_proxy.py) and for trying `brain apex render` output on this machine.
#
#   scripts/install-litellm.sh [VENV_DIR]        (default: .litellm-venv in the project)
#
# Idempotent: when VENV_DIR already holds the pinned version, it does nothing. It prints the
# path of the `litellm` executable on its last line, so CI can do
#   export BRAIN_TEST_LITELLM="$(scripts/install-litellm.sh /opt/litellm | tail -n 1)"
#
# The version is pinned on purpose: 1.107.0 was a compromised release and must never be
# installed. Change LITELLM_VERSION only to a release you have checked.
set -euo pipefail

LITELLM_VERSION="1.106.12"
BAD_VERSIONS=("1.107.0")

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${1:-$here/.litellm-venv}"
python="${PYTHON:-python3}"

for bad in "${BAD_VERSIONS[@]}"; do
    if [[ "$LITELLM_VERSION" == "$bad" ]]; then
        echo "install-litellm: refusing to install litellm $bad (a compromised release)" >&2
        exit 1
    fi
done

installed=""
if [[ -x "$venv/bin/python" ]]; then
    installed="$("$venv/bin/python" - <<'PY' 2>/dev/null || true
from importlib.metadata import version, PackageNotFoundError
try:
    print(version("litellm"))
except PackageNotFoundError:
    pass
PY
)"
fi

if [[ "$installed" == "$LITELLM_VERSION" && -x "$venv/bin/litellm" ]]; then
    echo "install-litellm: litellm $installed is already in $venv" >&2
else
    if [[ ! -x "$venv/bin/python" ]]; then
        echo "install-litellm: creating a virtual environment in $venv" >&2
        "$python" -m venv "$venv"
    fi
    echo "install-litellm: installing litellm[proxy]==$LITELLM_VERSION into $venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "litellm[proxy]==$LITELLM_VERSION"
    got="$("$venv/bin/python" -c 'from importlib.metadata import version; print(version("litellm"))')"
    if [[ "$got" != "$LITELLM_VERSION" ]]; then
        echo "install-litellm: expected litellm $LITELLM_VERSION, got $got" >&2
        exit 1
    fi
fi

echo "$venv/bin/litellm"
