#!/usr/bin/python3
"""Turn bench-in-vm.sh results into a table (medians over runs) and a plot.

usage: report.py RESULTS.txt OUTDIR [ompi|ucx]
"""
import collections
import statistics
import sys

STACK = sys.argv[3] if len(sys.argv) > 3 else "ompi"
# Column labels: (ours, kernel single copy, copy-in/copy-out).
NAMES = {"ompi": ("btl xpmem", "vader CMA", "vader CICO"),
         "ucx": ("UCX xpmem", "UCX cma,posix", "UCX posix")}[STACK]


def load(path):
    data = collections.defaultdict(list)
    for line in open(path):
        run, transport, buffers, mode, size, value, unit, cpu = line.split()
        data[(transport, buffers, mode, int(size))].append((float(value), float(cpu)))
    return {k: (statistics.median(v for v, _ in vals), statistics.median(c for _, c in vals), len(vals))
            for k, vals in data.items()}


def human(size):
    return f"{size >> 20} MiB" if size >= 1 << 20 else f"{size >> 10} KiB" if size >= 1024 else f"{size} B"


def table(med, lines):
    sizes = sorted({k[3] for k in med if k[2] == "bw" and k[0] != "memcpy"})
    runs = max(n for _, _, n in med.values())
    lines.append(f"Medians of {runs} runs.  MB/s; ratios are xpmem over the other column; "
                 "CPU = user+system seconds of both ranks per GiB moved.\n")
    for buffers in ("reused", "fresh"):
        lines.append(f"**Bandwidth, {buffers} buffers** (window of 64 non-blocking sends)\n")
        lines.append(f"| size | memcpy | {NAMES[0]} | {NAMES[1]} | {NAMES[2]} | xpmem/memcpy | xpmem/CMA | "
                     "xpmem/CICO | CPU xpmem | CPU CMA | CPU CICO |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for s in sizes:
            get = lambda t, b=buffers: med.get((t, b, "bw", s), (float("nan"), float("nan"), 0))
            mc, x, c, n = get("memcpy", "reused"), get("xpmem"), get("cma"), get("cico")
            lines.append(f"| {human(s)} | {mc[0]:.0f} | {x[0]:.0f} | {c[0]:.0f} | {n[0]:.0f} | "
                         f"{x[0] / mc[0]:.2f} | {x[0] / c[0]:.2f} | {x[0] / n[0]:.2f} | "
                         f"{x[1]:.2f} | {c[1]:.2f} | {n[1]:.2f} |")
        lines.append("")
    lat = sorted({k[3] for k in med if k[2] == "latency"})
    lines.append("**Latency** (ping-pong, half round trip, µs)\n")
    lines.append(f"| size | {NAMES[0]} | {NAMES[1]} | {NAMES[2]} | xpmem/{'vader' if STACK == 'ompi' else 'posix'} |")
    lines.append("|---|---|---|---|---|")
    for s in lat:
        x, c, n = (med.get((t, "reused", "latency", s), (float("nan"),))[0] for t in ("xpmem", "cma", "cico"))
        ref = c if STACK == "ompi" else n  # UCX's small messages go through posix either way
        lines.append(f"| {human(s)} | {x:.2f} | {c:.2f} | {n:.2f} | {x / ref:.2f} |")
    lines.append("")


def plot(med, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"memcpy": "tab:gray", "xpmem": "tab:orange", "cma": "tab:green", "cico": "tab:red"}
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    for ax, buffers in zip(axes[:2], ("reused", "fresh")):
        for transport, label in (("memcpy", "memcpy (ceiling)"), ("xpmem", NAMES[0]),
                                 ("cma", NAMES[1]), ("cico", NAMES[2])):
            b = "reused" if transport == "memcpy" else buffers
            pts = sorted((k[3], v[0]) for k, v in med.items() if k[:3] == (transport, b, "bw"))
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label,
                        color=colors[transport], linestyle="--" if transport == "memcpy" else "-")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("message size (bytes)")
        ax.set_ylabel("MB/s")
        ax.set_title(f"bandwidth, {buffers} buffers")
        ax.grid(True, alpha=0.3)
        ax.legend()
    ax = axes[2]
    for transport, label in (("xpmem", NAMES[0]), ("cma", NAMES[1]), ("cico", NAMES[2])):
        pts = sorted((k[3], v[0]) for k, v in med.items() if k[:3] == (transport, "reused", "latency"))
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label,
                color=colors[transport])
    ax.set_xscale("log", base=2)
    ax.set_xlabel("message size (bytes)")
    ax.set_ylabel("µs")
    ax.set_title("latency")
    ax.grid(True, alpha=0.3)
    ax.legend()
    title = "Open MPI 4.1" if STACK == "ompi" else "UCX 1.13 (Open MPI pml ucx)"
    fig.suptitle(f"{title} on node, QEMU/TCG guest: compare columns, not absolute numbers")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    med = load(sys.argv[1])
    lines = []
    table(med, lines)
    text = "\n".join(lines)
    print(text)
    open(f"{sys.argv[2]}/bench-table.md", "w").write(text + "\n")
    plot(med, f"{sys.argv[2]}/bench.png")
    print(f"wrote {sys.argv[2]}/bench-table.md and {sys.argv[2]}/bench.png")


main()
