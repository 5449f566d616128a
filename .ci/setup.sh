#!/usr/bin/env bash
# Installs and starts everything the tests need, on 127.0.0.1 only.
# Prints `KEY=VALUE` lines on stdout for `cargo xtask ci` to pass to the tests; progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# S3-compatible server that checks SigV4 signatures, for the S3 sink's tests.
if [[ -f crates/mirror-logging/tests/start-s3.sh ]]; then
    MIRROR_S3_PORT="$(free_port)" bash crates/mirror-logging/tests/start-s3.sh | sed 's/^export //'
fi

# Redis for the router's shared-state tests (several router instances sharing one Redis).
if ! command -v redis-server >/dev/null 2>&1; then
    echo "installing redis-server" >&2
    if ! apt-get install -y redis-server >&2; then
        apt-get update >&2
        apt-get install -y redis-server >&2
    fi
fi
MIRROR_REDIS_PORT="$(free_port)"
redis-server --port "$MIRROR_REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
    --logfile "${TMPDIR:-/tmp}/mirror-test-redis-$MIRROR_REDIS_PORT.log" >&2
for _ in $(seq 1 50); do
    if redis-cli -p "$MIRROR_REDIS_PORT" ping >/dev/null 2>&1; then break; fi
    sleep 0.1
done
redis-cli -p "$MIRROR_REDIS_PORT" ping >&2
echo "MIRROR_TEST_REDIS_URL=redis://127.0.0.1:$MIRROR_REDIS_PORT"
