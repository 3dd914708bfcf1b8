"""An ant whose legs break: the standard MuJoCo ant with per-leg actuator failures.

Tasks say which leg is broken and how strong it still is (0 = no torque at all). Training tasks
break legs 0, 1 or 2 or none; the test split breaks leg 3, never seen in training, as in GrBAL's
crippled-ant experiment. A task with `at_step` breaks the leg mid-episode.

Reward follows Gymnasium's Ant-v5 (forward velocity - 0.5|a|² - 5e-4 contact cost + 1 while
healthy), with one change so the reward is a function of observations: the forward velocity is
the torso's x velocity at the end of the step (Ant-v5 uses the displacement over the step).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, ClassVar

import mujoco
import numpy as np
from gymnasium import spaces

from robots.base import GRAVITY, Mirror, RobotEnv, Task

ASSET = Path(__file__).parent / "assets" / "ant.xml"
N_LEGS = 4

# Ant-v5 constants.
CTRL_COST_WEIGHT = 0.5
CONTACT_COST_WEIGHT = 5e-4
HEALTHY_REWARD = 1.0
HEALTHY_Z = (0.2, 1.0)
CONTACT_FORCE_RANGE = (-1.0, 1.0)

# Observation layout: qpos[2:] (torso z, quaternion, 8 joint angles), qvel (14), contact term (1).
OBS_Z = 0
OBS_QUAT = 1  # the torso's orientation quaternion (w, x, y, z), 1-4
OBS_VX = 13
OBS_VZ = 15
OBS_CONTACT = 27
OBS_DIM = 28
# Planning on a learned model only (`planning_terminal`): an imagined state ends the plan where the torso, kicked
# upward this much (m/s) faster than the model imagines, would fly over the top of the healthy range (its
# ballistic apex z + (max(vz, 0) + kick)^2 / 2g above 1.0 m). The ant falls by jumping, launched in one step by
# a push of its legs. Its learned models foresee those kicks on average, but miss single ones: over 1,800
# closed-loop steps of GrBAL's rule each, healthy and on leg 3, the torso rose up to 1.8 and 2.0 m/s faster
# than predicted one step ahead (`python -m scripts.onpolicy_error ant ... --trace 15`; issue 14). A torso
# low enough survives such a miss, so the rise it may plan follows its height: 1.3 m/s from 0.45 m, 0.66 m/s
# from 0.64 m. On three legs the ant rides lower, and may bounce its torso faster than the healthy one.
PLANNED_KICK_MARGIN = 2.0
# A stall (the `stalled` task metric): a 2.5 s spell in which the torso advanced less than 0.1 m (< 0.04 m/s).
# On the unseen leg the learned MPCs lose most of their distance standing still, not walking slowly (issue 14).
STALL_SPELL_S = 2.5
STALL_DISTANCE_M = 0.1
FULL_STATE = mujoco.mjtState.mjSTATE_FULLPHYSICS
BROKEN_RGBA = (0.85, 0.1, 0.1, 1.0)
# Physically possible values, generously (a reading outside is a broken state estimate, not a state):
# torso height, quaternion (unit, but the reset noise may leave it up to 1.1), joint angles (the joints' range
# is about ±1.2 rad), torso linear and angular velocity, joint velocities, the contact term (at most 78:
# 13 bodies × 6 forces clipped to ±1).
OBS_HIGH = np.array([5.0, *[1.5] * 4, *[np.pi] * 8, *[50.0] * 3, *[500.0] * 11, 78.0])
OBS_LOW = np.array([-1.0, *(-OBS_HIGH[1:-1]), 0.0])
# The ant's mirror through its x-z plane (y -> -y; forward stays forward). Legs sit at (+x, +y), (-x, +y),
# (-x, -y), (+x, -y): the mirror swaps legs 0 <-> 3 and 1 <-> 2, reverses the hips (their axis is z) and
# keeps the ankles (their axes map onto each other's). Broken leg 3 is exactly broken leg 0 in the mirror.
_JOINT_INDEX = (6, 7, 4, 5, 2, 3, 0, 1)
_JOINT_SIGN = (-1.0, 1.0) * N_LEGS
MIRROR = Mirror(
    # z, quaternion (w x y z), joints; linear velocity, angular velocity, joint velocities; contact term
    obs_index=(0, 1, 2, 3, 4, *(5 + i for i in _JOINT_INDEX), 13, 14, 15, 16, 17, 18,
               *(19 + i for i in _JOINT_INDEX), 27),
    obs_sign=(1.0, 1.0, -1.0, 1.0, -1.0, *_JOINT_SIGN, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0, *_JOINT_SIGN, 1.0),
    act_index=_JOINT_INDEX, act_sign=_JOINT_SIGN)


@dataclasses.dataclass(frozen=True)
class AntTask(Task):
    """Which leg is broken (None: healthy) and the fraction of torque it still delivers."""

    broken_leg: int | None = None
    strength: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.broken_leg is not None and self.broken_leg not in range(N_LEGS):
            raise ValueError(f"AntTask.broken_leg must be None or one of 0..{N_LEGS - 1}, got {self.broken_leg!r}")
        if not 0.0 <= float(self.strength) <= 1.0:
            raise ValueError(f"AntTask.strength must lie in [0, 1], got {self.strength!r}")

    @property
    def name(self) -> str:
        if self.broken_leg is None:
            return "healthy"
        kind = "broken" if self.strength == 0.0 else f"weak{self.strength:g}"
        suffix = f"-at{self.at_step}" if self.at_step is not None else ""
        return f"{kind}-leg-{self.broken_leg}{suffix}"

    def nominal(self) -> AntTask:
        return AntTask()

    def leg_strengths(self) -> np.ndarray:
        """Torque fraction for each of the 8 actuators."""
        gains = np.ones(2 * N_LEGS)
        if self.broken_leg is not None:
            gains[2 * self.broken_leg : 2 * self.broken_leg + 2] = self.strength
        return gains


TRAIN_LEGS: tuple[int | None, ...] = (None, 0, 1, 2)
TEST_LEGS: tuple[int, ...] = (3,)


class AntEnv(RobotEnv):
    """Four-legged MuJoCo ant, dt = 0.05 s (frame skip 5 at 0.01 s), 8 torque-controlled joints."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}
    task_type: ClassVar[type[Task]] = AntTask
    named_tasks: ClassVar[dict[str, Task]] = {
        "healthy": AntTask(),
        **{f"broken-leg-{i}": AntTask(broken_leg=i) for i in range(N_LEGS)},
        "weak-leg-3": AntTask(broken_leg=3, strength=0.5),
        "break-leg-3-midway": AntTask(broken_leg=3, at_step=100),
    }
    evaluation_tasks: ClassVar[dict[str, tuple[str, ...]]] = {
        "test": ("broken-leg-3",), "train": ("healthy", "broken-leg-0", "broken-leg-1", "broken-leg-2")}
    change_task: ClassVar[str | None] = "break-leg-3-midway"
    step_metric: ClassVar[tuple[str, str] | None] = ("forward_velocity", "forward speed (m/s)")
    metric_labels: ClassVar[dict[str, str]] = {
        "distance_m": "distance (m)", "forward_speed_mps": "speed (m/s)", "fell": "fell", "fell_step": "fell at step",
        "flipped": "flipped (on its back, torso still in the healthy height)", "flipped_step": "flipped at step",
        "stalled": "time stalled (share of 2.5 s spells advancing < 0.1 m)"}
    observation_groups: ClassVar[dict[str, slice]] = {
        "torso height": slice(0, 1), "orientation": slice(1, 5), "joint angles": slice(5, 13),
        "torso velocity": slice(13, 16), "angular velocity": slice(16, 19), "joint velocities": slice(19, 27),
        "contact": slice(27, 28)}
    mirror: ClassVar[Mirror | None] = MIRROR

    def __init__(
        self,
        episode_length: int = 1000,
        task: Task | dict[str, Any] | str | None = None,
        frame_skip: int = 5,
        reset_noise_scale: float = 0.1,
        render_mode: str | None = None,
    ) -> None:
        super().__init__(episode_length, task)
        self.model = mujoco.MjModel.from_xml_path(str(ASSET))
        self.data = mujoco.MjData(self.model)
        self.frame_skip = frame_skip
        self.dt = self.model.opt.timestep * frame_skip
        self.reset_noise_scale = reset_noise_scale
        self.render_mode = render_mode
        self._renderer: mujoco.Renderer | None = None
        self._full_gain = self.model.actuator_gainprm[:, 0].copy()
        self._rgba = self.model.geom_rgba.copy()
        body = [mujoco.mj_id2name(self.model, mujoco.mjtObj.mjOBJ_BODY, b) for b in self.model.geom_bodyid]
        self._leg_geoms = [[g for g, name in enumerate(body) if name.startswith(f"leg{leg}")] for leg in range(N_LEGS)]
        self._init_qpos = self.model.qpos0.copy()
        self.action_space = spaces.Box(-1.0, 1.0, shape=(self.model.nu,), dtype=np.float32)
        self.observation_space = spaces.Box(OBS_LOW, OBS_HIGH, dtype=np.float64)

    def _apply_task(self, task: AntTask) -> None:
        strengths = task.leg_strengths()
        self.model.actuator_gainprm[:, 0] = self._full_gain * strengths
        # Draw a weakened leg red, brighter the weaker it is (geom colours do not touch the physics).
        self.model.geom_rgba[:] = self._rgba
        for leg, geoms in enumerate(self._leg_geoms):
            weakness = 1.0 - strengths[2 * leg]
            self.model.geom_rgba[geoms] = (1 - weakness) * self._rgba[geoms] + weakness * np.array(BROKEN_RGBA)

    def _reset_sim(self) -> None:
        mujoco.mj_resetData(self.model, self.data)
        s = self.reset_noise_scale
        self.data.qpos[:] = self._init_qpos + self.np_random.uniform(-s, s, self.model.nq)
        self.data.qvel[:] = s * self.np_random.standard_normal(self.model.nv)
        mujoco.mj_forward(self.model, self.data)
        mujoco.mj_rnePostConstraint(self.model, self.data)

    def _step_sim(self, action: np.ndarray) -> None:
        self.data.ctrl[:] = action
        mujoco.mj_step(self.model, self.data, nstep=self.frame_skip)
        mujoco.mj_rnePostConstraint(self.model, self.data)  # fills cfrc_ext for the contact cost

    def _observe(self) -> np.ndarray:
        forces = np.clip(self.data.cfrc_ext[1:], *CONTACT_FORCE_RANGE)
        return np.concatenate([self.data.qpos[2:], self.data.qvel, [np.sum(forces**2)]])

    def _get_sim_state(self) -> tuple[np.ndarray, np.ndarray]:
        state = np.empty(mujoco.mj_stateSize(self.model, FULL_STATE))
        mujoco.mj_getState(self.model, self.data, state, FULL_STATE)
        return state, self.data.qacc_warmstart.copy()

    def _set_sim_state(self, state: tuple[np.ndarray, np.ndarray]) -> None:
        mujoco.mj_setState(self.model, self.data, state[0], FULL_STATE)
        self.data.qacc_warmstart[:] = state[1]

    def _metrics(self) -> dict[str, float]:
        height_and_orientation = self.data.qpos[None, 2:7]  # laid out as the observation's first five entries
        return {"x_position": float(self.data.qpos[0]), "forward_velocity": float(self.data.qvel[0]),
                "upright": float(_upright(height_and_orientation)[0])}

    @classmethod
    def episode_metrics(cls, start_info: dict[str, Any], infos: list[dict[str, Any]], terminated: bool,
                        dt: float) -> dict[str, float]:
        """Distance along x (m), mean forward speed over the episode (m/s), whether and when it fell, whether and
        when it flipped, and the share of its whole 2.5 s spells in which it stalled (advanced less than 0.1 m;
        NaN before the first).

        Ant-v5 ends an episode on the torso's height only, so an ant thrown on its back (torso about 0.27 m up)
        lies there to the end, earning the healthy reward and counted as not fallen; `flipped` reports it: the
        torso's up axis pointing below the horizon at some step."""
        distance = infos[-1]["x_position"] - start_info["x_position"] if infos else 0.0
        spell = round(STALL_SPELL_S / dt)
        x = np.array([start_info["x_position"], *(info["x_position"] for info in infos)])[::spell]
        stalled = float(np.mean(np.diff(x) < STALL_DISTANCE_M)) if len(x) > 1 else float("nan")
        upside_down = np.flatnonzero([info["upright"] < 0 for info in infos])
        return {"distance_m": distance, "forward_speed_mps": distance / (max(len(infos), 1) * dt),
                "fell": bool(terminated), "fell_step": len(infos) if terminated else float("nan"),
                "flipped": bool(len(upside_down)),
                "flipped_step": int(upside_down[0]) + 1 if len(upside_down) else float("nan"), "stalled": stalled}

    @classmethod
    def termination_reason(cls, obs: np.ndarray) -> str:
        z = obs[OBS_Z]
        if not np.all(np.isfinite(obs)):
            return "fell (non-finite state)"
        if z > HEALTHY_Z[1]:
            return f"jumped: torso at {z:.3f} m, above the healthy {HEALTHY_Z[1]} m"
        return f"fell: torso at {z:.3f} m, below the healthy {HEALTHY_Z[0]} m"

    @staticmethod
    def reward(obs: Any, action: Any, next_obs: Any) -> Any:
        forward = next_obs[:, OBS_VX]
        ctrl_cost = CTRL_COST_WEIGHT * (action**2).sum(-1)
        contact_cost = CONTACT_COST_WEIGHT * next_obs[:, OBS_CONTACT]
        return forward - ctrl_cost - contact_cost + HEALTHY_REWARD * _healthy(next_obs)

    @classmethod
    def planning_reward(cls, obs: Any, action: Any, next_obs: Any, speed_cap: float | None = None,
                        effort_weight: float | None = None) -> Any:
        reward = cls.reward(obs, action, next_obs)
        if speed_cap is not None:
            forward = next_obs[:, OBS_VX]  # paid one for one (Ant-v5's forward_reward_weight is 1)
            reward = reward - forward + forward.clip(max=speed_cap)
        if effort_weight is not None:
            reward = reward + (CTRL_COST_WEIGHT - effort_weight) * (action**2).sum(-1)
        return reward

    @staticmethod
    def is_terminal(next_obs: Any, margin: float = 0.0) -> Any:
        return ~_healthy(next_obs, margin)

    @classmethod
    def planning_terminal(cls, next_obs: Any, margin: float = 0.0, rise_cap: float | None = None,
                          kick_margin: float | None = None, tilt_limit: float | None = None) -> Any:
        ends = cls.is_terminal(next_obs, margin)
        if tilt_limit is not None:
            ends = ends | (_upright(next_obs) < math.cos(math.radians(tilt_limit)))
        if rise_cap is None:
            return ends | _kicked_out(next_obs, PLANNED_KICK_MARGIN if kick_margin is None else kick_margin)
        if kick_margin is not None:
            raise ValueError("MPCConfig.rise_cap: the ant's planner limits the rise either by where a kick would "
                             "carry the torso (kick_margin) or by a flat cap on its speed (rise_cap); set one")
        return ends | (next_obs[:, OBS_VZ] > rise_cap * (1 - margin))

    @classmethod
    def _sample_tasks(cls, n: int, split: str, rng: np.random.Generator) -> list[Task]:
        legs = TRAIN_LEGS if split == "train" else TEST_LEGS
        return [AntTask(broken_leg=legs[i]) for i in rng.integers(0, len(legs), size=n)]

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, 240, 320)
        self._renderer.update_scene(self.data, camera="track")
        return self._renderer.render()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


