"""Model-predictive control on a learned dynamics model, adaptive (GrBAL) or not.

Each step the adaptive controller takes one gradient step from the meta-learned prior on the last
k transitions (`mbmeta.adaptation.OnlineAdapter`), then plans on the adapted model; the
non-adaptive controller plans on the prior. Everything else is shared.

With `mirror` (for a robot that declares its mirror symmetry, `robots.base.Mirror`), each step also asks
which explains the last k transitions better, the model or its mirror image, and adapts and plans in the
frame that does: a leg never seen to break is known by the model if its mirror image was (issue 14).
With `dead_actuators` it is told which actuators have failed instead, and predicts with their commands at 0.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from gymnasium import spaces

from controllers.base import Controller
from controllers.planners import Evaluate, PlannerConfig, make_planner
from controllers.rollout import Backend, MaskedRollout, MirroredRollout, make_rollout
from mbmeta.adaptation import OnlineAdapter
from mbmeta.config import NON_NEGATIVE, POSITIVE, FieldError, Range, at_least, check_fields
from mbmeta.model import DynamicsModel, Params
from robots.base import Mirror

RewardFn = Callable[[Any, Any, Any], Any]
TerminalFn = Callable[[Any], Any]


@dataclasses.dataclass
class MPCConfig:
    planner: PlannerConfig = dataclasses.field(default_factory=PlannerConfig)
    adapt: bool = True  # False: the non-adaptive MPC baseline
    backend: Backend = "auto"  # rollout backend: auto (Numba for narrow models, else torch), torch, numba, cuda
    # The adaptation window and inner steps; None: as the model was meta-trained (its checkpoint's meta.k
    # and inner_steps, when built by name), else 5 and 1.
    k: int | None = None
    inner_steps: int | None = None
    from_prior: bool = True  # GrBAL: adapt from θ* every step; False continues from φ_{t-1}
    forgetting: float = 0.0  # with from_prior false: continue from θ* + (1 - forgetting)(φ_{t-1} - θ*)
    max_loss_ratio: float = 2.0  # adaptation guard: refuse a step that raises the window loss beyond this ratio
    backtracking: int = 0  # halve a step that raises the window loss up to this many times (0: take it whole)
    fallback: Literal["prior", "last"] = "prior"  # what a refused step plans with: θ*, or the last accepted φ
    # Plan as if the episode ended this fraction inside each termination limit (the robot's
    # `planning_terminal(margin)`): keeps the plan away from the states where a learned model is least trusted.
    safety_margin: float = 0.0
    # Count the robot's forward speed only up to this (m/s) in the planned reward (the robot's `planning_reward`;
    # None: as the task pays it). Paid for all the speed its model promises, the healthy ant jumped out of its
    # healthy range in a third of its episodes; capped, it stays up (the ant's default; issue 14).
    speed_cap: float | None = None
    # Weigh the squared action by this in the planned reward instead of the task's weight (the robot's
    # `planning_reward`; None: as the task weighs it).
    effort_weight: float | None = None
    # Limits on the torso's planned rise (the robot's `planning_terminal`; the ant falls by jumping, launched by
    # kicks its models miss; issue 14). `kick_margin` (m/s; None: the robot's own, the ant's 2.0): end an
    # imagined episode where a torso kicked upward this much faster than imagined would fly over the top of
    # the healthy range, so a low torso may rise faster than a high one. `rise_cap` (m/s): a flat cap on the
    # rise speed instead, times (1 - safety_margin) (the ant's default until issue 14 measured the kick margin;
    # 1.0 stands the broken ant still, 1.43 lets the healthy one fall).
    rise_cap: float | None = None
    kick_margin: float | None = None
    # End an imagined episode where the torso has tilted more than this many degrees from upright (the robot's
    # `planning_terminal`; None: no limit). Ant-v5 ends an episode on the torso's height only, and the ant's
    # MPC threw it onto its back, where it lies to the end (issue 14).
    tilt_limit: float | None = None
    # Use the robot's mirror symmetry: each step, the prior's loss on the last k transitions, as they happened
    # and mirrored, says whether the robot behaves like the model or like its mirror image; the controller
    # adapts and plans in that frame. Works with and without `adapt` (the choice itself is an adaptation).
    mirror: bool = False
    # Actuators known to deliver no force (indices into the action, e.g. the ant's leg 3 is [6, 7]): the model is
    # fed 0 for their commands (a motor at zero torque), in its plans and in the adaptation window, so it predicts
    # a diagnosed failure instead of learning it; the planned reward still pays their effort. What knowing the
    # failure exactly is worth, the ceiling of what identifying it by adaptation could give (issue 14).
    dead_actuators: tuple[int, ...] = ()
    seed: int = 0

    RANGES: ClassVar[dict[str, Range]] = {"k": at_least(1), "inner_steps": at_least(1),
                                          "max_loss_ratio": at_least(1), "backtracking": NON_NEGATIVE,
                                          "safety_margin": Range(0.0, 0.9), "speed_cap": POSITIVE,
                                          "effort_weight": NON_NEGATIVE, "rise_cap": POSITIVE,
                                          "kick_margin": NON_NEGATIVE, "tilt_limit": Range(0.0, 180.0, low_open=True),
                                          "forgetting": Range(0.0, 1.0), "dead_actuators": NON_NEGATIVE,
                                          "seed": NON_NEGATIVE}

    def __post_init__(self) -> None:
        check_fields(self)
        if self.forgetting and self.from_prior:
            raise FieldError("MPCConfig", "forgetting", "pulls continual adaptation back toward θ*; it needs "
                                                        "from_prior false (from θ* there is nothing to forget)")


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
        with np.errstate(all="ignore"):  # a diverging imagined rollout is scored below, not warned about
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
                 config: MPCConfig | None = None, mirror: Mirror | None = None) -> None:
        super().__init__(observation_space, action_space)
        config = config or MPCConfig()
        if config.mirror and mirror is None:
            raise FieldError("MPCConfig", "mirror", "this robot declares no mirror symmetry (its RobotEnv.mirror); "
                                                    "leave mirror false")
        self.config = config = dataclasses.replace(config, k=config.k or 5, inner_steps=config.inner_steps or 1)
        if config.mirror and config.dead_actuators:
            raise FieldError("MPCConfig", "dead_actuators", "the mirror guesses which side failed; with the "
                                                            "failed actuators known there is nothing to guess: leave "
                                                            "mirror false")
        n_act = action_space.shape[0]
        if any(i >= n_act for i in config.dead_actuators):  # >= 0 by RANGES
            raise FieldError("MPCConfig", "dead_actuators", f"expected indices into the {n_act} actions "
                                                            f"(0..{n_act - 1}), got {list(config.dead_actuators)}")
        self.live = np.ones(n_act, np.float32)
        self.live[list(config.dead_actuators)] = 0.0
        self.model = model
        shaping = {name: value for name, value in (("speed_cap", config.speed_cap),
                                                   ("effort_weight", config.effort_weight)) if value is not None}
        self.reward = functools.partial(reward, **shaping) if shaping else reward
        # only the limits set, so that a plain `is_terminal(next_obs)` (say, a real robot's) serves the defaults
        limits = {name: value for name, value in (("rise_cap", config.rise_cap), ("kick_margin", config.kick_margin),
                                                  ("tilt_limit", config.tilt_limit)) if value is not None}
        limits |= {"margin": config.safety_margin} if config.safety_margin else {}
        self.is_terminal = functools.partial(is_terminal, **limits) if limits else is_terminal
        self.rollout = make_rollout(config.backend, model)
        if config.mirror:
            self.rollout = MirroredRollout(self.rollout, mirror)
        if config.dead_actuators:
            self.rollout = MaskedRollout(self.rollout, self.live)
        self.mirror = mirror
        self.mirrored_steps = 0  # control steps planned in the mirror's frame
        self.planner = make_planner(config.planner, action_space.low, action_space.high, seed=config.seed)
        self.adapter = OnlineAdapter(model, step_sizes, steps=config.inner_steps, from_prior=config.from_prior,
                                     forgetting=config.forgetting,
                                     max_loss_ratio=config.max_loss_ratio, backtracking=config.backtracking,
                                     fallback=config.fallback)
        self.window: collections.deque[tuple[np.ndarray, np.ndarray, np.ndarray]] = collections.deque(maxlen=config.k)
        self.plans = 0
        self._adapted = False  # whether the last act adapted
        # What the model saw in training: an observation beyond 10 standard deviations of it is warned about.
        self._trained_mean = model.in_mean[: model.obs_dim].numpy().astype(np.float64)
        self._trained_std = model.in_std[: model.obs_dim].numpy().astype(np.float64)
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
        self.adapter.adaptations = self.adapter.fallbacks = self.mirrored_steps = 0
        self.reset(obs[0])

    def reset(self, obs: np.ndarray, new_task: bool = True) -> None:
        self.planner.reset()
        self.window.clear()
        self.adapter.reset()
        self.rollout.set_params(self.adapter.prior)
        if self.config.mirror:
            self.rollout.mirrored = False

    def _act(self, obs: np.ndarray) -> np.ndarray:
        far = np.flatnonzero(np.abs(obs - self._trained_mean) > 10 * self._trained_std)
        if len(far):
            i = int(far[0])
            self._warn_once("model range", f"MPCController.act: observation[{i}] = {obs[i]:g} lies beyond 10 standard "
                                           f"deviations of the model's training data (mean {self._trained_mean[i]:g}, "
                                           f"std {self._trained_std[i]:g}): its predictions there are guesses "
                                           f"(warned once)")
        full = len(self.window) == self.config.k
        self._adapted = self.config.adapt and full
        if full and (self.config.adapt or self.config.mirror):
            window = tuple(np.stack(x) for x in zip(*self.window, strict=True))
            if self.config.mirror:
                window = self._choose_frame(window)
            if self._adapted:
                self.rollout.set_params(self.adapter.adapt(*window))
        plan = self.planner.plan(make_evaluate(self.rollout, self.reward, self.is_terminal, obs.astype(np.float32)))
        self.plans += 1
        return plan[0]

    def _choose_frame(self, window: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
        """Plan in the frame whose model, the prior as trained or seen in the mirror, predicts the window
        (obs, act, next_obs) better; returns the window in that frame, for adaptation."""
        obs, act, next_obs = window
        mirrored = (self.mirror.obs(obs), self.mirror.action(act), self.mirror.obs(next_obs))
        with torch.no_grad():
            plain, seen = (self.model.loss(self.adapter.prior, *(torch.as_tensor(x, dtype=torch.float32)
                                                                 for x in w)).item() for w in (window, mirrored))
        self.rollout.mirrored = bool(seen < plain)  # a non-finite loss keeps the model's own frame
        self.mirrored_steps += self.rollout.mirrored
        return mirrored if self.rollout.mirrored else window

    def _observe(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray, done: bool) -> None:
        self.window.append((obs, action * self.live, next_obs))  # live is 1 but for dead actuators

    def step_info(self) -> dict[str, float]:
        return dict(self.adapter.last) if self._adapted else {}

    def last_plan(self) -> np.ndarray | None:
        solution = self.planner.solution
        return None if solution is None else self.planner.clip(solution)

    def info(self) -> dict[str, Any]:
        mirrored = {"mirrored_steps": self.mirrored_steps} if self.config.mirror else {}
        return {**super().info(), "plans": self.plans, "adaptations": self.adapter.adaptations,
                "adaptation_fallbacks": self.adapter.fallbacks, "rollout": type(self.rollout).__name__, **mirrored}
