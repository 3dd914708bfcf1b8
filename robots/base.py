"""The robot interface that learners and planners rely on.

A robot is a `gymnasium.Env` whose dynamics can be changed by a *task*: a small, serialisable
description (a broken leg, a payload). Every robot also exposes its reward and termination as
batched functions of observations, so a planner can score thousands of imagined transitions with
exactly the formula the simulator uses.

Reward functions here are written with operations that numpy arrays and torch tensors share
(indexing, `**`, `.sum(-1)`, `.clip()`, comparisons), so the environment computes its own reward
with the very function a planner calls on torch batches.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, Literal, TypeVar

import gymnasium as gym
import numpy as np

Split = Literal["train", "test"]
SPLITS: tuple[str, ...] = ("train", "test")
T = TypeVar("T", bound="Task")

# Standard gravity (m/s²), the value both robots' simulators use.
GRAVITY = 9.81


@dataclasses.dataclass(frozen=True)
class Task:
    """A dynamics change, serialisable to a plain dict (and so to YAML).

    Subclasses are frozen dataclasses that validate their values in `__post_init__` and may set
    `at_step`: the episode step from which the change applies (None: from the start).
    """

    at_step: int | None = None

    def __post_init__(self) -> None:
        if self.at_step is not None and (not isinstance(self.at_step, int) or self.at_step < 0):
            raise ValueError(f"{type(self).__name__}.at_step must be a non-negative int or None, got {self.at_step!r}")

    @property
    def name(self) -> str:
        """A short human-readable label, also used as the task id in datasets."""
        raise NotImplementedError

    def nominal(self: T) -> T:
        """The task in force before `at_step` (the unchanged robot)."""
        raise NotImplementedError

    def active(self: T, step: int) -> T:
        """The task whose dynamics apply at episode step `step`."""
        if self.at_step is None:
            return self
        if step < self.at_step:
            return self.nominal()
        return dataclasses.replace(self, at_step=None)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[T], spec: Mapping[str, Any] | T) -> T:
        """Build a task from a dict, rejecting unknown fields by name and listing the valid ones."""
        if isinstance(spec, cls):
            return spec
        fields = [f.name for f in dataclasses.fields(cls)]
        if not isinstance(spec, Mapping):
            raise ValueError(f"{cls.__name__}: expected a mapping with fields {fields}, got {type(spec).__name__}")
        unknown = sorted(set(spec) - set(fields))
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown field(s) {unknown}; valid fields are {fields}")
        return cls(**spec)


def check_array(value: Any, shape: tuple[int, ...], what: str, finite: bool = True) -> np.ndarray:
    """Return `value` as a float64 array of `shape`, or raise a ValueError saying what is wrong
    (with `finite`, also for NaN or inf)."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what} must be numeric with shape {shape}, got {type(value).__name__}") from err
    if arr.shape != shape:
        raise ValueError(f"{what} must have shape {shape}, got {arr.shape}")
    if finite and not np.all(np.isfinite(arr)):
        bad = np.flatnonzero(~np.isfinite(arr.ravel())).tolist()
        raise ValueError(f"{what} must be finite, got NaN or inf at index {bad}")
    return arr


