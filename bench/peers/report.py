#!/usr/bin/env python3
"""Turns one bench/compare.sh run (a directory of load-generator JSON) into summary.md, with
ringmq/peer ratios of like durability, and PNG plots: throughput bars per workload and latency
percentile curves at 50% of each setup's own maximum rate.

    python3 bench/peers/report.py bench/results/<date>/compare
"""
import glob
import json
import os
import statistics
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# Which ringmq setup answers which peers: only setups that persist alike are compared.
PAIRINGS = [
    ("ringmq-written", ["nats", "redis-everysec", "rabbitmq-stream"], "page cache: acked before any fsync"),
    ("ringmq-kafka", ["tansu"], "Kafka protocol through librdkafka; Tansu keeps nothing on disk"),
    ("ringmq-fsynced", ["nats-always", "redis-always", "rabbitmq-quorum"], "fsync before every ack"),
]
CLASS_COLOURS = {"page-cache": "tab:blue", "fsync": "tab:red", "memory": "tab:gray"}
CLASS_ORDER = {"page-cache": 0, "memory": 1, "fsync": 2}


def load(out):
    setups, runs = {}, defaultdict(list)
    for path in glob.glob(os.path.join(out, "*--*.json")):
        setup, rest = os.path.basename(path)[: -len(".json")].split("--", 1)
        data = json.load(open(path))
        if rest == "setup":
            setups[setup] = data
            continue
        kind, size, shape, _run = rest.split("-")
        runs[(setup, kind, int(size), shape)].append(data)
    measured = [json.load(open(path)) for path in sorted(glob.glob(os.path.join(out, "limits-*.json")))]
    # The better of the measurements (start and end of the run) is the machine's limit.
    limits = {key: max(m[key] for m in measured) for key in measured[0]}
    limits["append4KiBFdatasyncLatency50pct"] = min(m["append4KiBFdatasyncLatency50pct"] for m in measured)
    limits["append4KiBFdatasyncLatency99pct"] = min(m["append4KiBFdatasyncLatency99pct"] for m in measured)
    limits["measurements"] = measured
    return setups, runs, limits


def median(runs, key):
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else 0.0


def class_limit_mbps(limits, setup_class):
    disk = limits["sequentialWriteFdatasyncMBps"] if setup_class == "fsync" else limits["sequentialWriteMBps"]
    return min(disk, limits["loopbackTcpMBps"])


def fmt_rate(value):
    if value >= 1e6:
        return f"{value / 1e6:.2f} M"
    if value >= 1e3:
        return f"{value / 1e3:.0f} k"
    return f"{value:.0f}"


def ordered(setups):
    return sorted(setups, key=lambda s: (CLASS_ORDER.get(setups[s]["class"], 9), s))


def workloads(runs, kind):
    return sorted({(size, shape) for (_, k, size, shape) in runs if k == kind})


