"""`mbmeta compare`: controllers on a robot's held-out and training tasks, over training seeds.

Writes to the output folder:
- results.csv: one row per episode (task metrics, return, length, adaptation fallbacks, latency, and the
  MPC settings: changed from the robot's defaults, as `--mpc` takes them, and every one as JSON);
- results.md: per controller and task, each task metric's mean with a 95% confidence interval. For the
  controllers that depend on training (the model-based, PEARL, RL²), the replicate is the training seed:
  a Student-t interval over the per-seed means (the unit of replication in model-based RL papers); with
  one seed, and for the controllers that depend on no training (oracle, scripted, random), the replicate
  is the episode;
- trajectories.png (what each controller did on the held-out task), change.png (the task metric around
  the robot's mid-episode change), adaptation_loss.png (the adaptation window's loss before and after
  each step, and the guard's fallbacks).

Each finished episode is also kept in `episodes/` (its row and trace), named by everything that decides
its numbers (robot, task, controller, episode seed and length, MPC settings, the model file's contents): a
run that is stopped and started again reruns only the episodes it had not finished (`fresh` reruns all), and
an episode kept under today's name but run before a default setting changed (its row records every setting).
After changing the code, start with `fresh`: the name does not cover the code.

`merge_results` makes one table of several runs' results.csv (say one training seed each, run on different
days or machines), as if one run had made it: the training seed is the model folder each row names.

The tasks come from the robot's own declarations (`evaluation_tasks`, `change_task`, `metric_labels`), so a
robot registered in `robots.ROBOTS` is compared like the shipped ones.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import gzip
import hashlib
import json
import math
import os
import pickle
import platform
from pathlib import Path
from typing import Any

import numpy as np

import robots
from controllers.mpc import MPCConfig
from controllers.registry import default_mpc
from mbmeta.checkpoint import atomic_write, write_csv
from mbmeta.config import to_dict
from mbmeta.parallel import map_ordered
from scripts import plots
from scripts.common import (
    SHIPPED,
    build,
    format_metrics,
    make_env,
    mpc_settings,
    mpc_with,
    shipped_checkpoint,
    timed_episode,
)
from scripts.stats import mean_ci95

DEFAULT_CONTROLLERS = ["adaptive", "nonadaptive", "oracle", "pearl", "rl2", "scripted", "random"]
#: The oracle plans in the simulator itself (seconds per step): by default it runs on the held-out tasks only.
ORACLE_SPLITS = ("test", "all")


@dataclasses.dataclass
class CompareConfig:
    robot: str
    controllers: list[str]
    episodes: int = 3  # per model folder (training seed) and task
    episode_length: int | None = None  # None: the robot's default
    out: Path = Path("results")
    seed: int = 0
    models: list[Path] = dataclasses.field(default_factory=lambda: [SHIPPED])  # one folder per training seed
    curve_controllers: list[str] = dataclasses.field(default_factory=lambda: ["adaptive", "nonadaptive"])
    workers: int = 1  # > 1: episodes run on Ray workers
    ray_address: str | None = None  # an existing Ray cluster
    video: Path | None = None  # a side-by-side clip (.mp4 or .gif) of the curve controllers
    video_task: str | None = None  # its task (None: the robot's mid-episode change, else its first held-out task)
    mpc: MPCConfig | None = None  # MPC settings for the model-based controllers and the oracle (None: defaults)
    fresh: bool = False  # rerun every episode, even those a stopped run kept in `out`/episodes
    tasks: list[str] | None = None  # only these of the robot's evaluated tasks (None: all of them)

    def __post_init__(self) -> None:
        # The mid-episode change runs for the curve controllers that are being compared, and no others.
        self.curve_controllers = [name for name in self.curve_controllers if name in self.controllers]
        evaluated = [task for _, task in task_columns(self.robot, self.curve_controllers)]
        unknown = [task for task in self.tasks or [] if task not in evaluated]
        if unknown:
            raise ValueError(f"--tasks: {unknown[0]!r} is not one of the tasks {self.robot} is compared on: "
                             f"{', '.join(evaluated)}")

    def columns(self) -> list[tuple[str, str]]:
        """The (split, task) pairs this comparison runs, in table order."""
        return [c for c in task_columns(self.robot, self.curve_controllers) if self.tasks is None or c[1] in self.tasks]


def task_columns(robot: str, curve_controllers: list[str]) -> list[tuple[str, str]]:
    """(split, task): the robot's evaluation tasks, then its mid-episode change ("change") when curve
    controllers run."""
    env_class = robots.ROBOTS[robot]
    columns = [(split, task) for split, names in env_class.tasks_to_evaluate().items() for task in names]
    if env_class.change_task is not None and curve_controllers:
        columns.append(("change", env_class.change_task))  # for the curve controllers only
    return columns


@dataclasses.dataclass(frozen=True)
class EvalJob:
    """One episode: a controller (on the models of one training seed) on a task, with an episode seed."""

    split: str  # a split of the robot's evaluation tasks, or "change" for the mid-episode change
    task: str
    controller: str
    seed: int
    models: Path
    training_seed: int  # index of `models` in the config's list


@dataclasses.dataclass
class Evaluate:
    """Runs an `EvalJob` (picklable, so Ray workers can run it); returns its CSV row and its trace (what
    the plots need: per-step infos and adaptation records)."""

    config: CompareConfig
    progress: bool = True

    def __call__(self, job: EvalJob) -> tuple[dict[str, Any], dict[str, Any]]:
        saved = self.saved_path(job)
        record = mpc_record(self.config.robot, self.config.mpc)
        kept = None
        if saved is not None and saved.exists() and not self.config.fresh:
            kept = pickle.loads(gzip.decompress(saved.read_bytes()))
        if kept is not None and self.ran_as_configured(kept[0]):
            row, trace = kept
            # The task metrics again from the trace: a metric added since the episode ran is filled in.
            metrics = robots.ROBOTS[self.config.robot].episode_metrics(trace["start_info"], trace["infos"],
                                                                      trace["terminated"], robot_dt(self.config.robot))
            row = {**row, **metrics, "training_seed": job.training_seed, "models": str(job.models)}
        else:
            row, trace = self.run(job)
            row["mpc_full"] = record  # kept with the episode, for `ran_as_configured`
            if saved is not None:
                atomic_write(saved, lambda f: f.write(gzip.compress(pickle.dumps((row, trace)))))
        return {**row, "mpc": mpc_label(self.config.robot, self.config.mpc), "mpc_full": record}, trace

    def ran_as_configured(self, row: dict[str, Any]) -> bool:
        """Whether a kept episode ran with the MPC settings asked for now. Its file name holds the settings
        changed from the defaults, so after a default changes an episode run at the old one carries the name
        of today's: its row's full record (`mpc_full`) tells them apart. Episodes kept before that record
        existed are taken as named."""
        if "mpc_full" not in row:
            return True
        try:
            ran = mpc_with(self.config.robot, json.loads(row["mpc_full"]), where="a kept episode's mpc_full")
        except ValueError:  # a setting since removed: not today's settings
            return False
        return ran == (self.config.mpc or default_mpc(self.config.robot))

    def saved_path(self, job: EvalJob) -> Path | None:
        """Where the finished episode is kept: `out`/episodes, under a name made from everything that decides
        its numbers but the code (None when the controller's model file is missing: `build` says so). The MPC
        settings enter as those changed from the robot's defaults (None: none), so a setting added later, left
        at its default, keeps the names."""
        config = self.config
        checkpoint = shipped_checkpoint(config.robot, job.controller, job.models)
        if checkpoint is not None and not checkpoint.is_file():
            return None
        key = {"robot": config.robot, "episode_length": config.episode_length, "split": job.split, "task": job.task,
               "controller": job.controller, "seed": job.seed, "mpc": mpc_overrides(config.robot, config.mpc) or None,
               "model": hashlib.sha256(checkpoint.read_bytes()).hexdigest() if checkpoint else None}
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        return Path(config.out) / "episodes" / f"{job.controller}-{job.task}-{job.seed}-{digest}.pkl.gz"

    def run(self, job: EvalJob) -> tuple[dict[str, Any], dict[str, Any]]:
        config = self.config
        env = make_env(config.robot, job.task, episode_length=config.episode_length)
        controller = build(config.robot, job.controller, env, None, job.seed, job.models, config.mpc)
        result = timed_episode(env, controller, seed=job.seed)
        episode = result.episode
        losses = [r for r in result.adaptation if r]
        row = {"robot": config.robot, "split": job.split, "task": job.task, "controller": job.controller,
               "training_seed": job.training_seed, "models": str(job.models), "seed": job.seed, **result.metrics,
               "return": episode.total_reward, "steps": episode.length, "terminated": episode.terminated,
               "adaptation_fallback_rate": result.fallback_rate,
               "window_loss_before": float(np.mean([r["loss_before"] for r in losses])) if losses else math.nan,
               "window_loss_after": float(np.mean([r["loss_after"] for r in losses])) if losses else math.nan,
               "latency_p50_ms": float(np.median(result.latencies_ms[1:] if episode.length > 1
                                                 else result.latencies_ms))}  # after the first step's warm-up
        if self.progress:
            print(f"  {job.split:6s} {job.task:18s} {job.controller:12s} models {job.training_seed} seed {job.seed}: "
                  f"{format_metrics(result.metrics, env.metric_labels)}; return {episode.total_reward:.1f} "
                  f"({episode.length} steps)", flush=True)
        trace = {"infos": episode.infos, "start_info": episode.start_info, "terminated": episode.terminated,
                 "adaptation": result.adaptation}
        env.close()
        return row, trace


@functools.cache
def robot_dt(robot: str) -> float:
    """The robot's control period (s)."""
    return make_env(robot, None).dt


def uses_models(config: CompareConfig, controller: str) -> bool:
    """Whether the controller runs on trained files (so each training seed is run)."""
    return shipped_checkpoint(config.robot, controller) is not None


def model_folders(config: CompareConfig, controller: str) -> list[tuple[int, Path]]:
    """(training seed, folder) pairs the controller runs on: every folder, or the first for a controller
    that learns nothing."""
    return list(enumerate(config.models if uses_models(config, controller) else config.models[:1]))


def make_jobs(config: CompareConfig) -> list[EvalJob]:
    seeds = [config.seed + e for e in range(config.episodes)]
    jobs = []
    for split, task in config.columns():
        for name in config.curve_controllers if split == "change" else config.controllers:
            if name == "oracle" and split not in ORACLE_SPLITS:
                continue
            for m, models in model_folders(config, name):
                jobs += [EvalJob(split, task, name, seed, models, m) for seed in seeds]
    return jobs


def run_compare(config: CompareConfig, progress: bool = True) -> Path:
    """Every job of `make_jobs`, on `config.workers` Ray workers when > 1; writes the table, CSV and plots
    to `config.out`."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = make_jobs(config)
    evaluate = Evaluate(config, progress)
    kept = [p for p in map(evaluate.saved_path, jobs) if p is not None and p.exists()]
    if kept and not config.fresh and progress:
        print(f"{len(kept)} of {len(jobs)} episodes finished earlier: reusing them from {out / 'episodes'} "
              f"(--fresh reruns them)", flush=True)
    results = map_ordered(evaluate, jobs, config.workers, config.ray_address)
    rows = [row for row, _ in results]
    write_csv(out / "results.csv", rows)
    table = markdown_table(config, rows)
    atomic_write(out / "results.md", lambda f: f.write(table.encode()))
    write_plots(config, out, jobs, [trace for _, trace in results])
    if config.video is not None:
        comparison_video(config)
    return out


def merge_results(config: CompareConfig, csvs: list[Path]) -> Path:
    """Writes `config.out`/results.csv and results.md from the rows of several `results.csv` (no plots: those
    need the episodes' traces). `config.models` becomes the model folders the rows name, in order of first
    appearance; the controllers and episode length of the header are the config's, so pass the ones the runs
    used; the MPC settings are those the rows record (`recorded_mpc`); the tables' columns are the tasks the
    rows hold (of `config.tasks`, when given)."""
    rows: list[dict[str, Any]] = []
    seen: dict[tuple[str, ...], Path] = {}
    for path in csvs:
        with open(path, newline="") as f:
            for raw in csv.DictReader(f):
                if raw["robot"] != config.robot:
                    raise ValueError(f"{path}: rows of robot {raw['robot']!r}, not {config.robot!r}")
                # (with the MPC settings: the same episode run under two settings is the error below, not this)
                key = tuple(raw.get(k, "") for k in ("models", "split", "task", "controller", "seed", "mpc"))
                if key in seen:
                    raise ValueError(f"{path}: the episode {key} is also in {seen[key]}; merge runs that differ "
                                     f"in model folders, tasks, controllers or episode seeds")
                seen[key] = path
                rows.append({k: v if k in TEXT_COLUMNS else parse_value(v) for k, v in raw.items()})
    config = dataclasses.replace(config, mpc=recorded_mpc(config, rows))
    longest = max(int(r["steps"]) for r in rows)
    if config.episode_length is not None and longest > config.episode_length:
        raise ValueError(f"--episode-length {config.episode_length}: the runs have episodes of {longest} steps; "
                         f"pass the length they ran with")
    folders = list(dict.fromkeys(str(r["models"]) for r in rows))
    for r in rows:
        r["training_seed"] = folders.index(str(r["models"]))
    seeds = sorted({int(r["seed"]) for r in rows})
    config = dataclasses.replace(config, models=[Path(f) for f in folders], seed=seeds[0], episodes=len(seeds),
                                 controllers=[c for c in config.controllers if any(r["controller"] == c for r in rows)],
                                 tasks=[t for _, t in config.columns() if any(r["task"] == t for r in rows)])
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "results.csv", rows)
    atomic_write(out / "results.md", lambda f: f.write(markdown_table(config, rows).encode()))
    return out


TEXT_COLUMNS = ("robot", "split", "task", "controller", "models", "mpc", "mpc_full")


def recorded_mpc(config: CompareConfig, rows: list[dict[str, Any]]) -> MPCConfig | None:
    """The MPC settings the merged rows ran with; `config.mpc` (`--merge ... --mpc`) where no row records them
    (results.csv files written before the columns). Each row's `mpc_full` records every setting; rows written
    before it have only `mpc`, the changes from the defaults of their day, read against today's (so a run that
    set what has since become the default, the ant's `tilt_limit=45.0`, merges with runs at the default, but a
    run recorded as "defaults" before a default changed reads as today's defaults: only `mpc_full` tells).
    Settings that differ between the rows, or from a given `--mpc`, are an error: one table states one setting."""
    def ran_with(row: dict[str, Any]) -> MPCConfig | None:
        if row.get("mpc_full"):
            return mpc_with(config.robot, json.loads(row["mpc_full"]), where="results.csv's mpc_full")
        return None if row["mpc"] == "defaults" else mpc_settings(config.robot, row["mpc"].split())

    recorded = sorted({mpc_label(config.robot, ran_with(r)) for r in rows if r.get("mpc_full") or r.get("mpc")})
    if not recorded:
        return config.mpc
    if len(recorded) > 1:
        raise ValueError(f"--merge: the runs ran with different MPC settings ({' | '.join(recorded)}); "
                         f"merge runs of one setting")
    if config.mpc is not None and mpc_label(config.robot, config.mpc) != recorded[0]:
        raise ValueError(f"--mpc: the runs ran with {recorded[0]}, not {mpc_label(config.robot, config.mpc)}; "
                         f"pass theirs, or leave --mpc out")
    mpc = None if recorded[0] == "defaults" else mpc_settings(config.robot, recorded[0].split())
    for r in rows:  # every row states the one setting, as of today
        r["mpc"], r["mpc_full"] = recorded[0], mpc_record(config.robot, mpc)
    return mpc


def parse_value(text: str) -> bool | int | float:
    """A results.csv number or yes/no as `Evaluate` wrote it (empty: a metric the run did not have, NaN)."""
    if text == "":
        return math.nan
    if text in ("True", "False"):
        return text == "True"
    return int(text) if text.lstrip("-").isdigit() else float(text)


def comparison_video(config: CompareConfig) -> Path:
    """The curve controllers (adaptive, non-adaptive, and the oracle when compared) side by side on
    `config.video_task`, by default the robot's mid-episode change (else its first held-out task): the same
    episode seed, the same moment of change, the first model folder."""
    from scripts.video import annotate, check_can_render, side_by_side, write_video

    env_class = robots.ROBOTS[config.robot]
    task = config.video_task or env_class.change_task or next(iter(env_class.tasks_to_evaluate().values()))[0]
    names = [*config.curve_controllers, *(["oracle"] if "oracle" in config.controllers else [])]
    clips = []
    for name in names:
        env = make_env(config.robot, task, episode_length=config.episode_length)
        check_can_render(env)
        frames: list[np.ndarray] = []
        controller = build(config.robot, name, env, None, config.seed, config.models[0], config.mpc)
        result = timed_episode(env, controller, seed=config.seed, frames=frames)
        clips.append(annotate([*frames, env.render()], result.episode, env, name))
        env.close()
    return write_video(config.video, side_by_side(clips), fps=1 / env.dt)


def replicates(rows: list[dict[str, Any]], key: str) -> tuple[dict[int, float], str]:
    """The values a confidence interval is taken over, by replicate: per-training-seed means (keyed by the
    training seed) when the rows come from several training seeds (a controller that uses trained models, run
    on several folders), else per-episode values (keyed by the episode seed)."""
    if len({r["training_seed"] for r in rows}) > 1:
        by_seed: dict[int, list[float]] = {}
        for r in rows:
            by_seed.setdefault(int(r["training_seed"]), []).append(float(r[key]))
        return {s: float(np.nanmean(v)) if not np.isnan(v).all() else math.nan for s, v in by_seed.items()}, "seeds"
    return {int(r["seed"]): float(r[key]) for r in rows}, "episodes"


def decimals(magnitude: float) -> int:
    """Decimals a table shows for values of this size: 2, or as many as two significant digits of a value
    under 0.1 need (a quadrotor's 0.020 m tracking error, not 0.02)."""
    if not math.isfinite(magnitude) or magnitude >= 0.1 or magnitude == 0.0:
        return 2
    return min(6, 1 - math.floor(math.log10(magnitude)))


def cell(rows: list[dict[str, Any]], key: str) -> str:
    rows = [r for r in rows if key in r]  # rows merged from runs made before the metric existed have none
    if not rows:
        return "—"
    if isinstance(rows[0][key], bool):
        return f"{sum(bool(r[key]) for r in rows)}/{len(rows)}"
    by_replicate, unit = replicates(rows, key)
    values = list(by_replicate.values())
    mean, half = mean_ci95(values)
    if math.isnan(mean):
        return "—"
    n, d = sum(not math.isnan(v) for v in values), decimals(abs(mean))
    if math.isnan(half):
        return f"{mean:.{d}f} (1 {unit[:-1]})"
    # Few seeds: show each one's mean ("—": a seed with no value, say no episode of it fell).
    each = ": " + ", ".join("—" if math.isnan(v) else f"{v:.{d}f}" for v in values) if unit == "seeds" else ""
    return f"{mean:.{d}f} ± {half:.{d}f} ({n} {unit}{each})"


def lead_cell(first: list[dict[str, Any]], other: list[dict[str, Any]], key: str) -> str:
    """`first` against `other` on one metric: the mean of their paired differences (same training seed, or same
    episode seed) ± its 95% t-interval, the ratio of their means, and whether their own intervals are apart
    (a stricter test than the difference's interval excluding zero)."""
    if not first or not other or key not in first[0] or isinstance(first[0][key], bool):
        return "—"
    (a, unit), (b, other_unit) = replicates(first, key), replicates(other, key)
    paired = [a[s] - b[s] for s in a.keys() & b.keys() if not math.isnan(a[s] - b[s])]
    if unit != other_unit or len(paired) < 2:
        return "—"
    diff, diff_half = mean_ci95(paired)
    (mean_a, half_a), (mean_b, half_b) = mean_ci95(list(a.values())), mean_ci95(list(b.values()))
    apart = mean_a - half_a > mean_b + half_b or mean_a + half_a < mean_b - half_b
    d = decimals(max(abs(mean_a), abs(mean_b)))
    ratio = f"{mean_a / mean_b:.2f}×" if mean_b else "no ratio to 0"
    intervals = "intervals apart" if apart else "intervals overlap"
    return f"{diff:+.{d}f} ± {diff_half:.{d}f} ({len(paired)} {unit}), {ratio}, {intervals}"


def flat_settings(mpc: MPCConfig) -> dict[str, Any]:
    """Every MPC setting by dotted name (`planner.population`)."""
    def flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key: value})
        return out
    return flat(to_dict(mpc))


def mpc_overrides(robot: str, mpc: MPCConfig | None) -> dict[str, Any]:
    """The MPC settings that differ from the robot's defaults, by dotted name (`planner.population`)."""
    default = flat_settings(default_mpc(robot))
    return {k: v for k, v in flat_settings(mpc).items() if default[k] != v} if mpc else {}


def mpc_record(robot: str, mpc: MPCConfig | None) -> str:
    """results.csv's `mpc_full` column: every MPC setting the comparison gave its controllers (None: the robot's
    defaults; each model-based controller then sets `adapt` and `seed` its own way), as JSON. The `mpc` column,
    changes from the defaults of the day, reads differently once a default changes."""
    return json.dumps(flat_settings(mpc or default_mpc(robot)), sort_keys=True)


def mpc_label(robot: str, mpc: MPCConfig | None) -> str:
    """results.csv's `mpc` column: the changed settings as `--mpc` takes them (`from_prior=false
    planner.population=200`), or "defaults"."""
    changed = mpc_overrides(robot, mpc)
    return " ".join(f"{k}={json.dumps(v, separators=(',', ':'))}" for k, v in changed.items()) or "defaults"


def mpc_changes(config: CompareConfig) -> str:
    """The MPC settings that differ from the robot's defaults (`--mpc`), for the results' header."""
    changed = mpc_overrides(config.robot, config.mpc)
    if not changed:
        return "settings: the robot's defaults"
    return "settings changed from the robot's defaults: " + ", ".join(f"{k}={v}" for k, v in changed.items())


def markdown_table(config: CompareConfig, rows: list[dict[str, Any]]) -> str:
    env_class = robots.ROBOTS[config.robot]
    tasks = config.columns()
    labels = {**env_class.metric_labels, "return": "return", "adaptation_fallback_rate": "adaptation fallback rate",
              "latency_p50_ms": "controller latency p50 (ms)"}
    lines = [f"# {config.robot}: {', '.join(config.controllers)}", "",
             f"{len(config.models)} model folder(s) (training seeds): "
             f"{', '.join('the shipped models' if m == SHIPPED else str(m) for m in config.models)}; "
             f"{config.episodes} episodes per folder and task (episode seeds {config.seed}–"
             f"{config.seed + config.episodes - 1}); episode length {config.episode_length or 'the robot default'}; "
             f"machine {platform.machine()}, {os.cpu_count()} cores; MPC {mpc_changes(config)}.", "",
             "Each cell: mean ± half-width of the 95% Student-t confidence interval, over the replicates named "
             "in brackets (training seeds: the mean of each seed's episodes, listed; episodes: one value each). Yes/no "
             "metrics: how many episodes out of all. Episodes that ended early count with what they did until then.",
             ""]
    by_run: dict[tuple[str, str], list[dict[str, Any]]] = {}  # (controller, task) -> its episodes' rows
    for r in rows:
        by_run.setdefault((r["controller"], r["task"]), []).append(r)

    def table(first_column: str, cells_by_name: dict[str, list[str]]) -> list[str]:
        """A table with a column per task and a row per name that has a value in any column."""
        head = [f"| {first_column} | " + " | ".join(f"{t} ({s})" for s, t in tasks) + " |",
                "|---|" + "---|" * len(tasks)]
        return head + [f"| {name} | " + " | ".join(cells) + " |" for name, cells in cells_by_name.items()
                       if any(c != "—" for c in cells)] + [""]

    for key, label in labels.items():
        if any(key in r for r in rows):
            lines += [f"## {label}", ""] + table("controller", {
                name: [cell(by_run.get((name, t), []), key) for _, t in tasks] for name in config.controllers})
    if not env_class.metric_labels:
        return "\n".join(lines)
    key, label = next(iter(env_class.metric_labels.items()))  # the headline metric
    first, *others = config.controllers
    leads = {name: [lead_cell(by_run.get((first, t), []), by_run.get((name, t), []), key) for _, t in tasks]
             for name in others}
    if any(c != "—" for cells in leads.values() for c in cells):
        lines += [f"## {first} against the others: {label}", "",
                  f"Each cell: {first} minus the other, the mean of the differences paired by training seed (or by "
                  f"episode seed) ± the half-width of its 95% t-interval; the ratio of the two means; whether the two "
                  f"controllers' own intervals (above) are apart.", ""] + table("against", leads)
    return "\n".join(lines)


def write_plots(config: CompareConfig, out: Path, jobs: list[EvalJob], traces: list[dict[str, Any]]) -> None:
    env_class = robots.ROBOTS[config.robot]
    dt = robot_dt(config.robot)

    def grouped(split: str, task: str | None = None) -> dict[str, list[dict[str, Any]]]:
        groups: dict[str, list[dict[str, Any]]] = {}
        for job, trace in zip(jobs, traces, strict=True):
            if job.split == split and (task is None or job.task == task):
                groups.setdefault(job.controller, []).append(trace)
        return groups

    split, tasks = next(iter(env_class.tasks_to_evaluate().items()))
    if (split, tasks[0]) in config.columns():  # the first held-out task
        plots.plot_trajectories(out / "trajectories.png", grouped(split, tasks[0]), tasks[0], dt)
        plots.plot_adaptation_loss(out / "adaptation_loss.png", grouped(split, tasks[0]), tasks[0])
    change = env_class.change_task
    if change is not None and env_class.step_metric is not None and ("change", change) in config.columns():
        key, label = env_class.step_metric
        at_step = env_class.named_tasks[change].at_step or 0
        plots.plot_change(out / "change.png", grouped("change"), key, label, at_step, change, dt)
