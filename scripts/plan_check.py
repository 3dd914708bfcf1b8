"""What limits the MPC's choice: its model, its search, or its objective? Plans checked against the simulator.

    python -m scripts.plan_check ant --checkpoint mbmeta/checkpoints/ant_grbal.pt --task broken-leg-3 \
        --mpc from_prior=false --steps 1000 --every 20 --below 0.04

Runs one closed-loop episode of a model-based controller. Every `--every` steps it takes three plans from the
state the robot is in: the controller's own, holding the planner's nominal action (the ant: no torque), and
the oracle's (the same planner on the true simulator, maximising the task's reward: `controllers.oracle`). It
scores each by the controller's planning objective (its `planning_reward` and `planning_terminal`: speed
cap, safety margin, the limit on the rise; per step, up to an imagined termination) three times: in the controller's
model (for the adaptive controller, as adapted this step), in its meta-learned prior θ* (before this step's
adaptation) and along the states the simulator really goes through. Read per state:
- the model scores a plan far from the simulator: a model error there; the adapted model nearer the simulator
  than θ* on the plans it did not choose (holding, the oracle's): what the adaptation corrected (its own plan,
  the best of its search in the adapted model, is scored high there by selection);
- the model scores the oracle's (or holding's) plan above the controller's own: the search missed it;
- the simulator scores the oracle's plan below the controller's own under the planning objective, though the
  oracle's task reward is higher: the objective rules out what the task pays for (`ended` says at which step
  of the oracle's plan the objective's terminal condition first holds along the simulator's states, and
  whether that was the robot's planning-only limit, the ant's limit on its rise, rather than the margin's range).
The summary averages all checked states and, with `--below`, those where the robot's step metric (the ant's
forward speed) averaged less than that over the steps since the last check (the ant stalls below 0.04 m/s).
"""

from __future__ import annotations

import argparse
import os
import platform
from typing import Any

import numpy as np

from controllers.mpc import MPCController, make_evaluate
from controllers.oracle import OracleController
from mbmeta.model import Params
from robots.base import RobotEnv
from scripts.common import build, make_env, mpc_settings

COLUMNS = ("model: own", "hold", "oracle", "θ*: own", "hold", "oracle", "sim: own", "hold", "oracle",
           "oracle task reward")


def objective_along(controller: MPCController, states: np.ndarray, plan: np.ndarray) -> tuple[float, int]:
    """The controller's planning objective per step along given states (H + 1, ds) and its plan (H, da), and
    the first step the objective's terminal condition holds (H: never)."""
    rewards = np.asarray(controller.reward(states[:-1], plan, states[1:]), np.float64)
    done = np.asarray(controller.is_terminal(states[1:]), bool)
    ended = int(np.argmax(done)) if done.any() else len(plan)
    return float(rewards[: ended + 1].sum()) / len(plan), ended


def check(env: RobotEnv, controller: MPCController, oracle: OracleController, obs: np.ndarray) -> list[float]:
    """One row: the three plans' objective per step in the model, in θ* and along the simulator, the oracle plan's
    task reward per step, the step at which the objective ends the oracle's plan in the simulator, and whether
    what ended it was the robot's planning-only limit (`planning_terminal` beyond `is_terminal` at the margin)."""
    own = controller.last_plan()
    hold = np.broadcast_to(controller.planner.center, own.shape)
    oracle.reset(obs)
    oracle.act(obs)
    best = oracle.last_plan()
    plans = np.stack([own, hold, best]).astype(np.float32)

    def in_model_with(params: Params) -> np.ndarray:
        controller.rollout.set_params(params)
        return make_evaluate(controller.rollout, controller.reward, controller.is_terminal,
                             obs.astype(np.float32))(plans) / len(own)

    in_prior = in_model_with(controller.adapter.prior)  # the model before this step's adaptation
    in_model = in_model_with(controller.adapter.params)  # last: the parameters the controller plans with
    paths = [env.imagine_path(plan).astype(np.float32) for plan in plans]
    along = [objective_along(controller, path, plan) for path, plan in zip(paths, plans, strict=True)]
    task = env.imagine(best[None])[0].sum() / len(own)
    ended = along[2][1]
    # ended by what only a planner on a learned model counts as an end (the ant's rise limit), not the margin's range
    by_planning_limit = ended < len(own) and not env.is_terminal(paths[2][ended + 1][None],
                                                                 controller.config.safety_margin)[0]
    return [*in_model, *in_prior, *(score for score, _ in along), task, ended, by_planning_limit]


