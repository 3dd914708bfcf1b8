"""The one interface every controller implements, so users swap controllers with one line."""

from __future__ import annotations

import abc
from typing import Any

import numpy as np
from gymnasium import spaces

from robots.base import check_array


class Controller(abc.ABC):
    """Turns observations into actions for one robot.

    `reset(obs, new_task)` starts an episode; `new_task=False` means the same task continues in a
    new episode (what recurrent and context-based controllers carry over). `act(obs)` returns an
    action clipped to the action space; `observe(...)` reports the transition that followed, where
    adaptation, context collection and recurrent updates happen.
    """

    def __init__(self, observation_space: spaces.Box, action_space: spaces.Box) -> None:
        self.observation_space = observation_space
        self.action_space = action_space

    def reset(self, obs: np.ndarray, new_task: bool = True) -> None:  # noqa: B027 - optional hook
        """Start an episode from `obs`."""

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Validate `obs`, compute an action, and return it clipped to the action space."""
        obs = check_array(obs, self.observation_space.shape, "observation")
        action = np.asarray(self._act(obs), dtype=np.float64)
        if action.shape != self.action_space.shape or not np.all(np.isfinite(action)):
            raise RuntimeError(f"{type(self).__name__} produced an invalid action {action!r}")
        return np.clip(action, self.action_space.low, self.action_space.high)

    @abc.abstractmethod
    def _act(self, obs: np.ndarray) -> np.ndarray:
        """The controller's action for a validated observation."""

    def observe(  # noqa: B027 - optional hook
        self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray, done: bool
    ) -> None:
        """Record the transition that followed the last action."""

    def fallback_action(self, steps_since_plan: int = 1) -> np.ndarray | None:
        """An action to send if `act` misses its deadline (e.g. the next step of the last plan), or None."""
        return None

    def info(self) -> dict[str, Any]:
        """Counters worth reporting (adaptation fallbacks, planner iterations, ...)."""
        return {}
