"""How wrong is the model where the MPC actually goes? Multi-step error on the controller's own trajectory.

    python -m scripts.onpolicy_error quadrotor --controller adaptive --checkpoint runs/q/checkpoint.pt \\
        --task heavy-payload --episodes 3 [--baseline runs/q-mb/checkpoint.pt]
    python -m scripts.onpolicy_error ant --controller oracle --checkpoint mbmeta/checkpoints/ant_mb.pt \\
        --task broken-leg-3 --episodes 1 --episode-length 120

Runs the model-based controller for a few episodes and records, every step, the parameters it planned
with (adapted, or the prior after a refused step). Afterwards, from every visited state, the H-step
open-loop prediction along the actions really taken is compared with what happened, for
  - the parameters the controller planned with at that step ("planned with"),
  - the meta-learned prior θ* without adaptation ("prior"),
  - optionally another checkpoint, e.g. the non-adaptive model ("baseline").
Errors are mean squared errors per state dimension in units of that dimension's spread in the first
model's training data, averaged over the robot's observation groups (`observation_groups`), reported
over all visited states and over the last `--before-end` steps of episodes that ended early (what the
model believed just before a crash or a fall; on the ant also before it flipped onto its back, which ends
its walk though not its episode). Random-action data says little about this: these are
the states the planner steers into. It also prints how much more reward per step each model predicted
along those actions than happened: a planner that picks the best of many candidates is drawn to where
its model is optimistic. `--trace I` also prints, for each episode that ended early, its last
`--before-end` steps of observation I as it happened and as predicted one step ahead with the parameters the
controller planned with (on the ant, I = 15, the torso's upward speed, shows the kick that launches a jump),
and over every step of every episode the observation's percentiles and how far what happened to it was from
that prediction (on the ant: how much faster than foreseen a kick can throw the torso up, what `--mpc
kick_margin` plans for; I = 0, the torso's height, says how high it rides).

With `--controller oracle` (or any controller that plans on no learned model) the states are the
controller's and the checkpoint's prior is scored on them ("checkpoint"): does the model know the motions
the ceiling uses? A model pessimistic there (reward bias < 0) keeps a planner on it from choosing them.
"""

from __future__ import annotations

import argparse
import os
import platform

import numpy as np

from controllers.base import Controller
from controllers.mpc import MPCController
from controllers.rollout import TorchRollout
from mbmeta.grbal import load_model
from mbmeta.model import DynamicsModel, Params
from robots.base import RobotEnv
from scripts.common import build, format_metrics, make_env, mpc_settings, timed_episode


class RecordingController:
    """Wraps an MPC controller and keeps the parameters its rollout planned with at every `act`."""

    def __init__(self, controller: MPCController) -> None:
        self.controller = controller
        self.params: list[Params] = []

    def reset(self, obs: np.ndarray, new_task: bool = True) -> None:
        self.params = []
        self.controller.reset(obs, new_task)

    def act(self, obs: np.ndarray) -> np.ndarray:
        action = self.controller.act(obs)
        self.params.append(self.controller.adapter.params)  # what `act` just planned with
        return action

    def __getattr__(self, name: str) -> object:
        return getattr(self.controller, name)


def predicted_paths(model: DynamicsModel, params_at: list[Params], obs: np.ndarray, actions: np.ndarray,
                    horizon: int) -> np.ndarray:
    """(starts, H, ds): from every state with H steps after it, the planners' reference rollout along the
    actions taken, with that step's parameters."""
    rollout = TorchRollout(model)
    rows = []
    for t in range(len(actions) - horizon + 1):
        rollout.set_params(params_at[t])
        rows.append(rollout(obs[t], actions[None, t:t + horizon])[0, 1:])  # without the start state
    return np.stack(rows) if rows else np.zeros((0, horizon, obs.shape[1]))


