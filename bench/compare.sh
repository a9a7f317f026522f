#!/usr/bin/env bash
# ringmq side by side with the brokers a user would pick instead, in one run on this machine.
#
#   bench/compare.sh [--quick] [--setups ringmq-written,nats,...] [--out DIR]
#
# Installs the peers if missing (Debian packages and PyPI), measures the machine's limits, then
# for each setup: starts the broker on loopback, runs the workloads through its standard client
# (bench/loadgen, one driver per system), and stops it by pid. Writes every run's JSON,
# summary.md (tables and ringmq/peer ratios) and PNG plots to bench/results/<date>/compare/
# (compare-quick/ for --quick), or to DIR, which it empties first.
#
# Default (~20 min on 2 cores): 100 B and 1 KiB; 1 producer + 1 consumer at the maximum rate (3 runs,
# median), 4 + 4 at the maximum rate, 1 + 1 at 25/50/75% of the setup's own median maximum,
# and a backlog of 1 KiB messages (up to 2 GB or 15 s of producing, no consumer) then drained
# (for up to 20 s).
# --quick (~2 min): 1 KiB only, one maximum-rate run and one run at 50%, no backlog.
set -euo pipefail
cd "$(dirname "$0")/.."

ALL_SETUPS="ringmq-written ringmq-fsynced ringmq-kafka tansu nats nats-always redis-everysec redis-always rabbitmq-stream rabbitmq-quorum"
quick=""; setups=$ALL_SETUPS; out=""
while [ $# -gt 0 ]; do
    case $1 in
        --quick) quick=1;;
        --setups) setups=${2//,/ }; shift;;
        --out) out=$2; shift;;
        *) echo "usage: bench/compare.sh [--quick] [--setups a,b,...] [--out DIR]; setups: $ALL_SETUPS" >&2; exit 2;;
    esac
    shift
done

if [ -n "$quick" ]; then
    duration=3; max_runs=1; sizes="1024"; fractions="50"; wide=""; backlog_bytes=""
else
    duration=4; max_runs=3; sizes="100 1024"; fractions="25 50 75"; wide=1
    backlog_bytes=2000000000; backlog_seconds=15
fi

[ -n "$out" ] || out="bench/results/$(date +%F)/compare${quick:+-quick}"
rm -rf "$out"; mkdir -p "$out"
WORK=$(mktemp -d /tmp/ringmq-compare.XXXXXX)
source bench/peers/lib.sh
trap 'stop_broker; rm -rf "$WORK"' EXIT

install_peers
cargo build --release --quiet --features peers --bin ringmq --bin ringmq-loadgen
gen=target/release/ringmq-loadgen

# The machine's limits, at the start and again at the end: the report takes the better of the
# two, so a disk that was busy flushing at one moment does not flatter "of limit".
limits() { # name
    echo "== the machine's limits ($1)" >&2
    "$gen" --limits-dir "$WORK" --limits-bytes $(( quick ? 268435456 : 1073741824 )) \
        --json "$out/limits-$1.json" >/dev/null
}
limits start
{ nproc; grep -m1 "model name" /proc/cpuinfo | cut -d: -f2; free -g | awk '/Mem:/ {print $2 " GiB"}'; uname -r;
  df -T "$WORK" | awk 'NR==2 {print $2 " on " $1}'; } >"$out/machine.txt"

batch_bytes() { [ "$1" = 100 ] && echo 65536 || echo 262144; }

run() { # name, then load generator arguments
    local name=$1; shift
    env ${CLIENT_PRELOAD:+LD_PRELOAD="$CLIENT_PRELOAD"} \
        "$gen" --system "$SYSTEM" --broker "$ADDRESS" --broker-pid "$PIDS" --acks "$ACKS" \
        --label "$setup" --durability "$DURABILITY" --json "$out/$setup--$name.json" "$@" \
        || echo "$setup $name failed" >&2
}

median_rate() { # json files -> median publish rate (0 when none)
    python3 -c 'import json,sys,statistics; r=[json.load(open(f))["publishRate"] for f in sys.argv[1:]]; print(int(statistics.median(r)) if r else 0)' "$@" 2>/dev/null || echo 0
}

for setup in $setups; do
    echo "== $setup" >&2
    case $setup in
        ringmq-written) start_ringmq written;;
        ringmq-fsynced) start_ringmq fsynced;;
        ringmq-kafka) start_ringmq_kafka 1;;
        tansu) start_tansu;;
        nats) start_nats default;;
        nats-always) start_nats always;;
        redis-everysec) start_redis everysec;;
        redis-always) start_redis always;;
        rabbitmq-stream) start_rabbitmq stream;;
        rabbitmq-quorum) start_rabbitmq quorum;;
        *) echo "unknown setup $setup" >&2; exit 2;;
    esac
    printf '{"setup": "%s", "system": "%s", "class": "%s", "durability": "%s", "acks": "%s"}\n' \
        "$setup" "$SYSTEM" "$CLASS" "$DURABILITY" "$ACKS" >"$out/$setup--setup.json"
    for size in $sizes; do
        batch=$(batch_bytes "$size")
        for n in $(seq 1 $max_runs); do
            run "max-$size-1x1-$n" --message-bytes "$size" --batch-bytes "$batch" --duration-s "$duration"
        done
        [ -z "$wide" ] || run "max-$size-4x4-1" --message-bytes "$size" --batch-bytes "$batch" \
            --producers 4 --consumers 4 --duration-s "$duration"
        max=$(median_rate "$out/$setup--max-$size-1x1-"*.json)
        for fraction in $fractions; do
            rate=$(( max * fraction / 100 ))
            [ "$rate" -gt 0 ] || continue
            run "rate$fraction-$size-1x1-1" --message-bytes "$size" --batch-bytes "$batch" \
                --rate "$rate" --duration-s "$duration"
        done
    done
    [ -z "$backlog_bytes" ] || run "backlog-1024-1x1-1" --message-bytes 1024 --batch-bytes 262144 \
        --backlog-bytes "$backlog_bytes" --duration-s "$backlog_seconds" --drain-timeout-s 20
    stop_broker
done

limits end
python3 bench/peers/report.py "$out"
echo "results: $out/summary.md" >&2
