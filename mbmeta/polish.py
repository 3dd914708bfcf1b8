"""Polish a finished run: a last stretch of meta-training at a lower learning rate, on the run's own data.

Every iteration of a GrBAL or MB run stops at its best held-out loss at the run's constant learning rate (1e-3
in the presets). `polish` continues from the final model for `updates` more meta-updates at `lr`, with a fresh
Adam, the run's own objective and held-out episodes, and writes an exported model with the best held-out
parameters (the starting ones if nothing beats them): what a decaying learning rate would give at the end of
a run, for minutes of one core. Issue 14 measured it on the ant (docs/ant-log.md, session s48).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from mbmeta.checkpoint import export_checkpoint
from mbmeta.data import TransitionStore, WindowSampler
from mbmeta.grbal import (
    CHECK_EVERY,
    CHECKPOINT_FORMAT,
    EXPORTED,
    VALIDATION_WINDOWS,
    held_out_loss,
    load_model,
    load_trainer_state,
    trainer_state,
)
from mbmeta.maml import MetaTrainer


@dataclasses.dataclass(frozen=True)
class Polished:
    path: Path
    held_out_before: float
    held_out_after: float
    best_update: int  # 0: no update beat the starting parameters


def polish(run_dir: str | Path, dest: str | Path, updates: int = 2000, lr: float = 3e-4, seed: int = 0) -> Polished:
    """Polish the model in `run_dir` (a `mbmeta train` run directory: checkpoint.pt and data.npz) and write
    the exported result to `dest`; the same seed gives the same model on the same machine."""
    run_dir = Path(run_dir)
    data = run_dir / "data.npz"
    if not data.is_file():
        raise FileNotFoundError(f"{run_dir} has no data.npz: polish needs a run directory of `mbmeta train` "
                                f"(GrBAL or MB), whose own data it trains on")
    if updates < CHECK_EVERY or lr <= 0:
        raise ValueError(f"polish: updates must be >= {CHECK_EVERY} and lr > 0, got updates={updates}, lr={lr}")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model, step_sizes, config = load_model(run_dir / "checkpoint.pt")
    model.requires_grad_(True)
    meta = dataclasses.replace(config.meta, lr=lr)
    trainer = MetaTrainer(model, meta)
    with torch.no_grad():
        for name, alpha in step_sizes.items():
            trainer.step_sizes[name].copy_(alpha)
    store = TransitionStore.load(data)
    every = config.validation_every or 10
    sampler = WindowSampler(store, meta.k, meta.K, holdout_every=every)
    validation = WindowSampler(store, meta.k, meta.K, holdout_every=every, holdout=True).sample(
        VALIDATION_WINDOWS, np.random.default_rng(seed + 1))
    before = held_out_loss(trainer, validation)
    best = (before, 0, trainer_state(model, trainer))
    for update in range(1, updates + 1):
        trainer.step(sampler.sample(meta.meta_batch_size, rng))
        if update % CHECK_EVERY == 0 and (loss := held_out_loss(trainer, validation)) < best[0]:
            best = (loss, update, trainer_state(model, trainer))
    load_trainer_state(model, trainer, best[2])
    record = {"updates": updates, "lr": lr, "seed": seed, "held_out_before": before, "held_out_after": best[0],
              "best_update": best[1]}
    path = export_checkpoint(run_dir / "checkpoint.pt", dest, CHECKPOINT_FORMAT, "a dynamics model", EXPORTED,
                             lambda state: {"model": model.state_dict(), "polish": record, "trainer": {
                                 "step_sizes": {n: a.detach().clone() for n, a in trainer.step_sizes.items()}}})
    return Polished(path, before, best[0], best[1])
