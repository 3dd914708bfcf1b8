"""The oracle: the same sampling planner, with candidates rolled out in the true simulator.

Each step it plans exactly as the MPC controllers do, but scores every candidate sequence by running
it in the robot's own simulator from the true current state with the true task (`RobotEnv.imagine`:
save the simulator, step, restore). Its result is the ceiling of model-based control with that
planner: a learned controller far below it has a model problem, one near it a planner problem.
It is slow (the simulator, candidate by candidate) and needs the env itself, so it exists in
simulation only (as mujoco_mpc's planners use the true model).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from controllers.base import Controller
from controllers.planners import PlannerConfig, make_planner
from robots.base import RobotEnv


class OracleController(Controller):
    """Plans on `env` itself: the observation passed to `act` must be `env`'s current one."""

    def __init__(self, env: RobotEnv, planner: PlannerConfig, seed: int = 0) -> None:
        super().__init__(env.observation_space, env.action_space)
        self.env = env
        self.planner = make_planner(planner, env.action_space.low, env.action_space.high, seed=seed)
        self.plans = 0

    def reset(self, obs: np.ndarray, new_task: bool = True) -> None:
        self.planner.reset()

    def evaluate(self, actions: np.ndarray) -> np.ndarray:
        """Returns (N,) of candidate sequences (N, H, da): rewards summed up to termination."""
        rewards, _ = self.env.imagine(actions)
        return rewards.sum(axis=1)

    def _act(self, obs: np.ndarray) -> np.ndarray:
        self.plans += 1
        return self.planner.plan(self.evaluate)[0]

    def last_plan(self) -> np.ndarray | None:
        solution = self.planner.solution
        return None if solution is None else self.planner.clip(solution)

    def info(self) -> dict[str, Any]:
        return {**super().info(), "plans": self.plans}
