"""`mbmeta compare`: every controller on held-out and training tasks, several seeds; a table and plots.

Writes to the output folder: results.csv (one row per episode), results.md (mean ± standard error
per controller and task), returns.png (the same as bars) and adaptation.png (reward per step around
the moment the dynamics change mid-episode: a leg breaks, a payload is picked up).
"""

from __future__ import annotations

import dataclasses
import os
import platform
from pathlib import Path

import numpy as np

from mbmeta.checkpoint import write_csv
from mbmeta.parallel import map_ordered
from robots import AntTask, PayloadTask
from robots.base import Task
from scripts.common import SHIPPED, build, make_env, timed_episode

# Held-out ("test") and training tasks compared per robot, by name; and the mid-episode change.
TASKS = {
    "ant": {"test": ["broken-leg-3"], "train": ["healthy", "broken-leg-0", "broken-leg-1", "broken-leg-2"]},
    "quadrotor": {"test": ["heavy-payload"], "train": ["no-payload", "light-payload"]},
}
# Early enough that every controller is still going: the learned MPC controllers of the shipped
# checkpoints often end an episode within a few seconds (see the README).
CHANGE = {"ant": (AntTask(broken_leg=3, at_step=20), "leg 3 breaks"),
          "quadrotor": (PayloadTask(mass=0.010, cable_length=0.25, at_step=24), "payload picked up")}
DEFAULT_CONTROLLERS = ["adaptive", "nonadaptive", "pearl", "rl2", "scripted", "random"]


@dataclasses.dataclass
class CompareConfig:
    robot: str
    controllers: list[str]
    seeds: int = 3
    episode_length: int | None = None  # None: the robot's default
    out: Path = Path("results")
    seed: int = 0
    models: Path = SHIPPED  # where <robot>_grbal.pt, _mb.pt, _pearl.pt and _rl2.pt are
    curve_controllers: list[str] = dataclasses.field(default_factory=lambda: ["adaptive", "nonadaptive"])
    workers: int = 1  # > 1: episodes run on Ray workers
    ray_address: str | None = None  # an existing Ray cluster


@dataclasses.dataclass(frozen=True)
class EvalJob:
    """One episode of the comparison: a controller on a task (a name, or the mid-episode change) with a seed."""

    split: str  # "test", "train", or "change" for the adaptation curve
    task: str | Task
    controller: str
    seed: int


@dataclasses.dataclass
class Evaluate:
    """Runs an `EvalJob` (picklable, so Ray workers can run it); returns its table row and reward per step."""

    config: CompareConfig
    progress: bool = True

    def __call__(self, job: EvalJob) -> tuple[dict, np.ndarray]:
        config = self.config
        env = make_env(config.robot, job.task, episode_length=config.episode_length)
        controller = build(config.robot, job.controller, env, None, job.seed, config.models)
        result = timed_episode(env, controller, seed=job.seed)
        episode = result.episode
        task = job.task if isinstance(job.task, str) else job.task.name
        row = {"robot": config.robot, "split": job.split, "task": task, "controller": job.controller,
               "seed": job.seed, "return": episode.total_reward, "steps": episode.length,
               "terminated": episode.terminated, "latency_p50_ms": float(np.median(result.latencies_ms))}
        if self.progress:
            print(f"  {job.split:6s} {row['task']:15s} {job.controller:12s} seed {job.seed}: return "
                  f"{row['return']:9.2f} ({row['steps']} steps)", flush=True)
        rewards = np.full(env.episode_length, np.nan)
        rewards[: episode.length] = episode.rewards
        return row, rewards


