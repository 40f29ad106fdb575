#!/usr/bin/python3
"""Medians of interleaved latency rounds: lines "round transport size value unit cpu"
(bench/latency-rounds.sh).  Prints ours over the reference for each stack.

usage: latency_rounds.py RESULTS.txt
"""
import collections
import statistics
import sys

data = collections.defaultdict(list)
for line in open(sys.argv[1]):
    _, transport, size, value, *_ = line.split()
    data[(transport, int(size))].append(float(value))
rounds = max(len(v) for v in data.values())
print(f"Medians of {rounds} interleaved rounds, half round trip in µs.\n")
print("| size | UCX xpmem | UCX posix | xpmem/posix | btl xpmem | vader | xpmem/vader "
      "| btl xpmem without vader | that/vader |")
print("|---|---|---|---|---|---|---|---|---|")
for size in sorted({k[1] for k in data}):
    m = {t: statistics.median(data[(t, size)]) if data[(t, size)] else float("nan")
         for t in ("ucx-xpmem", "ucx-posix", "ob1-xpmem", "ob1-vader", "ob1-xpmem-alone")}
    print(f"| {size} B | {m['ucx-xpmem']:.2f} | {m['ucx-posix']:.2f} | {m['ucx-xpmem'] / m['ucx-posix']:.2f} | "
          f"{m['ob1-xpmem']:.2f} | {m['ob1-vader']:.2f} | {m['ob1-xpmem'] / m['ob1-vader']:.2f} | "
          f"{m['ob1-xpmem-alone']:.2f} | {m['ob1-xpmem-alone'] / m['ob1-vader']:.2f} |")
