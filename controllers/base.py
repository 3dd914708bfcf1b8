"""The one interface every controller implements, so users swap controllers with one line."""

from __future__ import annotations

import abc
import warnings
from typing import Any

import numpy as np
from gymnasium import spaces

from robots.base import check_array

#: A reward beyond this magnitude is taken for a glitch, like a non-finite one.
MAX_ABS_REWARD = 1e6


class Controller(abc.ABC):
    """Turns observations into actions for one robot.

    `reset(obs, new_task)` starts an episode; `new_task=False` means the same task continues in a
    new episode (what recurrent and context-based controllers carry over). `act(obs)` returns an
    action clipped to the action space; `observe(...)` reports the transition that followed, where
    adaptation, context collection and recurrent updates happen.

    What reaches a controller from a real robot is checked here, once for all of them:
    - a wrong shape or a non-numeric value, in `act` or `observe`, is a `ValueError` naming the argument;
    - `act` refuses a non-finite observation (`ValueError`): there is no safe action to compute from it;
    - `act` clips an observation outside the robot's observation bounds (a broken state estimate:
      no state of the robot lies there) to those bounds, and warns once per controller;
    - `observe` skips a transition with a non-finite value, an observation outside the bounds or a
      reward beyond ±`MAX_ABS_REWARD`, counts it (`info()["skipped_transitions"]`) and warns once:
      such a transition would poison the controller's memory (the adaptation window, PEARL's
      context, RL²'s hidden state) for many steps, while skipping one costs one step of memory.
    """

    def __init__(self, observation_space: spaces.Box, action_space: spaces.Box) -> None:
        self.observation_space = observation_space
        self.action_space = action_space
        self.skipped_transitions = 0
        self._warned: set[str] = set()

    def reset(self, obs: np.ndarray, new_task: bool = True) -> None:  # noqa: B027 - optional hook
        """Start an episode from `obs`."""

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Validate `obs`, compute an action, and return it clipped to the action space."""
        obs = check_array(obs, self.observation_space.shape, "observation")
        outside = self._outside_bounds(obs)
        if outside is not None:
            self._warn_once("act", f"{type(self).__name__}.act: {outside}; clipped to the robot's observation "
                                   f"bounds (warned once)")
            obs = np.clip(obs, self.observation_space.low, self.observation_space.high)
        action = np.asarray(self._act(obs), dtype=np.float64)
        if action.shape != self.action_space.shape or not np.all(np.isfinite(action)):
            raise RuntimeError(f"{type(self).__name__} produced an invalid action {action!r}")
        return np.clip(action, self.action_space.low, self.action_space.high)

    @abc.abstractmethod
    def _act(self, obs: np.ndarray) -> np.ndarray:
        """The controller's action for a validated observation."""

    def observe(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray, done: bool) -> None:
        """Record the transition that followed the last action (validated; see the class docstring)."""
        arrays = {"obs": (obs, self.observation_space.shape), "action": (action, self.action_space.shape),
                  "next_obs": (next_obs, self.observation_space.shape), "reward": (reward, ())}
        checked = {name: check_array(value, shape, f"observe({name})", finite=False)
                   for name, (value, shape) in arrays.items()}
        problems = [f"{name} is not finite" for name, value in checked.items() if not np.all(np.isfinite(value))]
        for name in ("obs", "next_obs"):
            outside = self._outside_bounds(checked[name])
            if outside is not None:
                problems.append(f"{name}: {outside}")
        if abs(float(checked["reward"])) > MAX_ABS_REWARD:
            problems.append(f"reward {float(checked['reward']):g} is beyond ±{MAX_ABS_REWARD:g}")
        if problems:
            self.skipped_transitions += 1
            self._warn_once("observe", f"{type(self).__name__}.observe skipped a transition ({'; '.join(problems)}); "
                                       f"such transitions are skipped and counted (warned once)")
            return
        self._observe(checked["obs"], checked["action"], float(checked["reward"]), checked["next_obs"], bool(done))

    def _observe(  # noqa: B027 - optional hook
        self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray, done: bool
    ) -> None:
        """Record a validated transition (what controllers with memory override)."""

    def last_plan(self) -> np.ndarray | None:
        """The action sequence (H, da) that the last `act` planned (its first row is the action `act`
        returned), a copy clipped to the action space; None for controllers that do not plan ahead.
        The real-time loop sends its later rows when a newer `act` misses its deadline."""
        return None

    def step_info(self) -> dict[str, float]:
        """What the last `act` did worth logging per step (e.g. the adaptation's window loss before and
        after its step, and whether its guard fell back); {} when there is nothing."""
        return {}

    def info(self) -> dict[str, Any]:
        """Counters worth reporting (adaptation fallbacks, planner iterations, skipped transitions, ...)."""
        return {"skipped_transitions": self.skipped_transitions}

    def _outside_bounds(self, obs: np.ndarray) -> str | None:
        """What is outside the observation bounds, or None."""
        low, high = self.observation_space.low, self.observation_space.high
        bad = np.flatnonzero((obs < low) | (obs > high))
        if not len(bad):
            return None
        i = int(bad[0])
        return (f"observation[{i}] = {obs[i]:g} lies outside the robot's bounds [{low[i]:g}, {high[i]:g}] "
                f"({len(bad)} value(s) out of bounds: a broken state estimator?)")

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, RuntimeWarning, stacklevel=3)
