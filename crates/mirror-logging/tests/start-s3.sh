#!/usr/bin/env bash
# Starts s3s-fs, an S3-compatible server that checks SigV4 signatures, for the S3 sink's tests.
#
# Usage:  eval "$(crates/mirror-logging/tests/start-s3.sh)"
#
# It installs s3s-fs 0.14.1 when missing (about 2 minutes), starts it in the background on
# 127.0.0.1:${MIRROR_S3_PORT:-8014} with root ${MIRROR_S3_ROOT:-<a new temp dir>}, waits until it
# accepts connections, and prints `export` lines for the variables the tests read:
#   MIRROR_TEST_S3_ENDPOINT, MIRROR_TEST_S3_ACCESS_KEY, MIRROR_TEST_S3_SECRET_KEY,
#   MIRROR_TEST_S3_BUCKET, MIRROR_TEST_S3_ROOT, MIRROR_TEST_S3_PID.
# Stop the server with: kill "$MIRROR_TEST_S3_PID"
# Everything but the export lines goes to stderr.
set -euo pipefail

port="${MIRROR_S3_PORT:-8014}"
root="${MIRROR_S3_ROOT:-$(mktemp -d -t mirror-s3s-XXXXXX)}"
bucket="${MIRROR_S3_BUCKET:-mirror-test}"
access_key="${MIRROR_S3_ACCESS_KEY:-AKIAMIRRORTEST}"
secret_key="${MIRROR_S3_SECRET_KEY:-mirror-test-secret-key}"
log="${root%/}.log"

bin="$(command -v s3s-fs || true)"
if [[ -z "$bin" && -x "${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs" ]]; then
    bin="${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs"
fi
if [[ -z "$bin" ]]; then
    echo "start-s3.sh: installing s3s-fs 0.14.1 (about 2 minutes)..." >&2
    cargo install s3s-fs --version 0.14.1 --features binary --locked >&2
    bin="${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs"
fi

mkdir -p "$root/$bucket"
"$bin" --host 127.0.0.1 --port "$port" --access-key "$access_key" --secret-key "$secret_key" "$root" \
    >"$log" 2>&1 &
pid=$!

for _ in $(seq 1 100); do
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "start-s3.sh: s3s-fs exited; see $log" >&2
        cat "$log" >&2
        exit 1
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        break
    fi
    sleep 0.1
done
if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "start-s3.sh: s3s-fs did not accept connections on port $port; see $log" >&2
    kill "$pid" 2>/dev/null || true
    exit 1
fi
echo "start-s3.sh: s3s-fs (pid $pid) serves $root on 127.0.0.1:$port" >&2

cat <<EXPORTS
export MIRROR_TEST_S3_ENDPOINT=http://127.0.0.1:$port
export MIRROR_TEST_S3_ACCESS_KEY=$access_key
export MIRROR_TEST_S3_SECRET_KEY=$secret_key
export MIRROR_TEST_S3_BUCKET=$bucket
export MIRROR_TEST_S3_ROOT=$root
export MIRROR_TEST_S3_PID=$pid
EXPORTS
