#!/usr/bin/env bash
# Bytes per silent call in flight, the measure behind docs/benchmarks.md ("Bytes per silent call in
# flight") and `SILENT_CALL_BYTES` in crates/mirror-router/src/silent/queue.rs.
#
# usage: HTTP2=never|always [N=2000] [WARM=200] [STREAM=1] xtask/scripts/inflight.sh [MIRROR_BINARY]
#
# Starts a shadow mock upstream that never answers within the run (`--latency-ms 600000`; with
# STREAM=1, streams of 300 chunks one a second, held mid-stream) and `mirror serve` with a group
# served by the in-process mock provider and mirrored to that shadow, with `http2: $HTTP2` on the
# shadow deployment (`never`: one HTTP/1.1 connection per call; `always`: h2c, every call a stream
# of one connection), the backstops at 20,000 and a 1 GiB budget so nothing is dropped. Sends WARM
# warm-up requests, reads the gateway's VmRSS, sends N more (16 at a time), waits until
# `mirror_silent_in_flight` counts all of them, waits 3 s, reads VmRSS again and prints the
# difference divided by N, and the upstream's request count. Needs curl. PORT_BASE (default 18200) picks the two ports used.
set -euo pipefail
bin=${1:-target/release/mirror}
n=${N:-2000}
warm=${WARM:-200}
http2=${HTTP2:-never}
port=${PORT_BASE:-18200}
out=${OUT_DIR:-target/inflight}
mkdir -p "$out"
cat > "$out/config.yaml" <<YAML
model_list:
  - model_name: bench-mirror
    litellm_params: {model: mock/primary, mock_latency_ms: 1, silent_model: bench-shadow}
  - model_name: bench-shadow
    litellm_params: {model: openai/bench-shadow, api_base: "http://127.0.0.1:$((port + 1))/v1", api_key: sk-bench, http2: $http2, timeout: 3600, stream_timeout: 3600}
router_settings:
  num_retries: 0
mirror_settings:
  log_file: null
  silent_max_in_flight: 20000
  silent_queue_size: 20000
  silent_max_bytes: 1073741824
YAML
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
if [[ "${STREAM:-0}" == 1 ]]; then
  "$bin" mock-upstream --port $((port + 1)) --stream-chunks 300 --chunk-interval-ms 1000 >/dev/null 2>&1 & pids+=($!)
  stream=true
else
  "$bin" mock-upstream --port $((port + 1)) --latency-ms 600000 >/dev/null 2>&1 & pids+=($!)
  stream=false
fi
RUST_LOG=error "$bin" serve --host 127.0.0.1 --port "$port" --config "$out/config.yaml" >"$out/gateway.log" 2>&1 &
gateway=$!
pids+=($gateway)
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$port/health/liveliness" >/dev/null && break
  sleep 0.5
done
body="{\"model\":\"bench-mirror\",\"stream\":$stream,\"messages\":[{\"role\":\"user\",\"content\":\"Say hello in one short sentence, please.\"}]}"
send() {
  seq "$1" | xargs -P 16 -I{} curl -s -o /dev/null -H 'content-type: application/json' \
    -d "$body" "http://127.0.0.1:$port/v1/chat/completions"
}
in_flight() {
  curl -s "http://127.0.0.1:$port/metrics" | awk '/^mirror_silent_in_flight /{print $2}'
}
wait_for() {
  for _ in $(seq 1 240); do
    [[ "$(in_flight)" -ge "$1" ]] && return 0
    sleep 0.5
  done
  echo "only $(in_flight) copies in flight, expected $1" >&2
  exit 1
}
rss() { awk '/^VmRSS:/{print $2 * 1024}' "/proc/$gateway/status"; }
send "$warm"
wait_for "$warm"
sleep 3
before=$(rss)
send "$n"
wait_for $((n + warm))
sleep 3
after=$(rss)
# How many of the copies reached the upstream: over HTTP/2 the server's stream limit holds the
# rest in the client's queue on the connection.
upstream=$(curl -s "http://127.0.0.1:$((port + 1))/stats")
echo "http2=$http2 stream=$stream n=$n rss_before=$before rss_after=$after per_call=$(( (after - before) / n )) upstream_stats=$upstream"
