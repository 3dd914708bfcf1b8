"""The spread, over training seeds, of what tests/test_pearl.py asserts: where its bounds come from.

    python -m benchmarks.pearl_test_spread [--budget 6000] [--seeds 0,1,2,3,4]
    ATEN_CPU_CAPABILITY=default python -m benchmarks.pearl_test_spread   # another CPU's numerics

Trains the test's small PEARL agent on the toy task once per seed and prints, per seed, the mean return
of the first and third episode of 10 held-out tasks for each protocol the test runs (per-episode
posterior mean; per-step posterior mean) and per-episode posterior sampling.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from mbmeta.pearl import PEARLConfig, train_pearl
from robots.toys import PointDirection

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_pearl import SMALL, held_out_returns  # noqa: E402 - the test's own settings and protocol


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=int, default=6000)
    parser.add_argument("--seeds", default="0,1,2,3,4")
    args = parser.parse_args(argv)
    print("| seed | " + " | ".join(f"{u}-{z}: first, third" for u, z in PROTOCOLS) + " |")
    print("|---|" + "---|" * len(PROTOCOLS))
    for seed in (int(s) for s in args.seeds.split(",")):
        env = PointDirection()
        agent, _ = train_pearl(env, PEARLConfig(budget=args.budget, seed=seed, **SMALL), progress=False)
        cells = []
        for update, latent in PROTOCOLS:
            first, last = np.mean(held_out_returns(env, agent, update, latent), axis=0)[[0, -1]]
            cells.append(f"{first:.2f}, {last:.2f}")
        print(f"| {seed} | " + " | ".join(cells) + " |", flush=True)


PROTOCOLS = [("episode", "mean"), ("episode", "sample"), ("step", "mean")]

if __name__ == "__main__":
    main()
