#!/usr/bin/env bash
# Builds ringmq and this benchmark in release, starts a broker with the SQS door on a scratch
# data directory, runs the SDK load against it, and stops the broker. Args: SECONDS CONCURRENCY.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../.."
(cd "$root" && cargo build --release --locked --bin ringmq)
(cd "$here" && cargo build --release --locked)
target="${CARGO_TARGET_DIR:-$root/target}"
data="$(mktemp -d)"
port=19324
"$target/release/ringmq" serve --data-dir "$data" --listen 127.0.0.1:0 --kafka-listen "" \
    --http-listen "" --sqs-listen "127.0.0.1:$port" --shards "${SHARDS:-2}" 2>"$data/broker.log" &
broker=$!
trap 'kill $broker; wait $broker 2>/dev/null; rm -rf "$data"' EXIT
sleep 1
"$target/release/ringmq-sqs-bench" "http://127.0.0.1:$port" "${1:-10}" "${2:-8}"
