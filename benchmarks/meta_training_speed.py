"""Meta-training throughput (windows per second) and the time of one online adaptation step.

    python -m benchmarks.meta_training_speed [--robot ant] [--hidden 256 256 256] [--repeats 7]

Synthetic windows of the robot's dimensions (speed does not depend on the values). Reports medians
over repeats, side by side for second-order GrBAL, first-order GrBAL and the plain (MB) trainer scoring
the future one step at a time (GrBAL's), then second-order GrBAL and MB scoring it by open-loop rollouts
(`future_loss`).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable

import numpy as np
import torch

import robots
from mbmeta.adaptation import OnlineAdapter
from mbmeta.data import Windows
from mbmeta.maml import MetaConfig, MetaTrainer
from mbmeta.model import DynamicsModel, ModelConfig


def random_windows(B: int, k: int, K: int, ds: int, da: int, gen: torch.Generator) -> Windows:
    r = lambda n, d: torch.randn(B, n, d, generator=gen)  # noqa: E731
    return Windows(r(k, ds), r(k, da), r(k, ds), r(K, ds), r(K, da), r(K, ds))


def median_time(fn: Callable[[], object], repeats: int, inner: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - start) / inner)
    return float(np.median(times))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--robot", default="ant", choices=sorted(robots.ROBOTS))
    parser.add_argument("--hidden", type=int, nargs="+", default=list(ModelConfig().hidden))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    env = robots.make(args.robot)
    ds, da = env.observation_space.shape[0], env.action_space.shape[0]
    model = DynamicsModel(ds, da, ModelConfig(hidden=tuple(args.hidden)))
    base = MetaConfig()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads); robot {args.robot} (ds={ds}, da={da}); model {args.hidden}; "
          f"k={base.k}, K={base.K}, meta-batch {base.meta_batch_size}; median of {args.repeats}")
    print("| trainer | ms per update | windows/s |")
    print("|---|---|---|")
    for name, cfg in [("GrBAL, second order", base),
                      ("GrBAL, first order", MetaConfig(first_order=True)),
                      ("plain supervised (MB)", MetaConfig(inner_steps=0)),
                      ("GrBAL, second order, rollout future loss", MetaConfig(future_loss="rollout")),
                      ("plain supervised (MB), rollout loss", MetaConfig(inner_steps=0, future_loss="rollout"))]:
        trainer = MetaTrainer(model, cfg)
        windows = random_windows(cfg.meta_batch_size, cfg.k, cfg.K, ds, da, gen)
        t = median_time(lambda: trainer.step(windows), args.repeats, 5)  # noqa: B023
        print(f"| {name} | {1e3 * t:.1f} | {cfg.meta_batch_size / t:,.0f} |")
    adapter = OnlineAdapter(model, dict(MetaTrainer(model, base).step_sizes))
    w = random_windows(1, base.k, 1, ds, da, gen)
    t = median_time(lambda: adapter.adapt(w.past_obs[0], w.past_act[0], w.past_next[0]), args.repeats, 20)
    print(f"\nonline adaptation step (k={base.k}, one gradient step + guard): median {1e3 * t:.2f} ms")


if __name__ == "__main__":
    main()
