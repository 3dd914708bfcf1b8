"""The GrBAL training loop: collect experience on training tasks, meta-train the model, repeat.

Each iteration draws training tasks, runs one episode per task with the policy that
`make_policy` returns for that iteration (exploration first; then the current model's MPC
controller, adaptive or not, wired in by the caller: the learning core does not import controllers), appends the
episodes to the store and runs `train_steps_per_iteration` meta-updates. After every iteration the
data and an atomic checkpoint are written; `train(..., resume=True)` continues from the last one
(or, given more `iterations`, trains a finished run longer). A `polish` after the last iteration trains
the final model a last stretch at a lower learning rate (`polish_model`, also `mbmeta polish`).

Every episode is a pure function of an `EpisodeJob` (task, seed, iteration) and the model: its policy
is built for it alone, from its own seed. So the episodes of an iteration can run on Ray workers
(`workers > 1`) and give exactly the data that running them in turn gives.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from tqdm.auto import tqdm

import robots
from mbmeta.checkpoint import (
    RunLog,
    export_checkpoint,
    load_checkpoint,
    provenance,
    restore_rngs,
    rng_states,
    save_checkpoint,
)
from mbmeta.config import NON_NEGATIVE, POSITIVE, FieldError, Range, at_least, check_fields, from_dict, to_dict
from mbmeta.data import TransitionStore, Windows, WindowSampler
from mbmeta.maml import MetaConfig, MetaTrainer
from mbmeta.model import DynamicsModel, ModelConfig, Params
from mbmeta.parallel import map_ordered
from robots.rollout import Agent, Episode, rollout

CHECKPOINT_FORMAT = "mbmeta.dynamics/1"
EXPORTED = ["obs_dim", "act_dim", "train_config", "model", "iteration", "transitions", "log"]  # what an export keeps
VALIDATION_WINDOWS = 256  # held-out windows an iteration (or a polish, mbmeta/polish.py) is scored on
CHECK_EVERY = 100  # updates between held-out checks


@dataclasses.dataclass
class PolishConfig:
    """A last stretch of meta-training after the final iteration: `updates` meta-updates at `lr` with a fresh
    Adam on the run's own data and held-out episodes, keeping the best held-out parameters (the final ones if
    nothing beats them). What a decaying learning rate would give at the end of a run, for minutes of one
    core; on the ant it walked the adaptive MPC 6.8 ± 5.1 m farther on the unseen leg (issue 14, session s48,
    docs/ant-log.md). `seed` draws its windows (0 made the measured models)."""
    updates: int = 2000
    lr: float = 3e-4
    seed: int = 0

    RANGES: ClassVar[dict[str, Range]] = {"updates": at_least(CHECK_EVERY), "lr": POSITIVE, "seed": NON_NEGATIVE}

    def __post_init__(self) -> None:
        check_fields(self)


@dataclasses.dataclass
class TrainConfig:
    robot: str = "ant"
    seed: int = 0
    iterations: int = 5
    initial_episodes: int = 8  # exploration episodes of the first iteration
    episodes_per_iteration: int = 8  # episodes of each later iteration (collected by the controller)
    episode_length: int = 200
    train_steps_per_iteration: int = 500  # meta-updates per iteration (at most, with early stopping)
    # Early stopping (GrBAL's released code trains each iteration until a held-out loss stops improving):
    # every n-th episode is held out, the held-out loss is measured every 100 updates, and training stops
    # after `patience` measurements without a better one, keeping the best parameters. 0: no hold-out.
    validation_every: int = 0
    patience: int = 5
    refit_normalizer: bool = False  # refit the normaliser to all data every iteration (else once, to exploration)
    polish: PolishConfig | None = None  # after the last iteration (None: the run ends there)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    meta: MetaConfig = dataclasses.field(default_factory=MetaConfig)

    RANGES: ClassVar[dict[str, Range]] = {
        "seed": NON_NEGATIVE, "iterations": at_least(1), "initial_episodes": at_least(1),
        "episodes_per_iteration": at_least(1), "episode_length": at_least(1), "train_steps_per_iteration": at_least(1),
        "validation_every": NON_NEGATIVE, "patience": at_least(1)}

    def __post_init__(self) -> None:
        check_fields(self)
        if self.robot not in robots.ROBOTS:
            raise FieldError("TrainConfig", "robot", f"expected one of {sorted(robots.ROBOTS)}, got {self.robot!r}")


#: make_policy(iteration, env, model, step_sizes, window, rng) -> the agent that collects one episode of
#: this iteration; `window` is the number of past transitions it adapts on (meta.k), 0 for the
#: non-adaptive baseline (inner_steps = 0).
PolicyFactory = Callable[[int, robots.RobotEnv, DynamicsModel, Params, int, np.random.Generator], Agent]


@dataclasses.dataclass(frozen=True)
class EpisodeJob:
    """Everything one collected episode depends on, besides the policy factory and the model."""

    robot: str
    episode_length: int
    iteration: int
    window: int  # transitions the collecting controller adapts on (0: it does not adapt)
    task: robots.Task
    seed: int


@functools.cache
def _env(robot: str, episode_length: int) -> robots.RobotEnv:
    """One simulator per process and robot, reused by the episodes it runs (a reset makes them independent)."""
    return robots.make(robot, episode_length=episode_length)


@dataclasses.dataclass
class CollectEpisode:
    """Runs an `EpisodeJob`: a picklable callable, so Ray workers can run it."""

    make_policy: PolicyFactory
    model: DynamicsModel | None
    step_sizes: Params | None

    def __call__(self, job: EpisodeJob) -> Episode:
        env = _env(job.robot, job.episode_length)
        env.set_task(job.task)
        rng = np.random.default_rng(job.seed)
        policy = self.make_policy(job.iteration, env, self.model, self.step_sizes, job.window, rng)
        return rollout(env, policy, seed=job.seed)


def collect(jobs: list[EpisodeJob], make_policy: PolicyFactory, model: DynamicsModel | None = None,
            step_sizes: Params | None = None, store: TransitionStore | None = None, workers: int = 1,
            address: str | None = None) -> list[Episode]:
    """Run the jobs (on `workers` Ray workers when > 1, or on the cluster at `address`) and append the
    episodes to `store` in job order; the same jobs give the same episodes either way."""
    episodes = map_ordered(CollectEpisode(make_policy, model, step_sizes), jobs, workers, address)
    if store is not None:
        for episode in episodes:
            store.add_episode(episode.observations, episode.actions, episode.tasks)
    return episodes


def episode_jobs(robot: str, episode_length: int, iteration: int, window: int, tasks: list[robots.Task],
                 rng: np.random.Generator) -> list[EpisodeJob]:
    """One job per task, each with its own seed drawn from `rng`."""
    return [EpisodeJob(robot, episode_length, iteration, window, task, int(rng.integers(2**31))) for task in tasks]


def train(config: TrainConfig, run_dir: str | Path, make_policy: PolicyFactory, resume: bool = True,
          progress: bool = True, workers: int = 1, address: str | None = None,
          data: str | Path | None = None) -> Path:
    """Run (or continue) GrBAL training in `run_dir`; returns the checkpoint path. `workers` > 1 (or a
    Ray cluster's `address`) collects each iteration's episodes on Ray, with the same results. With
    `data` (a data.npz of another run, or logged from a robot) nothing is collected: every iteration
    trains on that fixed data (to compare learners on identical data)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path, data_path = run_dir / "checkpoint.pt", run_dir / "data.npz"
    env = _env(config.robot, config.episode_length)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = DynamicsModel(obs_dim, act_dim, config.model)
    total = config.iterations * config.train_steps_per_iteration
    trainer = MetaTrainer(model, config.meta, total_steps=total)
    store = TransitionStore.load(data) if data is not None else TransitionStore(obs_dim, act_dim)
    log: list[dict[str, Any]] = []
    run_log = RunLog(run_dir)
    start = 0
    if resume and ckpt_path.exists():
        state = load_checkpoint(ckpt_path)
        check_resumable(state["train_config"], config, state["iteration"], run_dir, polished="polish" in state)
        if "polish" in state:
            return ckpt_path  # finished and polished with this very config: nothing left to do
        model.load_state_dict(state["model"])
        trainer.load_state_dict(state["trainer"])
        store = TransitionStore.load(data if data is not None else data_path)
        store.truncate(state["transitions"])  # data written after the checkpoint belongs to a lost iteration
        restore_rngs(state["rng"], rng)
        log, start = state["log"], state["iteration"]
    sampler = WindowSampler(store, config.meta.k, config.meta.K, holdout_every=config.validation_every)
    held_out = WindowSampler(store, config.meta.k, config.meta.K, holdout_every=config.validation_every, holdout=True)
    steps = config.train_steps_per_iteration

    def save(done: int, extra: dict[str, Any] | None = None) -> None:
        save_checkpoint(ckpt_path, {
            "format": CHECKPOINT_FORMAT, "obs_dim": obs_dim, "act_dim": act_dim, "train_config": to_dict(config),
            "model": model.state_dict(), "trainer": trainer.state_dict(), "iteration": done,
            "transitions": len(store), "log": log,
            "rng": rng_states(rng), "trained_on": provenance(),  # the latest iteration's, if resumed elsewhere
            **(extra or {})})

    bar = tqdm(desc=f"train {config.robot}", unit="step", disable=not progress, initial=start * steps,
               total=config.iterations * steps)
    for iteration in range(start, config.iterations):
        n = config.initial_episodes if iteration == 0 else config.episodes_per_iteration
        window = config.meta.k if config.meta.inner_steps > 0 else 0
        jobs = episode_jobs(config.robot, config.episode_length, iteration, window,
                            env.sample_tasks(n, "train", rng), rng)
        episodes = [] if data is not None else collect(jobs, make_policy, model, dict(trainer.step_sizes), store,
                                                       workers, address)
        returns = [episode.total_reward for episode in episodes] or [float("nan")]
        if iteration == 0 or config.refit_normalizer:
            model.fit_normalizer(store.obs, store.actions, store.next_obs)
        validation = (held_out.sample(VALIDATION_WINDOWS, np.random.default_rng(iteration))
                      if config.validation_every else None)
        best: tuple[float, dict[str, torch.Tensor]] | None = None
        stale, losses, val_loss = 0, [], float("nan")
        for step in range(steps):
            losses.append(trainer.step(sampler.sample(config.meta.meta_batch_size, rng)))
            bar.update()
            if step % 50 == 0:
                bar.set_postfix(iteration=iteration, loss=f"{np.mean(losses[-50:]):.4f}",
                                ret=f"{np.mean(returns):.1f}")
            if validation is not None and (step + 1) % CHECK_EVERY == 0:
                val_loss = held_out_loss(trainer, validation)
                if best is None or val_loss < best[0]:
                    best, stale = (val_loss, trainer_state(model, trainer)), 0
                elif (stale := stale + 1) >= config.patience:
                    bar.update(steps - step - 1)
                    break
        if best is not None:  # keep the parameters with the best held-out loss
            load_trainer_state(model, trainer, best[1])
            val_loss = best[0]
        log.append({"iteration": iteration, "transitions": len(store), "mean_return": float(np.mean(returns)),
                    "updates": len(losses), "loss_first": losses[0], "loss_last": float(np.mean(losses[-20:])),
                    "validation_loss": val_loss})
        store.save(data_path)
        save(iteration + 1)
        run_log.write(log)
    bar.close()
    if config.polish is not None:
        trainer, record = polish_model(model, dict(trainer.step_sizes), config, store, config.polish)
        save(config.iterations, {"polish": record})
    return ckpt_path


def check_resumable(saved: dict[str, Any], config: TrainConfig, done: int, run_dir: Path,
                    polished: bool = False) -> None:
    """Refuse to resume a run with another config, except more `iterations` (train a finished run longer):
    with a constant learning rate nothing of the first iterations depends on how many follow, so the
    extended run equals one trained straight to the new count. A cosine schedule's length is its
    iterations, so that one must be kept. The `polish` follows the last iteration, so an unpolished run may
    be given one (or another); a polished run is finished: only its own config resumes it (to nothing)."""
    new = to_dict(config)
    ignored = {"iterations": None, "polish": None}
    if {**saved, **ignored} != {**new, **ignored}:
        raise ValueError(f"{run_dir} holds a run with another config; use a new run directory or --no-resume")
    if polished and saved != new:
        raise ValueError(f"{run_dir} holds a finished, polished run: its iterations and polish cannot change; "
                         f"use a new run directory or --no-resume")
    if config.iterations != saved["iterations"]:
        if config.meta.lr_schedule != "constant":
            raise ValueError(f"{run_dir}: iterations {saved['iterations']} -> {config.iterations} would change the "
                             f"cosine learning-rate schedule of the iterations done; keep iterations "
                             f"{saved['iterations']}, or start over with --no-resume")
        if config.iterations < done:
            raise ValueError(f"{run_dir} has done {done} iterations; iterations {config.iterations} would undo "
                             f"them: set iterations >= {done}")


def trainer_state(model: DynamicsModel, trainer: MetaTrainer) -> dict[str, torch.Tensor]:
    """A copy of θ and the step sizes α (what early stopping keeps the best of)."""
    return {**{f"theta.{n}": p.detach().clone() for n, p in model.params.items()},
            **{f"alpha.{n}": a.detach().clone() for n, a in trainer.step_sizes.items()}}


def held_out_loss(trainer: MetaTrainer, windows: Windows) -> float:
    """The mean outer loss on held-out windows, with no graph kept for θ's gradient."""
    with torch.no_grad():  # the inner adaptation's gradient is a function transform: still taken
        return trainer.window_losses(windows).mean().item()


def load_trainer_state(model: DynamicsModel, trainer: MetaTrainer, state: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for n, p in model.params.items():
            p.copy_(state[f"theta.{n}"])
        for n, a in trainer.step_sizes.items():
            a.copy_(state[f"alpha.{n}"])


def load_model(path: str | Path) -> tuple[DynamicsModel, Params, TrainConfig]:
    """The trained model, its inner step sizes α, and the config it was trained with."""
    state = load_checkpoint(path, CHECKPOINT_FORMAT, "a dynamics model")
    config = from_dict(TrainConfig, state["train_config"], where=str(path))
    model = DynamicsModel(state["obs_dim"], state["act_dim"], config.model)
    model.load_state_dict(state["model"])
    model.requires_grad_(False)
    return model, state["trainer"]["step_sizes"], config


def export_model(checkpoint: str | Path, dest: str | Path) -> Path:
    """A small, inference-only copy of a training checkpoint: model, step sizes α and config, no optimiser."""
    return export_checkpoint(checkpoint, dest, CHECKPOINT_FORMAT, "a dynamics model", EXPORTED,
                             lambda state: {"trainer": {"step_sizes": state["trainer"]["step_sizes"]},
                                            **({"polish": state["polish"]} if "polish" in state else {})})


def polish_model(model: DynamicsModel, step_sizes: Params, config: TrainConfig, store: TransitionStore,
                 polish: PolishConfig) -> tuple[MetaTrainer, dict[str, Any]]:
    """Polish `model` and its step sizes in place (`PolishConfig`) on `store`, the run's data, with its
    held-out episodes (every `validation_every`-th, 10 if the run held none out); returns the trainer and a
    record: the settings, the held-out loss before and after, and the update that gave the kept parameters
    (0: none beat the starting ones). The same seed gives the same model on the same machine."""
    rng = np.random.default_rng(polish.seed)
    model.requires_grad_(True)
    meta = dataclasses.replace(config.meta, lr=polish.lr)
    trainer = MetaTrainer(model, meta)
    with torch.no_grad():
        for name, alpha in step_sizes.items():
            trainer.step_sizes[name].copy_(alpha)
    every = config.validation_every or 10
    sampler = WindowSampler(store, meta.k, meta.K, holdout_every=every)
    validation = WindowSampler(store, meta.k, meta.K, holdout_every=every, holdout=True).sample(
        VALIDATION_WINDOWS, np.random.default_rng(polish.seed + 1))
    before = held_out_loss(trainer, validation)
    best = (before, 0, trainer_state(model, trainer))
    for update in range(1, polish.updates + 1):
        trainer.step(sampler.sample(meta.meta_batch_size, rng))
        if update % CHECK_EVERY == 0 and (loss := held_out_loss(trainer, validation)) < best[0]:
            best = (loss, update, trainer_state(model, trainer))
    load_trainer_state(model, trainer, best[2])
    return trainer, {**to_dict(polish), "held_out_before": before, "held_out_after": best[0], "best_update": best[1]}
