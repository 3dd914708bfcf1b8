"""What the commands share: controller names, shipped checkpoints, timed episodes."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

import robots
from controllers.base import Controller
from controllers.registry import CONTROLLERS, ControllerConfig, make_controller
from robots.base import RobotEnv, Task
from robots.rollout import Episode, rollout

SHIPPED = Path(__file__).resolve().parents[1] / "mbmeta" / "checkpoints"
#: Short names for the command line.
ALIASES = {"adaptive": "cem_adaptive", "nonadaptive": "cem_mpc"}
CONTROLLER_CHOICES = sorted([*ALIASES, *CONTROLLERS])


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
          models: Path = SHIPPED) -> Controller:
    """The controller `name` (an alias or a registered name) for `env`, on the shipped checkpoint
    unless `checkpoint` is given."""
    if checkpoint is None:
        checkpoint = shipped_checkpoint(robot, name, models)
    name = ALIASES.get(name, name)
    return make_controller(ControllerConfig(controller=name, checkpoint=checkpoint and str(checkpoint), seed=seed),
                           env)


class TimedController:
    """Wraps a controller and records the wall time of each `act` (and, given a list, a rendered frame)."""

    def __init__(self, controller: Controller, env: RobotEnv, frames: list[np.ndarray] | None = None) -> None:
        self.controller, self.env, self.frames = controller, env, frames
        self.latencies: list[float] = []

    def reset(self, obs: np.ndarray, new_task: bool = True) -> None:
        self.controller.reset(obs, new_task)

    def act(self, obs: np.ndarray) -> np.ndarray:
        if self.frames is not None:
            self.frames.append(self.env.render())
        start = time.perf_counter()
        action = self.controller.act(obs)
        self.latencies.append(time.perf_counter() - start)
        return action

    def observe(self, *args: object) -> None:
        self.controller.observe(*args)


@dataclasses.dataclass
class EpisodeResult:
    episode: Episode
    latencies_ms: np.ndarray
    period_ms: float

    @property
    def misses(self) -> int:
        """Steps after the first whose controller time exceeded the robot's control period."""
        return int((self.latencies_ms[1:] > self.period_ms).sum())

    def timing(self) -> str:
        """Latency p50/p99 and misses over the steps after the first, whose one-time warm-up (lazy
        initialisation, kernel compilation) is reported on its own."""
        steady = self.latencies_ms[1:] if len(self.latencies_ms) > 1 else self.latencies_ms
        return (f"latency p50 {np.median(steady):.1f} ms, p99 {np.percentile(steady, 99):.1f} ms, {self.misses} "
                f"steps over the {self.period_ms:.1f} ms control period (first step {self.latencies_ms[0]:.0f} ms, "
                f"with warm-up)")


def timed_episode(env: RobotEnv, controller: Controller, seed: int, new_task: bool = True,
                  frames: list[np.ndarray] | None = None) -> EpisodeResult:
    timed = TimedController(controller, env, frames)
    episode = rollout(env, timed, seed=seed, new_task=new_task)
    return EpisodeResult(episode, 1e3 * np.array(timed.latencies), 1e3 * env.dt)


def make_env(robot: str, task: str | Task | None, episode_length: int | None = None) -> RobotEnv:
    kwargs = {} if episode_length is None else {"episode_length": episode_length}
    env = robots.make(robot, **kwargs)
    if task is not None:
        env.set_task(task)
    return env
