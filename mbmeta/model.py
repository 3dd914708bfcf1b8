"""The dynamics model: an MLP from (s, a) to the normalised state change, called with explicit parameters.

Every forward pass takes its parameters as an argument (a plain dict of tensors), so the
meta-learned prior θ* is never mutated by adaptation and any number of adapted parameter sets can
exist side by side. Layers are stored with a leading ensemble axis E (E = 1 without an ensemble),
which also gives planners and fused kernels one flat, predictable weight layout.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import ClassVar, Literal

import numpy as np
import torch
from torch import nn

from mbmeta.config import FieldError, Range, at_least, check_fields

Params = dict[str, torch.Tensor]
ACTIVATIONS = {"relu": torch.relu, "silu": nn.functional.silu, "tanh": torch.tanh}
LOGVAR_BOUNDS = (-10.0, 1.0)


@dataclasses.dataclass
class ModelConfig:
    hidden: tuple[int, ...] = (256, 256, 256)
    activation: Literal["relu", "silu", "tanh"] = "relu"
    ensemble_size: int = 1
    learn_variance: bool = False  # Gaussian NLL with a learned per-dimension variance

    RANGES: ClassVar[dict[str, Range]] = {"hidden": at_least(1), "ensemble_size": at_least(1)}

    def __post_init__(self) -> None:
        check_fields(self)
        if not self.hidden:
            raise FieldError("ModelConfig", "hidden", "expected a non-empty list of layer widths, got []")


class DynamicsModel(nn.Module):
    """Predicts s' = s + Δs, with Δs learned in normalised units from normalised (s, a)."""

    def __init__(self, obs_dim: int, act_dim: int, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or ModelConfig()
        self.obs_dim, self.act_dim = obs_dim, act_dim
        out = obs_dim * (2 if config.learn_variance else 1)
        sizes = [obs_dim + act_dim, *config.hidden, out]
        E = config.ensemble_size
        self.params = nn.ParameterDict()
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            bound = 1 / math.sqrt(n_in)  # nn.Linear's default initialisation
            self.params[f"w{i}"] = nn.Parameter(torch.empty(E, n_in, n_out).uniform_(-bound, bound))
            self.params[f"b{i}"] = nn.Parameter(torch.empty(E, 1, n_out).uniform_(-bound, bound))
        self.n_layers = len(sizes) - 1
        self.activation = ACTIVATIONS[config.activation]
        # Normalisation statistics: set from data by `fit_normalizer`, saved with the model.
        for name, dim in [("in", obs_dim + act_dim), ("delta", obs_dim)]:
            self.register_buffer(f"{name}_mean", torch.zeros(dim))
            self.register_buffer(f"{name}_std", torch.ones(dim))

    def prior(self) -> Params:
        """The model's own parameters θ as a dict (shared tensors, not copies)."""
        return dict(self.params)

    def fit_normalizer(self, obs: np.ndarray, actions: np.ndarray, next_obs: np.ndarray) -> None:
        """Input and output statistics from data.

        An input that never varies is left unscaled; a state dimension that never changed in the data
        (std 0) is predicted never to change.
        """
        x, delta = np.concatenate([obs, actions], axis=-1), next_obs - obs
        f32 = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
        self.in_mean[:], self.in_std[:] = f32(x.mean(0)), f32(np.where(x.std(0) < 1e-6, 1.0, x.std(0)))
        self.delta_mean[:], self.delta_std[:] = f32(delta.mean(0)), f32(np.where(delta.std(0) < 1e-9, 0.0,
                                                                                 delta.std(0)))

    def forward_normalized(self, params: Params, obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(E, ..., ds) normalised Δs mean (and log-variance with learn_variance) for inputs (..., ds|da)."""
        x = (torch.cat([obs, act], dim=-1) - self.in_mean) / self.in_std
        lead = x.shape[:-1]
        h = x.reshape(1, -1, x.shape[-1])
        for i in range(self.n_layers):
            h = torch.baddbmm(params[f"b{i}"], h.expand(params[f"w{i}"].shape[0], -1, -1), params[f"w{i}"])
            if i < self.n_layers - 1:
                h = self.activation(h)
        h = h.reshape(h.shape[0], *lead, h.shape[-1])
        if not self.config.learn_variance:
            return (h,)
        mean, raw = h.split(self.obs_dim, dim=-1)
        lo, hi = LOGVAR_BOUNDS
        logvar = hi - nn.functional.softplus(hi - raw)
        return mean, lo + nn.functional.softplus(logvar - lo)

    def loss(self, params: Params, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """Mean squared error (or Gaussian NLL) of the normalised Δs, averaged over ensemble and data."""
        target = (next_obs - obs - self.delta_mean) / self.delta_std.clamp_min(1e-9)
        out = self.forward_normalized(params, obs, act)
        if not self.config.learn_variance:
            return ((out[0] - target) ** 2).mean()
        mean, logvar = out
        return (((mean - target) ** 2) * torch.exp(-logvar) + logvar).mean()

    def rollout_loss(self, params: Params, obs: torch.Tensor, act: torch.Tensor,
                     next_obs: torch.Tensor) -> torch.Tensor:
        """Mean squared error of the states predicted open loop from the first state along the actions of a
        sequence of transitions (T, ds|da), against the states that followed, in units of the one-step change's
        spread (for T = 1 the same as `loss` wherever the state changes in the data). What a planner reads is
        such a rollout, not one step at a time. A single model with a mean output only (no ensemble, no learned
        variance)."""
        scale = self.delta_std.clamp_min(1e-9)
        state, errors = obs[..., 0, :], []
        for t in range(act.shape[-2]):
            state = self.predict(state, act[..., t, :], params)
            errors.append((state - next_obs[..., t, :]) / scale)
        return (torch.stack(errors) ** 2).mean()

    def predict(self, obs: torch.Tensor, act: torch.Tensor, params: Params | None = None) -> torch.Tensor:
        """Next state (..., ds), averaged over the ensemble."""
        mean = self.forward_normalized(self.prior() if params is None else params, obs, act)[0].mean(0)
        return obs + mean * self.delta_std + self.delta_mean

    def predictor(self, params: Params | None = None) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """`predict` on batches (n, ds|da) with `params` bound, for a planner that calls it many times a step.

        For a single model (no ensemble) the layers come out of the dict once and each is one `addmm`: the
        operations of `predict` in the same order, without its per-call overhead (dict lookups, the ensemble
        axis, a batched product), which was a sixth of the ant's control step (issue 14). An ensemble
        predicts with `predict`.
        """
        params = self.prior() if params is None else params
        if self.config.ensemble_size > 1:
            return functools.partial(self.predict, params=params)
        layers = [(params[f"w{i}"][0], params[f"b{i}"][0, 0]) for i in range(self.n_layers)]
        hidden, (w_out, b_out) = layers[:-1], layers[-1]
        in_mean, in_std, delta_mean, delta_std = self.in_mean, self.in_std, self.delta_mean, self.delta_std
        activation, obs_dim = self.activation, self.obs_dim

        def predict(obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
            h = (torch.cat([obs, act], dim=-1) - in_mean) / in_std
            for w, b in hidden:
                h = activation(torch.addmm(b, h, w))
            mean = torch.addmm(b_out, h, w_out)[:, :obs_dim]
            return obs + mean * delta_std + delta_mean

        return predict

