#!/usr/bin/python3
"""Medians of interleaved rounds (bench/rounds-in-vm.sh): lines
"round configuration size value unit cpu".  Prints a Markdown table with
each configuration's median and, for ours over the reference of each stack,
the median of the per-round ratios (jobs of one round ran minutes apart, so
pairing them cancels the emulated machine's drift) with a 90% bootstrap
confidence interval: a ratio whose interval holds 1.00 is not told apart
from the reference by these rounds.  Several runs (files, or runs appended
to one file) are pooled as separate rounds.

usage: rounds.py latency|fresh RESULTS.txt [RESULTS.txt ...]
"""
import collections
import random
import statistics
import sys

# (column title, configuration) and (ratio title, numerator, denominator)
TABLES = {
    "latency": ("half round trip in µs",
                [("UCX xpmem", "ucx-xpmem"), ("UCX posix", "ucx-posix"),
                 ("btl xpmem", "ob1-xpmem"), ("vader", "ob1-vader"),
                 ("btl xpmem without vader", "ob1-xpmem-alone")],
                [("posix/xpmem", "ucx-xpmem", "ucx-posix"),
                 ("vader/xpmem", "ob1-xpmem", "ob1-vader"),
                 ("vader/xpmem without vader", "ob1-xpmem-alone", "ob1-vader")]),
    "fresh": ("MB/s, a fresh buffer for every message",
              [("UCX xpmem", "ucx-xpmem"), ("UCX cma,posix", "ucx-cma"),
               ("UCX posix", "ucx-posix"), ("btl xpmem", "ob1-xpmem"),
               ("vader CMA", "ob1-vader"), ("vader CICO", "ob1-vader-cico")],
              [("UCX xpmem/cma,posix", "ucx-xpmem", "ucx-cma"),
               ("btl xpmem/vader CMA", "ob1-xpmem", "ob1-vader")]),
}


def size_label(size):
    if size >= 1024 and size % 1024 == 0:
        return f"{size // 1024} KiB"
    return f"{size} B"


def paired_ratio(values, num, den, higher_is_better):
    """Median of per-round num/den (inverted for latency, so that above 1
    means ours is better either way) and its 90% bootstrap interval."""
    ratios = [values[num][r] / values[den][r] for r in values[num] if r in values[den]]
    if not higher_is_better:
        ratios = [1 / x for x in ratios]
    if not ratios:
        return "n/a"
    rng = random.Random(1)  # the same table for the same data
    boots = sorted(statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(2000))
    return f"{statistics.median(ratios):.2f} ({boots[100]:.2f}–{boots[1899]:.2f})"


def main():
    kind, paths = sys.argv[1], sys.argv[2:]
    what, columns, ratios = TABLES[kind]
    latency = kind == "latency"
    # data[size][config][(file, round)] = value
    data = collections.defaultdict(lambda: collections.defaultdict(dict))
    run = 0  # a file, or a run appended to one (its round numbers start over)
    for path in paths:
        run, last = run + 1, 0
        for line in open(path):
            rnd, config, size, value, *_ = line.split()
            if int(rnd) < last:
                run += 1
            last = int(rnd)
            data[int(size)][config][(run, last)] = float(value)
    rounds = max(len(v) for by_config in data.values() for v in by_config.values())
    print(f"Medians of {rounds} interleaved rounds, {what}.  Ratios: median of the "
          "per-round ratios, " + ("reference over ours (above 1: ours is faster)" if latency
                                  else "ours over the reference") +
          ", with a 90% confidence interval.\n")
    print("| size | " + " | ".join(c[0] for c in columns) + " | " +
          " | ".join(r[0] for r in ratios) + " |")
    print("|---" * (1 + len(columns) + len(ratios)) + "|")
    for size in sorted(data):
        values = data[size]
        cells = []
        for _, c in columns:
            med = statistics.median(values[c].values()) if values[c] else float("nan")
            cells.append(f"{med:.2f}" if latency else f"{med:.1f}")
        cells += [paired_ratio(values, a, b, not latency) for _, a, b in ratios]
        print(f"| {size_label(size)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
