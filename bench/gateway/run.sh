#!/usr/bin/env bash
# Gateway overhead: the same small chat request, direct to a fixed-answer nginx (the baseline),
# through Switchyard (OpenAI and Anthropic dialects), through Portkey's gateway and through
# LiteLLM's proxy, one after another on this machine, loopback only, bounded in time. For each:
# a checked warm-up, wrk at concurrency 1 and 32, streaming time to first byte (ttfb.py), and
# the memory of the gateway's process tree. Not part of CI.
#
#   bench/gateway/run.sh
#
# Environment (all optional):
#   SECS=10          seconds per timed wrk run        WARM=3     seconds of checked warm-up
#   TTFB_N=200       streamed requests per target
#   TARGETS="direct proxy switchyard messages portkey litellm"  (proxy: nginx as a plain reverse
#                    proxy, the floor for one more hop on this machine; not a peer)
#   LOAD_MAX=0.8     wait until the 1-minute load average is below this before starting ...
#   WAIT_MAX=2400    ... for at most this many seconds (then run anyway, and say so)
#   BUSY_MAX=25      before each target, wait (QUIET_WAIT=600 s at most) until other processes
#                    use less than this % of the CPUs over a 3 s sample
#   BENCH_OUT=bench/out/gateway   BENCH_WORK=/var/tmp/switchyard-bench (peers, from setup.sh)
#   SWITCHYARD_REV=HEAD           measure a commit: `git archive` it and build it apart under
#                                 BENCH_WORK (binary kept as BENCH_WORK/bin/switchyard-REV)
#   SWITCHYARD_BIN=...            skip the build and measure this binary
#   PROFILE=release-lto           the cargo profile Switchyard is built with (release-lto is what
#                                 a packaged binary is built with; `release` is `cargo --release`)
#   SKIP_SETUP=1                  do not run setup.sh
# Results: BENCH_OUT/NAME-{check,c1,c32}.txt (wrk), NAME-ttfb.json, NAME-mem.json,
# NAME-others.json, load.txt, meta.json, and summary.md (summary.py), also printed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${BENCH_OUT:-$root/bench/out/gateway}
work=${BENCH_WORK:-/var/tmp/switchyard-bench}
secs=${SECS:-10}
warm=${WARM:-3}
profile=${PROFILE:-release-lto}
ttfb_n=${TTFB_N:-200}
targets=${TARGETS:-direct proxy switchyard messages portkey litellm}
load_max=${LOAD_MAX:-0.8}
wait_max=${WAIT_MAX:-2400}
busy_max=${BUSY_MAX:-25}
quiet_wait=${QUIET_WAIT:-600}
export LITELLM_MASTER_KEY=${LITELLM_MASTER_KEY:-sk-bench-$RANDOM$RANDOM}

