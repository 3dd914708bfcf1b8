"""Sampling planners: random shooting, CEM with iCEM refinements, and MPPI.

A planner optimises an action sequence (H, da) against an `evaluate` function that scores a batch of
candidate sequences (N, H, da) -> returns (N,). It knows nothing of models or robots (the split of
mbrl-lib's optimisers and `ModelEnv`): `controllers.mpc.make_evaluate` builds `evaluate` from a dynamics
rollout and a robot's batched reward. Every planner keeps its last solution and, by default, starts
the next call from it shifted by one step (warm start); `reset()` forgets it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import ClassVar, Literal

import numpy as np

from mbmeta.config import FRACTION, NON_NEGATIVE, POSITIVE, Range, at_least, check_fields

Evaluate = Callable[[np.ndarray], np.ndarray]


@dataclasses.dataclass
class PlannerConfig:
    kind: Literal["random", "cem", "mppi"] = "cem"
    horizon: int = 15
    population: int = 200  # candidates in the first iteration
    iterations: int = 4  # 1 for random shooting
    warm_start: bool = True
    # CEM / iCEM
    elite_fraction: float = 0.1
    noise_beta: float = 2.0  # coloured noise exponent across time (0: white; iCEM uses 2-3)
    population_decay: float = 1.25  # shrink the population by this factor per iteration (iCEM)
    keep_elite_fraction: float = 0.3  # elites carried into the next iteration (iCEM)
    momentum: float = 0.1  # mean <- momentum * old + (1 - momentum) * elite mean (mbrl-lib's alpha)
    initial_std: float = 0.5  # in units of half the action range
    nominal_action: tuple[float, ...] | None = None  # the first guess without a warm start (default: mid-range)
    return_mean: bool = True  # return the final elite mean (mbrl-lib) instead of the best sample
    # MPPI
    temperature: float = 1.0  # lambda: lower is greedier
    mppi_std: float = 0.5

    RANGES: ClassVar[dict[str, Range]] = {
        "horizon": at_least(1), "population": at_least(2), "iterations": at_least(1),
        "elite_fraction": Range(0, 1, low_open=True), "noise_beta": NON_NEGATIVE, "population_decay": at_least(1),
        "keep_elite_fraction": FRACTION, "momentum": Range(0, 1, high_open=True), "initial_std": POSITIVE,
        "nominal_action": Range(-1e6, 1e6), "temperature": POSITIVE, "mppi_std": POSITIVE}

    def __post_init__(self) -> None:
        check_fields(self)


def colored_noise(beta: float, shape: tuple[int, int, int], rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise (N, H, da) with power spectrum 1/f^beta along time and unit variance per step.

    beta = 0 is white noise; iCEM (Pinneri et al., 2020) uses beta 2-3 for smooth, exploratory actions.
    Random Fourier amplitudes shaped by the power law (Timmer & König, 1995), scaled by the exact
    standard deviation of that spectrum, so every sample keeps its own random offset.
    """
    n, horizon, dim = shape
    if beta == 0 or horizon < 2:
        return rng.standard_normal(shape).astype(np.float32)
    freqs = np.fft.rfftfreq(horizon)
    freqs[0] = 1.0 / horizon  # cap the power of the slowest components
    scale = freqs ** (-beta / 2.0)
    real = rng.standard_normal((n, dim, len(freqs))) * scale
    imag = rng.standard_normal((n, dim, len(freqs))) * scale
    imag[..., 0] = 0.0  # the constant component is real: give it the variance of both parts
    real[..., 0] *= np.sqrt(2.0)
    if horizon % 2 == 0:  # so is the Nyquist component
        imag[..., -1] = 0.0
        real[..., -1] *= np.sqrt(2.0)
    weights = scale[1:].copy()
    weights[-1] *= (1 + horizon % 2) / 2.0
    sigma = 2.0 * np.sqrt(np.sum(weights**2) + scale[0] ** 2 / 2.0) / horizon
    noise = np.fft.irfft(real + 1j * imag, n=horizon, axis=-1) / sigma
    return noise.transpose(0, 2, 1).astype(np.float32)


class Planner:
    """Shared by all planners: bounds, warm start, the solution of the last call."""

    def __init__(self, config: PlannerConfig, low: np.ndarray, high: np.ndarray, seed: int = 0) -> None:
        self.config = config
        self.low, self.high = np.asarray(low, np.float32), np.asarray(high, np.float32)
        self.half_range = (self.high - self.low) / 2
        self.center = (self.low + self.high) / 2 if config.nominal_action is None else np.asarray(
            config.nominal_action, np.float32)
        if self.center.shape != self.low.shape:
            raise ValueError(f"planner.nominal_action needs {len(self.low)} values, got {len(self.center)}")
        self.rng = np.random.default_rng(seed)
        self.solution: np.ndarray | None = None  # (H, da), the last plan
        self.history: list[float] = []  # best return after each iteration of the last call

    @property
    def shape(self) -> tuple[int, int]:
        return self.config.horizon, len(self.low)

    def reset(self) -> None:
        self.solution = None

    def initial_mean(self) -> np.ndarray:
        """The previous plan shifted one step (last action repeated), or the nominal action."""
        if self.config.warm_start and self.solution is not None:
            return np.concatenate([self.solution[1:], self.solution[-1:]], axis=0)
        return np.broadcast_to(self.center, self.shape).copy()

    def plan(self, evaluate: Evaluate) -> np.ndarray:
        """Optimise and return the action sequence (H, da); its first row is the action to take."""
        self.history = []
        self.solution = self._optimize(evaluate).astype(np.float32)
        return self.solution

    def _optimize(self, evaluate: Evaluate) -> np.ndarray:
        raise NotImplementedError

    def clip(self, actions: np.ndarray) -> np.ndarray:
        return np.clip(actions, self.low, self.high)