def main(out):
    setups, runs, limits = load(out)
    names = ordered(setups)
    machine = open(os.path.join(out, "machine.txt")).read().split("\n")
    lines = ["# ringmq and its peers, side by side", ""]
    lines += [
        f"Machine: {machine[0]} vCPU,{machine[1]}, {machine[2]}, Linux {machine[3]}, data on {machine[4]}; "
        "loopback only; load generator and broker share the cores. One run of bench/compare.sh: every "
        "figure below comes from the same run. Latencies in ms; rates are medians where a workload ran "
        "more than once (see the runs column).",
        "",
        "## The machine's limits, measured in this run",
        "",
        f"Measured at the start and at the end of the run ({len(limits['measurements'])} times); the better figure of each is the limit. "
        "Each measurement: " + "; ".join(
            f"{m['sequentialWriteMBps']:.0f} / {m['sequentialWriteFdatasyncMBps']:.0f} / {m['loopbackTcpMBps']:.0f} MB/s"
            for m in limits["measurements"]) + " (page cache / fdatasync'd / loopback).",
        "",
        "| what | figure |",
        "|---|---|",
        f"| sequential write, 1 MiB blocks, page cache | {limits['sequentialWriteMBps']:.0f} MB/s |",
        f"| sequential write, 1 MiB blocks, fdatasync each | {limits['sequentialWriteFdatasyncMBps']:.0f} MB/s |",
        f"| 4 KiB append + fdatasync | {limits['append4KiBFdatasyncPerSecond']:.0f}/s, p50 {limits['append4KiBFdatasyncLatency50pct']:.2f} ms, p99 {limits['append4KiBFdatasyncLatency99pct']:.2f} ms |",
        f"| loopback TCP, one stream, 128 KiB writes | {limits['loopbackTcpMBps']:.0f} MB/s |",
        "",
        "\"of limit\" below is publish MB/s over the lesser of loopback and the disk figure of the setup's "
        "class (page cache for page-cache and memory setups, fdatasync'd writes for fsync setups).",
        "",
        "## Setups and what an acknowledgement means",
        "",
        "| setup | client | class | durability |",
        "|---|---|---|---|",
    ]
    for name in names:
        s = setups[name]
        lines.append(f"| {name} | {s['system']} (acks {s['acks']}) | {s['class']} | {s['durability']} |")

    lines += ["", "## Maximum rate", ""]
    for size, shape in workloads(runs, "max"):
        lines += [
            f"### {size} B, {shape.replace('x', ' producer(s) x ')} consumer(s), 16 partitions",
            "",
            "| setup | class | runs | publish msg/s | MB/s | of limit | consume msg/s | publish p50 / p99 ms | broker CPU s per GB | broker RSS MB |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name in names:
            r = runs.get((name, "max", size, shape))
            if not r:
                continue
            mbps = median(r, "publishThroughputMBps")
            limit = class_limit_mbps(limits, setups[name]["class"])
            lines.append(
                f"| {name} | {setups[name]['class']} | {len(r)} | {fmt_rate(median(r, 'publishRate'))} | {mbps:.1f} | "
                f"{mbps / limit:.2f} | {fmt_rate(median(r, 'consumeRate'))} | "
                f"{median(r, 'aggregatedPublishLatency50pct'):.2f} / {median(r, 'aggregatedPublishLatency99pct'):.2f} | "
                f"{median(r, 'brokerCpuSecondsPerGB'):.1f} | {median(r, 'brokerRssMaxMB'):.0f} |"
            )
        lines.append("")

    lines += [
        "## Ratios: ringmq / peer, like durability only",
        "",
        "Publish and consume: ringmq's rate over the peer's (above 1: ringmq moves more). Latency: the "
        "peer's end-to-end p99 at 50% of its own maximum over ringmq's at 50% of ringmq's (above 1: "
        "ringmq is faster to deliver, although at a higher rate).",
        "",
    ]
    for ours, peers, why in PAIRINGS:
        if ours not in setups:
            continue
        lines += [f"### {ours} against {', '.join(peers)} ({why})", "",
                  "| workload | peer | publish | consume | e2e p99 at 50% |", "|---|---|---|---|---|"]
        for size, shape in workloads(runs, "max"):
            for peer in peers:
                a, b = runs.get((ours, "max", size, shape)), runs.get((peer, "max", size, shape))
                if not a or not b:
                    continue
                ratio = lambda key: median(a, key) / median(b, key) if median(b, key) else float("inf")
                la, lb = runs.get((ours, "rate50", size, "1x1")), runs.get((peer, "rate50", size, "1x1"))
                latency = "-"
                if la and lb and shape == "1x1" and median(la, "aggregatedEndToEndLatency99pct"):
                    latency = f"{median(lb, 'aggregatedEndToEndLatency99pct') / median(la, 'aggregatedEndToEndLatency99pct'):.1f}x"
                lines.append(f"| {size} B {shape} | {peer} | {ratio('publishRate'):.1f}x | {ratio('consumeRate'):.1f}x | {latency} |")
        lines.append("")

    lines += ["## Fixed rates: latency (corrected for coordinated omission)", ""]
    for size in sorted({size for (_, k, size, _) in runs if k.startswith("rate")}):
        lines += [
            f"### {size} B, 1 producer, 1 consumer",
            "",
            "| setup | % of own max | target msg/s | achieved | of limit | publish p50 / p99 / p99.9 / p99.99 / max | end-to-end p50 / p99 / p99.9 / p99.99 / max |",
            "|---|---|---|---|---|---|---|",
        ]
        for name in names:
            for kind in sorted(k for (n, k, s, _) in runs if n == name and s == size and k.startswith("rate")):
                r = runs[(name, kind, size, "1x1")]
                pct = lambda which: " / ".join(
                    f"{median(r, f'aggregated{which}Latency{p}'):.2f}" for p in ["50pct", "99pct", "999pct", "9999pct", "Max"])
                lines.append(
                    f"| {name} | {kind[4:]} | {fmt_rate(r[0]['workload']['targetRate'])} | {fmt_rate(median(r, 'publishRate'))} | "
                    f"{median(r, 'publishThroughputMBps') / class_limit_mbps(limits, setups[name]['class']):.2f} | "
                    f"{pct('Publish')} | {pct('EndToEnd')} |")
        lines.append("")

    backlog = [(n, runs[(n, "backlog", 1024, "1x1")]) for n in names if (n, "backlog", 1024, "1x1") in runs]
    if backlog:
        lines += [
            "## Backlog: 1 KiB messages produced with no consumer (up to 2 GB or 15 s), then drained (for up to 20 s)",
            "",
            "| setup | backlog MB | produce MB/s | of limit | drain MB/s | of loopback | drained | broker CPU s per GB | broker RSS MB |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name, r in backlog:
            r = r[0]
            done = "all" if r["messagesConsumed"] >= r["messagesPublished"] else f"{r['messagesConsumed'] / max(r['messagesPublished'], 1):.0%} in 20 s"
            lines.append(
                f"| {name} | {r['messagesPublished'] * r['workload']['messageSize'] / 1e6:.0f} | {r['publishThroughputMBps']:.0f} | "
                f"{r['publishThroughputMBps'] / class_limit_mbps(limits, setups[name]['class']):.2f} | "
                f"{r['consumeThroughputMBps']:.0f} | {r['consumeThroughputMBps'] / limits['loopbackTcpMBps']:.2f} | {done} | {r['brokerCpuSecondsPerGB']:.1f} | {r['brokerRssMaxMB']:.0f} |")
        lines.append("")

    lines += [
        "## Not in this run",
        "",
        "Apache Iggy 0.9 (thread-per-core io_uring, Rust) does not install here; ../shared/PEERS.md records "
        "2.43 M msg/s of 100 B from one producer with its own benchmark (1.53 M with an fsync per batch) "
        "on this machine kind. That is a different run and a different client, so it is quoted, not compared.",
        "",
        "Plots: throughput-<size>-<shape>.png and latency-<size>.png in this directory.",
    ]
    open(os.path.join(out, "summary.md"), "w").write("\n".join(lines) + "\n")
    plot(out, setups, runs, names)
    print("\n".join(lines))


def plot(out, setups, runs, names):
    for size, shape in workloads(runs, "max"):
        present = [n for n in names if (n, "max", size, shape) in runs]
        values = [median(runs[(n, "max", size, shape)], "publishThroughputMBps") for n in present]
        fig, ax = plt.subplots(figsize=(8, 0.45 * len(present) + 1.5))
        ax.barh(present, values, color=[CLASS_COLOURS.get(setups[n]["class"], "black") for n in present])
        for y, v in enumerate(values):
            ax.text(v, y, f" {v:.0f}", va="center", fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("publish MB/s (median)")
        ax.set_title(f"Maximum rate, {size} B, {shape} producers x consumers (blue: page cache, red: fsync, grey: memory)", fontsize=9)
        fig.tight_layout()
        fig.savefig(os.path.join(out, f"throughput-{size}-{shape}.png"), dpi=110)
        plt.close(fig)
    for size in sorted({s for (_, k, s, _) in runs if k == "rate50"}):
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
        for ax, (key, title) in zip(axes, [("publishLatencyCurve", "publish"), ("endToEndLatencyCurve", "end to end")]):
            for name in names:
                r = runs.get((name, "rate50", size, "1x1"))
                if not r or not r[0].get(key):
                    continue
                curve = [(q, ms) for q, ms in r[0][key] if q < 1.0]
                xs = [1 / (1 - q) for q, _ in curve]
                ax.plot(xs, [max(ms, 1e-3) for _, ms in curve], marker=".", label=name,
                        linestyle="-" if setups[name]["class"] != "fsync" else "--")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ticks = [1, 2, 10, 100, 1000, 10000]
            ax.set_xticks(ticks, ["p0", "p50", "p90", "p99", "p99.9", "p99.99"])
            ax.set_xlabel("percentile")
            ax.set_title(f"{title} latency, {size} B at 50% of each setup's max", fontsize=9)
            ax.grid(True, which="major", alpha=0.3)
        axes[0].set_ylabel("ms (log)")
        axes[1].legend(fontsize=7, loc="upper left")
        fig.tight_layout()
        fig.savefig(os.path.join(out, f"latency-{size}.png"), dpi=110)
        plt.close(fig)


if __name__ == "__main__":
    main(sys.argv[1])