[ "${SKIP_SETUP:-}" = 1 ] || BENCH_WORK=$work "$here/setup.sh"
mkdir -p "$out"
rm -f "$out"/*.txt "$out"/*.json "$out"/*.log "$out"/*.tmp "$out"/summary.md "$out"/ledger.db*

# The Switchyard under test: a build (PROFILE) of this tree, or of SWITCHYARD_REV (a commit,
# exported with `git archive` and built in its own target directory under BENCH_WORK, so a tree
# that others are editing is neither measured nor disturbed).
if [ -n "${SWITCHYARD_BIN:-}" ]; then
  bin=$SWITCHYARD_BIN
elif [ -n "${SWITCHYARD_REV:-}" ]; then
  rev=$(git -C "$root" rev-parse --short "$SWITCHYARD_REV")
  src=$work/src-$rev
  if [ ! -d "$src" ]; then
    mkdir -p "$src.tmp" && git -C "$root" archive "$rev" | tar -x -C "$src.tmp" && mv "$src.tmp" "$src"
  fi
  # Seed the private target directory from the shared one, so dependencies are not rebuilt.
  shared_target=${CARGO_TARGET_DIR:-$root/target}
  if [ ! -d "$work/target/$profile" ] && [ -d "$shared_target/$profile" ]; then
    mkdir -p "$work/target" && cp -a "$shared_target/$profile" "$work/target/"
  fi
  bin=$work/bin/switchyard-$rev-$profile
  if [ ! -x "$bin" ]; then
    CARGO_TARGET_DIR=$work/target cargo build --profile "$profile" -q -p switchyard --bin switchyard \
      --manifest-path "$src/Cargo.toml"
    mkdir -p "$work/bin" && cp "$work/target/$profile/switchyard" "$bin"
  fi
else
  for attempt in 1 2 3 4 5; do
    cargo build --profile "$profile" -q -p switchyard --bin switchyard --manifest-path "$root/Cargo.toml" && break
    [ "$attempt" = 5 ] && { echo "cargo build failed 5 times" >&2; exit 1; }
    echo "build failed (a half-edited file?); retrying in 60 s" >&2
    sleep 60
  done
  bin=${CARGO_TARGET_DIR:-$root/target}/$profile/switchyard
fi

sed "s#BENCH_DIR#$out#g" "$here/nginx.conf" > "$out/nginx.conf"
sed "s#BENCH_DIR#$out#g" "$here/nginx-proxy.conf" > "$out/nginx-proxy.conf"
cat > "$out/switchyard.yaml" <<YAML
providers:
  up: { kind: openai, base_url: "http://127.0.0.1:18090/v1", local: true }
  up_stream: { kind: openai, base_url: "http://127.0.0.1:18090/stream/v1", local: true }
lanes:
  fixed: { provider: up, model: m }
  fixed_stream: { provider: up_stream, model: m }
routes:
  default: [fixed]
  stream: [fixed_stream]
storage:
  ledger: "$out/ledger.db"
YAML
cp "$here/litellm.yaml" "$out/litellm.yaml"

gw=""  # process group of the gateway now running
cleanup() {
  [ -n "$gw" ] && kill -- "-$gw" 2>/dev/null
  [ -f "$out/nginx.pid" ] && kill "$(cat "$out/nginx.pid")" 2>/dev/null
  true
}
trap cleanup EXIT
nginx -c "$out/nginx.conf" -p "$out"

# --- quiet machine -----------------------------------------------------------------------------
load1() { cut -d' ' -f1 /proc/loadavg; }
waited=0
while awk -v l="$(load1)" -v m="$load_max" 'BEGIN { exit !(l > m) }' && [ "$waited" -lt "$wait_max" ]; do
  echo "load $(load1) > $load_max: waiting 60 s (waited ${waited} s of ${wait_max} s)" >&2
  sleep 60
  waited=$((waited + 60))
done
echo "start: load $(cut -d' ' -f1-3 /proc/loadavg) after waiting ${waited} s" | tee "$out/load.txt"

# Share of the CPUs busy over 3 s (our gateways are idle between targets, so this is others).
cpu_busy() {
  local a b
  read -r _ u1 n1 s1 i1 w1 q1 sq1 st1 _ < /proc/stat
  sleep 3
  read -r _ u2 n2 s2 i2 w2 q2 sq2 st2 _ < /proc/stat
  a=$(((u2 + n2 + s2 + i2 + w2 + q2 + sq2 + st2) - (u1 + n1 + s1 + i1 + w1 + q1 + sq1 + st1)))
  b=$(((i2 + w2) - (i1 + w1)))
  echo $((100 * (a - b) / (a > 0 ? a : 1)))
}
wait_quiet() { # name
  local busy t=0
  busy=$(cpu_busy)
  while [ "$busy" -ge "$busy_max" ] && [ "$t" -lt "$quiet_wait" ]; do
    echo "  CPUs ${busy}% busy with other work: waiting" >&2
    sleep 30
    t=$((t + 33))
    busy=$(cpu_busy)
  done
  echo "$1: load $(cut -d' ' -f1-3 /proc/loadavg), others ${busy}% busy before it" >> "$out/load.txt"
}

# --- targets -----------------------------------------------------------------------------------
# Per target: URL, stream URL, extra headers (for the normal and the streamed request), wrk
# script, the text a good answer contains, and how to start the gateway.
configure() {
  hdr=() shdr=() script=post.lua expect='"choices"' surl=""
  case $1 in
  direct)
    url=http://127.0.0.1:18090/v1/chat/completions surl=http://127.0.0.1:18090/stream/v1/chat/completions ;;
  proxy)
    url=http://127.0.0.1:18093/v1/chat/completions surl=http://127.0.0.1:18093/stream/v1/chat/completions ;;
  switchyard)
    url=http://127.0.0.1:18091/v1/chat/completions surl=$url ;;
  messages)
    url=http://127.0.0.1:18091/v1/messages script=post-messages.lua expect='"content"' ;;
  portkey)
    url=http://127.0.0.1:8787/v1/chat/completions surl=$url
    hdr=(-H "x-portkey-provider: openai" -H "Authorization: Bearer dummy")
    shdr=("${hdr[@]}" -H "x-portkey-custom-host: http://127.0.0.1:18090/stream/v1")
    hdr+=(-H "x-portkey-custom-host: http://127.0.0.1:18090/v1") ;;
  litellm)
    url=http://127.0.0.1:18092/v1/chat/completions surl=$url
    hdr=(-H "Authorization: Bearer $LITELLM_MASTER_KEY") shdr=("${hdr[@]}") ;;
  *) echo "unknown target $1" >&2; exit 2 ;;
  esac
}

# Each gateway runs in its own session (setsid), so its whole process tree can be measured
# and stopped by its process group id.
start() {
  case $1 in
  direct) gw="" ; return ;;
  proxy)
    setsid nginx -c "$out/nginx-proxy.conf" -p "$out" > "$out/$1.log" 2>&1 &
    ;;
  switchyard | messages)
    SWITCHYARD_LOG=warn setsid "$bin" serve --config "$out/switchyard.yaml" --listen 127.0.0.1:18091 \
      > "$out/$1.log" 2>&1 &
    ;;
  portkey)
    # --headless: no console UI routes. NODE_ENV=production as a deployment would set it.
    NODE_ENV=production setsid node "$work/portkey/node_modules/@portkey-ai/gateway/build/start-server.js" \
      --headless --port=8787 > "$out/$1.log" 2>&1 &
    ;;
  litellm)
    (cd "$out" && LITELLM_LOG=ERROR LITELLM_MODE=PRODUCTION LITELLM_LOCAL_MODEL_COST_MAP=True \
      exec setsid "$work/litellm-venv/bin/litellm" --config "$out/litellm.yaml" \
      --host 127.0.0.1 --port 18092 --num_workers 2 > "$out/$1.log" 2>&1) &
    ;;
  esac
  gw=$!
  local body t
  [ "$script" = post-messages.lua ] &&
    body='{"model":"default","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}' ||
    body='{"model":"default","messages":[{"role":"user","content":"hi"}],"max_tokens":5}'
  for t in $(seq 1 240); do
    if curl -sf -m 5 -o /dev/null "${hdr[@]}" -H 'Content-Type: application/json' -H 'anthropic-version: 2023-06-01' \
      -d "$body" "$url"; then
      return
    fi
    kill -0 "$gw" 2>/dev/null || { echo "$1 exited; see $out/$1.log" >&2; exit 1; }
    sleep 0.5
  done
  echo "$1 not ready after 120 s; see $out/$1.log" >&2
  exit 1
}

stop() {
  [ -n "$gw" ] || return 0
  kill -- "-$gw" 2>/dev/null || true
  for _ in $(seq 1 40); do kill -0 "$gw" 2>/dev/null || break; sleep 0.25; done
  kill -9 -- "-$gw" 2>/dev/null || true
  gw=""
}

# CPU time the machine spent during a target's runs, and how much of it was ours (nginx, the
# gateway's tree, and wrk/ttfb.py as this shell's children): the rest is other work, reported
# beside the figures so a disturbed run can be told from a clean one.
busy_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8}' /proc/stat; } # user nice system irq softirq
ours_ticks() { python3 "$here/procmem.py" "$(cat "$out/nginx.pid")" ${gw:+"$gw"} | sed 's/.*"cpu_ticks": \([0-9]*\).*/\1/'; }
# Sets SAMPLE. `times` runs in this shell, not in a $(...) subshell, which has no children yet.
sample() {
  times > "$out/times.tmp"
  SAMPLE="$(date +%s.%N) $(busy_ticks) $(ours_ticks) $(awk 'NR == 2 { for (i = 1; i <= 2; i++) {
    split($i, a, /[ms]/); t += a[1] * 60 + a[2] } } END { printf "%d", t * 100 }' "$out/times.tmp")"
}
others_pct() { # "sample before" "sample after"
  echo "$1 $2" | awk -v n="$(nproc)" '{ wall = ($5 - $1) * 100 * n; other = ($6 - $2) - ($7 - $3) - ($8 - $4);
    if (other < 0) other = 0; printf "%.0f", 100 * other / wall }'
}

