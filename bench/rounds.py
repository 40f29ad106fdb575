#!/usr/bin/python3
"""Medians of interleaved rounds (bench/rounds-in-vm.sh): lines
"round configuration size value unit cpu".  Prints a Markdown table with
ours over the reference of each stack.

usage: rounds.py latency|fresh RESULTS.txt
"""
import collections
import statistics
import sys

# (column title, configuration) and (ratio title, numerator, denominator)
TABLES = {
    "latency": ("half round trip in µs",
                [("UCX xpmem", "ucx-xpmem"), ("UCX posix", "ucx-posix"),
                 ("btl xpmem", "ob1-xpmem"), ("vader", "ob1-vader"),
                 ("btl xpmem without vader", "ob1-xpmem-alone")],
                [("xpmem/posix", "ucx-xpmem", "ucx-posix"),
                 ("xpmem/vader", "ob1-xpmem", "ob1-vader"),
                 ("without vader/vader", "ob1-xpmem-alone", "ob1-vader")]),
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


def main():
    kind, path = sys.argv[1], sys.argv[2]
    what, columns, ratios = TABLES[kind]
    data = collections.defaultdict(list)
    for line in open(path):
        _, config, size, value, *_ = line.split()
        data[(config, int(size))].append(float(value))
    rounds = max(len(v) for v in data.values())
    print(f"Medians of {rounds} interleaved rounds, {what}.\n")
    print("| size | " + " | ".join(c[0] for c in columns) + " | " +
          " | ".join(r[0] for r in ratios) + " |")
    print("|---" * (1 + len(columns) + len(ratios)) + "|")
    for size in sorted({k[1] for k in data}):
        med = {c: statistics.median(data[(c, size)]) if data[(c, size)] else float("nan")
               for _, c in columns}
        cells = [f"{med[c]:.2f}" if kind == "latency" else f"{med[c]:.1f}" for _, c in columns]
        cells += [f"{med[a] / med[b]:.2f}" for _, a, b in ratios]
        print(f"| {size_label(size)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
