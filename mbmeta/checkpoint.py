"""Checkpoints and logs written atomically: a crash mid-write leaves the previous file readable.

A checkpoint file is one header line, `MBMETA-CHECKPOINT sha256=<hex>`, then the `torch.save` payload
whose SHA-256 the header holds. Loading checks the digest first, so flipped bytes anywhere in the
payload (a bad disk, a broken copy) are an error naming the file, never silently wrong weights.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import platform
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import IO, Any

import torch

MAGIC = b"MBMETA-CHECKPOINT sha256="


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be read; the message says which file and what to do."""


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call `write(f)` on a temporary file beside `path`, flush it to disk, then rename it over `path`.

    A crash midway leaves the previous file (and no temporary one); the file gets the permissions of
    any file the user creates (the umask's), not mkstemp's private 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write `state` atomically, behind a header with the SHA-256 of its serialised bytes."""
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()

    def write(f: IO[bytes]) -> None:
        f.write(MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n")
        f.write(payload)

    atomic_write(path, write)


def load_checkpoint(path: str | Path, fmt: str | None = None, what: str = "") -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint`, or raise CheckpointError naming the problem;
    with `fmt`, a checkpoint of another format is a ValueError saying it is not `what`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {str(path)!r}")
    data = path.read_bytes()
    header, _, payload = data.partition(b"\n")
    if not header.startswith(MAGIC):
        raise CheckpointError(f"{str(path)!r} is not an mbmeta checkpoint (no digest header: damaged, or written by "
                              f"mbmeta before 0.2); re-export or retrain it")
    if hashlib.sha256(payload).hexdigest().encode() != header[len(MAGIC):]:
        raise CheckpointError(f"{str(path)!r} is damaged (its SHA-256 does not match the one it was saved with: "
                              f"truncated or altered); use an earlier checkpoint, re-export or retrain")
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for files it cannot parse
        raise CheckpointError(f"{str(path)!r} is not a readable mbmeta checkpoint ({type(err).__name__}); "
                              f"use an earlier checkpoint or retrain") from err
    if not isinstance(state, dict) or "format" not in state:
        raise CheckpointError(f"{str(path)!r} is not an mbmeta checkpoint (no 'format' entry)")
    if fmt is not None and state["format"] != fmt:
        raise ValueError(f"{path} holds a {state['format']!r} checkpoint, not {what}")
    return state


def resume_run(path: Path, config: dict[str, Any], rng: Any, what: str) -> dict[str, Any]:
    """The checkpoint of an RL run with `config` (its budget aside, which a resumed run may raise);
    restores the numpy `rng` and torch's global RNG to where the run stopped."""
    state = load_checkpoint(path)
    if {**state["config"], "budget": None} != {**config, "budget": None}:
        raise ValueError(f"{path.parent} holds {what} run with another config; use a new run directory")
    restore_rngs(state["rng"], rng)
    return state


def rng_states(rng: Any) -> dict[str, Any]:
    """The numpy `rng`'s state and torch's global RNG state, for a checkpoint."""
    return {"numpy": rng.bit_generator.state, "torch": torch.get_rng_state()}


def restore_rngs(states: dict[str, Any], rng: Any) -> None:
    """Put the numpy `rng` and torch's global RNG back where `rng_states` found them."""
    rng.bit_generator.state = states["numpy"]
    torch.set_rng_state(states["torch"])


def provenance() -> dict[str, Any]:
    """The CPU, kernels, threads and library versions this process trains with.

    Training replays to the last digit only on the CPU it ran on (the same seed on another CPU gives
    another model: docs/ant-log.md), so a training checkpoint records where it was made.
    """
    cpu, flags = platform.processor(), set()
    try:
        with open("/proc/cpuinfo") as f:
            first = f.read().split("\n\n")[0]  # the first processor's entries
        info = {key.strip(): value.strip() for key, value in
                (line.split(":", 1) for line in first.splitlines() if ":" in line)}
        cpu, flags = info.get("model name", cpu), set(info.get("flags", "").split())
    except OSError:
        pass
    versions = {}
    for package in ("torch", "numpy", "mujoco", "numba", "gymnasium"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {"machine": platform.machine(), "cpu": cpu,
            "cpu_flags": " ".join(f for f in ("fma", "avx2", "avx512f", "avx512_bf16", "amx_tile") if f in flags),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(), **versions}


def export_checkpoint(checkpoint: str | Path, dest: str | Path, fmt: str, what: str, keep: list[str],
                      derive: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> Path:
    """Copy the entries `keep` of a `fmt` checkpoint (plus those `derive(state)` returns) to `dest`: the
    small, inference-only file to ship or share, without optimiser state, replay data or RNG states. Where
    the run was trained (`trained_on`, see `provenance`) goes with it when the checkpoint has it."""
    state = load_checkpoint(checkpoint, fmt, what)
    if "trained_on" in state:
        keep = [*keep, "trained_on"]
    extra = derive(state) if derive is not None else {}
    save_checkpoint(dest, {"format": fmt, **{key: state[key] for key in keep}, **extra})
    return Path(dest)


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rewrite a whole (small) log atomically; a column some rows lack is left empty in them."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(dict.fromkeys(key for row in rows for key in row)))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, lambda f: f.write(buf.getvalue().encode()))


class RunLog:
    """A training run's log: log.csv in the run directory, rewritten atomically after every iteration,
    and the same scalars to TensorBoard (in the run directory) where `tensorboard` is installed."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / "log.csv"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional
            self.board = None
        else:
            self.board = SummaryWriter(str(self.path.parent))

    def write(self, rows: list[dict[str, Any]]) -> None:
        """Record the whole log so far (the newest row goes to TensorBoard)."""
        write_csv(self.path, rows)
        if self.board is not None:
            step = rows[-1].get("steps", len(rows))
            for key, value in rows[-1].items():
                self.board.add_scalar(key, value, step)
            self.board.flush()
