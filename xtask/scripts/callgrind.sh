#!/usr/bin/env bash
# Instructions per mirrored request, the stable measure behind docs/benchmarks.md ("Profile").
#
# usage: xtask/scripts/callgrind.sh [MIRROR_BINARY] [REQUESTS]
#
# Starts two mock upstreams and the gateway under valgrind's callgrind on a 100%-mirrored config
# (the bench's S3), sends 200 warm-up requests, zeroes the counters, sends REQUESTS (default 2,000)
# sequential keep-alive requests, and prints the gateway's instructions per request. The profile is
# kept as $OUT_DIR/callgrind.out.1 (default OUT_DIR: target/callgrind) for callgrind_annotate.
# Needs valgrind (callgrind_control, callgrind_annotate), curl and python3. PORT_BASE (default 18100)
# picks the three ports used; STREAM=1 sends `"stream": true` requests (the bench's S7, 8 chunks); LOG=1 turns
# the JSONL call log on (the default a user runs), written under OUT_DIR.
set -euo pipefail
bin=${1:-target/release/mirror}
requests=${2:-2000}
port=${PORT_BASE:-18100}
out=${OUT_DIR:-target/callgrind}
mkdir -p "$out"
cat > "$out/config.yaml" <<YAML
model_list:
  - model_name: bench-mirror
    litellm_params: {model: openai/bench-primary, api_base: "http://127.0.0.1:$((port + 1))/v1", api_key: sk-bench, silent_model: bench-shadow}
  - model_name: bench-shadow
    litellm_params: {model: openai/bench-shadow, api_base: "http://127.0.0.1:$((port + 2))/v1", api_key: sk-bench}
router_settings:
  num_retries: 0
mirror_settings:
  log_file: $( [[ "${LOG:-0}" == 1 ]] && echo "$out/calls.jsonl" || echo null )
YAML
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
"$bin" mock-upstream --port $((port + 1)) --stream-chunks 8 >/dev/null 2>&1 & pids+=($!)
"$bin" mock-upstream --port $((port + 2)) --stream-chunks 8 >/dev/null 2>&1 & pids+=($!)
rm -f "$out"/callgrind.out* "$out/calls.jsonl"
RUST_LOG=error valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.out" \
  "$bin" serve --host 127.0.0.1 --port "$port" --config "$out/config.yaml" >"$out/gateway.log" 2>&1 &
gateway=$!
pids+=($gateway)
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$port/health/liveliness" >/dev/null && break
  sleep 0.5
done
drive() {
  python3 - "$1" "$port" "${STREAM:-0}" <<'PY'
import http.client, json, sys
n, port, stream = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
body = json.dumps({"model": "bench-mirror", "stream": stream, "messages": [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Say hello in one short sentence, please."}]})
connection = http.client.HTTPConnection("127.0.0.1", port)
for _ in range(n):
    connection.request("POST", "/v1/chat/completions", body, {"content-type": "application/json"})
    response = connection.getresponse()
    response.read()
    if response.status != 200:
        sys.exit(f"status {response.status}")
PY
}
drive 200
callgrind_control -z "$gateway" >/dev/null
drive "$requests"
callgrind_control -d "$gateway" >/dev/null
sleep 1
total=$(callgrind_annotate "$out/callgrind.out.1" 2>/dev/null | grep -m1 'PROGRAM TOTALS' | awk '{gsub(",", "", $1); print $1}')
echo "instructions: $total for $requests requests, $((total / requests)) per mirrored request"
echo "profile: $out/callgrind.out.1 (callgrind_annotate --inclusive=yes $out/callgrind.out.1 | head -100)"
