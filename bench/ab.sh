#!/usr/bin/env bash
# Two builds of ringmq side by side in one run: bench/broker.sh's workloads (max rate, 100 B and
# 1 KiB, written and fsynced, 16 partitions, one producer and one consumer, in-process broker),
# each run RUNS times alternating A and B, so both see the same machine. Prints medians and the
# ratio B/A; every run's JSON goes to bench/results/<date>/ab/.
#   bench/ab.sh BASELINE_LOADGEN [CANDIDATE_LOADGEN] [--runs N] [--duration-s S]
# CANDIDATE defaults to this tree's release build. A baseline is built from another commit with
#   git worktree add /tmp/base REV && (cd /tmp/base && cargo build --release --bin ringmq-loadgen)
set -euo pipefail
cd "$(dirname "$0")/.."
baseline=$1; shift
candidate=""
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then candidate=$1; shift; fi
runs=5; duration=5
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) runs=$2; shift 2 ;;
        --duration-s) duration=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
if [ -z "$candidate" ]; then
    cargo build --release --quiet --bin ringmq-loadgen
    candidate=target/release/ringmq-loadgen
fi
out="bench/results/$(date +%F)/ab"
mkdir -p "$out"
rm -f "$out"/*.json

workloads=()
for size in 100 1024; do
    batch=$(( size == 100 ? 65536 : 262144 ))
    for acks in written fsynced; do
        workloads+=("max-$size-$acks|--message-bytes $size --partitions 16 --acks $acks --batch-bytes $batch")
    done
done
for n in $(seq 1 "$runs"); do
    for workload in "${workloads[@]}"; do
        name=${workload%%|*}; args=${workload#*|}
        for side in a b; do
            gen=$baseline; [ $side = b ] && gen=$candidate
            # shellcheck disable=SC2086
            "$gen" --duration-s "$duration" --json "$out/$name-$side-$n.json" $args > /dev/null
        done
    done
done

python3 - "$out" <<'PY'
import glob, json, os, statistics, sys
out = sys.argv[1]
names = sorted({os.path.basename(f).rsplit("-", 2)[0] for f in glob.glob(f"{out}/*.json")})
rows = ["| workload | A msg/s | B msg/s | B/A | A MB/s | B MB/s |", "|---|---|---|---|---|---|"]
for name in names:
    med = lambda side, key: statistics.median(json.load(open(f))[key] for f in glob.glob(f"{out}/{name}-{side}-*.json"))
    a, b = med("a", "publishRate"), med("b", "publishRate")
    rows.append(f"| {name} | {a:,.0f} | {b:,.0f} | {b/a:.3f} | {med('a','publishThroughputMBps'):,.0f} | {med('b','publishThroughputMBps'):,.0f} |")
open(f"{out}/summary.md", "w").write("\n".join(rows) + "\n")
print("\n".join(rows))
PY