def reward_bias(env: RobotEnv, paths: np.ndarray, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """(starts,) the reward per step the model predicted along each path minus the reward that happened
    along the same actions: positive where the model is optimistic (what a planner that picks the best of
    many candidates on it is drawn to)."""
    starts, horizon, _ = paths.shape
    index = np.arange(starts)[:, None] + np.arange(horizon)  # (starts, H) step of each path element
    before = np.concatenate([obs[:starts, None], paths[:, :-1]], axis=1)
    flat = lambda a: a.reshape(starts * horizon, -1)  # noqa: E731
    predicted = env.reward(flat(before), flat(actions[index]), flat(paths)).reshape(starts, horizon)
    happened = env.reward(flat(obs[index]), flat(actions[index]), flat(obs[index + 1])).reshape(starts, horizon)
    return (predicted - happened).mean(axis=1)


def print_trace(model: DynamicsModel, params_at: list[Params], obs: np.ndarray, actions: np.ndarray, index: int,
                steps: int) -> None:
    """The last `steps` transitions' observation `index`: before, one-step predicted, after."""
    rollout = TorchRollout(model)
    print(f"  step  obs[{index}]  predicted next  actual next")
    for t in range(max(0, len(actions) - steps), len(actions)):
        rollout.set_params(params_at[t])
        predicted = rollout(obs[t], actions[None, t:t + 1])[0, -1, index]
        print(f"  {t:4d} {obs[t, index]:+9.3f} {predicted:+15.3f} {obs[t + 1, index]:+12.3f}")


def end_of_walk(metrics: dict[str, float], steps: int, terminated: bool) -> int | None:
    """The step at which the episode ended early, or the robot flipped (the ant's `flipped_step`: on its back it
    lies there to the end), whichever came first; None if neither."""
    flipped = metrics.get("flipped_step", float("nan"))
    ends = ([steps] if terminated else []) + ([int(flipped)] if not np.isnan(flipped) else [])
    return min(ends) if ends else None


def onpolicy_errors(env: RobotEnv, controller: Controller, episodes: int, horizon: int, seed: int,
                    before_end: int, baseline: DynamicsModel | None = None, trace: int | None = None,
                    scored: DynamicsModel | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Run `episodes` episodes and score the models on the visited states: {model: {"all" | "late":
    (starts, ds) squared H-step errors, "reward bias": (starts,) `reward_bias`, "miss" and "seen": (steps,)
    with `trace`, the planned-with model's one-step miss of observation `trace` (happened - predicted) and the
    observation itself}}, "late" being the `before_end` starts whose H-step paths end last before an episode's
    early end or flip (`end_of_walk`). Prints one line per episode (and with `trace`, `print_trace` for each
    early end). An MPC controller's own model is scored as it planned and as its prior; for any other controller
    (the oracle) the `scored` model's prior ("checkpoint")."""
    if isinstance(controller, MPCController):
        recorder = RecordingController(controller)
        model = controller.model
        models = {"planned with": (model, None), "prior": (model, controller.adapter.prior)}
    else:
        if scored is None:
            raise ValueError(f"{type(controller).__name__} plans on no learned model: pass the model to score")
        recorder, model = controller, scored  # type: ignore[assignment]
        models = {"checkpoint": (model, model.prior())}
    scale = model.in_std[: model.obs_dim].numpy().astype(np.float64)
    if baseline is not None:
        models["baseline"] = (baseline, baseline.prior())
    errors: dict[str, dict[str, list[np.ndarray]]] = {name: {"all": [], "late": [], "reward bias": []}
                                                      for name in models}
    traced = errors["planned with"] if trace is not None and "planned with" in errors else None
    if traced is not None:  # the one-step misses of observation `trace`, of the parameters planned with only
        traced.update(miss=[], seen=[])
    for episode in range(episodes):
        result = timed_episode(env, recorder, seed=seed + episode)
        ep = result.episode
        print(f"episode {episode}: {len(ep.actions)} steps{', ' + result.end_reason if result.end_reason else ''}, "
              f"{format_metrics(result.metrics, env.metric_labels)}, reward per step {np.mean(ep.rewards):.3f}")
        end = end_of_walk(result.metrics, len(ep.actions), ep.terminated)
        if trace is not None and ep.terminated:
            print_trace(model, recorder.params, ep.observations, ep.actions, trace, before_end)
        if traced is not None:
            predicted = predicted_paths(model, recorder.params, ep.observations, ep.actions, 1)[:, 0, trace]
            traced["miss"].append(ep.observations[1:, trace] - predicted)
            traced["seen"].append(ep.observations[1:, trace])
        for name, (m, params) in models.items():
            params_at = recorder.params if params is None else [params] * len(ep.actions)
            paths = predicted_paths(m, params_at, ep.observations, ep.actions, horizon)
            err = ((paths[:, -1] - ep.observations[horizon:horizon + len(paths)]) / scale) ** 2
            errors[name]["all"].append(err)
            errors[name]["reward bias"].append(reward_bias(env, paths, ep.observations, ep.actions))
            if end is not None and end >= horizon:  # starts t whose paths end at state t + H <= end
                errors[name]["late"].append(err[max(0, end - horizon + 1 - before_end):end - horizon + 1])
    return {name: {k: np.concatenate(v) if v else np.zeros((0, model.obs_dim)) for k, v in parts.items()}
            for name, parts in errors.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("robot")
    parser.add_argument("--controller", default="adaptive",
                        help="a model-based controller (adaptive, nonadaptive), or oracle: score the checkpoint "
                             "on the oracle's states")
    parser.add_argument("--checkpoint", required=True, help="the controller's dynamics model")
    parser.add_argument("--baseline", help="another model to score on the same states (e.g. the MB model)")
    parser.add_argument("--task", default=None)
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--episode-length", type=int, default=None)
    parser.add_argument("--horizon", type=int, default=15, help="prediction steps (the planner's horizon)")
    parser.add_argument("--before-end", type=int, default=25,
                        help="steps before an early end or a flip to report apart")
    parser.add_argument("--trace", type=int, default=None, metavar="I",
                        help="print observation I before each early end, as it happened and as predicted, and "
                             "its one-step misses over all steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mpc", nargs="*", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)

    if args.controller in ("pearl", "rl2"):
        parser.error(f"--controller {args.controller}: runs on its own trained file, not on --checkpoint's dynamics "
                     "model; to score the model on a reference's states use --controller oracle")
    env = make_env(args.robot, args.task, args.episode_length)
    controller = build(args.robot, args.controller, env, args.checkpoint, args.seed,
                       mpc=mpc_settings(args.robot, args.mpc))
    # an MPC controller has loaded the checkpoint already; the oracle ignores it, so it is loaded here
    model = controller.model if isinstance(controller, MPCController) else load_model(args.checkpoint)[0]
    if args.trace is not None and not isinstance(controller, MPCController):
        parser.error(f"--trace: {args.controller!r} plans on no learned model; trace a model-based controller")
    if args.trace is not None and not 0 <= args.trace < model.obs_dim:
        parser.error(f"--trace: expected an observation index in 0..{model.obs_dim - 1}, got {args.trace}")
    print(f"# {args.robot}, {args.controller} on {args.checkpoint}, task {env.task.name}, H = {args.horizon}; "
          f"{platform.machine()}, {os.cpu_count()} CPUs")
    baseline = load_model(args.baseline)[0] if args.baseline else None
    errors = onpolicy_errors(env, controller, args.episodes, args.horizon, args.seed, args.before_end, baseline,
                             args.trace, scored=model)

    groups = env.observation_groups or {"state": slice(0, model.obs_dim)}
    print(f"\n{args.horizon}-step squared error, in units of the training data's spread per dimension")
    print(f"{'model':<14} {'states':<22}" + "".join(f"{g:>20}" for g in groups) + f"{'all':>10}")
    for name, parts in errors.items():
        for label, err in ((f"all ({len(parts['all'])})", parts["all"]),
                           (f"last {args.before_end} before end/flip", parts["late"])):
            if len(err):
                cells = "".join(f"{err[:, s].mean():>20.3g}" for s in groups.values())
                print(f"{name:<14} {label:<22}{cells}{err.mean():>10.3g}")
    print(f"\nreward per step predicted over the {args.horizon} steps along the actions taken, minus what happened "
          f"(mean ± s.e. over starts; > 0: optimistic)")
    for name, parts in errors.items():
        bias = parts["reward bias"]
        print(f"{name:<14} {bias.mean():+.3f} ± {bias.std() / np.sqrt(max(len(bias), 1)):.3f}")
    traced = errors.get("planned with", {})
    if len(traced.get("miss", ())):
        miss, seen = traced["miss"], traced["seen"]
        low, high = np.percentile(miss, [1, 99])
        print(f"\nobs[{args.trace}] over all {len(miss)} steps: as it happened, 10th / 50th / 90th percentile "
              f"{' / '.join(f'{v:+.3f}' for v in np.percentile(seen, [10, 50, 90]))}; one step ahead, what "
              f"happened minus what the parameters planned with predicted: mean {miss.mean():+.3f}, s.d. "
              f"{miss.std():.3f}, 1st / 99th percentile {low:+.3f} / {high:+.3f}, min / max {miss.min():+.3f} / "
              f"{miss.max():+.3f}")


if __name__ == "__main__":
    main()
