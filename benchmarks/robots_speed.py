"""Environment steps per second of each robot, single env, single thread.

    python -m benchmarks.robots_speed [--steps 2000] [--repeats 5]

Prints the median and spread over repeats. The ant takes uniform random actions; the quadrotor takes
its hover command plus small uniform noise, since uniform random motor commands crash it at once
and the benchmark would time resets instead of steps.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

import robots
from robots.quadrotor import HOVER_COMMAND

ACTIONS = {"ant": "uniform random", "quadrotor": "hover command ± 0.05"}


def random_actions(name: str, env: robots.RobotEnv, rng: np.random.Generator, steps: int) -> np.ndarray:
    shape = (steps, *env.action_space.shape)
    if name == "quadrotor":
        return HOVER_COMMAND + rng.uniform(-0.05, 0.05, size=shape)
    return rng.uniform(env.action_space.low, env.action_space.high, size=shape)


def steps_per_second(name: str, steps: int, seed: int) -> tuple[float, int]:
    env = robots.make(name)
    rng = np.random.default_rng(seed)
    actions = random_actions(name, env, rng, steps)
    env.reset(seed=seed)
    done_steps, resets = 0, 0
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        done_steps += 1
        if terminated or truncated:
            env.reset()
            resets += 1
    return done_steps / (time.perf_counter() - start), resets


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}; "
          f"{args.steps} steps x {args.repeats} repeats")
    print("| robot | control dt | actions | median steps/s | min | max | resets per run |")
    print("|---|---|---|---|---|---|---|")
    for name in sorted(robots.ROBOTS):
        runs = [steps_per_second(name, args.steps, args.seed + r) for r in range(args.repeats)]
        rates = [rate for rate, _ in runs]
        dt = robots.make(name).dt
        print(f"| {name} | {dt:.4f} s | {ACTIONS[name]} | {np.median(rates):,.0f} | {min(rates):,.0f} | "
              f"{max(rates):,.0f} | {np.median([r for _, r in runs]):.0f} |")


if __name__ == "__main__":
    main()
