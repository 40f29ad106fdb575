#!/usr/bin/python3
"""Summarise bench/attach_touch output: for each measure, each
configuration's median ns per MiB and module events per MiB, and the median
of per-round ratios of the one-at-a-time PTE path on the same memory
("<memory>.single", the module before batching and huge mappings) over each
configuration, so > 1 means cheaper than before.  Older result files (no
"single" configuration, no lock column) use "<memory>.ptes".

usage: attach_touch.py RESULTS.txt
"""
import collections
import statistics
import sys


def baseline(config, configs):
    memory = config.split(".")[0]
    for mode in ("single", "ptes"):
        if f"{memory}.{mode}" in configs:
            return f"{memory}.{mode}"
    return None


def main(path):
    rows = collections.defaultdict(dict)  # (measure, config) -> round -> fields
    for line in open(path):
        f = line.split()
        if len(f) not in (7, 8) or not f[0].isdigit():
            continue
        rnd, config, measure = int(f[0]), f[1], f[2]
        values = [float(x) for x in f[3:]]
        rows[(measure, config)][rnd] = values + [float("nan")] * (5 - len(values))
    measures = sorted({m for m, _ in rows}, key=lambda m: (m != "first-touch", m != "copy", m))
    configs = sorted({c for _, c in rows})
    print("| measure | configuration | µs per MiB | faults/MiB | PTEs/MiB | PMDs/MiB | table locks/MiB | before ÷ this |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for m in measures:
        for c in configs:
            r = rows.get((m, c))
            if not r:
                continue
            med = [statistics.median(v[i] for v in r.values()) for i in range(5)]
            base = rows.get((m, baseline(c, configs)), {})
            ratios = [base[k][0] / v[0] for k, v in r.items() if k in base and v[0] > 0]
            ratio = f"{statistics.median(ratios):.2f}" if ratios else ""
            locks = "" if med[4] != med[4] else f"{med[4]:.1f}"
            print(f"| {m} | {c} | {med[0] / 1000:.1f} | {med[1]:.2f} | {med[2]:.1f} | {med[3]:.3f} | {locks} | {ratio} |")
    copy = rows.get(("copy", "memcpy"))
    if copy:
        print(f"\nmemcpy of the same bytes in one process: {statistics.median(v[0] for v in copy.values()) / 1000:.1f} µs per MiB")


if __name__ == "__main__":
    main(sys.argv[1])
