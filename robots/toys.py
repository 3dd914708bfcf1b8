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


class PointDirection(gym.Env):
    """A point in the plane is paid for moving in a direction it cannot see: the task is that
    direction's angle, the reward is the step's displacement along it.

    The reward is the only clue to the direction, so a learner has to infer the task from the
    transitions it has seen (what a context-based meta-learner, PEARL, does). Knowing nothing, the
    best expected reward per step is 0; knowing the direction, it is |cos| + |sin| (1.27 on average).
    """

    def __init__(self, episode_length: int = 20) -> None:
        self.episode_length = episode_length
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.task, self.direction = 0.0, np.array([1.0, 0.0])
        self._pos, self._t = np.zeros(2), 0

    def sample_tasks(self, n: int, split: str = "train", rng: np.random.Generator | None = None) -> list[float]:
        rng = rng if rng is not None else np.random.default_rng()
        return [float(a) for a in rng.uniform(0.0, 2 * np.pi, size=n)]

    def set_task(self, task: float) -> None:
        if not 0.0 <= float(task) <= 2 * np.pi:
            raise ValueError(f"PointDirection task must be the direction's angle in [0, 2 pi], got {task!r}")
        self.task = float(task)
        self.direction = np.array([np.cos(task), np.sin(task)])

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._pos, self._t = np.zeros(2), 0
        return self._pos.astype(np.float32), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        self._t += 1
        move = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        self._pos = self._pos + move
        info = {"task": f"direction {self.task:.2f} rad"}
        return self._pos.astype(np.float32), float(move @ self.direction), False, self._t >= self.episode_length, info
