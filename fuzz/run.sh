#!/usr/bin/env bash
# Runs every fuzz target for a bounded time, one after the other, and fails if any crashed.
#
#   fuzz/run.sh [SECONDS] [TARGET...]     # default: 60 s for each target in fuzz/Cargo.toml
#   fuzz/run.sh 0                         # only the large inputs (see below)
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). It wants a nightly compiler; on the stable
# toolchain RUSTC_BOOTSTRAP=1 makes it accept stable (set here). Builds go to fuzz/target,
# never to the workspace's target dir: sanitizer builds would only evict the normal ones.
#
# fuzz/protocol.dict gives libFuzzer the JSON and SSE tokens and the keys the code reads.
#
# Corpora: the committed seeds (fuzz/seeds/<target>/, real requests, answers and streams) are
# read; what libFuzzer grows goes to fuzz/corpus/<target>/ (ignored by git, kept between runs).
# A crash is written to fuzz/artifacts/<target>/ and its path printed; minimise it with
#   RUSTC_BOOTSTRAP=1 cargo fuzz tmin --fuzz-dir fuzz <target> <artifact>
# and keep it as a regression test in crates/protocol/tests/fuzz-regressions/.
#
# Environment: NICE (default 19; the fuzzers share the machine), MAX_LEN (libFuzzer -max_len,
# default 8192), RSS_MB (default 2048), TIMEOUT (seconds for one input, default 10), LARGE_N
# (size of the large inputs, default 20000).
set -euo pipefail

cd "$(dirname "$0")/.."
export RUSTC_BOOTSTRAP=1
unset CARGO_TARGET_DIR

seconds=${1:-60}
shift || true
if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <(RUSTC_BOOTSTRAP=1 cargo fuzz list --fuzz-dir fuzz)
fi
nice_level=${NICE:-19}

if ! cargo fuzz --help >/dev/null 2>&1; then
    echo "cargo-fuzz is not installed: cargo install cargo-fuzz" >&2
    exit 2
fi

echo "== building the fuzz targets (release, debug assertions, AddressSanitizer)"
nice -n "$nice_level" cargo fuzz build --fuzz-dir fuzz

mkdir -p fuzz/logs
failed=()
summary=()
for t in "${targets[@]}"; do
    [[ $seconds -gt 0 ]] || break # 0: only the large inputs below
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    log="fuzz/logs/$t.log"
    echo "== $t: ${seconds}s (log: $log)"
    status=0
    nice -n "$nice_level" cargo fuzz run --fuzz-dir fuzz "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb="${RSS_MB:-2048}" -timeout="${TIMEOUT:-10}" \
        -max_len="${MAX_LEN:-8192}" -dict=fuzz/protocol.dict -print_final_stats=1 >"$log" 2>&1 || status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
    if [[ $status -eq 0 ]]; then
        result=ok
    else
        artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
        result="CRASH ${artifact:-(no artifact; see $log)}"
        failed+=("$t")
        grep -m1 -E -A1 "panicked at|ERROR: (libFuzzer|AddressSanitizer)|ALARM" "$log" || true
    fi
    summary+=("$(printf '%-20s %6ss %12s runs %8s exec/s %6s corpus  %s' "$t" "$seconds" "${runs:-?}" "${speed:-?}" "$corpus" "$result")")
done

