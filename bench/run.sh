#!/usr/bin/env bash
# The speed of brain itself, measured against llm and shell-gpt on one machine in one run.
#
#   bench/run.sh            full run (about 15 minutes on 2 cores; peers' waits capped at 30 s)
#   bench/run.sh --quick    fewer runs, for trying the script out
#
# Installs brain (from this checkout), llm and shell-gpt in their own virtual environments
# under bench/out/, starts local fake OpenAI endpoints (bench/fake_openai.py), measures with
# hyperfine and /usr/bin/time, and rewrites bench/README.md with the figures.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/out"
python="${PYTHON:-python3}"
mkdir -p "$out"

need() { command -v "$1" >/dev/null 2>&1; }
if ! need hyperfine || [ ! -x /usr/bin/time ] || ! need curl; then
    echo "bench: installing hyperfine, GNU time and curl (apt-get)" >&2
    apt-get install -y hyperfine time curl >&2 || {
        echo "bench: could not install them; install hyperfine, GNU time and curl, then rerun." >&2
        exit 69
    }
fi

venv() {  # venv NAME PACKAGES...: create once; reinstall when BENCH_REINSTALL=1
    local name="$1"; shift
    local dir="$out/venv-$name"
    if [ ! -x "$dir/bin/python" ] || [ "${BENCH_REINSTALL:-0}" = 1 ]; then
        echo "bench: installing $name into $dir" >&2
        rm -rf "$dir"
        "$python" -m venv "$dir"
        "$dir/bin/pip" install -q --disable-pip-version-check "$@" >&2
    fi
}
# brain as a user gets it: a regular (not editable) install of this checkout, refreshed each run.
venv brain "$here/.."
"$out/venv-brain/bin/pip" install -q --disable-pip-version-check --no-deps --force-reinstall \
    "$here/.." >&2
venv llm llm
# sgpt imports click without declaring it (research/perf-anchors.md, note 1).
venv sgpt shell-gpt click

# brain's own time per token (TTY and piped, 4 KB to 4 MB): bench/render_cost.md, which the
# README's goal table reads. A quick run keeps to 4 KB and 400 KB.
sizes=(4000 400000 4000000)
for arg in "$@"; do [ "$arg" = --quick ] && sizes=(4000 400000); done
echo "bench: brain's time per token (bench/render_cost.py, a few minutes)" >&2
"$out/venv-brain/bin/python" "$here/render_cost.py" --sizes "${sizes[@]}" \
    --out "$here/render_cost.md" >&2

exec "$python" "$here/harness.py" "$@"