def run(env: RobotEnv, controller: MPCController, steps: int, every: int, seed: int) -> tuple[list, list]:
    """One episode, checked every `every` steps; returns the rows and each row's recent step metric."""
    oracle = OracleController(env, controller.planner.config, seed=seed)
    key = env.step_metric[0] if env.step_metric else None
    obs, _ = env.reset(seed=seed)
    controller.reset(obs)
    rows, recent, metric = [], [], []
    for t in range(steps):
        action = controller.act(obs)
        if t and t % every == 0:
            rows.append(check(env, controller, oracle, obs))
            recent.append(float(np.mean(metric[-every:])) if metric else float("nan"))
            *scores, ended, by_limit = rows[-1]
            print(f"step {t:4d}  recent {recent[-1]:+.2f}  " + "  ".join(f"{x:+.2f}" for x in scores)
                  + f"  ended {ended}" + (" (planning-only limit)" if by_limit else ""), flush=True)
        next_obs, reward, terminated, truncated, info = env.step(action)
        controller.observe(obs, action, reward, next_obs, terminated)
        metric.append(info[key] if key else float("nan"))
        obs = next_obs
        if terminated or truncated:
            print(f"episode ended at step {t + 1}" + (f": {env.termination_reason(obs)}" if terminated else ""))
            break
    return rows, recent


def summary(label: str, rows: np.ndarray, horizon: int) -> str:
    if not len(rows):
        return f"{label}: none"
    means = "  ".join(f"{name} {x:+.3f}" for name, x in zip(COLUMNS, rows[:, :-2].mean(0), strict=True))
    return (f"{label} ({len(rows)}): {means}; the objective ends the oracle's plan in the simulator in "
            f"{np.mean(rows[:, -2] < horizon):.0%} of them, by the robot's planning-only limit (the ant's rise "
            f"limit) in {np.mean(rows[:, -1]):.0%}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("robot")
    parser.add_argument("--controller", default="adaptive", help="a model-based controller: adaptive, nonadaptive")
    parser.add_argument("--checkpoint", required=True, help="the controller's dynamics model")
    parser.add_argument("--task", default=None)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--every", type=int, default=20, help="check every this many steps")
    parser.add_argument("--below", type=float, default=None,
                        help="also summarise the states whose recent step metric averaged below this")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mpc", nargs="*", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    if args.every < 1 or args.steps < 1:
        parser.error(f"--every and --steps: expected positive step counts, got {args.every} and {args.steps}")

    env = make_env(args.robot, args.task, args.steps)
    controller = build(args.robot, args.controller, env, args.checkpoint, args.seed,
                       mpc=mpc_settings(args.robot, args.mpc))
    if not isinstance(controller, MPCController):
        parser.error(f"--controller {args.controller}: plans on no learned model; pick adaptive or nonadaptive")
    print(f"# {args.robot}, {args.controller} on {args.checkpoint}, task {env.task.name}, seed {args.seed}; "
          f"{platform.machine()}, {os.cpu_count()} CPUs\n# per step of the planning objective: "
          + ", ".join(COLUMNS))
    rows, recent = run(env, controller, args.steps, args.every, args.seed)
    table: Any = np.array(rows, dtype=float).reshape(-1, len(COLUMNS) + 2)
    horizon = controller.planner.config.horizon
    print(summary("all checked states", table, horizon))
    if args.below is not None:
        print(summary(f"recent step metric below {args.below:g}", table[np.array(recent) < args.below], horizon))


if __name__ == "__main__":
    main()