def _upright(obs: Any) -> Any:
    """The vertical part of the torso's up axis, from its orientation quaternion (w, x, y, z) as observed or as a
    model predicts it, not necessarily of unit length: 1 upright, 0 on its side, -1 on its back (numpy and
    torch alike)."""
    w, x, y, z = (obs[:, i] for i in range(OBS_QUAT, OBS_QUAT + 4))
    return (w**2 - x**2 - y**2 + z**2) / (w**2 + x**2 + y**2 + z**2)


def _kicked_out(obs: Any, kick: float) -> Any:
    """1 where a torso rising `kick` m/s faster than `obs` says would fly, ballistically, above the healthy
    range (numpy and torch alike)."""
    rise = obs[:, OBS_VZ].clip(min=0) + kick
    return obs[:, OBS_Z] + rise**2 / (2 * GRAVITY) > HEALTHY_Z[1]


def _healthy(obs: Any, margin: float = 0.0) -> Any:
    """1 where the torso height is in range and the state is finite (works on numpy and torch); `margin`
    narrows the height range by that fraction of its width at each end."""
    z = obs[:, OBS_Z]
    finite = (abs(obs) < float("inf")).all(-1)
    inset = margin * (HEALTHY_Z[1] - HEALTHY_Z[0]) / 2
    return (z >= HEALTHY_Z[0] + inset) & (z <= HEALTHY_Z[1] - inset) & finite
