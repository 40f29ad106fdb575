#!/usr/bin/python3
"""Medians of interleaved rounds (bench/rounds-in-vm.sh): lines
"round configuration size value unit cpu".  Prints a Markdown table with
each configuration's median and, for ours over the reference of each stack,
the median of the per-round ratios (jobs of one round ran minutes apart, so
pairing them cancels the emulated machine's drift) with a 90% bootstrap
confidence interval: a ratio whose interval holds 1.00 is not told apart
from the reference by these rounds.  Several runs (files, or runs appended
to one file) are pooled as separate rounds.

A second table compares the good quartile of each configuration's jobs (the
25th percentile of latency, the 75th of bandwidth).  Under emulation a whole
job runs at one of two speeds, about 2x apart, for reasons outside the guest;
medians then depend on how many of a configuration's jobs drew the slow one,
while the good quartile compares jobs that ran undisturbed.

usage: rounds.py latency|fresh|ceiling|rndv|cells RESULTS.txt [RESULTS.txt ...]
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
    "ceiling": ("MB/s, reused buffers, each beside the receiver's memcpy of the same "
                "size in the same job",
                [("btl xpmem", "ob1-xpmem"), ("memcpy (btl job)", "ob1-xpmem-memcpy"),
                 ("UCX xpmem", "ucx-xpmem"), ("memcpy (UCX job)", "ucx-xpmem-memcpy")],
                [("btl xpmem/memcpy", "ob1-xpmem", "ob1-xpmem-memcpy"),
                 ("UCX xpmem/memcpy", "ucx-xpmem", "ucx-xpmem-memcpy")]),
    "rndv": ("MB/s, a fresh buffer for every message",
             [("UCX xpmem (get_zcopy)", "ucx-xpmem"), ("rkey_ptr", "ucx-xpmem-rkey-ptr"),
              ("rkey_ptr, no rep movsb", "ucx-xpmem-rkey-ptr-no-movsb"),
              ("UCX cma,posix", "ucx-cma")],
             [("get_zcopy/cma,posix", "ucx-xpmem", "ucx-cma"),
              ("rkey_ptr/cma,posix", "ucx-xpmem-rkey-ptr", "ucx-cma"),
              ("rkey_ptr no rep movsb/cma,posix", "ucx-xpmem-rkey-ptr-no-movsb", "ucx-cma")]),
    "cells": ("MB/s, a fresh buffer for every message",
              [("UCX xpmem (64 KiB cells)", "ucx-xpmem"), ("8 KiB cells", "ucx-xpmem-8k"),
               ("UCX cma,posix", "ucx-cma")],
              [("64 KiB cells/cma,posix", "ucx-xpmem", "ucx-cma"),
               ("8 KiB cells/cma,posix", "ucx-xpmem-8k", "ucx-cma")]),
}


def size_label(size):
    if size >= 1 << 20 and size % (1 << 20) == 0:
        return f"{size >> 20} MiB"
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


def good_quartile(values, latency):
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0] if latency else q[2]


def quartile_ratio(values, num, den, latency):
    """good_quartile(den) / good_quartile(num) for latency, num / den for
    bandwidth, and its 90% bootstrap interval (each configuration's jobs
    resampled on their own)."""
    a, b = list(values[num].values()), list(values[den].values())
    if len(a) < 2 or len(b) < 2:
        return "n/a"

    def ratio(x, y):
        qx, qy = good_quartile(x, latency), good_quartile(y, latency)
        return qy / qx if latency else qx / qy

    rng = random.Random(1)
    boots = sorted(ratio(rng.choices(a, k=len(a)), rng.choices(b, k=len(b)))
                   for _ in range(2000))
    return f"{ratio(a, b):.2f} ({boots[100]:.2f}–{boots[1899]:.2f})"


def print_table(data, columns, ratios, latency, cell, ratio_cell):
    print("| size | " + " | ".join(c[0] for c in columns) + " | " +
          " | ".join(r[0] for r in ratios) + " |")
    print("|---" * (1 + len(columns) + len(ratios)) + "|")
    for size in sorted(data):
        values = data[size]
        cells = []
        for _, c in columns:
            v = cell(list(values[c].values())) if len(values[c]) >= 2 else float("nan")
            cells.append(f"{v:.2f}" if latency else f"{v:.1f}")
        cells += [ratio_cell(values, a, b) for _, a, b in ratios]
        print(f"| {size_label(size)} | " + " | ".join(cells) + " |")


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
    print_table(data, columns, ratios, latency, statistics.median,
                lambda values, a, b: paired_ratio(values, a, b, not latency))
    print(f"\nGood quartile of each configuration's {rounds} jobs (" +
          ("25th percentile" if latency else "75th percentile") +
          "), with the ratios of those and a 90% confidence interval.\n")
    print_table(data, columns, ratios, latency, lambda v: good_quartile(v, latency),
                lambda values, a, b: quartile_ratio(values, a, b, latency))


if __name__ == "__main__":
    main()
