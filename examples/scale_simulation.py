"""How the hash index scales (docs/scale.md): simulated libraries of 1M and 10M 64-bit codes, each in a fresh
process; search latency, dedup's candidate stage, peak memory, a saved 1M index loaded, the verification's
cost per pair and per image, and dedup's time by the model. Prints markdown tables.

    python examples/scale_simulation.py --sizes 1000000 10000000
    python examples/scale_simulation.py --sizes 100000 --no-verification      # a quick look (seconds)

A 10M library needs about 11 GB of memory and half an hour on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from aetools.bench.scale import QUERIES, THREADS, run_scale, scale_tables


def markdown(table) -> str:
    lines = [
        f"**{table.title}**",
        "",
        "| " + " | ".join(table.columns) + " |",
        "|" + "|".join("---" for _ in table.columns) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in table.rows]
    return "\n".join(lines + [""] + [note + "\n" for note in table.notes])


def training_running() -> bool:
    """Whether an `aetools train` run is using the cores (then the timings are slower than on an idle machine)."""
    return bool(subprocess.run(["pgrep", "-f", "aetools train"], capture_output=True, text=True).stdout.strip())


def machine(shared: bool) -> str:
    """What the figures were measured on."""
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    memory = next((int(line.split()[1]) // 1024**2 for line in open("/proc/meminfo") if line.startswith("MemTotal")), 0)
    line = f"Measured on {os.cpu_count()} cores ({cpu}), {memory} GB of memory."
    return line + (" A training run (`aetools train`) was sharing the cores." if shared else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--threads", type=int, default=THREADS, help="the candidate stage's threads")
    parser.add_argument("--queries", type=int, default=QUERIES, help="timed queries per kind")
    parser.add_argument("--load-size", type=int, default=1_000_000, help="the size also saved and loaded")
    parser.add_argument("--no-verification", action="store_true", help="skip timing the verification stage")
    parser.add_argument("--tmp", default=None, help="where the saved index is written (default: the system's)")
    args = parser.parse_args()
    shared = training_running()
    report = run_scale(
        args.sizes,
        threads=args.threads,
        queries=args.queries,
        load_size=args.load_size,
        verification=not args.no_verification,
        tmp=args.tmp,
        on_step=lambda step: print(f"... {step}", file=sys.stderr, flush=True),
    )
    print(machine(shared or training_running()) + "\n")
    for table in scale_tables(report):
        print(markdown(table))


if __name__ == "__main__":
    main()
