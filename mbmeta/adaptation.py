"""Online adaptation: each control step, one gradient step from the prior on the last k transitions."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch

from mbmeta.model import DynamicsModel, Params


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch at one thread inside (the adaptation step and its guard's losses). The step's weight gradients
    sum over the window's transitions, and with two threads that reduction may be split and summed in another
    order: the adapted model, and every step of the episode after it, then depended on the thread count (issue
    14, s49: 6 of 10 ant episodes diverged). A window of a few transitions gains nothing from a second thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class OnlineAdapter:
    """Computes φ_t = θ* − α ∇L(θ*, last k transitions) and guards against bad steps.

    `from_prior=False` continues from φ_{t−1} instead of θ*; with `forgetting = λ > 0` as well, from
    θ* + (1 − λ)(φ_{t−1} − θ*): what earlier steps learned fades with a half-life of about 0.69/λ steps.
    With `backtracking = B > 0` the step is shortened by halves (the whole step, then 1/2, ..., 1/2^B of
    it) until the loss on the window is no higher than before it: Meta-SGD's step sizes, learned on
    training windows, can overshoot on a window unlike them. A step that is not finite, or whose window
    loss exceeds the starting loss by `max_loss_ratio` (or, with backtracking, is higher than before at
    every length), is refused: the adapter counts the fallback and returns `fallback` parameters: θ*
    ("prior") or the last accepted adaptation ("last", θ* until there is one).
    """

    def __init__(self, model: DynamicsModel, step_sizes: Params, steps: int = 1, from_prior: bool = True,
                 forgetting: float = 0.0, max_loss_ratio: float = 2.0, backtracking: int = 0,
                 fallback: str = "prior") -> None:
        if fallback not in ("prior", "last"):
            raise ValueError(f"fallback must be 'prior' or 'last', got {fallback!r}")
        self.model, self.steps, self.from_prior, self.max_loss_ratio = model, steps, from_prior, max_loss_ratio
        self.backtracking, self.fallback, self.forgetting = backtracking, fallback, forgetting
        self.prior = {n: p.detach() for n, p in model.prior().items()}
        self.step_sizes = {n: a.detach() for n, a in step_sizes.items()}
        self.params: Params = self.prior
        self.accepted: Params = self.prior  # the last adaptation the guard accepted
        self.fallbacks = 0
        self.adaptations = 0
        #: The last adaptation's window loss before and after the step, and whether the guard fell back.
        self.last: dict[str, float] = {}

    def reset(self) -> None:
        """Forget adaptation: plan with the prior again."""
        self.params = self.accepted = self.prior

    def _gradient_steps(self, params: Params, obs: torch.Tensor, act: torch.Tensor,
                        next_obs: torch.Tensor) -> Params:
        """`mbmeta.maml.adapt(..., first_order=True)` for one window, with plain autograd: the same numbers,
        without the function transform's overhead (3x faster for the quadrotor's model), which matters
        inside a control period."""
        with torch.enable_grad():
            for _ in range(self.steps):
                leaves = {n: p.detach().requires_grad_() for n, p in params.items()}
                grads = torch.autograd.grad(self.model.loss(leaves, obs, act, next_obs), list(leaves.values()))
                params = {n: p.detach() - self.step_sizes[n] * g for (n, p), g in zip(leaves.items(), grads,
                                                                                       strict=True)}
        return params

    def adapt(self, obs: np.ndarray | torch.Tensor, act: np.ndarray | torch.Tensor,
              next_obs: np.ndarray | torch.Tensor) -> Params:
        """Adapt on a window of transitions (k, ds|da); returns the parameters to plan with."""
        obs, act, next_obs = (torch.as_tensor(x, dtype=torch.float32) for x in (obs, act, next_obs))
        start = self.prior if self.from_prior else self.params
        if not self.from_prior and self.forgetting:
            start = {n: self.prior[n] + (1 - self.forgetting) * (start[n] - self.prior[n]) for n in start}
        with one_thread():  # the step and the guard's losses
            full = self._gradient_steps(start, obs, act, next_obs)
            with torch.no_grad():
                before = self.model.loss(start, obs, act, next_obs).item()
                for halvings in range(self.backtracking + 1):
                    scale = 0.5**halvings
                    adapted = {n: start[n] + scale * (full[n].detach() - start[n]) for n in start}
                    after = self.model.loss(adapted, obs, act, next_obs).item()
                    if self.backtracking == 0 or after <= before:
                        break
        self.adaptations += 1
        finite = np.isfinite(after) and all(bool(torch.isfinite(p).all()) for p in adapted.values())
        fell_back = not finite or after > self.max_loss_ratio * before or (self.backtracking > 0 and after > before)
        self.fallbacks += fell_back
        if fell_back:
            self.params = self.prior if self.fallback == "prior" else self.accepted
        else:
            self.params = self.accepted = adapted
        self.last = {"loss_before": before, "loss_after": after, "fallback": float(fell_back),
                     "step_scale": scale}
        return self.params
