"""Which policy collects training data in each GrBAL iteration."""

from __future__ import annotations

import dataclasses

import numpy as np

import robots
from controllers.base import Controller
from controllers.mpc import MPCController
from controllers.registry import default_mpc
from controllers.scripted import AntTrot, NoisyController, QuadrotorPD, RandomController
from mbmeta.model import DynamicsModel, Params
from robots.ant import AntEnv
from robots.base import RobotEnv
from robots.quadrotor import QuadrotorEnv


def exploration_policy(env: RobotEnv, rng: np.random.Generator) -> Controller:
    """First-iteration data, from a scripted controller with action noise whose level each episode draws:
    - the quadrotor, whose random motor commands crash it within a few steps: a PID tracking controller,
      noise 0.1 to 0.5 (the upper end reaches body rates near 12 rad/s and a few near-flips, which a planner
      will otherwise explore on a model that has never seen them);
    - the ant: a trot whose frequency (1-4 Hz) and hip and ankle amplitudes each episode draws, noise 0.05
      to 0.4. Random actions make the ant twitch in place, and a model that has seen only that knows little
      of how walking moves it (issue 14: a model trained with trot data predicted the MPC's own states
      5 steps ahead with error 0.54 against 0.63 for one without, though also with more data);
    - any other robot: uniform random actions."""
    seed = int(rng.integers(2**31))
    if isinstance(env, QuadrotorEnv):
        pid = QuadrotorPD(env.observation_space, env.action_space, ki=4.0)
        return NoisyController(pid, (0.1, 0.5), seed=seed)
    if isinstance(env, AntEnv):
        trot = AntTrot(env.observation_space, env.action_space, dt=env.dt, frequency=rng.uniform(1.0, 4.0),
                       hip_amplitude=rng.uniform(0.3, 1.0), ankle_amplitude=rng.uniform(0.2, 1.0))
        return NoisyController(trot, (0.05, 0.4), seed=seed)
    return RandomController(env.observation_space, env.action_space, seed=seed)


# What the collecting MPC changes besides the margin and the speed cap (see `collection_policy`), and the
# planner settings it keeps whatever the deployed default becomes: the shipped models were collected at these.
COLLECTION_CHANGES: dict[str, dict[str, float | None]] = {"ant": {"rise_cap": 1.0, "tilt_limit": None}}
COLLECTION_PLANNER: dict[str, dict[str, int]] = {"ant": {"horizon": 15}}


def collection_policy(iteration: int, env: RobotEnv, model: DynamicsModel, step_sizes: Params, window: int,
                      rng: np.random.Generator) -> Controller:
    """The policy for GrBAL's data-collection step (a `mbmeta.grbal.PolicyFactory`): exploration in the
    first iteration, then CEM MPC on the current model, adapting on the last `window` transitions for
    GrBAL (the k it is meta-trained with) and not at all for the baseline (window 0).

    It plans without the deployed controller's safety margin, up to the robot's real limits: the model then
    sees the states near them that the margin keeps the deployed controller from (on the quadrotor, models
    collected at margin 0.3 crashed more under the 0.3 planner than models collected at 0; issue 13). What
    the robot's `planning_terminal` adds at margin 0 stays, as the shipped models were collected: the ant's flat
    1.0 m/s cap on its torso's rise speed (its deployed planner's default until issue 14 replaced it with the
    kick margin; `COLLECTION_CHANGES`). Under that cap the collecting MPC's episodes lasted 251 steps on
    average instead of 128-154 (of 300), and its models walked about twice as far (issue 14). Nor does it cap
    the speed it plans for, or the torso's tilt: the shipped models were collected without the ant's deployed
    speed cap and tilt limit. And it plans 15 steps ahead on the ant (`COLLECTION_PLANNER`), as they were
    collected, should the deployed horizon change (issue 14 measured 10 as an option)."""
    if iteration == 0:
        return exploration_policy(env, rng)
    robot = robots.name_of(env)
    deployed = default_mpc(robot)
    planner = dataclasses.replace(deployed.planner, **COLLECTION_PLANNER.get(robot, {}))
    config = dataclasses.replace(deployed, planner=planner, adapt=window > 0, k=max(window, 1), safety_margin=0.0,
                                 speed_cap=None, seed=int(rng.integers(2**31)), **COLLECTION_CHANGES.get(robot, {}))
    return MPCController(env.observation_space, env.action_space, model, step_sizes, env.planning_reward,
                         env.planning_terminal, config)
