"""Online adaptation: each control step, one gradient step from the prior on the last k transitions."""

from __future__ import annotations

import numpy as np
import torch

from mbmeta.maml import adapt
from mbmeta.model import DynamicsModel, Params


class OnlineAdapter:
    """Computes φ_t = θ* − α ∇L(θ*, last k transitions) and guards against bad steps.

    `from_prior=False` continues from φ_{t−1} instead of θ*. A step whose loss or parameters are
    not finite, or whose loss on the window exceeds the starting loss by `max_loss_ratio`, is
    discarded: the adapter returns θ* and counts the fallback.
    """

    def __init__(self, model: DynamicsModel, step_sizes: Params, steps: int = 1, from_prior: bool = True,
                 max_loss_ratio: float = 2.0) -> None:
        self.model, self.steps, self.from_prior, self.max_loss_ratio = model, steps, from_prior, max_loss_ratio
        self.prior = {n: p.detach() for n, p in model.prior().items()}
        self.step_sizes = {n: a.detach() for n, a in step_sizes.items()}
        self.params: Params = self.prior
        self.fallbacks = 0
        self.adaptations = 0
        #: The last adaptation's window loss before and after the step, and whether the guard fell back.
        self.last: dict[str, float] = {}

    def reset(self) -> None:
        """Forget adaptation: plan with the prior again."""
        self.params = self.prior

    def adapt(self, obs: np.ndarray | torch.Tensor, act: np.ndarray | torch.Tensor,
              next_obs: np.ndarray | torch.Tensor) -> Params:
        """Adapt on a window of transitions (k, ds|da); returns the parameters to plan with."""
        obs, act, next_obs = (torch.as_tensor(x, dtype=torch.float32) for x in (obs, act, next_obs))
        start = self.prior if self.from_prior else self.params
        with torch.enable_grad():
            adapted = adapt(self.model, start, self.step_sizes, obs, act, next_obs, self.steps, first_order=True)
        adapted = {n: p.detach() for n, p in adapted.items()}
        with torch.no_grad():
            before = self.model.loss(start, obs, act, next_obs).item()
            after = self.model.loss(adapted, obs, act, next_obs).item()
        self.adaptations += 1
        finite = np.isfinite(after) and all(bool(torch.isfinite(p).all()) for p in adapted.values())
        fell_back = not finite or after > self.max_loss_ratio * before
        self.fallbacks += fell_back
        self.params = self.prior if fell_back else adapted
        self.last = {"loss_before": before, "loss_after": after, "fallback": float(fell_back)}
        return self.params
