"""How long the command line takes to answer `--help` and an argument error (a fresh process each time).

    python -m benchmarks.cli_startup [--repeats 7] [--root DIR]

`--root` times the command line of another checkout (e.g. an older commit in a git worktree) with the same
interpreter, so two versions are compared in one run on one machine. Prints median and range per case.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time

import numpy as np

CASES = {"mbmeta --help": ["--help"], "mbmeta run --help": ["run", "--help"],
         "mbmeta run ant --episodes 0 (error)": ["run", "ant", "--episodes", "0"]}


def seconds(args: list[str], root: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "scripts.cli", *args], cwd=root, capture_output=True, check=False)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--root", default=os.getcwd(), help="the checkout whose scripts.cli is timed")
    args = parser.parse_args(argv)
    print(f"# command-line start-up, {args.root}; {platform.machine()}, {os.cpu_count()} cores, "
          f"{args.repeats} runs each\n")
    print("| command | median (s) | range (s) |\n|---|---|---|")
    for name, cli_args in CASES.items():
        times = [seconds(cli_args, args.root) for _ in range(args.repeats)]
        print(f"| {name} | {np.median(times):.2f} | {min(times):.2f}–{max(times):.2f} |", flush=True)


if __name__ == "__main__":
    main()
