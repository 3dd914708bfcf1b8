"""Learning curves from a run's log.csv: every return column against environment steps (or iterations)."""

from __future__ import annotations

import csv
from pathlib import Path

from scripts.compare import pyplot, save


def plot_learning_curve(run_dir: str | Path) -> Path:
    """Write learning_curve.png beside the run's log.csv and return its path."""
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
    out = run_dir / "learning_curve.png"
    save(fig, ax, out)
    return out
