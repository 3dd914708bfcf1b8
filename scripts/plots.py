"""The pictures `mbmeta compare` and `mbmeta train` write, from recorded episodes.

Each plot reads the per-step `info` entries a robot reports (`x_position`, `y_position`, the robot's
`step_metric`), so any robot that reports them gets the plot. Episodes that ended early (a fall, a
crash) end their line with a cross.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from robots.references import reference

# One colour per controller, the same in every plot.
COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:gray")


def pyplot():  # noqa: ANN201 - matplotlib.pyplot, imported on demand with a file-only backend
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, path: Path, legend_axes: Sequence[Any] = ()) -> Path:
    for ax in legend_axes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return path


def series(trace: dict[str, Any], key: str) -> np.ndarray:
    """One per-step `info` entry over an episode (step 0 from reset)."""
    return np.array([trace["start_info"].get(key, np.nan)] + [info.get(key, np.nan) for info in trace["infos"]])


def _end_marker(ax: Any, trace: dict[str, Any], x: np.ndarray, y: np.ndarray, color: str) -> None:
    if trace["terminated"]:
        ax.plot(x[-1], y[-1], "x", color=color, markersize=8, markeredgewidth=2)


def plot_trajectories(path: Path, traces: dict[str, list[dict[str, Any]]], task: str, dt: float) -> Path | None:
    """Ant-like robots (`x_position`): x over time. Quadrotor-like robots (`y_position` too, and
    `tracking_error`): the path seen from above against the figure-eight, and tracking error over time."""
    first = next((t for runs in traces.values() for t in runs), None)
    if first is None or "x_position" not in first["start_info"]:
        return None
    plt = pyplot()
    flying = "y_position" in first["start_info"] and "tracking_error" in first["start_info"]
    fig, axes = plt.subplots(1, 2 if flying else 1, figsize=(11, 4.2) if flying else (7, 4))
    axes = np.atleast_1d(axes)
    for color, (name, runs) in zip(COLORS, traces.items(), strict=False):
        for i, trace in enumerate(runs):
            label = f"{name} ({len(runs)} ep.)" if i == 0 else None
            if flying:
                x, y = series(trace, "x_position"), series(trace, "y_position")
                axes[0].plot(x, y, color=color, linewidth=0.8, alpha=0.7, label=label)
                _end_marker(axes[0], trace, x, y, color)
                err = series(trace, "tracking_error")
                t = dt * np.arange(len(err))
                axes[1].plot(t, err, color=color, linewidth=0.8, alpha=0.7, label=label)
                _end_marker(axes[1], trace, t, err, color)
            else:
                x = series(trace, "x_position")
                t = dt * np.arange(len(x))
                axes[0].plot(t, x, color=color, linewidth=0.8, alpha=0.7, label=label)
                _end_marker(axes[0], trace, t, x, color)
    if flying:
        ref = np.array([reference("figure8", t)[0] for t in np.linspace(0, 6, 200)])
        axes[0].plot(ref[:, 0], ref[:, 1], "k--", linewidth=1.2, label="reference")
        axes[0].set_aspect("equal", adjustable="datalim")
        axes[0].set(xlabel="x (m)", ylabel="y (m)", title=f"path from above, task {task} (x: crash)")
        axes[1].set(xlabel="time (s)", ylabel="distance to the reference (m)", title="tracking error (x: crash)")
    else:
        axes[0].set(xlabel="time (s)", ylabel="x position (m)", title=f"distance walked, task {task} (x: fell)")
    return save(fig, path, axes[:1])


def plot_change(path: Path, traces: dict[str, list[dict[str, Any]]], key: str, label: str, change_step: int,
                change_label: str, dt: float) -> Path:
    """The robot's `step_metric` around a mid-episode change: the mean over the episodes still running at
    each step (thick), each episode (thin), where each ended early (x), and how many episodes each mean
    averages."""
    plt = pyplot()
    from matplotlib import patheffects

    fig, ax = plt.subplots(figsize=(7.5, 4))
    window = max(1, round(1.0 / dt))  # the thick line: a 1 s running mean
    for color, (name, runs) in zip(COLORS, traces.items(), strict=False):
        values = [series(trace, key)[1:] for trace in runs]
        length = max(len(v) for v in values)
        padded = np.full((len(values), length), np.nan)
        for i, v in enumerate(values):
            padded[i, : len(v)] = v
            t = dt * np.arange(1, len(v) + 1)
            ax.plot(t, v, color=color, linewidth=0.5, alpha=0.35)
            _end_marker(ax, runs[i], t, v, color)
        running = (~np.isnan(padded)).sum(0)
        mean = np.where(running > 0, np.nanmean(np.where(running > 0, padded, 0.0), axis=0), np.nan)
        smooth = np.convolve(np.nan_to_num(mean), np.ones(window) / window, mode="same")
        finished = sum(not trace["terminated"] for trace in runs)
        # above every controller's thin lines, outlined, so no controller's mean hides under another's episodes
        ax.plot(dt * np.arange(1, length + 1), np.where(np.isnan(mean), np.nan, smooth), color=color, linewidth=2,
                zorder=3, path_effects=[patheffects.withStroke(linewidth=3.5, foreground="white")],
                label=f"{name}: mean of {len(runs)} ep. ({finished} ran to the end)")
    ax.axvline(change_step * dt, color="k", linestyle="--", linewidth=1)
    ax.text(change_step * dt, ax.get_ylim()[1], f" {change_label}", va="top", fontsize=8)
    ax.set(xlabel="time (s)", ylabel=label, title=f"{label} around a mid-episode change")
    ax.text(0.0, -0.2, "thin: each episode; x: an episode ended early; thick: the mean over the episodes still "
                       f"running, averaged over 1 s ({window} steps)", transform=ax.transAxes, fontsize=7, va="top")
    return save(fig, path, [ax])


def plot_adaptation_loss(path: Path, traces: dict[str, list[dict[str, Any]]], task: str) -> Path | None:
    """Per step, the adaptation window's loss before and after the inner step (median over episodes, log
    scale), and the steps where the guard fell back."""
    adaptive = {name: runs for name, runs in traces.items() if any(any(t["adaptation"]) for t in runs)}
    if not adaptive:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4))
    for color, (name, runs) in zip(COLORS, adaptive.items(), strict=False):
        length = max(len(t["adaptation"]) for t in runs)
        table = {k: np.full((len(runs), length), np.nan) for k in ("loss_before", "loss_after", "fallback")}
        for i, trace in enumerate(runs):
            for step, record in enumerate(trace["adaptation"]):
                for k in table:
                    table[k][i, step] = record.get(k, np.nan)
        steps = np.arange(length)
        after = column_median(table["loss_after"])
        ax.plot(steps, column_median(table["loss_before"]), color=color, linewidth=1, linestyle=":",
                label=f"{name}: before the step")
        ax.plot(steps, after, color=color, linewidth=1.5, label=f"{name}: after (median of {len(runs)} ep.)")
        fell = np.nansum(table["fallback"], 0) > 0
        ax.plot(steps[fell], after[fell], "v", color=color, markersize=4,
                label=f"{name}: guard fell back ({int(np.nansum(table['fallback']))} steps)")
    ax.set_yscale("log")
    ax.set(xlabel="control step", ylabel="window loss (normalised MSE)",
           title=f"online adaptation on the last k transitions, task {task}")
    return save(fig, path, [ax])


def column_median(table: np.ndarray) -> np.ndarray:
    """Median of each column over its non-NaN entries (NaN for a column without any)."""
    return np.array([np.median(c[~np.isnan(c)]) if (~np.isnan(c)).any() else np.nan for c in table.T])


def plot_learning_curve(run_dir: str | Path) -> Path:
    """Write learning_curve.png beside a training run's log.csv: every return column against environment
    steps (or iterations)."""
    import csv

    run_dir = Path(run_dir)
    with (run_dir / "log.csv").open() as f:
        rows = list(csv.DictReader(f))
    x_key = "steps" if "steps" in rows[0] else "iteration"
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for key in (k for k in rows[0] if "return" in k):
        ax.plot([float(r[x_key]) for r in rows], [float(r[key]) for r in rows], label=key.replace("_", " "))
    ax.set_xlabel("environment steps" if x_key == "steps" else "iteration")
    ax.set_ylabel("mean return per episode (training tasks)")
    ax.set_title(run_dir.name)
    return save(fig, run_dir / "learning_curve.png", [ax])
