#!/usr/bin/env bash
# Gateway overhead: the same POST, direct to a fixed-answer nginx and through Switchyard, at
# concurrency 1 and 32, loopback only, bounded in time. Not part of CI.
#   bench/gateway/run.sh            (needs: nginx, wrk — apt-get install nginx-light wrk)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${BENCH_OUT:-$root/bench/out/gateway}
secs=${SECS:-5}
mkdir -p "$out"
sed "s#BENCH_DIR#$out#g" "$here/nginx.conf" > "$out/nginx.conf"
nginx -c "$out/nginx.conf" -p "$out"
cat > "$out/switchyard.yaml" <<YAML
providers:
  up: { kind: openai, base_url: "http://127.0.0.1:18090/v1", local: true }
lanes:
  fixed: { provider: up, model: m }
routes:
  default: [fixed]
storage:
  ledger: "$out/ledger.db"
YAML
cargo build --release -q -p switchyard --manifest-path "$root/Cargo.toml"
bin=${CARGO_TARGET_DIR:-$root/target}/release/switchyard
SWITCHYARD_LOG=warn "$bin" serve --config "$out/switchyard.yaml" --listen 127.0.0.1:18091 > "$out/switchyard.log" 2>&1 &
sw=$!
trap 'kill $sw 2>/dev/null; kill $(cat "$out/nginx.pid") 2>/dev/null || true' EXIT
sleep 1
run() { # name port conc [script path]
  local t=1; [ "$3" -gt 1 ] && t=2
  local script=${4:-post.lua} path=${5:-/v1/chat/completions}
  wrk -t$t -c"$3" -d"${secs}s" --latency -s "$here/$script" "http://127.0.0.1:$2$path" > "$out/$1-c$3.txt"
  printf '%-11s c%-3s %10s req/s  p50 %9s  p99 %9s\n' "$1" "$3" \
    "$(awk '/Requests\/sec/{print $2}' "$out/$1-c$3.txt")" \
    "$(awk '$1=="50%"{print $2}' "$out/$1-c$3.txt")" "$(awk '$1=="99%"{print $2}' "$out/$1-c$3.txt")"
  grep -E "Non-2xx|Socket errors" "$out/$1-c$3.txt" || true
}
for c in 1 32; do
  run direct 18090 "$c"
  run switchyard 18091 "$c"
  # Anthropic client, OpenAI upstream: both translations on the path.
  run messages 18091 "$c" post-messages.lua /v1/messages
done
echo "switchyard RSS: $(ps -o rss= -p $sw) KiB"
