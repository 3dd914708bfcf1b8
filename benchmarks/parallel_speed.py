"""Episodes per second of GrBAL's data collection, serial and on Ray workers, side by side.

    python -m benchmarks.parallel_speed [--robot ant] [--episodes 16] [--iteration 1] [--repeats 3]

Iteration 0 collects with the exploration policy (cheap per step: the simulator dominates);
iteration 1 with adaptive CEM MPC on an untrained model of the default size (the planner dominates,
as in real training). Ray is started once, before timing, so its start-up is not counted; each
worker's first job (imports, kernel compilation) is warmed up the same way. Prints the median over
repeats and the speed-up over serial.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

import robots
from controllers.collection import collection_policy
from mbmeta.grbal import collect, episode_jobs
from mbmeta.maml import MetaConfig, MetaTrainer
from mbmeta.model import DynamicsModel, ModelConfig
from mbmeta.parallel import init_ray


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.parallel_speed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--robot", default="ant", choices=sorted(robots.ROBOTS))
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--episode-length", type=int, default=100)
    parser.add_argument("--iteration", type=int, default=1, choices=[0, 1])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    env = robots.make(args.robot, episode_length=args.episode_length)
    model = DynamicsModel(env.observation_space.shape[0], env.action_space.shape[0], ModelConfig())
    step_sizes = dict(MetaTrainer(model, MetaConfig()).step_sizes)
    rng = np.random.default_rng(0)
    jobs = episode_jobs(args.robot, args.episode_length, args.iteration, 5,
                        env.sample_tasks(args.episodes, "train", rng), rng)
    if max(args.workers) > 1:
        init_ray(max(args.workers))
    print(f"{args.robot}, {args.episodes} episodes of up to {args.episode_length} steps, iteration {args.iteration} "
          f"({'exploration' if args.iteration == 0 else 'adaptive CEM MPC'}); {platform.machine()}, "
          f"{os.cpu_count()} cores; median of {args.repeats}\n")
    print("| workers | episodes/s | steps/s | speed-up |\n|---|---|---|---|")
    base = None
    for workers in args.workers:
        collect(jobs[: 2 * workers], collection_policy, model, step_sizes, workers=workers)  # warm-up
        rates, steps = [], 0
        for _ in range(args.repeats):
            start = time.perf_counter()
            episodes = collect(jobs, collection_policy, model, step_sizes, workers=workers)
            rates.append(len(episodes) / (time.perf_counter() - start))
            steps = sum(e.length for e in episodes)
        rate = float(np.median(rates))
        base = base or rate
        print(f"| {workers} | {rate:.2f} | {rate * steps / len(jobs):.0f} | {rate / base:.2f}× |", flush=True)


if __name__ == "__main__":
    main()
