"""What the commands share: controller names, shipped checkpoints, timed and measured episodes."""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

import robots
from controllers.base import Controller
from controllers.mpc import MPCConfig
from controllers.registry import ControllerConfig, default_mpc, make_controller
from mbmeta.config import from_dict, to_dict
from robots.base import RobotEnv, Task
from robots.rollout import Episode, rollout

SHIPPED = Path(__file__).resolve().parents[1] / "mbmeta" / "checkpoints"
#: Short names for the command line.
ALIASES = {"adaptive": "cem_adaptive", "nonadaptive": "cem_mpc"}


def shipped_checkpoint(robot: str, controller: str, models: Path = SHIPPED) -> Path | None:
    """The file in `models` (default: the ones shipped with mbmeta) that `controller` needs, or None:
    `<robot>_grbal.pt` (GrBAL's prior) for the adaptive MPC controllers, `<robot>_mb.pt` (the GrBAL
    paper's non-adaptive "MB" model) for the others, `<robot>_pearl.pt` and `<robot>_rl2.pt`."""
    controller = ALIASES.get(controller, controller)
    if controller.endswith(("_adaptive", "_mpc")):
        return Path(models) / f"{robot}_{'grbal' if controller.endswith('_adaptive') else 'mb'}.pt"
    if controller in ("pearl", "rl2"):
        return Path(models) / f"{robot}_{controller}.pt"
    return None


def build(robot: str, name: str, env: RobotEnv, checkpoint: str | None, seed: int,
          models: Path = SHIPPED, mpc: MPCConfig | None = None) -> Controller:
    """The controller `name` (an alias or a registered name) for `env`, on the shipped checkpoint
    unless `checkpoint` is given; `mpc` replaces the robot's default MPC settings."""
    if checkpoint is None:
        checkpoint = shipped_checkpoint(robot, name, models)
    name = ALIASES.get(name, name)
    return make_controller(ControllerConfig(controller=name, checkpoint=checkpoint and str(checkpoint), seed=seed,
                                            mpc=mpc), env)


def mpc_settings(robot: str, pairs: list[str]) -> MPCConfig | None:
    """The robot's default MPC settings with `KEY=VALUE` overrides (YAML values; dotted keys reach into
    the planner: `backtracking=3`, `planner.population=200`), checked like any config; None without any."""
    if not pairs:
        return None
    values = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep:
            raise ValueError(f"--mpc: expected KEY=VALUE, got {pair!r}")
        values[key] = yaml.safe_load(text)
    return mpc_with(robot, values)


def mpc_with(robot: str, values: dict[str, Any], where: str = "--mpc") -> MPCConfig:
    """The robot's default MPC settings with `values` by dotted name (`planner.population`), checked like any
    config; errors start with `where`."""
    data = to_dict(default_mpc(robot))
    for key, value in values.items():
        *path, last = key.split(".")
        node = data
        for part in path:
            if not isinstance(node.get(part), dict):
                raise ValueError(f"{where}: {key!r} names no setting; settings are {sorted(data)}")
            node = node[part]
        if last not in node:
            raise ValueError(f"{where}: {key!r} names no setting; settings are {sorted(node)}")
        node[last] = value
    return from_dict(MPCConfig, data, where=where)


class TimedController:
    """Wraps a controller and records, per `act`, its wall time, what it reports (`step_info`: the
    adaptation's losses and fallbacks) and, given a list, a rendered frame."""

    def __init__(self, controller: Controller, env: RobotEnv, frames: list[np.ndarray] | None = None) -> None:
        self.controller, self.env, self.frames = controller, env, frames
        self.latencies: list[float] = []
        self.step_infos: list[dict[str, float]] = []

    def reset(self, obs: np.ndarray, new_task: bool = True) -> None:
        self.controller.reset(obs, new_task)

    def act(self, obs: np.ndarray) -> np.ndarray:
        if self.frames is not None:
            self.frames.append(self.env.render())
        start = time.perf_counter()
        action = self.controller.act(obs)
        self.latencies.append(time.perf_counter() - start)
        self.step_infos.append(self.controller.step_info())
        return action

    def observe(self, *args: object) -> None:
        self.controller.observe(*args)


