#!/usr/bin/env bash
# The broker benchmark: the load generator (bench/loadgen/) over the workloads of issue 3,
# each run RUNS times; writes every run's JSON and a median summary to bench/results/<date>/broker/.
#   bench/broker.sh [--quick]
# Generator and broker share this machine's cores (as any peer measured the same way would).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=3; duration=8
if [ "${1:-}" = "--quick" ]; then runs=1; duration=3; fi
out="bench/results/$(date +%F)/broker"
mkdir -p "$out"
cargo build --release --quiet --bin ringmq-loadgen
gen=target/release/ringmq-loadgen

run() { # name, then loadgen arguments
    local name=$1; shift
    for n in $(seq 1 "$runs"); do
        "$gen" --duration-s "$duration" --json "$out/$name-$n.json" "$@" | tail -1
    done
}

median_rate() { # name -> median publishRate
    python3 -c 'import json,sys,glob,statistics; print(int(statistics.median(json.load(open(f))["publishRate"] for f in glob.glob(sys.argv[1]+"-*.json"))))' "$out/$1"
}

for size in 100 1024; do
    batch=$(( size == 100 ? 65536 : 262144 ))
    for acks in written fsynced; do
        run "max-$size-$acks" --message-bytes "$size" --partitions 16 --acks "$acks" --batch-bytes "$batch"
    done
    half=$(( $(median_rate "max-$size-written") / 2 ))
    run "half-$size-written" --message-bytes "$size" --partitions 16 --acks written --batch-bytes "$batch" --rate "$half"
done

python3 - "$out" <<'PY'
import glob, json, os, statistics, sys
out = sys.argv[1]
names = sorted({os.path.basename(f).rsplit("-", 1)[0] for f in glob.glob(f"{out}/*-*.json")})
lines = ["| workload | msg/s | MB/s | consume msg/s | publish p50 / p99 / p99.9 / max ms | end-to-end p50 / p99 / p99.9 / max ms |", "|---|---|---|---|---|---|"]
for name in names:
    runs = [json.load(open(f)) for f in sorted(glob.glob(f"{out}/{name}-*.json"))]
    m = lambda key: statistics.median(r[key] for r in runs)
    lat = lambda kind: " / ".join(f"{m(f'aggregated{kind}Latency{p}'):.2f}" for p in ["50pct", "99pct", "999pct", "Max"])
    lines.append(f"| {name} | {m('publishRate'):,.0f} | {m('publishThroughputMBps'):,.0f} | {m('consumeRate'):,.0f} | {lat('Publish')} | {lat('EndToEnd')} |")
open(f"{out}/summary.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