for name in $targets; do
  configure "$name"
  wait_quiet "$name"
  start "$name"
  sample
  before=$SAMPLE
  WRK_DIR=$here WRK_BASE=$script WRK_EXPECT=$expect \
    wrk -t2 -c32 -d"${warm}s" -s "$here/check.lua" "${hdr[@]}" "$url" > "$out/$name-check.txt"
  wrk -t1 -c1 -d"${secs}s" --latency -s "$here/$script" "${hdr[@]}" "$url" > "$out/$name-c1.txt"
  wrk -t2 -c32 -d"${secs}s" --latency -s "$here/$script" "${hdr[@]}" "$url" > "$out/$name-c32.txt"
  if [ -n "$surl" ]; then
    python3 "$here/ttfb.py" "$surl" -n "$ttfb_n" "${shdr[@]}" > "$out/$name-ttfb.json"
  fi
  [ -n "$gw" ] && python3 "$here/procmem.py" "$gw" > "$out/$name-mem.json"
  sample
  others=$(others_pct "$before" "$SAMPLE")
  echo "{\"others_cpu_pct\": $others}" > "$out/$name-others.json"
  stop
  printf '%-10s c1 %9s req/s p50 %8s | c32 %9s req/s p50 %8s | %s\n' "$name" \
    "$(awk '/Requests\/sec/{print $2}' "$out/$name-c1.txt")" "$(awk '$1=="50%"{print $2}' "$out/$name-c1.txt")" \
    "$(awk '/Requests\/sec/{print $2}' "$out/$name-c32.txt")" "$(awk '$1=="50%"{print $2}' "$out/$name-c32.txt")" \
    "others ${others}% | $(grep -h -E 'checked:|Non-2xx|Socket errors' "$out/$name"-*.txt | tr '\n' ' ')"
done

if [ -n "${SWITCHYARD_BIN:-}" ]; then
  commit="binary $SWITCHYARD_BIN"
elif [ -n "${rev:-}" ]; then
  commit="commit $rev"
else
  commit="tree at $(git -C "$root" rev-parse --short HEAD)"
  git -C "$root" diff --quiet HEAD -- crates Cargo.toml Cargo.lock 2>/dev/null || commit="$commit + uncommitted changes"
fi
[ -n "${SWITCHYARD_BIN:-}" ] || commit="$commit, profile $profile"
python3 - "$out" "$commit" "$secs" "$warm" "$ttfb_n" <<'PY'
import json, os, sys, time
out, commit, secs, warm, n = sys.argv[1:]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
load = {}
for line in open(os.path.join(out, "load.txt")):
    name, _, rest = line.partition(": ")
    load[name] = rest.strip()
json.dump({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": cpu, "cores": os.cpu_count(),
           "commit": commit, "secs": secs, "warm": warm, "ttfb_n": n, "load": load},
          open(os.path.join(out, "meta.json"), "w"), indent=1)
PY
python3 "$here/summary.py" "$out"