@dataclasses.dataclass
class EpisodeResult:
    """An episode with its task metrics (the robot's `episode_metrics`), per-step adaptation records
    and controller latencies."""

    episode: Episode
    latencies_ms: np.ndarray
    period_ms: float
    metrics: dict[str, float]
    adaptation: list[dict[str, float]]  # per step: {} or loss_before, loss_after, fallback
    end_reason: str = ""  # why it terminated, when it did (the robot's `termination_reason`)

    @property
    def misses(self) -> int:
        """Steps after the first whose controller time exceeded the robot's control period."""
        return int((self.latencies_ms[1:] > self.period_ms).sum())

    @property
    def adaptations(self) -> int:
        return sum(1 for record in self.adaptation if record)

    @property
    def fallbacks(self) -> int:
        """Adaptation steps whose guard fell back."""
        return int(sum(record.get("fallback", 0.0) for record in self.adaptation))

    @property
    def fallback_rate(self) -> float:
        """Share of this episode's adaptation steps whose guard fell back (NaN without adaptation)."""
        return self.fallbacks / self.adaptations if self.adaptations else float("nan")

    def timing(self) -> str:
        """Latency p50/p99 and misses over the steps after the first, whose one-time warm-up (lazy
        initialisation, kernel compilation) is reported on its own."""
        steady = self.latencies_ms[1:] if len(self.latencies_ms) > 1 else self.latencies_ms
        return (f"latency p50 {np.median(steady):.1f} ms, p99 {np.percentile(steady, 99):.1f} ms, {self.misses} "
                f"steps over the {self.period_ms:.1f} ms control period (first step {self.latencies_ms[0]:.0f} ms, "
                f"with warm-up)")

    def summary(self, labels: dict[str, str]) -> str:
        """Task metrics first, then return, length, adaptation and timing: one line."""
        ep = self.episode
        end = self.end_reason if ep.terminated else "ran to the end"
        parts = [format_metrics(self.metrics, labels), f"return {ep.total_reward:.1f}", f"{ep.length} steps ({end})"]
        if self.adaptations:
            parts.append(f"adaptation fallbacks {self.fallback_rate:.1%} of {self.adaptations} steps")
        return " | ".join(p for p in parts if p) + " | " + self.timing()


def format_metrics(metrics: dict[str, Any], labels: dict[str, str]) -> str:
    """'distance (m) 1.40, speed (m/s) 0.28, fell yes, fell at step 26': NaN entries left out."""
    out = []
    for key, label in labels.items():
        value = metrics.get(key)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        text = ("yes" if value else "no") if isinstance(value, bool) else str(value) if isinstance(value, int) else \
            f"{value:.2f}"
        out.append(f"{label} {text}")
    return ", ".join(out)


def timed_episode(env: RobotEnv, controller: Controller, seed: int, new_task: bool = True,
                  frames: list[np.ndarray] | None = None, progress: bool = False) -> EpisodeResult:
    """One episode; with `progress`, a bar over its steps showing the robot's live step metric."""
    timed = TimedController(controller, env, frames)
    bar, on_step = None, None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=env.episode_length, unit="step", leave=False)
        key = env.step_metric[0] if env.step_metric else None

        def on_step(step: int, info: dict[str, Any]) -> None:
            bar.update()
            if key is not None and step % 10 == 0:
                bar.set_postfix({key: f"{info[key]:.2f}"})
    try:
        episode = rollout(env, timed, seed=seed, new_task=new_task, on_step=on_step)
    finally:
        if bar is not None:
            bar.close()
    metrics = env.episode_metrics(episode.start_info, episode.infos, episode.terminated, env.dt)
    end = env.termination_reason(episode.observations[-1]) if episode.terminated else ""
    return EpisodeResult(episode, 1e3 * np.array(timed.latencies), 1e3 * env.dt, metrics, timed.step_infos, end)


def make_env(robot: str, task: str | Task | None, episode_length: int | None = None) -> RobotEnv:
    kwargs = {} if episode_length is None else {"episode_length": episode_length}
    env = robots.make(robot, **kwargs)
    if task is not None:
        env.set_task(task)
    return env
