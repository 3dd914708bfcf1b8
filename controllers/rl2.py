"""The RL² policy behind the controller interface: its memory is a GRU hidden state.

The hidden state persists across `reset(obs, new_task=False)` (a new episode of the same task, which
is where RL² carries what it learned) and is zeroed by `reset(obs, new_task=True)`.
"""

from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces

from controllers.base import Controller
from mbmeta.rl2 import RL2Policy, step_input


class RL2Controller(Controller):
    """Acts with the policy's mean action (or samples, with `deterministic=False`)."""

    def __init__(self, observation_space: spaces.Box, action_space: spaces.Box, policy: RL2Policy,
                 deterministic: bool = True, seed: int = 0) -> None:
        super().__init__(observation_space, action_space)
        if policy.discrete or policy.act_dim != action_space.shape[0]:
            raise ValueError(f"the RL² policy acts in {policy.act_dim} dimensions, the robot in "
                             f"{action_space.shape[0]}")
        self.policy, self.deterministic = policy, deterministic
        self.generator = torch.Generator().manual_seed(seed)
        self._forget()

    def _forget(self) -> None:
        self.h: torch.Tensor | None = None
        self.prev_action, self.prev_reward = np.zeros(self.policy.act_dim), 0.0

    def reset(self, obs: np.ndarray, new_task: bool = True) -> None:
        if new_task:
            self._forget()
        self.episode_start = True

    def _act(self, obs: np.ndarray) -> np.ndarray:
        x = step_input(obs, self.prev_action, self.prev_reward, self.episode_start)
        with torch.no_grad():
            dist, _, self.h = self.policy(torch.as_tensor(x, dtype=torch.float32)[None, None], self.h)
            normal = dist.base_dist
            action = normal.mean if self.deterministic else normal.mean + normal.stddev * torch.randn(
                normal.mean.shape, generator=self.generator)
        self.episode_start = False
        return action[0, 0].numpy().astype(np.float64)

    def _observe(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray, done: bool) -> None:
        self.prev_action, self.prev_reward = np.asarray(action, dtype=np.float64), float(reward)
