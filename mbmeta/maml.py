"""GrBAL meta-training (MAML on windows of experience), and the plain supervised baseline.

One trainer serves both. With `inner_steps >= 1` each window's first k transitions adapt the model
(φ = θ − α ∇L(θ, past)) and its last K transitions score the adapted model; Adam updates θ
(and α when learned: per layer as in MAML++, or per parameter as in Meta-SGD). With `inner_steps = 0`
it is the non-adaptive "MB" baseline of the GrBAL paper: the same model, sampler and optimiser,
trained on all k + K transitions of each window.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar, Literal

import torch
from torch import nn

from mbmeta.config import NON_NEGATIVE, POSITIVE, FieldError, Range, at_least, check_fields
from mbmeta.data import Windows
from mbmeta.model import DynamicsModel, Params


@dataclasses.dataclass
class MetaConfig:
    k: int = 5  # past transitions that adapt the model
    K: int = 16  # future transitions that score it
    meta_batch_size: int = 20  # windows per update, drawn from different tasks where possible
    inner_steps: int = 1  # 0: plain supervised training (the non-adaptive baseline)
    inner_lr: float = 0.01
    # Inner step sizes α: "fixed" (inner_lr everywhere), "per_layer" (one learned α per weight tensor, as
    # MAML++'s learned per-layer rates), "per_parameter" (one learned α per weight, Meta-SGD).
    inner_lr_mode: Literal["fixed", "per_layer", "per_parameter"] = "fixed"
    first_order: bool = False
    lr: float = 1e-3
    lr_schedule: Literal["constant", "cosine"] = "constant"
    grad_clip: float = 10.0
    # Weight of θ*'s own loss (unadapted, on the whole window) in the meta-objective: keeps the prior a good
    # model by itself, for the steps where adaptation is refused (0: GrBAL's objective alone).
    prior_loss_weight: float = 0.0
    # How the future transitions score a model: "one_step", each transition predicted from the true state
    # before it (GrBAL's); "rollout", the states predicted open loop from the first future state along the
    # future actions (`DynamicsModel.rollout_loss`), as a planner reads them (issue 14: one-step adaptation did
    # not make the ant's 15-step planning objective truer). The adaptation's own inner loss stays one-step; the
    # plain (MB) trainer and the prior's own term score the whole window the same way.
    future_loss: Literal["one_step", "rollout"] = "one_step"

    RANGES: ClassVar[dict[str, Range]] = {
        "k": at_least(1), "K": at_least(1), "meta_batch_size": at_least(1), "inner_steps": NON_NEGATIVE,
        "inner_lr": POSITIVE, "lr": POSITIVE, "grad_clip": POSITIVE, "prior_loss_weight": NON_NEGATIVE}

    def __post_init__(self) -> None:
        check_fields(self)


def adapt(model: DynamicsModel, params: Params, step_sizes: Params, obs: torch.Tensor, act: torch.Tensor,
          next_obs: torch.Tensor, steps: int, first_order: bool = False) -> Params:
    """`steps` gradient steps of the model loss on (obs, act, next_obs), functionally: `params` is untouched.

    Differentiable (second-order) unless `first_order`; vmap-able over a batch of windows.
    """
    def inner_loss(p: Params) -> torch.Tensor:
        return model.loss(p, obs, act, next_obs)

    for _ in range(steps):
        grads = torch.func.grad(inner_loss)(params)
        if first_order:
            grads = {n: g.detach() for n, g in grads.items()}
        params = {n: p - step_sizes[n] * grads[n] for n, p in params.items()}
    return params


class MetaTrainer:
    """Owns θ's optimiser and the inner step sizes α; `step(windows)` is one meta-update."""

    def __init__(self, model: DynamicsModel, config: MetaConfig, total_steps: int | None = None) -> None:
        self.model, self.config = model, config
        learned = config.inner_lr_mode != "fixed"
        shape = (lambda p: p.shape) if config.inner_lr_mode == "per_parameter" else (lambda p: (1,) * p.dim())
        self.step_sizes = nn.ParameterDict({
            n: nn.Parameter(torch.full(shape(p), config.inner_lr), requires_grad=learned)
            for n, p in model.params.items()
        })
        if config.future_loss == "rollout" and (model.config.ensemble_size > 1 or model.config.learn_variance):
            raise FieldError("MetaConfig", "future_loss", "rollout scores a single model's mean; set "
                                                          "model.ensemble_size 1 and learn_variance false, or "
                                                          "future_loss one_step")
        self.future_loss = model.rollout_loss if config.future_loss == "rollout" else model.loss
        trainable = list(model.params.values()) + (list(self.step_sizes.values()) if learned else [])
        self.optimizer = torch.optim.Adam(trainable, lr=config.lr)
        self.steps_done = 0
        self.total_steps = total_steps

    def window_losses(self, windows: Windows, params: Params | None = None) -> torch.Tensor:
        """Per-window outer loss (B,): adapted on the past and scored on the future, or plain."""
        model, cfg = self.model, self.config
        params = model.prior() if params is None else params
        obs = torch.cat([windows.past_obs, windows.future_obs], dim=1)
        act = torch.cat([windows.past_act, windows.future_act], dim=1)
        nxt = torch.cat([windows.past_next, windows.future_next], dim=1)
        plain = torch.vmap(lambda o, a, n: self.future_loss(params, o, a, n))
        if cfg.inner_steps == 0:
            return plain(obs, act, nxt)
        step_sizes = dict(self.step_sizes)

        def one(po: torch.Tensor, pa: torch.Tensor, pn: torch.Tensor, fo: torch.Tensor, fa: torch.Tensor,
                fn: torch.Tensor) -> torch.Tensor:
            phi = adapt(model, params, step_sizes, po, pa, pn, cfg.inner_steps, cfg.first_order)
            return self.future_loss(phi, fo, fa, fn)

        losses = torch.vmap(one)(windows.past_obs, windows.past_act, windows.past_next,
                                 windows.future_obs, windows.future_act, windows.future_next)
        return losses + cfg.prior_loss_weight * plain(obs, act, nxt) if cfg.prior_loss_weight else losses

    def step(self, windows: Windows) -> float:
        """One optimiser update on a meta-batch; returns the mean outer loss before the update."""
        self._set_learning_rate()
        loss = self.window_losses(windows).mean()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"meta-training loss became {loss.item()} at step {self.steps_done}; "
                                     f"lower meta.lr or meta.inner_lr")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)
        self.optimizer.step()
        self.steps_done += 1
        return loss.item()

    def _set_learning_rate(self) -> None:
        lr = self.config.lr
        if self.config.lr_schedule == "cosine" and self.total_steps:
            progress = min(self.steps_done / self.total_steps, 1.0)
            lr = 0.5 * lr * (1 + math.cos(math.pi * progress))
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def state_dict(self) -> dict:
        return {"step_sizes": {n: p.detach().clone() for n, p in self.step_sizes.items()},
                "optimizer": self.optimizer.state_dict(), "steps_done": self.steps_done}

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            for n, p in self.step_sizes.items():
                p.copy_(state["step_sizes"][n])
        self.optimizer.load_state_dict(state["optimizer"])
        self.steps_done = state["steps_done"]