# Large inputs: libFuzzer's inputs stay small (-max_len), so work that grows faster than the
# input (n² searches) and deep nesting are checked here, on shapes real clients and upstreams
# send at scale: one run of each, under the same -timeout.
large=fuzz/large
rm -rf "$large"
mkdir -p "$large"/{openai_request,anthropic_request,answers,stream_to_anthropic,stream_to_openai,sse_decoder}
n=${LARGE_N:-20000}
deep=$(printf '[%.0s' $(seq 1 100000))
{
    printf '{"model":"m","messages":[{"role":"user","content":"go"},{"role":"assistant","content":null,"tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{}"}}]}'
    for ((i = 0; i < n; i++)); do printf ',{"role":"tool","tool_call_id":"r%d","content":"x"}' "$i"; done
    printf '],"stream":true}'
} >"$large/openai_request/tool-results.json"
printf '{"model":"m","messages":[{"role":"user","content":"x","x":%s' "$deep" >"$large/openai_request/deep.json"
{
    printf '{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"go"},{"role":"assistant","content":[{"type":"tool_use","id":"a","name":"f","input":{}}]}'
    for ((i = 0; i < n; i++)); do
        printf ',{"role":"user","content":[{"type":"tool_result","tool_use_id":"r%d","content":"x"},{"type":"text","text":"t"}]}' "$i"
    done
    printf ']}'
} >"$large/anthropic_request/tool-results.json"
printf '{"model":"m","max_tokens":5,"messages":[{"role":"user","content":%s' "$deep" >"$large/anthropic_request/deep.json"
{
    printf '{"id":"c","choices":[{"message":{"role":"assistant","content":"x","tool_calls":['
    for ((i = 0; i < n; i++)); do printf '%s{"id":"c%d","function":{"name":"f","arguments":"{}"}}' "${sep-}" "$i"; sep=,; done
    unset sep
    printf ']},"finish_reason":"tool_calls"}]}'
} >"$large/answers/tool-calls.json"
{
    printf '\x00data: {"choices":[{"delta":{"tool_calls":['
    for ((i = 0; i < 4 * n; i++)); do printf '%s{"index":%d,"id":"c%d"}' "${sep-}" "$i" "$i"; sep=,; done
    unset sep
    printf ']},"finish_reason":"tool_calls"}]}\n\ndata: [DONE]\n\n'
} >"$large/stream_to_anthropic/parallel-calls.sse"
{
    printf '\x00event: message_start\ndata: {"type":"message_start","message":{"id":"m","model":"m","usage":{"input_tokens":1}}}\n\n'
    for ((i = 0; i < n; i++)); do
        printf 'data: {"type":"content_block_start","index":%d,"content_block":{"type":"tool_use","id":"t%d","name":"f"}}\n\n' "$i" "$i"
        printf 'data: {"type":"content_block_delta","index":%d,"delta":{"type":"input_json_delta","partial_json":"{}"}}\n\n' "$i"
    done
    printf 'data: {"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":1}}\n\ndata: {"type":"message_stop"}\n\n'
} >"$large/stream_to_openai/tool-blocks.sse"
printf '\x00data: %s\n\n' "$deep" >"$large/stream_to_openai/deep.sse"
{
    printf '\x00'
    for ((i = 0; i < n; i++)); do printf 'event: e\r\ndata: %d\r\ndata:\r\n\r\n' "$i"; done
    head -c 1000000 /dev/zero | tr '\0' 'x'
} >"$large/sse_decoder/many-events-long-line.sse"

host=$(rustc -vV | sed -n 's/^host: //p')
echo "== large inputs (${TIMEOUT:-10}s each)"
for file in "$large"/*/*; do
    t=$(basename "$(dirname "$file")")
    [[ " ${targets[*]} " == *" $t "* ]] || continue
    log="fuzz/logs/large-$t-$(basename "$file").log"
    status=0
    nice -n "$nice_level" "fuzz/target/$host/release/$t" -timeout="${TIMEOUT:-10}" -rss_limit_mb="${RSS_MB:-2048}" \
        -artifact_prefix="fuzz/artifacts/$t/" "$file" >"$log" 2>&1 || status=$?
    if [[ $status -eq 0 ]]; then
        result=ok
    else
        result="FAILED (status $status; see $log)"
        failed+=("$t:$(basename "$file")")
        grep -m1 -E -A1 "panicked at|ERROR: (libFuzzer|AddressSanitizer)|ALARM" "$log" || true
    fi
    summary+=("$(printf '%-20s %-28s %8s bytes  %s' "$t" "$(basename "$file")" "$(wc -c <"$file")" "$result")")
done

echo
printf '%s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "crashed: ${failed[*]}" >&2
    exit 1
fi
