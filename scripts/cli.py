"""The `mbmeta` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np

import robots
from controllers.base import Controller
from controllers.scripted import AntTrot, QuadrotorPD, RandomController
from robots.base import RobotEnv
from robots.rollout import rollout

SCRIPTED = {"ant": AntTrot, "quadrotor": QuadrotorPD}
CONTROLLERS = ("scripted", "random")

EXAMPLES = """examples:
  mbmeta run ant --task broken-leg-3
  mbmeta run quadrotor --task heavy-payload --episodes 3 --seed 1
  mbmeta run ant --controller random
"""


def build_controller(name: str, robot: str, env: RobotEnv, seed: int) -> Controller:
    if name == "random":
        return RandomController(env.observation_space, env.action_space, seed=seed)
    return SCRIPTED[robot](env.observation_space, env.action_space)


def cmd_run(args: argparse.Namespace) -> int:
    env = robots.make(args.robot, task=args.task) if args.task else robots.make(args.robot)
    controller = build_controller(args.controller, args.robot, env, args.seed)
    returns = []
    for episode in range(args.episodes):
        result = rollout(env, controller, seed=args.seed + episode, max_steps=args.steps)
        returns.append(result.total_reward)
        end = "terminated" if result.terminated else "ran to the end"
        print(f"{args.robot} | {args.controller} | task {env.task.name} | episode {episode} | "
              f"return {result.total_reward:9.2f} | {result.length} steps ({end})")
    if args.episodes > 1:
        print(f"mean return {np.mean(returns):.2f} over {args.episodes} episodes")
    env.close()
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="mbmeta", description="Model-based meta-learned adaptive control of robots.",
                                  epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = top.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run closed-loop episodes of a controller on a simulated robot",
                         epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("robot", choices=sorted(robots.ROBOTS))
    run.add_argument("--controller", choices=CONTROLLERS, default="scripted")
    run.add_argument("--task", help="a named task of the robot, e.g. broken-leg-3, heavy-payload")
    run.add_argument("--episodes", type=int, default=1)
    run.add_argument("--steps", type=int, default=None, help="cap on steps per episode (default: the robot's)")
    run.add_argument("--seed", type=int, default=0)
    run.set_defaults(func=cmd_run)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as err:  # bad user input: one clear line, no traceback
        print(f"mbmeta: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
