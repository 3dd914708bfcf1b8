"""The PEARL policy behind the controller interface: its memory is the context of recent transitions.

A new task starts from the prior z ~ N(0, I). Every observed transition joins the context, and the
posterior q(z|c) is recomputed after each transition (`update="step"`) or at each episode start
(`update="episode"`, the original's evaluation protocol). The context is a window of the most recent
`window` transitions, by default the size the encoder was trained with: a window keeps the posterior
able to move when the dynamics change mid-episode, where a product over all history would not.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import torch
from gymnasium import spaces

from controllers.base import Controller
from mbmeta.pearl import PEARLAgent, context_rows


class PEARLController(Controller):
    """Acts with the policy's mean action given z: the posterior mean (`latent="mean"`) or a sample
    from the posterior (`latent="sample"`, posterior sampling for exploration)."""

    def __init__(self, observation_space: spaces.Box, action_space: spaces.Box, agent: PEARLAgent,
                 update: str = "step", latent: str = "mean", window: int = 64, seed: int = 0) -> None:
        super().__init__(observation_space, action_space)
        if update not in ("step", "episode") or latent not in ("mean", "sample"):
            raise ValueError(f"PEARL controller: update must be 'step' or 'episode' (got {update!r}), latent "
                             f"'mean' or 'sample' (got {latent!r})")
        if agent.obs_dim != observation_space.shape[0] or agent.act_dim != action_space.shape[0]:
            raise ValueError(f"the PEARL agent was trained for observations of size {agent.obs_dim} and actions of "
                             f"size {agent.act_dim}; this robot has {observation_space.shape[0]} and "
                             f"{action_space.shape[0]}")
        self.agent, self.update, self.latent = agent, update, latent
        self.generator = torch.Generator().manual_seed(seed)
        self.context: deque[np.ndarray] = deque(maxlen=window)
        self.z = torch.zeros(agent.latent_dim)

    def posterior(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance of q(z | the current context)."""
        rows = np.array(self.context, dtype=np.float32).reshape(len(self.context), self.agent.context_dim)
        with torch.no_grad():
            return self.agent.posterior(torch.as_tensor(rows))

    def _infer(self) -> None:
        mean, var = self.posterior()
        noise = torch.randn(mean.shape, generator=self.generator)
        self.z = mean if self.latent == "mean" else mean + var.sqrt() * noise

    def reset(self, obs: np.ndarray, new_task: bool = True) -> None:
        if new_task:
            self.context.clear()
        self._infer()

    def _act(self, obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            _, _, mean_action = self.agent.pi(torch.as_tensor(obs, dtype=torch.float32), self.z)
            return self.agent.to_env(mean_action).numpy().astype(np.float64)

    def _observe(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray, done: bool) -> None:
        with torch.no_grad():
            unit_action = self.agent.from_env(torch.as_tensor(action, dtype=torch.float32)).numpy()
        self.context.append(context_rows(np.asarray(obs, np.float32), unit_action, np.float32(reward),
                                         np.asarray(next_obs, np.float32)))
        if self.update == "step":
            self._infer()

    def info(self) -> dict[str, object]:
        posterior_std = round(float(self.posterior()[1].sqrt().mean()), 4)
        return {**super().info(), "context": len(self.context), "posterior_std": posterior_std}
