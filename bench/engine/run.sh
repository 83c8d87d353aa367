#!/usr/bin/env bash
# Embedded engine against llama.cpp itself: same GGUF, same thread count, same build flags.
#
#   bench/engine/run.sh [THREADS]        (default 2)
#
# Builds llama.cpp's llama-bench and llama-batched-bench (cached under $BENCH_DIR), runs them, runs our engine_bench example
# (release build) through the engine's public interface, and prints both with ratios.
# Needs cmake and a C++ compiler, like the engine itself.
set -euo pipefail
cd "$(dirname "$0")/../.."

THREADS="${1:-2}"
PROMPT=512
GEN=128
PARALLEL=4
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/switchyard-target}"
BENCH_DIR="${BENCH_DIR:-/var/tmp/switchyard-llama-bench}"
OUT="${OUT_DIR:-bench/out/engine}"
mkdir -p "$OUT" "$BENCH_DIR"

# The model, fetched if needed.
cargo run -q --release -p switchyard -- models pull gemma3-270m >&2
GGUF="$(cargo run -q --release -p switchyard -- models path gemma3-270m)"

# llama.cpp's own bench tools. llama-cpp-sys-2 vendors llama.cpp without its tools, and model
# hubs and GitHub are out of reach here, so the source comes from PyPI: the sdist of
# llama-cpp-python, which carries a whole llama.cpp tree (a nearby llama.cpp version, not the
# identical commit; both builds print their build info). Built with the flags
# .cargo/config.toml gives the engine.
LCP_VERSION=0.3.36
if [ ! -x "$BENCH_DIR/build/bin/llama-bench" ] || [ ! -x "$BENCH_DIR/build/bin/llama-batched-bench" ]; then
  echo "fetching llama.cpp (llama-cpp-python $LCP_VERSION sdist) and building its bench tools (minutes on 2 cores)" >&2
  if [ ! -d "$BENCH_DIR/src" ]; then
    python3 -m pip download --no-binary :all: --no-deps -q -d "$BENCH_DIR/dl" "llama-cpp-python==$LCP_VERSION"
    tar xzf "$BENCH_DIR/dl/llama_cpp_python-$LCP_VERSION.tar.gz" -C "$BENCH_DIR/dl"
    mv "$BENCH_DIR/dl/llama_cpp_python-$LCP_VERSION/vendor/llama.cpp" "$BENCH_DIR/src"
    rm -rf "$BENCH_DIR/dl"
  fi
  cmake -S "$BENCH_DIR/src" -B "$BENCH_DIR/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
    -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
    -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF \
    -DGGML_OPENMP=OFF -DGGML_CPU_ALL_VARIANTS=OFF -DGGML_BACKEND_DL=OFF \
    -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_EXAMPLES=OFF >&2
  cmake --build "$BENCH_DIR/build" -j"$(nproc)" --target llama-bench llama-batched-bench >&2
fi
BIN="$BENCH_DIR/build/bin"

echo "llama-bench: pp$PROMPT / tg$GEN, $THREADS threads" >&2
"$BIN/llama-bench" -m "$GGUF" -t "$THREADS" -p "$PROMPT" -n "$GEN" -r 3 -o json \
  > "$OUT/llama-bench.json"
echo "llama-batched-bench: $PARALLEL sequences" >&2
"$BIN/llama-batched-bench" -m "$GGUF" -t "$THREADS" -c 8192 -b 512 -ub 512 \
  -npp 16 -ntg "$GEN" -npl "1,$PARALLEL" --output-format jsonl 2>/dev/null \
  | grep '^{' > "$OUT/llama-batched-bench.jsonl"

echo "switchyard engine_bench" >&2
cargo run -q --release -p switchyard-engine --example engine_bench -- \
  --model "$GGUF" --threads "$THREADS" --prompt "$PROMPT" --gen "$GEN" --parallel "$PARALLEL" \
  > "$OUT/switchyard.json"

python3 - "$OUT" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
lb = json.loads((out / "llama-bench.json").read_text())
pp = next(r for r in lb if r["n_prompt"] > 0 and r["n_gen"] == 0)["avg_ts"]
tg = next(r for r in lb if r["n_gen"] > 0 and r["n_prompt"] == 0)["avg_ts"]
bb = [json.loads(l) for l in (out / "llama-batched-bench.jsonl").read_text().splitlines()]
tg1 = next(r for r in bb if r["pl"] == 1)["speed_tg"]
tgn_row = max(bb, key=lambda r: r["pl"])
sy = json.loads((out / "switchyard.json").read_text())
rows = [
    ("prefill tokens/s (pp%d)" % sy["prompt_tokens"], pp, sy["prefill_tps"]),
    ("decode tokens/s, 1 stream", tg, sy["decode_tps"]),
    ("decode tokens/s, %d streams (aggregate)" % tgn_row["pl"], tgn_row["speed_tg"], sy["aggregate_decode_tps"]),
]
print(f"{'':42} {'llama.cpp':>10} {'switchyard':>11} {'ratio':>6}")
for name, base, ours in rows:
    print(f"{name:42} {base:10.1f} {ours:11.1f} {ours / base:6.2f}")
print(f"{'batched-bench decode, 1 stream':42} {tg1:10.1f}")
print(f"time to first token, {sy['prompt_tokens']}-token prompt: {sy['ttft_ms_long_prompt']:.0f} ms; "
      f"short prompt: {sy['ttft_ms_short_prompt']:.0f} ms")
print(f"aggregate/single decode: llama.cpp {tgn_row['speed_tg'] / tg1:.2f}x, "
      f"switchyard {sy['aggregate_decode_tps'] / sy['decode_tps']:.2f}x")
PY
