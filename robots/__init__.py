"""Simulated robots with changing dynamics, and their task distributions.

`make("ant")` and `make("quadrotor")` build them; both are also registered with gymnasium as
`mbmeta/AntBrokenLeg-v0` and `mbmeta/QuadrotorPayload-v0`.
"""

from __future__ import annotations

import os
from typing import Any

# Render headless where there is no display: MuJoCo reads MUJOCO_GL when it is imported (below), so choose
# EGL (Mesa's software EGL works without a GPU) unless the user chose a backend.
if not os.environ.get("DISPLAY") and "MUJOCO_GL" not in os.environ:
    os.environ["MUJOCO_GL"] = "egl"

import gymnasium

from robots.ant import AntEnv, AntTask
from robots.base import RobotEnv, Task
from robots.quadrotor import PayloadTask, QuadrotorEnv

ROBOTS: dict[str, type[RobotEnv]] = {"ant": AntEnv, "quadrotor": QuadrotorEnv}


def make(name: str, **kwargs: Any) -> RobotEnv:
    """Build robot `name` ("ant" or "quadrotor"); keyword arguments go to its constructor."""
    if name not in ROBOTS:
        raise ValueError(f"unknown robot {name!r}; choose one of {sorted(ROBOTS)}")
    return ROBOTS[name](**kwargs)


def name_of(env: RobotEnv) -> str:
    """The name under which `env`'s robot is registered in ROBOTS."""
    for name, cls in ROBOTS.items():
        if isinstance(env, cls):
            return name
    raise ValueError(f"{type(env).__name__} is not a registered robot; add it to robots.ROBOTS")


for _id, _entry in [("mbmeta/AntBrokenLeg-v0", "robots.ant:AntEnv"),
                    ("mbmeta/QuadrotorPayload-v0", "robots.quadrotor:QuadrotorEnv")]:
    if _id not in gymnasium.registry:
        gymnasium.register(id=_id, entry_point=_entry)

__all__ = ["ROBOTS", "AntEnv", "AntTask", "PayloadTask", "QuadrotorEnv", "RobotEnv", "Task", "make", "name_of"]