class RandomShooting(Planner):
    """Uniform random sequences (plus the warm-start sequence); the best one wins."""

    def _optimize(self, evaluate: Evaluate) -> np.ndarray:
        cfg = self.config
        best, best_return = None, -np.inf
        for _ in range(cfg.iterations):
            candidates = self.rng.uniform(self.low, self.high, (cfg.population, *self.shape)).astype(np.float32)
            if self.solution is not None and cfg.warm_start:
                candidates[0] = self.initial_mean()
            returns = evaluate(candidates)
            i = int(np.argmax(returns))
            if returns[i] > best_return:
                best, best_return = candidates[i], float(returns[i])
            self.history.append(best_return)
        return best


class CEM(Planner):
    """Cross-entropy method with the iCEM refinements that pay at these sizes.

    Coloured noise, a population shrinking each iteration, a fraction of elites kept across
    iterations (and across calls, shifted), the mean added as a candidate in the last iteration,
    clipping instead of truncated sampling, and the std reset every call.
    """

    def __init__(self, config: PlannerConfig, low: np.ndarray, high: np.ndarray, seed: int = 0) -> None:
        super().__init__(config, low, high, seed)
        self._elites: np.ndarray | None = None  # the last call's elites, best first

    def _optimize(self, evaluate: Evaluate) -> np.ndarray:
        cfg = self.config
        mean = self.initial_mean()
        std = np.broadcast_to(cfg.initial_std * self.half_range, self.shape).astype(np.float32)
        n_elites = max(2, int(round(cfg.elite_fraction * cfg.population)))
        kept = self._shifted_elites(n_elites)
        best, best_return = mean, -np.inf
        for it in range(cfg.iterations):
            population = max(2 * n_elites, int(cfg.population / cfg.population_decay**it))
            noise = colored_noise(cfg.noise_beta, (population, *self.shape), self.rng)
            candidates = self.clip(mean + std * noise)
            if kept is not None:
                candidates = np.concatenate([candidates, kept])
            if it == cfg.iterations - 1:
                candidates = np.concatenate([candidates, mean[None]])
            returns = evaluate(candidates)
            order = np.argsort(-returns)[:n_elites]
            elites = candidates[order]
            if returns[order[0]] > best_return:
                best, best_return = elites[0], float(returns[order[0]])
            mean = cfg.momentum * mean + (1 - cfg.momentum) * elites.mean(0)
            std = cfg.momentum * std + (1 - cfg.momentum) * elites.std(0)
            kept = elites[: int(cfg.keep_elite_fraction * n_elites)] if cfg.keep_elite_fraction > 0 else None
            self.history.append(best_return)
        self._elites = elites
        return mean if cfg.return_mean else best

    def _shifted_elites(self, n_elites: int) -> np.ndarray | None:
        """The last call's kept elites, shifted one step in time (iCEM)."""
        elites = self._elites
        cfg = self.config
        if elites is None or not cfg.warm_start or self.solution is None or cfg.keep_elite_fraction <= 0:
            return None
        kept = elites[: int(self.config.keep_elite_fraction * n_elites)]
        return np.concatenate([kept[:, 1:], kept[:, -1:]], axis=1) if len(kept) else None

    def reset(self) -> None:
        super().reset()
        self._elites = None


class MPPI(Planner):
    """Model-predictive path integral control (Williams et al., 2017): a softmax-weighted average of
    Gaussian perturbations of the mean sequence, iterated."""

    def _optimize(self, evaluate: Evaluate) -> np.ndarray:
        cfg = self.config
        mean = self.initial_mean()
        std = cfg.mppi_std * self.half_range
        for _ in range(cfg.iterations):
            noise = colored_noise(cfg.noise_beta, (cfg.population, *self.shape), self.rng)
            candidates = self.clip(mean + std * noise)
            candidates[0] = mean  # the current mean is always a candidate
            returns = evaluate(candidates)
            weights = np.exp((returns - returns.max()) / cfg.temperature)
            weights /= weights.sum()
            mean = np.tensordot(weights, candidates, axes=1).astype(np.float32)
            self.history.append(float(returns.max()))
        return mean


PLANNERS: dict[str, type[Planner]] = {"random": RandomShooting, "cem": CEM, "mppi": MPPI}


def make_planner(config: PlannerConfig, low: np.ndarray, high: np.ndarray, seed: int = 0) -> Planner:
    return PLANNERS[config.kind](config, low, high, seed)
