"""Tiny task distributions that meta-RL learners solve in seconds: for tests and sanity checks."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


class TwoArmedBandit(gym.Env):
    """Pull one of two arms `pulls` times per episode; the task is which arm pays 1 (the other pays 0).

    Nothing in the observation says which arm pays: only memory of earlier pulls does, so a
    learner that carries memory across the episodes of a trial earns more in its second episode.
    """

    def __init__(self, pulls: int = 2) -> None:
        self.pulls = pulls
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.good_arm = 0
        self._t = 0

    def sample_tasks(self, n: int, split: str = "train", rng: np.random.Generator | None = None) -> list[int]:
        rng = rng if rng is not None else np.random.default_rng()
        return [int(a) for a in rng.integers(0, 2, size=n)]

    def set_task(self, task: int) -> None:
        if task not in (0, 1):
            raise ValueError(f"TwoArmedBandit task must be the paying arm, 0 or 1, got {task!r}")
        self.good_arm = task

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        self._t += 1
        reward = float(int(action) == self.good_arm)
        return np.zeros(1, np.float32), reward, False, self._t >= self.pulls, {}
