"""The `mbmeta` command line: run, train, compare, bench, eval-model, export."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


PRESETS = Path(__file__).resolve().parents[1] / "mbmeta" / "presets"
RAW = argparse.RawDescriptionHelpFormatter

# Names for parsing arguments, written out so that `--help` and argument errors import no torch, MuJoCo or
# pybullet (seconds); every command imports what it needs. tests/test_cli.py checks them against
# robots.ROBOTS and the controller registry.
ROBOT_NAMES = ("ant", "quadrotor")
CONTROLLER_NAMES = ("adaptive", "cem_adaptive", "cem_mpc", "mppi_adaptive", "mppi_mpc", "nonadaptive", "oracle",
                    "pearl", "random", "rl2", "rs_adaptive", "rs_mpc", "scripted")


def at_least(low: int) -> object:
    """An argparse type: an integer >= `low` (argparse names the flag in the error)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value
    parse.__name__ = f"integer >= {low}"
    return parse


POSITIVE, NON_NEGATIVE = at_least(1), at_least(0)
#: Episode length of `mbmeta compare --quick`, per robot (200 for others).
QUICK_LENGTH = {"ant": 200, "quadrotor": 240}


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (naming the fix), not a usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


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


def cmd_run(args: argparse.Namespace) -> int:
    from scripts.common import build, make_env, mpc_settings, timed_episode

    env = make_env(args.robot, args.task, episode_length=args.steps)
    if args.change_at is not None:
        if env.task == env.task.nominal():
            raise ValueError("--change-at needs a task that changes the robot, e.g. --task broken-leg-3 "
                             "(ant) or --task heavy-payload (quadrotor)")
        env.set_task(dataclasses.replace(env.task, at_step=args.change_at))
    if args.video:
        from scripts.video import annotate, check_can_render, write_video

        check_can_render(env)
    mpc = mpc_settings(args.robot, args.mpc)
    controller = build(args.robot, args.controller, env, args.checkpoint, args.seed, mpc=mpc)
    video: list[np.ndarray] = []
    adaptations = fallbacks = 0
    for episode in range(args.episodes):
        frames: list[np.ndarray] | None = [] if args.video else None
        result = timed_episode(env, controller, seed=args.seed + episode, new_task=episode == 0, frames=frames,
                               progress=sys.stderr.isatty())
        if frames is not None:
            video += annotate([*frames, env.render()], result.episode, env, args.controller)
        adaptations += result.adaptations
        fallbacks += result.fallbacks
        print(f"{args.robot} | {args.controller} | task {env.task.name} | episode {episode} | "
              f"{result.summary(env.metric_labels)}", flush=True)
    info = controller.info()
    if adaptations:
        print(f"adaptation: guard fell back on {fallbacks} of {adaptations} adaptation steps "
              f"({fallbacks / adaptations:.1%})")
    if info:
        print("controller: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    if args.video:
        print(f"video: {write_video(args.video, video, fps=1 / env.dt)} ({len(video)} frames)")
    env.close()
    return 0


def learners() -> dict[str, tuple[type, object]]:
    """Each learner's config class and training function (imported on demand: torch is slow to load)."""
    from controllers.collection import collection_policy
    from mbmeta.grbal import TrainConfig, train
    from mbmeta.pearl import PEARLConfig, train_pearl
    from mbmeta.rl2 import RL2Config, train_rl2

    def grbal(config: TrainConfig, run_dir: Path, args: argparse.Namespace) -> None:
        from mbmeta.checkpoint import load_checkpoint

        checkpoint = train(config, run_dir, collection_policy, not args.no_resume, workers=args.workers,
                           address=args.ray_address, data=args.data)
        if (record := load_checkpoint(checkpoint).get("polish")) is not None:
            print(f"polish: {describe_polish(record)}")

    def rl_learner(train_fn: object) -> object:
        def run(config: RL2Config | PEARLConfig, run_dir: Path, args: argparse.Namespace) -> None:
            if args.workers > 1 or args.ray_address or args.data:
                raise ValueError("--workers, --ray-address and --data are for GrBAL's data; RL² and PEARL collect "
                                 "their own, on one worker")
            import robots

            env = robots.make(config.robot, episode_length=config.episode_length)
            train_fn(env, config, run_dir, resume=not args.no_resume)
        return run

    return {"grbal": (TrainConfig, grbal), "rl2": (RL2Config, rl_learner(train_rl2)),
            "pearl": (PEARLConfig, rl_learner(train_pearl))}


def cmd_train(args: argparse.Namespace) -> int:
    from mbmeta.config import ConfigError, from_dict, read_yaml
    from scripts.plots import plot_learning_curve

    path = resolve_config(args.config)
    data = read_yaml(path)
    learner = data.pop("learner", "grbal") if isinstance(data, dict) else "grbal"
    known = learners()
    if learner not in known:
        raise ConfigError(f"{path.name}.learner: expected one of {list(known)}, got {learner!r}")
    config_class, train = known[learner]
    config = from_dict(config_class, data, where=path.name)
    overrides = {"seed": args.seed} if args.seed is not None else {}
    if args.budget is not None:
        if learner == "grbal":
            raise ValueError("--budget sets an RL learner's environment steps; GrBAL's budget is its iterations")
        overrides["budget"] = args.budget
    config = dataclasses.replace(config, **overrides)
    run_dir = Path(args.run_dir or Path("runs") / f"{path.stem}-seed{config.seed}")
    train(config, run_dir, args)
    print(f"checkpoint: {run_dir / 'checkpoint.pt'}")
    print(f"learning curve: {plot_learning_curve(run_dir)}")
    return 0


def cmd_polish(args: argparse.Namespace) -> int:
    from mbmeta.polish import polish

    result = polish(args.run_dir, args.dest, args.updates, args.lr, args.seed)
    print(f"{describe_polish(result.record)}; wrote {result.path}")
    return 0


def describe_polish(record: dict[str, float]) -> str:
    return (f"held-out loss {record['held_out_before']:.4f} -> {record['held_out_after']:.4f} (best at update "
            f"{record['best_update']} of {record['updates']})")


def cmd_export(args: argparse.Namespace) -> int:
    from mbmeta import grbal, pearl, rl2
    from mbmeta.checkpoint import load_checkpoint

    exporters = {grbal.CHECKPOINT_FORMAT: grbal.export_model, rl2.CHECKPOINT_FORMAT: rl2.export_rl2,
                 pearl.CHECKPOINT_FORMAT: pearl.export_pearl}
    fmt = load_checkpoint(args.checkpoint)["format"]
    if fmt not in exporters:
        raise ValueError(f"{args.checkpoint} holds a {fmt!r} checkpoint; mbmeta exports {sorted(exporters)}")
    dest = exporters[fmt](args.checkpoint, args.dest)
    print(f"wrote {dest} ({dest.stat().st_size / 1e6:.2f} MB)")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from scripts.common import mpc_settings
    from scripts.compare import DEFAULT_CONTROLLERS, CompareConfig, merge_results, run_compare

    controllers = args.controllers or [c for c in DEFAULT_CONTROLLERS if not (args.quick and c == "oracle")]
    unknown = [c for c in controllers if c not in CONTROLLER_NAMES]
    if unknown:
        raise ValueError(f"unknown controller(s) {unknown}; choose from {list(CONTROLLER_NAMES)}")
    if args.merge and (args.models or args.quick or args.video):
        raise ValueError("--merge makes a table of finished runs' results.csv; it runs nothing, so drop --models, "
                         "--quick and --video")
    missing = [d for d in args.models or [] if not Path(d).is_dir()]
    if missing:
        raise ValueError(f"--models: no folder {missing[0]!r} (one folder per training seed, each with the files "
                         f"mbmeta export writes: <robot>_grbal.pt, _mb.pt, _pearl.pt, _rl2.pt)")
    missing = [f for f in args.merge or [] if not Path(f).is_file()]
    if missing:
        raise ValueError(f"--merge: no file {missing[0]!r} (the results.csv of an mbmeta compare run)")
    quick = {"episodes": 2, "episode_length": QUICK_LENGTH.get(args.robot, 200)} if args.quick else {}
    config = CompareConfig(robot=args.robot, controllers=controllers, out=Path(args.out or f"results/{args.robot}"),
                           seed=args.seed, episodes=quick.get("episodes", args.episodes),
                           episode_length=quick.get("episode_length", args.episode_length),
                           workers=args.workers, ray_address=args.ray_address,
                           video=Path(args.video) if args.video else None, video_task=args.video_task,
                           mpc=mpc_settings(args.robot, args.mpc), fresh=args.fresh, tasks=args.tasks,
                           **({"models": [Path(d) for d in args.models]} if args.models else {}))
    out = merge_results(config, [Path(f) for f in args.merge]) if args.merge else run_compare(config)
    print((out / "results.md").read_text())
    print(f"wrote {out}/: " + ", ".join(sorted(p.name for p in out.iterdir() if p.suffix in (".md", ".csv", ".png"))))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from benchmarks import meta_training_speed, planner_speed, robots_speed

    for module, argv in [(robots_speed, []), (meta_training_speed, []),
                         (planner_speed, ["--quick"] if args.quick else [])]:
        print(f"\n## {module.__name__}\n", flush=True)
        module.main(argv)
    return 0


def add_ray_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("--workers", type=POSITIVE, default=1, help="run episodes on this many Ray workers (needs "
                                                                "pip install 'mbmeta[ray]'); the same results as 1")
    command.add_argument("--ray-address", metavar="ADDR", help="use the Ray cluster at ADDR (e.g. auto, or "
                                                                "ray://head:10001) instead of starting one here")


def add_mpc_argument(command: argparse.ArgumentParser) -> None:
    command.add_argument("--mpc", nargs="+", default=[], metavar="KEY=VALUE",
                         help="MPC settings over the robot's defaults, for the model-based controllers and the oracle, "
                              "e.g. backtracking=3 fallback=last planner.population=200")


def parser() -> argparse.ArgumentParser:
    top = Parser(prog="mbmeta", description="Model-based, meta-learned adaptive control of robots.",
                                  epilog="run 'mbmeta <command> --help' for a command's options and examples",
                                  formatter_class=RAW)
    sub = top.add_subparsers(dest="command", required=True, metavar="command", parser_class=Parser)
    names = ", ".join(ROBOT_NAMES)

    run = sub.add_parser("run", help="closed-loop episodes of a controller on a simulated robot", formatter_class=RAW,
                         epilog="examples:\n  mbmeta run ant --controller adaptive --task broken-leg-3\n"
                                "  mbmeta run ant --controller nonadaptive --task broken-leg-3 --change-at 100\n"
                                "  mbmeta run quadrotor --controller adaptive --task heavy-payload --episodes 3\n"
                                "  mbmeta run ant --controller scripted --video ant.mp4")
    run.add_argument("robot", choices=ROBOT_NAMES, help=names)
    run.add_argument("--controller", choices=CONTROLLER_NAMES, default="adaptive", metavar="NAME",
                     help=f"one of {', '.join(CONTROLLER_NAMES)} (default adaptive = cem_adaptive)")
    run.add_argument("--task", help="a named task, e.g. broken-leg-3, healthy, heavy-payload, pickup")
    run.add_argument("--checkpoint", help="a trained model (default: the one shipped with mbmeta)")
    run.add_argument("--episodes", type=POSITIVE, default=1)
    run.add_argument("--steps", type=POSITIVE, help="episode length (default: the robot's)")
    run.add_argument("--change-at", "--break-leg-at", type=NON_NEGATIVE, metavar="STEP",
                     help="apply the task's change (a leg breaks, a payload is picked up) at this step")
    run.add_argument("--video", metavar="FILE", help="render headless to FILE.mp4 or FILE.gif, with an overlay")
    run.add_argument("--seed", type=NON_NEGATIVE, default=0)
    add_mpc_argument(run)
    run.set_defaults(func=cmd_run)

    tr = sub.add_parser("train", help="train a learner: GrBAL, the non-adaptive model, RL² or PEARL",
                        formatter_class=RAW, epilog="examples:\n  mbmeta train ant_grbal\n"
                                                    "  mbmeta train rl2_ant --budget 20000\n"
                                                    "  mbmeta train pearl_quadrotor --budget 50000\n"
                                                    "  mbmeta train my_config.yaml --seed 3 --run-dir runs/mine")
    tr.add_argument("config", help="a YAML config (its 'learner' key: grbal, the default, rl2 or pearl), or a "
                                   "preset: ant_grbal, ant_mb, quadrotor_grbal, quadrotor_mb, rl2_ant, rl2_quadrotor, "
                                   "pearl_ant, pearl_quadrotor")
    tr.add_argument("--run-dir", help="where checkpoints and logs go (default runs/<config>-seed<seed>)")
    tr.add_argument("--seed", type=NON_NEGATIVE, help="overrides the config's seed")
    tr.add_argument("--budget", type=POSITIVE, help="environment steps, for the RL learners (rl2, pearl): a small run "
                                               "finishes in minutes; rerun with a larger budget to continue")
    tr.add_argument("--no-resume", action="store_true", help="start over even if the run directory has a checkpoint")
    tr.add_argument("--data", metavar="FILE.npz", help="GrBAL and MB: train on this fixed data (another run's "
                                                       "data.npz, or logged robot data) instead of collecting")
    add_ray_arguments(tr)
    tr.set_defaults(func=cmd_train)

    cmp = sub.add_parser("compare", help="controllers on held-out and training tasks, over training seeds: tables "
                                         "with confidence intervals, and plots", formatter_class=RAW,
                         epilog="examples:\n  mbmeta compare ant --quick\n"
                                "  mbmeta compare quadrotor --models s0/ s1/ s2/ --episodes 10 --out results/q\n"
                                "  mbmeta compare ant --controllers adaptive oracle --episode-length 1000\n"
                                "  mbmeta compare ant --merge s0/results.csv s12/results.csv --episode-length 1000 "
                                "--out results/ant")
    cmp.add_argument("robot", choices=ROBOT_NAMES, help=names)
    cmp.add_argument("--controllers", nargs="+", metavar="NAME",
                     help="default: adaptive nonadaptive oracle (held-out tasks only) pearl rl2 scripted random")
    cmp.add_argument("--episodes", type=POSITIVE, default=3, help="episodes per model folder and task (default 3)")
    cmp.add_argument("--episode-length", type=POSITIVE)
    cmp.add_argument("--tasks", nargs="+", metavar="TASK", help="only these of the tasks the robot is compared on "
                                                                "(default: all; e.g. broken-leg-3 break-leg-3-midway)")
    cmp.add_argument("--quick", action="store_true", help="a smoke run in minutes: 2 episodes, short ones, no oracle "
                                                          "unless named in --controllers")
    cmp.add_argument("--out", help="output folder (default results/<robot>)")
    cmp.add_argument("--models", metavar="DIR", nargs="+",
                     help="one folder per training seed, each with <robot>_grbal.pt, _mb.pt, _pearl.pt and _rl2.pt "
                          "(default: the shipped models; see mbmeta export)")
    cmp.add_argument("--fresh", action="store_true", help="rerun every episode (by default a run that was stopped "
                                                          "reuses the episodes it finished, kept in OUT/episodes)")
    cmp.add_argument("--merge", metavar="CSV", nargs="+",
                     help="run nothing: one table (results.md, results.csv) of these runs' results.csv, e.g. one "
                          "per training seed; pass the --episode-length they ran with (and their --mpc for files "
                          "without the mpc column, written before it)")
    cmp.add_argument("--video", metavar="FILE", help="also write a side-by-side clip (.mp4 or .gif): adaptive, "
                                                     "non-adaptive (and the oracle, when compared) on the robot's "
                                                     "mid-episode change, same seed")
    cmp.add_argument("--video-task", metavar="TASK", help="the named task of the --video clip (default: the robot's "
                                                           "mid-episode change, e.g. break-leg-3-midway, pickup)")
    add_ray_arguments(cmp)
    add_mpc_argument(cmp)
    cmp.add_argument("--seed", type=NON_NEGATIVE, default=0)
    cmp.set_defaults(func=cmd_compare)

    bench = sub.add_parser("bench", help="robot, meta-training and planner speed benchmarks", formatter_class=RAW,
                           epilog="examples:\n  mbmeta bench --quick")
    bench.add_argument("--quick", action="store_true", help="skip the planner sweep")
    bench.set_defaults(func=cmd_bench)

    # Listed for --help; main() hands its arguments to scripts/eval_model.py, which has its own parser.
    sub.add_parser("eval-model", help="held-out prediction error: non-adaptive vs prior vs adapted", add_help=False)

    ex = sub.add_parser("export", help="write a small inference-only copy of a training checkpoint",
                        formatter_class=RAW, epilog="example:\n  mbmeta export runs/ant_grbal/checkpoint.pt ant.pt")
    ex.add_argument("checkpoint")
    ex.add_argument("dest")
    ex.set_defaults(func=cmd_export)

    po = sub.add_parser("polish", help="train a finished GrBAL or MB run a last stretch at a lower learning rate, "
                                       "and export it", formatter_class=RAW,
                        epilog="example:\n  mbmeta polish runs/ant_grbal-seed0 ant_grbal.pt")
    po.add_argument("run_dir", help="a run directory of `mbmeta train` (checkpoint.pt and data.npz)")
    po.add_argument("dest", help="the polished model, exported (as `mbmeta export` writes it)")
    po.add_argument("--updates", type=POSITIVE, default=2000, help="meta-updates (default 2000)")
    po.add_argument("--lr", type=float, default=3e-4, help="Adam's learning rate, a fresh optimiser (default 3e-4)")
    po.add_argument("--seed", type=NON_NEGATIVE, default=0)
    po.set_defaults(func=cmd_polish)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["eval-model"]:
            from scripts import eval_model

            return eval_model.main(argv[1:], prog="mbmeta eval-model")
        args = parser().parse_args(argv)
        return args.func(args)
    except (ValueError, RuntimeError, FileNotFoundError) as err:  # bad input: one clear line, no traceback
        from mbmeta.checkpoint import CheckpointError

        if isinstance(err, RuntimeError) and not isinstance(err, CheckpointError):
            raise
        print(f"mbmeta: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
