"""Checkpoints and logs written atomically: a crash mid-write leaves the previous file readable."""

from __future__ import annotations

import csv
import io
import os
import tempfile
from pathlib import Path
from typing import Any

import torch


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be read; the message says which file and what to do."""


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write `state` to a temporary file beside `path`, flush it to disk, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint`, or raise CheckpointError naming the problem."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {str(path)!r}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for damaged files
        raise CheckpointError(f"{str(path)!r} is not a readable mbmeta checkpoint (truncated or damaged: "
                              f"{type(err).__name__}); use an earlier checkpoint or retrain") from err
    if not isinstance(state, dict) or "format" not in state:
        raise CheckpointError(f"{str(path)!r} is not an mbmeta checkpoint (no 'format' entry)")
    return state


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rewrite a whole (small) log atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(buf.getvalue())
    os.replace(tmp, path)
