"""Polish a finished run: a last stretch of meta-training at a lower learning rate, on the run's own data.

Every iteration of a GrBAL or MB run stops at its best held-out loss at the run's constant learning rate (1e-3
in the presets). `polish` continues from the final model (`grbal.polish_model`, `grbal.PolishConfig`) and
writes an exported model: for a run trained without a `polish` in its config. A config with one (the ant's
presets) polishes at the end of `mbmeta train`, to the same model as this with the same settings.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from mbmeta.checkpoint import export_checkpoint, load_checkpoint
from mbmeta.config import FieldError
from mbmeta.data import TransitionStore
from mbmeta.grbal import CHECKPOINT_FORMAT, EXPORTED, PolishConfig, load_model, polish_model


@dataclasses.dataclass(frozen=True)
class Polished:
    path: Path
    record: dict[str, Any]  # the settings; held_out_before, held_out_after; best_update (0: none beat the start)

    @property
    def held_out_before(self) -> float:
        return self.record["held_out_before"]

    @property
    def held_out_after(self) -> float:
        return self.record["held_out_after"]

    @property
    def best_update(self) -> int:
        return self.record["best_update"]


def polish(run_dir: str | Path, dest: str | Path, updates: int = 2000, lr: float = 3e-4, seed: int = 0) -> Polished:
    """Polish the model in `run_dir` (a `mbmeta train` run directory: checkpoint.pt and data.npz) and write
    the exported result to `dest`; the same seed gives the same model on the same machine."""
    run_dir = Path(run_dir)
    data, checkpoint = run_dir / "data.npz", run_dir / "checkpoint.pt"
    if not data.is_file():
        raise FileNotFoundError(f"{run_dir} has no data.npz: polish needs a run directory of `mbmeta train` "
                                f"(GrBAL or MB), whose own data it trains on")
    try:
        settings = PolishConfig(updates, lr, seed)
    except FieldError as err:
        raise ValueError(f"polish: {err.field} {err.message}") from None
    if "polish" in load_checkpoint(checkpoint, CHECKPOINT_FORMAT, "a dynamics model"):
        raise ValueError(f"{run_dir} was polished when it trained (its config's `polish`): export it with "
                         f"`mbmeta export {checkpoint} {dest}`")
    model, step_sizes, config = load_model(checkpoint)
    trainer, record = polish_model(model, step_sizes, config, TransitionStore.load(data), settings)
    path = export_checkpoint(checkpoint, dest, CHECKPOINT_FORMAT, "a dynamics model", EXPORTED,
                             lambda state: {"model": model.state_dict(), "polish": record, "trainer": {
                                 "step_sizes": {n: a.detach().clone() for n, a in trainer.step_sizes.items()}}})
    return Polished(path, record)
