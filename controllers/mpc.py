"""Model-predictive control on a learned dynamics model, adaptive (GrBAL) or not.

Each step the adaptive controller takes one gradient step from the meta-learned prior on the last
k transitions (`mbmeta.adaptation.OnlineAdapter`), then plans on the adapted model; the
non-adaptive controller plans on the prior. Everything else is shared.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
from gymnasium import spaces

from controllers.base import Controller
from controllers.planners import Evaluate, PlannerConfig, make_planner
from controllers.rollout import Backend, make_rollout
from mbmeta.adaptation import OnlineAdapter
from mbmeta.model import DynamicsModel, Params

RewardFn = Callable[[Any, Any, Any], Any]
TerminalFn = Callable[[Any], Any]


@dataclasses.dataclass
class MPCConfig:
    planner: PlannerConfig = dataclasses.field(default_factory=PlannerConfig)
    adapt: bool = True  # False: the non-adaptive MPC baseline
    backend: Backend = "auto"  # rollout backend: auto (CUDA > Numba), torch, numba, cuda
    k: int = 5  # transitions in the adaptation window
    inner_steps: int = 1
    from_prior: bool = True  # GrBAL: adapt from θ* every step; False continues from φ_{t-1}
    max_loss_ratio: float = 2.0  # adaptation guard: fall back to θ* beyond this loss ratio
    seed: int = 0


def make_evaluate(rollout: Callable[[np.ndarray, np.ndarray], np.ndarray], reward: RewardFn,
                  is_terminal: TerminalFn, state: np.ndarray) -> Evaluate:
    """Score candidate sequences (N, H, da) from `state`: the sum of rewards up to termination.

    Rewards after a predicted termination count zero; a rollout that diverges (non-finite) scores -1e9.
    """
    def evaluate(actions: np.ndarray) -> np.ndarray:
        n, horizon, da = actions.shape
        states = rollout(state, actions)
        ds = states.shape[-1]
        obs, nxt = states[:, :-1].reshape(-1, ds), states[:, 1:].reshape(-1, ds)
        rewards = np.asarray(reward(obs, actions.reshape(-1, da), nxt), dtype=np.float64).reshape(n, horizon)
        done = np.asarray(is_terminal(nxt)).reshape(n, horizon)
        alive = np.concatenate([np.ones((n, 1), bool), np.cumprod(~done, axis=1)[:, :-1].astype(bool)], axis=1)
        returns = np.where(alive, rewards, 0.0).sum(1)
        return np.where(np.isfinite(returns), returns, -1e9)

    return evaluate


class MPCController(Controller):
    """Sampling MPC on a learned model; with `config.adapt`, GrBAL's online adaptation every step."""

    def __init__(self, observation_space: spaces.Box, action_space: spaces.Box, model: DynamicsModel,
                 step_sizes: Params, reward: RewardFn, is_terminal: TerminalFn,
                 config: MPCConfig | None = None) -> None:
        super().__init__(observation_space, action_space)
        self.config = config = config or MPCConfig()
        self.model, self.reward, self.is_terminal = model, reward, is_terminal
        self.rollout = make_rollout(config.backend, model)
        self.planner = make_planner(config.planner, action_space.low, action_space.high, seed=config.seed)
        self.adapter = OnlineAdapter(model, step_sizes, steps=config.inner_steps, from_prior=config.from_prior,
                                     max_loss_ratio=config.max_loss_ratio)
        self.window: collections.deque[tuple[np.ndarray, np.ndarray, np.ndarray]] = collections.deque(maxlen=config.k)
        self.plans = 0
        self._warm_up()

    def _warm_up(self) -> None:
        """Run adaptation and planning once on a dummy state, so their one-time setup (autograd
        transforms, kernel compilation) happens now and not at the first control step that needs it."""
        obs = np.zeros((self.config.k, self.model.obs_dim), np.float32)
        act = np.zeros((self.config.k, self.model.act_dim), np.float32)
        rng_state = self.planner.rng.bit_generator.state  # the warm-up must not change what follows
        if self.config.adapt:
            self.rollout.set_params(self.adapter.adapt(obs, act, obs))
        self.planner.plan(make_evaluate(self.rollout, self.reward, self.is_terminal, obs[0]))
        self.planner.rng.bit_generator.state = rng_state
        self.adapter.adaptations = self.adapter.fallbacks = 0
        self.reset(obs[0])

    def reset(self, obs: np.ndarray, new_task: bool = True) -> None:
        self.planner.reset()
        self.window.clear()
        self.adapter.reset()
        self.rollout.set_params(self.adapter.prior)

    def _act(self, obs: np.ndarray) -> np.ndarray:
        if self.config.adapt and len(self.window) == self.config.k:
            obs_w, act_w, next_w = (np.stack(x) for x in zip(*self.window, strict=True))
            self.rollout.set_params(self.adapter.adapt(obs_w, act_w, next_w))
        plan = self.planner.plan(make_evaluate(self.rollout, self.reward, self.is_terminal, obs.astype(np.float32)))
        self.plans += 1
        return plan[0]

    def observe(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray, done: bool) -> None:
        self.window.append((obs, action, next_obs))

    def fallback_action(self, steps_since_plan: int = 1) -> np.ndarray | None:
        """The last plan's action for now, `steps_since_plan` steps after it was made: what to send when
        this step's plan comes too late. None before the first plan."""
        solution = self.planner.solution
        if solution is None:
            return None
        action = solution[min(steps_since_plan, len(solution) - 1)]
        return np.clip(action, self.action_space.low, self.action_space.high)

    def info(self) -> dict[str, Any]:
        return {"plans": self.plans, "adaptations": self.adapter.adaptations,
                "adaptation_fallbacks": self.adapter.fallbacks, "rollout": type(self.rollout).__name__}
