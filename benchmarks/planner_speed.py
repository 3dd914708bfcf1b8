"""Planner latency per control step over model sizes, populations and rollout backends.

    python -m benchmarks.planner_speed [--quick] [--repeats 15] [--robots ant quadrotor]

Part 1 times each robot's default controller (adapt on 5 transitions + plan): adapting from the prior
(GrBAL), continuing from the last step's parameters, and not adapting, on each CPU backend (and CUDA
where a GPU is present); for a robot with a mirror symmetry also with `mirror` (each step picks the
model or its mirror image, then plans in that frame). Part 2 sweeps model width/depth and population for
the three planners. Part 3 times the model rollout alone (what the fused kernels replace) with the
torch/fused ratio, measured side by side. Each row gives the median and p99 wall time of one control
step and the achieved model FLOP rate, next to this machine's measured float32 matrix-multiply rate.
Models have random weights: speed does not depend on their values.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import time
from collections.abc import Callable

import numpy as np
import torch

import robots
from controllers.mpc import MPCConfig, MPCController
from controllers.planners import PlannerConfig
from controllers.registry import DEFAULT_MPC
from controllers.rollout import CudaRollout, NumbaRollout, TorchRollout, cuda_available
from mbmeta.model import DynamicsModel, ModelConfig

DEFAULT_MODELS = {"ant": (256, 256, 256), "quadrotor": (128, 128)}  # the shipped presets' sizes
# Part 1's adaptation column: GrBAL's rule (one step from θ* each control step), continual (one step from
# the last step's φ, `--mpc from_prior=false`: the same work) and none.
ADAPTATION_RULES = {"from θ*": dict(adapt=True, from_prior=True), "continual": dict(adapt=True, from_prior=False),
                    "off": dict(adapt=False)}


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - start)
    return 2 * size**3 / np.median(times) / 1e9


def flops_per_prediction(model: DynamicsModel) -> int:
    return sum(2 * p.shape[1] * p.shape[2] for n, p in model.params.items() if n.startswith("w"))


class CountingRollout:
    """A rollout backend that counts the model predictions it makes (candidates x steps)."""

    def __init__(self, rollout: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> None:
        self.rollout, self.predictions = rollout, 0
        self.set_params = rollout.set_params

    def __call__(self, state: np.ndarray, actions: np.ndarray) -> np.ndarray:
        self.predictions += actions.shape[0] * actions.shape[1]
        return self.rollout(state, actions)


def time_controller(robot: str, hidden: tuple[int, ...], mpc: MPCConfig, repeats: int,
                    seed: int = 0) -> tuple[float, float, float]:
    """(median ms, p99 ms, achieved GFLOP/s) of one act() after a k-transition warm-up."""
    env = robots.make(robot)
    torch.manual_seed(seed)
    model = DynamicsModel(env.observation_space.shape[0], env.action_space.shape[0], ModelConfig(hidden=hidden))
    step_sizes = {n: torch.full_like(p, 0.01) for n, p in model.prior().items()}
    controller = MPCController(env.observation_space, env.action_space, model, step_sizes, env.planning_reward,
                               env.planning_terminal, mpc, mirror=env.mirror)
    if mpc.mirror:  # count inside the mirror, which the controller switches on and off
        controller.rollout.inner = counter = CountingRollout(controller.rollout.inner)
    else:
        controller.rollout = counter = CountingRollout(controller.rollout)
    obs, _ = env.reset(seed=seed)
    controller.reset(obs)
    rng = np.random.default_rng(seed)
    for _ in range(controller.config.k + 1):  # fill the adaptation window (and compile kernels)
        action = rng.uniform(env.action_space.low, env.action_space.high)
        next_obs = env.step(action)[0]
        controller.observe(obs, action, 0.0, next_obs, False)
        controller.act(next_obs)
        obs = next_obs
    counter.predictions = 0
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        controller.act(obs)
        times.append(time.perf_counter() - start)
    gflops = counter.predictions / repeats * flops_per_prediction(model) / np.median(times) / 1e9
    return 1e3 * float(np.median(times)), 1e3 * float(np.percentile(times, 99)), gflops


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="parts 1 and 3 only (no sweep)")
    parser.add_argument("--robots", nargs="+", choices=sorted(DEFAULT_MPC), default=sorted(DEFAULT_MPC),
                        help="the robots of part 1 (default: all)")
    args = parser.parse_args(argv)
    backends = ["torch", "numba"] + (["cuda"] if cuda_available(simulator_counts=False) else [])
    peak = matmul_gflops()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads); float32 matmul 2048x2048: {peak:.0f} GFLOP/s; "
          f"median and p99 of {args.repeats} control steps\n")
    print("Part 1: default controllers (CEM, iCEM refinements), one control step = adapt + plan")
    print("| robot | model | planner | adaptation | mirror | backend | p50 ms | p99 ms | GFLOP/s | % of matmul |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for robot in args.robots:
        mpc = DEFAULT_MPC[robot]
        p = mpc.planner
        for mirror in (False, True) if robots.ROBOTS[robot].mirror else (False,):
            for rule, adapt in ADAPTATION_RULES.items():
                for backend in backends:
                    cfg = dataclasses.replace(mpc, **adapt, backend=backend, mirror=mirror)
                    p50, p99, rate = time_controller(robot, DEFAULT_MODELS[robot], cfg, args.repeats)
                    print(f"| {robot} | {'x'.join(map(str, DEFAULT_MODELS[robot]))} | N={p.population} "
                          f"H={p.horizon} it={p.iterations} | {rule} | {mirror} | {backend} | {p50:.1f} | "
                          f"{p99:.1f} | {rate:.1f} | {100 * rate / peak:.0f}% |")
    if not args.quick:
        sweep(backends, peak, args.repeats)
    rollouts_alone(args.repeats)


def rollouts_alone(repeats: int) -> None:
    print("\nPart 3: one rollout call alone, N candidates x H=15 (ant dimensions), median ms")
    kinds = [TorchRollout, NumbaRollout] + ([CudaRollout] if cuda_available(simulator_counts=False) else [])
    print("| model | N | " + " | ".join(k.__name__ for k in kinds) + " | torch / Numba |")
    print("|---|---|" + "---|" * len(kinds) + "---|")
    rng = np.random.default_rng(0)
    for hidden in [(64, 64), (128, 128), (256, 256, 256)]:
        model = DynamicsModel(28, 8, ModelConfig(hidden=hidden))
        for n in (25, 50, 100, 400):
            actions = rng.uniform(-1, 1, (n, 15, 8)).astype(np.float32)
            state = np.zeros(28, np.float32)
            medians = []
            for kind in kinds:
                rollout = kind(model)
                rollout(state, actions)
                times = []
                for _ in range(max(repeats, 21)):
                    start = time.perf_counter()
                    rollout(state, actions)
                    times.append(time.perf_counter() - start)
                medians.append(1e3 * float(np.median(times)))
            print(f"| {'x'.join(map(str, hidden))} | {n} | " + " | ".join(f"{m:.2f}" for m in medians)
                  + f" | {medians[0] / medians[1]:.1f}x |")


def sweep(backends: list[str], peak: float, repeats: int) -> None:
    print("\nPart 2: sweep (ant dimensions, H=15, adaptive; CEM/MPPI 3 iterations, random shooting 1)")
    print("| model | planner | population | backend | p50 ms | p99 ms | GFLOP/s | % of matmul |")
    print("|---|---|---|---|---|---|---|---|")
    for hidden in [(64, 64), (256, 256, 256), (512, 512, 512)]:
        for population in (50, 200, 1000):
            for kind in ("random", "cem", "mppi"):
                for backend in backends:
                    planner = PlannerConfig(kind=kind, horizon=15, population=population,
                                            iterations=1 if kind == "random" else 3)
                    reps = max(3, repeats // (4 if population * max(hidden) >= 200_000 else 1))
                    p50, p99, rate = time_controller("ant", hidden, MPCConfig(planner=planner, backend=backend),
                                                     reps)
                    print(f"| {'x'.join(map(str, hidden))} | {kind} | {population} | {backend} | {p50:.1f} | "
                          f"{p99:.1f} | {rate:.1f} | {100 * rate / peak:.0f}% |")


if __name__ == "__main__":
    main()
