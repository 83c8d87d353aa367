#!/usr/bin/env bash
# Where Switchyard's request path spends its CPU: `perf record` on the release binary while wrk
# drives the OpenAI path at concurrency 32 (non-streaming), against the fixed-answer nginx.
# Not part of CI. Needs perf (Debian: linux-perf), nginx and wrk.
#
#   bench/gateway/profile.sh            (PROF_SECS=6, PROF_HZ=499; SWITCHYARD_BIN to skip the build)
#
# Writes to bench/out/gateway-profile/ (BENCH_OUT): perf-flat.txt (self time by symbol),
# perf-crates.txt (self time summed by crate/module), perf-callers.txt (inclusive time with DWARF
# call graphs), perf-folded.txt (folded stacks for a flamegraph) and perf-ours.txt (CPU by
# thread, inclusive share of our functions).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${BENCH_OUT:-$root/bench/out/gateway-profile}
secs=${PROF_SECS:-6}
hz=${PROF_HZ:-499}
mkdir -p "$out"
if [ -z "${SWITCHYARD_BIN:-}" ]; then
  cargo build --release -q -p switchyard --manifest-path "$root/Cargo.toml"
  bin=${CARGO_TARGET_DIR:-$root/target}/release/switchyard
else
  bin=$SWITCHYARD_BIN
fi
. "$here/one-lane.sh"
rm -f "$out"/ledger.db* "$out"/perf-*
nginx -c "$out/nginx.conf" -p "$out"
SWITCHYARD_LOG=warn "$bin" serve --config "$out/switchyard.yaml" --listen 127.0.0.1:18091 > "$out/switchyard.log" 2>&1 &
sw=$!
trap 'kill $sw 2>/dev/null; kill $(cat "$out/nginx.pid") 2>/dev/null || true' EXIT
sleep 1
url=http://127.0.0.1:18091/v1/chat/completions
wrk -t2 -c32 -d2s -s "$here/post.lua" "$url" > /dev/null # warm-up

# Flat profile: cheap, so the rate is what it would be without the profiler.
wrk -t2 -c32 -d"$((secs + 2))s" -s "$here/post.lua" "$url" > "$out/wrk-flat.txt" &
w=$!
sleep 1
perf record -q -F "$hz" -p "$sw" -o "$out/perf-flat.data" -- sleep "$secs" 2> /dev/null
wait $w
perf report -i "$out/perf-flat.data" --no-children --sort sym --stdio --percent-limit 0.3 2> /dev/null \
  | grep -v '^$' > "$out/perf-flat.txt"

# Call graphs through DWARF unwinding (release builds keep line tables; no frame pointers).
wrk -t2 -c32 -d"$((secs + 2))s" -s "$here/post.lua" "$url" > "$out/wrk-callers.txt" &
w=$!
sleep 1
perf record -q -F "$((hz / 2))" --call-graph dwarf,16384 -p "$sw" -o "$out/perf-dwarf.data" -- sleep "$secs" 2> /dev/null
wait $w
perf report -i "$out/perf-dwarf.data" --children --sort sym --stdio -g none --percent-limit 1 2> /dev/null \
  | grep -v '^$' > "$out/perf-callers.txt"
# Folded stacks (for flamegraph.pl / inferno-flamegraph) and a summary: CPU by thread, and the
# inclusive share of our own functions.
perf script -i "$out/perf-dwarf.data" -F comm,tid,ip,sym 2> /dev/null \
  | python3 "$here/perf-fold.py" "$out/perf-folded.txt" > "$out/perf-ours.txt"

# Self time by where the code comes from: our crates, hyper, tokio, serde_json, the kernel...
python3 - "$out/perf-flat.data" > "$out/perf-crates.txt" <<'PY'
import collections, re, subprocess, sys
text = subprocess.run(["perf", "report", "-i", sys.argv[1], "--no-children", "--sort", "sym", "--stdio",
                       "--percent-limit", "0"], capture_output=True, text=True).stdout
groups = collections.Counter()
for line in text.splitlines():
    m = re.match(r"\s+([\d.]+)%\s+\[(.)\]\s+(.*)", line)
    if not m:
        continue
    pct, kind, sym = float(m.group(1)), m.group(2), m.group(3).strip()
    if kind == "k":
        key = "kernel"
    else:
        s = re.sub(r"^<|^_<", "", sym)
        parts = s.split("::")
        key = "::".join(parts[:2]) if parts[0].startswith("switchyard") else parts[0]
        if key.startswith("0x") or key == sym and "::" not in sym:
            key = "other (libc, allocator, unresolved)"
    groups[key] += pct
for key, pct in groups.most_common(40):
    print(f"{pct:6.2f}%  {key}")
PY
echo "wrk under the flat profiler: $(awk '/Requests\/sec/{print $2}' "$out/wrk-flat.txt") req/s"
head -60 "$out/perf-flat.txt"
echo "--- by crate"
head -25 "$out/perf-crates.txt"
echo "--- call graphs: wrk under the DWARF profiler: $(awk '/Requests\/sec/{print $2}' "$out/wrk-callers.txt") req/s"
cat "$out/perf-ours.txt"
