"""Reference trajectories for the quadrotor: position and velocity as functions of time."""

from __future__ import annotations

import math

import numpy as np

REFERENCES = ("hover", "setpoints", "figure8")

# Hover setpoints (x, y, z) in metres, each held for SETPOINT_HOLD seconds, then the next.
SETPOINTS = np.array([[0.0, 0.0, 1.0], [0.4, 0.0, 1.0], [0.4, 0.4, 1.2], [0.0, 0.0, 1.0]])
SETPOINT_HOLD = 2.5
# Figure-eight in the horizontal plane at 1 m: x = A sin(wt), y = (A/2) sin(2wt).
FIGURE8_AMPLITUDE = 0.5
FIGURE8_PERIOD = 6.0


def reference(kind: str, t: float) -> tuple[np.ndarray, np.ndarray]:
    """(position, velocity) of reference `kind` at time `t` seconds."""
    if kind == "hover":
        return SETPOINTS[0].copy(), np.zeros(3)
    if kind == "setpoints":
        index = min(int(t // SETPOINT_HOLD), len(SETPOINTS) - 1)
        return SETPOINTS[index].copy(), np.zeros(3)
    if kind == "figure8":
        w = 2 * math.pi / FIGURE8_PERIOD
        a = FIGURE8_AMPLITUDE
        pos = np.array([a * math.sin(w * t), 0.5 * a * math.sin(2 * w * t), 1.0])
        vel = np.array([a * w * math.cos(w * t), a * w * math.cos(2 * w * t), 0.0])
        return pos, vel
    raise ValueError(f"unknown reference {kind!r}; choose one of {REFERENCES}")
