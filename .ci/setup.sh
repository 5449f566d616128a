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

# Python venv with the official `openai` SDK and pytest, for the end-to-end tests in tests/python
# (`cargo xtask ci` runs them with MIRROR_TEST_PYTHON). Pins are in tests/python/requirements.txt.
mirror_venv="$PWD/.venv"
mirror_requirements=tests/python/requirements.txt
if ! "$mirror_venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
    echo "creating the Python venv $mirror_venv" >&2
    if ! python3 -m venv --clear "$mirror_venv" >&2; then
        # Debian's python3 needs python3-venv for ensurepip.
        apt-get install -y python3-venv >&2 || { apt-get update >&2 && apt-get install -y python3-venv >&2; }
        python3 -m venv --clear "$mirror_venv" >&2
    fi
fi
if ! cmp -s "$mirror_requirements" "$mirror_venv/.mirror-requirements" \
    || ! "$mirror_venv/bin/python" -c 'import openai, pytest' >/dev/null 2>&1; then
    echo "installing $mirror_requirements into $mirror_venv" >&2
    "$mirror_venv/bin/python" -m pip install --disable-pip-version-check -q -r "$mirror_requirements" >&2
    cp "$mirror_requirements" "$mirror_venv/.mirror-requirements"
fi
echo "MIRROR_TEST_PYTHON=$mirror_venv/bin/python"

# Headless Chromium (Debian's package), for the HTML report test in crates/mirror-report/tests/report.rs.
if ! command -v chromium >/dev/null 2>&1; then
    echo "setup: installing chromium (apt-get) ..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update >&2
    apt-get install -y chromium >&2
fi
echo "MIRROR_TEST_CHROMIUM=$(command -v chromium)"
