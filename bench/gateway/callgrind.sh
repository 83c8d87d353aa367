#!/usr/bin/env bash
# Instructions per request on Switchyard's request path, counted by callgrind: the same count for
# the same binary and load whatever else the machine is doing, so two builds can be compared
# where timings on a shared 2-core VM vary by ±10 %. The gateway runs under valgrind against the
# fixed-answer nginx; wrk sends the OpenAI-dialect request at concurrency 1 for CG_SECS seconds.
# Not part of CI. Needs valgrind, nginx and wrk.
#
#   bench/gateway/callgrind.sh [BIN...]    (default: this tree's release build; CG_SECS=20)
#
# Prints, per binary: requests answered, instructions per request for the whole process, for the
# ledger's writer thread (the SQLite commits, after the answer), and for everything else (the
# request path: tokio's workers). Startup is included and is under 1 % at 20 s. Writes
# BENCH_OUT (bench/out/gateway-callgrind)/callgrind-N.out for callgrind_annotate.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${BENCH_OUT:-$root/bench/out/gateway-callgrind}
secs=${CG_SECS:-20}
mkdir -p "$out"
bins=("$@")
if [ ${#bins[@]} -eq 0 ]; then
  cargo build --release -q -p switchyard --bin switchyard --manifest-path "$root/Cargo.toml"
  bins=("${CARGO_TARGET_DIR:-$root/target}/release/switchyard")
fi
. "$here/one-lane.sh"
nginx -c "$out/nginx.conf" -p "$out"
sw=""
trap '[ -n "$sw" ] && kill $sw 2>/dev/null; kill $(cat "$out/nginx.pid") 2>/dev/null || true' EXIT
url=http://127.0.0.1:18091/v1/chat/completions
i=0
for bin in "${bins[@]}"; do
  i=$((i + 1))
  rm -f "$out"/ledger.db* "$out/callgrind-$i.out"
  SWITCHYARD_LOG=warn valgrind -q --tool=callgrind --callgrind-out-file="$out/callgrind-$i.out" \
    "$bin" serve --config "$out/switchyard.yaml" --listen 127.0.0.1:18091 > "$out/switchyard-$i.log" 2>&1 &
  sw=$!
  for _ in $(seq 120); do
    curl -fs -o /dev/null http://127.0.0.1:18091/health && break
    sleep 0.5
  done
  n=$(wrk -t1 -c1 -d"${secs}s" -s "$here/post.lua" "$url" | awk '/requests in/ { print $1 }')
  # SIGTERM: a clean stop, after which callgrind writes its counts.
  kill -TERM "$sw"
  wait "$sw" || true
  sw=""
  callgrind_annotate --inclusive=yes "$out/callgrind-$i.out" 2> /dev/null | python3 -c '
import re, sys
n = int(sys.argv[1]); bin = sys.argv[2]; total = writer = 0
for line in sys.stdin:
    m = re.match(r"\s*([\d,]+) \(", line)
    if not m:
        continue
    v = int(m.group(1).replace(",", ""))
    if "PROGRAM TOTALS" in line:
        total = v
    elif not writer and "switchyard_core::ledger::writer [" in line:
        writer = v
print(f"{bin}: {n} requests; instructions per request: {total // n:,} in all, "
      f"{writer // n:,} ledger writer, {(total - writer) // n:,} request path")
' "$n" "$bin"
done
