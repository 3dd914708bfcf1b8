"""The `mbmeta` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

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


PRESETS = Path(__file__).resolve().parents[1] / "mbmeta" / "presets"


def resolve_config(name: str) -> Path:
    """A YAML path, or the name of a preset shipped in mbmeta/presets."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    preset = PRESETS / f"{name}.yaml"
    if not preset.exists():
        names = sorted(p.stem for p in PRESETS.glob("*.yaml"))
        raise ValueError(f"{name!r} is neither a YAML file nor a preset; presets are {names}")
    return preset


def cmd_train(args: argparse.Namespace) -> int:
    import dataclasses

    from controllers.collection import collection_policy
    from mbmeta.config import load_yaml
    from mbmeta.grbal import TrainConfig, train

    path = resolve_config(args.config)
    config = load_yaml(TrainConfig, path)
    if args.seed is not None:
        config = dataclasses.replace(config, seed=args.seed)
    run_dir = Path(args.run_dir or Path("runs") / f"{path.stem}-seed{config.seed}")
    checkpoint = train(config, run_dir, collection_policy, resume=not args.no_resume)
    print(f"checkpoint: {checkpoint}")
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

    tr = sub.add_parser("train", help="train a dynamics model (GrBAL or the non-adaptive baseline)",
                        epilog="examples:\n  mbmeta train ant_grbal\n  mbmeta train my_config.yaml --seed 3",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    tr.add_argument("config", help="a YAML config, or a preset name: ant_grbal, ant_mb, quadrotor_grbal, ...")
    tr.add_argument("--run-dir", help="where checkpoints and logs go (default runs/<config>-seed<seed>)")
    tr.add_argument("--seed", type=int, default=None, help="overrides the config's seed")
    tr.add_argument("--no-resume", action="store_true", help="start over even if the run directory has a checkpoint")
    tr.set_defaults(func=cmd_train)
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
