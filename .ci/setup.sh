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