def run_compare(config: CompareConfig, progress: bool = True) -> Path:
    """Every controller on every task with every seed, then the adaptation-curve episodes, on
    `config.workers` Ray workers when > 1; writes the table, CSV and plots to `config.out`."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = [config.seed + s for s in range(config.seeds)]
    jobs = [EvalJob(split, task, name, seed) for split, tasks in TASKS[config.robot].items() for task in tasks
            for name in config.controllers for seed in seeds]
    change, _ = CHANGE[config.robot]
    jobs += [EvalJob("change", change, name, seed) for name in config.curve_controllers for seed in seeds]
    results = map_ordered(Evaluate(config, progress), jobs, config.workers, config.ray_address)
    rows = [row for row, _ in results if row["split"] != "change"]
    write_csv(out / "results.csv", rows)
    (out / "results.md").write_text(markdown_table(config, rows))
    plot_returns(out / "returns.png", config, rows)
    curves = {name: mean_curve([r for row, r in results if row["split"] == "change" and row["controller"] == name])
              for name in config.curve_controllers}
    plot_adaptation(out / "adaptation.png", config, curves)
    return out


def mean_se(values: list[float]) -> tuple[float, float]:
    values = np.asarray(values, dtype=float)
    se = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
    return float(values.mean()), float(se)


def markdown_table(config: CompareConfig, rows: list[dict]) -> str:
    tasks = [(split, task) for split, names in TASKS[config.robot].items() for task in names]
    lines = [f"Return per episode, mean ± standard error over {config.seeds} seeds; robot {config.robot}, "
             f"episode length {config.episode_length or 'default'}; models {config.models}; "
             f"machine {platform.machine()}, "
             f"{os.cpu_count()} cores.", "",
             "| controller | " + " | ".join(f"{task} ({split})" for split, task in tasks) + " |",
             "|---|" + "---|" * len(tasks)]
    for name in config.controllers:
        cells = []
        for _, task in tasks:
            m, se = mean_se([r["return"] for r in rows if r["controller"] == name and r["task"] == task])
            cells.append(f"{m:.1f} ± {se:.1f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def mean_curve(runs: list[np.ndarray]) -> np.ndarray:
    """Reward per step averaged over the seeds that reached the step (NaN where none did)."""
    runs = np.array(runs)
    alive = ~np.isnan(runs).all(axis=0)
    return np.where(alive, np.nanmean(np.where(alive, runs, 0.0), axis=0), np.nan)


def pyplot():  # noqa: ANN201 - matplotlib.pyplot, imported on demand with a file-only backend
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_returns(path: Path, config: CompareConfig, rows: list[dict]) -> None:
    plt = pyplot()
    tasks = [task for names in TASKS[config.robot].values() for task in names]
    width = 0.8 / len(config.controllers)
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(tasks), 3.6))
    for i, name in enumerate(config.controllers):
        stats = [mean_se([r["return"] for r in rows if r["controller"] == name and r["task"] == t]) for t in tasks]
        ax.bar(np.arange(len(tasks)) + i * width, [m for m, _ in stats], width, yerr=[se for _, se in stats],
               label=name, capsize=2)
    ax.set_xticks(np.arange(len(tasks)) + width * (len(config.controllers) - 1) / 2, tasks)
    ax.set_ylabel("return per episode")
    ax.set_title(f"{config.robot}: held-out task first; mean ± s.e. over {config.seeds} seeds")
    save(fig, ax, path)


def plot_adaptation(path: Path, config: CompareConfig, curves: dict[str, np.ndarray]) -> None:
    plt = pyplot()
    task, label = CHANGE[config.robot]
    change = task.at_step
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for name, curve in curves.items():  # NaN after an episode ended early: a gap in the line
        ax.plot(np.arange(len(curve)), np.convolve(curve, np.ones(5) / 5, mode="same"), label=name)
    ax.axvline(change, color="k", linestyle="--", linewidth=1)
    ax.text(change, ax.get_ylim()[1], f" {label}", va="top", fontsize=8)
    ax.set_xlabel("control step")
    ax.set_ylabel("reward per step (5-step mean)")
    ax.set_title(f"{config.robot}: adaptation around a mid-episode change, mean of {config.seeds} seeds")
    save(fig, ax, path)


def save(fig: object, ax: object, path: Path) -> None:
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