@contextlib.contextmanager
def silenced_output() -> Iterator[None]:
    """Silence file descriptors 1 and 2, where C libraries (pybullet) print banners past Python."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in [*saved, devnull]:
            os.close(fd)


@dataclasses.dataclass(frozen=True)
class Mirror:
    """A reflection the robot's physics do not change: the robot seen in a mirror is a robot too.

    Entry i of a mirrored observation is `sign[i]` times entry `index[i]` of the original (a joint on the
    other side of the body; an angle or velocity whose sense the reflection reverses); actions likewise.
    Reflecting twice gives back the original. A model of the robot, called on mirrored states and
    actions with its prediction mirrored back, is a model of the mirror image: what a model knows about
    one side of the body, it then knows about the other (issue 14: the ant's held-out broken leg is the
    mirror image of a training one).
    """

    obs_index: tuple[int, ...]
    obs_sign: tuple[float, ...]
    act_index: tuple[int, ...]
    act_sign: tuple[float, ...]

    def __post_init__(self) -> None:
        for name, index, sign in [("obs", self.obs_index, self.obs_sign), ("act", self.act_index, self.act_sign)]:
            if sorted(index) != list(range(len(index))) or len(sign) != len(index) or \
                    any(s not in (-1.0, 1.0) for s in sign):
                raise ValueError(f"Mirror.{name}_index must permute 0..n-1 and {name}_sign hold n signs ±1")
            if any(index[index[i]] != i or sign[i] != sign[index[i]] for i in range(len(index))):
                raise ValueError(f"Mirror.{name}_index/{name}_sign: reflecting twice must give back the original")

    def obs(self, x: np.ndarray) -> np.ndarray:
        """Mirror observations (..., obs_dim), keeping their dtype."""
        return (x[..., list(self.obs_index)] * np.asarray(self.obs_sign)).astype(x.dtype, copy=False)

    def action(self, a: np.ndarray) -> np.ndarray:
        """Mirror actions (..., act_dim), keeping their dtype."""
        return (a[..., list(self.act_index)] * np.asarray(self.act_sign)).astype(a.dtype, copy=False)


class RobotEnv(gym.Env):
    """Base class of mbmeta's robots: a gymnasium Env with a task distribution and batched reward.

    Subclasses define `task_type`, the named tasks and splits, `_apply_task`, `_reset_sim`,
    `_step_sim`, `_observe`, and the batched static functions `reward` and `is_terminal`.
    """

    task_type: ClassVar[type[Task]]
    #: Named tasks a user can ask for by name, e.g. on the command line.
    named_tasks: ClassVar[dict[str, Task]]
    #: The named tasks `mbmeta compare` runs, by split ("test": held out from training, "train").
    #: A robot that declares none is compared on all its named tasks.
    evaluation_tasks: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: The named task whose change happens mid-episode (`at_step`), for the adaptation plot; or None.
    change_task: ClassVar[str | None] = None
    #: The per-step `info` entry that shows the task being done (with its axis label), or None.
    step_metric: ClassVar[tuple[str, str] | None] = None
    #: The task metrics `episode_metrics` returns, the headline first, with their table labels.
    metric_labels: ClassVar[dict[str, str]] = {}
    #: Named slices of the observation, for diagnostics that say which part of the state a model gets wrong.
    observation_groups: ClassVar[dict[str, slice]] = {}
    #: A reflection symmetry of the robot's physics, for controllers that use it (`MPCConfig.mirror`), or None.
    mirror: ClassVar[Mirror | None] = None

    def __init__(self, episode_length: int, task: Task | Mapping[str, Any] | None = None) -> None:
        if not isinstance(episode_length, int) or episode_length <= 0:
            raise ValueError(f"episode_length must be a positive int, got {episode_length!r}")
        self.episode_length = episode_length
        self._task: Task = self.parse_task(task) if task is not None else self.task_type()
        self._active: Task | None = None  # the dynamics currently applied to the simulator
        self._step = 0
        self._obs: np.ndarray | None = None  # the latest observation

    # ----- tasks -----------------------------------------------------------------------------
    @classmethod
    def parse_task(cls, task: Task | Mapping[str, Any] | str) -> Task:
        """Accept a task object, a dict of its fields, or the name of a named task."""
        if isinstance(task, str):
            if task not in cls.named_tasks:
                raise ValueError(f"unknown task {task!r}; named tasks are {sorted(cls.named_tasks)}")
            return cls.named_tasks[task]
        return cls.task_type.from_dict(task)

    @classmethod
    def sample_tasks(cls, n: int, split: Split = "train", rng: np.random.Generator | None = None) -> list[Task]:
        """Draw `n` tasks of the given split."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be a non-negative int, got {n!r}")
        return cls._sample_tasks(n, split, rng if rng is not None else np.random.default_rng())

    @classmethod
    def _sample_tasks(cls, n: int, split: str, rng: np.random.Generator) -> list[Task]:
        raise NotImplementedError

    @property
    def task(self) -> Task:
        return self._task

    def set_task(self, task: Task | Mapping[str, Any] | str) -> None:
        """Change the dynamics. Takes effect on the next `step` (or at `reset`).

        A task's `at_step` counts from the start of the episode, so a task with `at_step=200`
        set mid-episode at step 300 applies at once on the next step.
        """
        self._task = self.parse_task(task)

    def _sync_task(self) -> None:
        active = self._task.active(self._step)
        if active != self._active:
            self._apply_task(active)
            self._active = active

    # ----- gymnasium API -----------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        if options and "task" in options:
            self.set_task(options["task"])
        self._step = 0
        self._active = None
        self._reset_sim()
        self._sync_task()
        self._obs = self._observe()
        return self._obs, self._info()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self._obs is None:
            raise RuntimeError(f"{type(self).__name__}.step() called before reset(); call env.reset(seed=...) first")
        action = check_array(action, self.action_space.shape, "action")
        action = np.clip(action, self.action_space.low, self.action_space.high)
        self._sync_task()
        obs_before = self._obs
        self._step_sim(action)
        self._step += 1
        obs = self._obs = self._observe()
        reward = float(self.reward(obs_before[None], action[None], obs[None])[0])
        terminated = bool(self.is_terminal(obs[None])[0])
        truncated = self._step >= self.episode_length and not terminated
        return obs, reward, terminated, truncated, self._info()

    # ----- imagining on the true simulator (the oracle planner) -------------------------------------
    def snapshot(self) -> tuple[Any, ...]:
        """Everything `restore` needs to put this env back exactly where it is now."""
        if self._obs is None:
            raise RuntimeError(f"{type(self).__name__}.snapshot() called before reset()")
        return self._step, self._obs, self._active, self._get_sim_state()

    def restore(self, snapshot: tuple[Any, ...]) -> None:
        """Return to a `snapshot` of this env (the same episode: the same bodies in the simulator)."""
        step, obs, active, sim_state = snapshot
        if active != self._active:
            self._apply_task(active)
            self._active = active
        self._step, self._obs = step, obs
        self._set_sim_state(sim_state)

    def imagine(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Roll each of N action sequences (N, H, da) out from the current state in this very simulator,
        with the true task (including a change due within the horizon); returns rewards (N, H) and
        terminated flags (N, H), steps after a termination scoring 0 and flagged. The env is left exactly
        as it was: the same numbers `step` gives, candidate by candidate (a robot may override it with a
        faster batched way that gives them too)."""
        n, horizon, _ = actions.shape
        rewards, terminated = np.zeros((n, horizon)), np.zeros((n, horizon), bool)
        with self._left_as_it_is() as start:
            for i in range(n):
                self.restore(start)
                for t in range(horizon):
                    _, rewards[i, t], terminated[i, t], truncated, _ = self.step(actions[i, t])
                    if terminated[i, t]:
                        terminated[i, t:] = True
                        break
        return rewards, terminated

    def imagine_path(self, actions: np.ndarray) -> np.ndarray:
        """The observations (H + 1, ds) along one action sequence (H, da) from the current state in this very
        simulator, the current one first, every step taken even past a termination (a planner's objective
        masks those); the env is left exactly as it was."""
        with self._left_as_it_is():
            return np.stack([self._obs, *(self.step(action)[0] for action in actions)])

    @contextlib.contextmanager
    def _left_as_it_is(self) -> Iterator[tuple[Any, ...]]:
        """Within: free to step; after: this env back at the snapshot taken on entry (which it yields)."""
        start = self.snapshot()
        try:
            yield start
        finally:
            self.restore(start)
            self._release_sim_state(start[3])

    def _info(self) -> dict[str, Any]:
        assert self._active is not None
        return {"task": self._active.name, "task_spec": self._task.to_dict(), "step": self._step, **self._metrics()}

    # ----- what each robot provides ------------------------------------------------------------
    def _apply_task(self, task: Task) -> None:
        raise NotImplementedError

    def _reset_sim(self) -> None:
        raise NotImplementedError

    def _step_sim(self, action: np.ndarray) -> None:
        raise NotImplementedError

    def _observe(self) -> np.ndarray:
        raise NotImplementedError

    def _metrics(self) -> dict[str, float]:
        """Per-step quantities for `info` (and for `episode_metrics`)."""
        return {}

    @classmethod
    def episode_metrics(cls, start_info: dict[str, Any], infos: list[dict[str, Any]], terminated: bool,
                        dt: float) -> dict[str, float]:
        """Task metrics of one episode (named in `metric_labels`) from what reset and each step reported."""
        return {}

    @classmethod
    def termination_reason(cls, obs: np.ndarray) -> str:
        """Why an episode ending in observation `obs` terminated, in a few words."""
        return "terminated"

    @classmethod
    def tasks_to_evaluate(cls) -> dict[str, tuple[str, ...]]:
        """`evaluation_tasks`, or all named tasks under "all" when the robot declares none."""
        return dict(cls.evaluation_tasks) or {"all": tuple(cls.named_tasks)}

    def _get_sim_state(self) -> Any:
        raise NotImplementedError(f"{type(self).__name__} cannot save its simulator state (the oracle needs it)")

    def _set_sim_state(self, state: Any) -> None:
        raise NotImplementedError

    def _release_sim_state(self, state: Any) -> None:
        """Free what `_get_sim_state` allocated in the simulator, if anything."""

    @staticmethod
    def reward(obs: Any, action: Any, next_obs: Any) -> Any:
        """Batched reward: arrays or tensors of shape (N, dim) -> (N,)."""
        raise NotImplementedError

    @staticmethod
    def is_terminal(next_obs: Any, margin: float = 0.0) -> Any:
        """Batched termination: (N, obs_dim) -> (N,) bool.

        `margin` in [0, 1) shrinks the safe set by that fraction of each limit, for planners that should
        keep away from the boundary where their model is least trustworthy; the episode itself always
        ends at margin 0.
        """
        raise NotImplementedError

    @classmethod
    def planning_reward(cls, obs: Any, action: Any, next_obs: Any, speed_cap: float | None = None,
                        effort_weight: float | None = None) -> Any:
        """What a planner on a learned model maximises: the task's `reward`; with `speed_cap` (m/s), the
        forward speed the reward pays for counts only up to the cap; with `effort_weight`, the squared action
        costs that much instead of the task's weight (a robot whose reward pays for speed and effort overrides
        this: the ant)."""
        if speed_cap is not None:
            raise ValueError(f"MPCConfig.speed_cap: {cls.__name__}'s reward pays no forward speed to cap; "
                             f"leave speed_cap unset")
        if effort_weight is not None:
            raise ValueError(f"MPCConfig.effort_weight: {cls.__name__} does not reweigh its reward's effort "
                             f"term; leave effort_weight unset")
        return cls.reward(obs, action, next_obs)

    @classmethod
    def planning_terminal(cls, next_obs: Any, margin: float = 0.0, rise_cap: float | None = None,
                          kick_margin: float | None = None, tilt_limit: float | None = None) -> Any:
        """What a planner on a learned model treats as the end of an imagined episode: `is_terminal`, plus
        whatever else the robot knows its models cannot foresee in time (the ant: a torso that a kick
        `kick_margin` m/s stronger than imagined would throw out of its range, its own 2 m/s when None; or
        with `rise_cap`, a torso rising faster than that many m/s times (1 - margin); with `tilt_limit`, a torso
        tilted more than that many degrees from upright).
        The same (N,) bool, a superset of `is_terminal(next_obs, margin)`."""
        for name, value in (("rise_cap", rise_cap), ("kick_margin", kick_margin), ("tilt_limit", tilt_limit)):
            if value is not None:
                raise ValueError(f"MPCConfig.{name}: a limit of the ant's planner; {cls.__name__}'s planner has "
                                 f"none, leave {name} unset")
        return cls.is_terminal(next_obs, margin)
