"""A Crazyflie-class quadrotor carrying a payload on a cable (pybullet, DIRECT mode).

Reward: a survival bonus of 2.5 per step without a crash, minus the distance to the reference,
minus 0.01 |a|^2. A crash: hitting the ground, tilting past 60 degrees, 2 m off the reference, or body
rates past the gyro's range.

The task is the payload: its mass and cable length (mass 0 = no payload). Training tasks carry
light payloads on short cables; the test split carries heavier payloads on longer cables, outside
the training range, as in Belkhale et al. (RA-L 2021). A task with `at_step` picks the payload up
mid-flight. The cable is a rigid point-to-point constraint (a massless rod with a ball joint at
the body), so the payload swings freely. The payload is not observed: like a real drone's state
estimate, the observation covers the vehicle only, and the controller must adapt to the load.

Physical constants are the Crazyflie 2.x ("cf2x") values used by gym-pybullet-drones
(Panerati et al., IROS 2021, assets/cf2x.urdf), from Förster's system identification of the
Crazyflie 2.0 (ETH Zürich, 2015): mass 27 g, arm 39.7 mm, thrust coefficient kf = 3.16e-10 N/rpm²,
torque coefficient km = 7.94e-12 N·m/rpm², thrust-to-weight 2.25, inertia diag(1.4e-5, 1.4e-5, 2.17e-5) kg·m².
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces

from robots.base import GRAVITY, RobotEnv, Task, silenced_output
from robots.references import REFERENCES, reference

with silenced_output():  # pybullet prints a banner on import
    import pybullet
    from pybullet_utils.bullet_client import BulletClient

MASS = 0.027
ARM = 0.0397
KF = 3.16e-10
KM = 7.94e-12
THRUST_TO_WEIGHT = 2.25
INERTIA = (1.4e-5, 1.4e-5, 2.17e-5)
MAX_RPM = math.sqrt(THRUST_TO_WEIGHT * MASS * GRAVITY / (4 * KF))
# Rotors in an X: positions in the body frame, and spin directions (sign of the yaw reaction torque).
ROTOR_XY = ARM / math.sqrt(2) * np.array([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])
ROTOR_SPIN = np.array([1.0, -1.0, 1.0, -1.0])

PHYSICS_HZ = 240
CONTROL_HZ = 48

# Reward and termination. The survival bonus, paid for every step that does not end in a crash, makes
# staying airborne always worth more than crashing (it exceeds the largest tracking error before
# termination plus the largest control cost); without it every reward is negative and a crash, which
# ends the losses, would be the best plan.
CTRL_COST_WEIGHT = 0.01
ALIVE_BONUS = 2.5
MIN_ALTITUDE = 0.05
MIN_COS_TILT = 0.5  # terminate beyond 60 degrees of tilt
MAX_TILT = math.acos(MIN_COS_TILT)
FLIGHT_ALTITUDE = 1.0  # every reference flies at 1 m (the setpoints reach 1.2)
MAX_TRACKING_ERROR = 2.0
# Body rates beyond the gyro's range (the Crazyflie 2.x's BMI088: ±2000 deg/s) leave the vehicle without a
# state estimate: a crash, like tilting over. A planner that could spin the vehicle freely (yaw costs
# nothing in the reward) otherwise spins it up to 80 rad/s, where no learned model predicts it.
MAX_BODY_RATE = math.radians(2000)

# Observation layout: position error to the reference (3), altitude (1), velocity (3),
# rotation matrix body->world, row-major (9), body angular velocity (3), reference velocity (3).
OBS_POS_ERR = slice(0, 3)
OBS_Z = 3
OBS_VEL = slice(4, 7)
OBS_ROT = slice(7, 16)
OBS_R22 = 15  # world-z component of the body z axis: the cosine of the tilt
OBS_OMEGA = slice(16, 19)
OBS_REF_VEL = slice(19, 22)
OBS_DIM = 22
# Physically possible values, generously (a reading outside is a broken state estimate, not a state):
# the episode ends 2 m off the reference; a Crazyflie's gyro saturates near 35 rad/s.
OBS_HIGH = np.array([*[10.0] * 3, 50.0, *[30.0] * 3, *[1.05] * 9, *[100.0] * 3, *[10.0] * 3])
OBS_LOW = np.array([*[-10.0] * 3, -1.0, *(-OBS_HIGH[4:])])

MAX_PAYLOAD = 0.02
CABLE_RANGE = (0.05, 1.0)
TRAIN_MASS, TRAIN_CABLE = (0.002, 0.010), (0.10, 0.30)
TEST_MASS, TEST_CABLE = (0.012, 0.016), (0.30, 0.40)
NO_PAYLOAD_FRACTION = 0.2  # share of training tasks without a payload


@dataclasses.dataclass(frozen=True)
class PayloadTask(Task):
    """Payload mass in kg (0: none) and cable length in m."""

    mass: float = 0.0
    cable_length: float = 0.2

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= float(self.mass) <= MAX_PAYLOAD:
            raise ValueError(f"PayloadTask.mass must lie in [0, {MAX_PAYLOAD}] kg, got {self.mass!r}")
        if not CABLE_RANGE[0] <= float(self.cable_length) <= CABLE_RANGE[1]:
            raise ValueError(f"PayloadTask.cable_length must lie in {list(CABLE_RANGE)} m, got {self.cable_length!r}")

    @property
    def name(self) -> str:
        if self.mass == 0.0:
            return "no-payload"
        suffix = f"-at{self.at_step}" if self.at_step is not None else ""
        return f"payload-{1000 * self.mass:.1f}g-{100 * self.cable_length:.0f}cm{suffix}"

    def nominal(self) -> PayloadTask:
        return PayloadTask()


def motor_command(thrust: float) -> float:
    """The normalised motor command in [-1, 1] that makes one rotor produce `thrust` newtons."""
    return 2.0 * math.sqrt(thrust / KF) / MAX_RPM - 1.0


#: The motor command that holds the bare vehicle (no payload) in hover.
HOVER_COMMAND = motor_command(MASS * GRAVITY / 4)


class QuadrotorEnv(RobotEnv):
    """Quadrotor tracking a reference; action = four normalised motor speeds in [-1, 1].

    Physics runs at 240 Hz, control at 48 Hz (5 substeps per step).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": CONTROL_HZ}
    task_type: ClassVar[type[Task]] = PayloadTask
    named_tasks: ClassVar[dict[str, Task]] = {
        "no-payload": PayloadTask(),
        "light-payload": PayloadTask(mass=0.005, cable_length=0.2),
        "heavy-payload": PayloadTask(mass=0.014, cable_length=0.35),
        "pickup": PayloadTask(mass=0.010, cable_length=0.25, at_step=2 * CONTROL_HZ),
    }
    evaluation_tasks: ClassVar[dict[str, tuple[str, ...]]] = {"test": ("heavy-payload",),
                                                              "train": ("no-payload", "light-payload")}
    change_task: ClassVar[str | None] = "pickup"
    step_metric: ClassVar[tuple[str, str] | None] = ("tracking_error", "tracking error (m)")
    metric_labels: ClassVar[dict[str, str]] = {"tracking_rmse_m": "RMS tracking error (m)", "crashed": "crashed",
                                               "crash_time_s": "crashed at (s)"}
    observation_groups: ClassVar[dict[str, slice]] = {
        "position error": OBS_POS_ERR, "altitude": slice(OBS_Z, OBS_Z + 1), "velocity": OBS_VEL,
        "attitude": OBS_ROT, "angular velocity": OBS_OMEGA, "reference velocity": OBS_REF_VEL}

    def __init__(
        self,
        episode_length: int = 10 * CONTROL_HZ,
        task: Task | dict[str, Any] | str | None = None,
        reference: str = "figure8",
        init_noise_scale: float = 0.05,
        render_mode: str | None = None,
    ) -> None:
        super().__init__(episode_length, task)
        if reference not in REFERENCES:
            raise ValueError(f"reference must be one of {REFERENCES}, got {reference!r}")
        self.reference = reference
        self.init_noise_scale = init_noise_scale
        self.render_mode = render_mode
        self.dt = 1.0 / CONTROL_HZ
        self.substeps = PHYSICS_HZ // CONTROL_HZ
        self.action_space = spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)
        self.observation_space = spaces.Box(OBS_LOW, OBS_HIGH, dtype=np.float64)
        with silenced_output():  # and another on connect
            self._client = BulletClient(connection_mode=pybullet.DIRECT)
        self._drone = -1
        self._payload: tuple[int, int] | None = None  # (body, constraint)
        self._last_thrust = 0.0

    # ----- simulation --------------------------------------------------------------------------
    def _reset_sim(self) -> None:
        p = self._client
        p.resetSimulation()
        p.setGravity(0, 0, -GRAVITY)
        p.setTimeStep(1.0 / PHYSICS_HZ)
        p.createMultiBody(0, p.createCollisionShape(pybullet.GEOM_PLANE))
        s = self.init_noise_scale
        pos, vel = reference(self.reference, 0.0)
        pos = pos + self.np_random.uniform(-s, s, 3)
        roll, pitch = self.np_random.uniform(-s, s, 2)
        body = p.createCollisionShape(pybullet.GEOM_BOX, halfExtents=[0.05, 0.05, 0.015])
        look = p.createVisualShape(pybullet.GEOM_BOX, halfExtents=[0.05, 0.05, 0.015], rgbaColor=[0.15, 0.25, 0.7, 1])
        self._drone = p.createMultiBody(MASS, body, look, basePosition=pos.tolist(),
                                        baseOrientation=p.getQuaternionFromEuler([roll, pitch, 0.0]))
        p.changeDynamics(self._drone, -1, localInertiaDiagonal=INERTIA, linearDamping=0.0, angularDamping=0.0)
        p.resetBaseVelocity(self._drone, (vel + self.np_random.uniform(-s, s, 3)).tolist(), [0.0, 0.0, 0.0])
        self._payload = None
        self._last_thrust = 0.0

    def _apply_task(self, task: PayloadTask) -> None:
        p = self._client
        if self._payload is not None:
            body, constraint = self._payload
            p.removeConstraint(constraint)
            p.removeBody(body)
            self._payload = None
        if task.mass == 0.0:
            return
        pos, orn = p.getBasePositionAndOrientation(self._drone)
        lin_vel, _ = p.getBaseVelocity(self._drone)
        shape = p.createCollisionShape(pybullet.GEOM_SPHERE, radius=0.01)
        look = p.createVisualShape(pybullet.GEOM_SPHERE, radius=0.02, rgbaColor=[0.85, 0.1, 0.1, 1])  # seen on video
        body = p.createMultiBody(task.mass, shape, look, basePosition=[pos[0], pos[1], pos[2] - task.cable_length])
        p.changeDynamics(body, -1, linearDamping=0.0, angularDamping=0.0)
        p.resetBaseVelocity(body, lin_vel, [0.0, 0.0, 0.0])
        p.setCollisionFilterPair(self._drone, body, -1, -1, 0)
        constraint = p.createConstraint(self._drone, -1, body, -1, pybullet.JOINT_POINT2POINT, [0, 0, 0],
                                        [0, 0, 0], [0, 0, task.cable_length])
        p.changeConstraint(constraint, maxForce=100.0)
        self._payload = (body, constraint)

    def _step_sim(self, action: np.ndarray) -> None:
        p = self._client
        rpm = (action + 1.0) / 2.0 * MAX_RPM
        thrust = KF * rpm**2
        body_torque = np.array([
            ROTOR_XY[:, 1] @ thrust,
            -ROTOR_XY[:, 0] @ thrust,
            ROTOR_SPIN @ (KM * rpm**2),
        ])
        for _ in range(self.substeps):
            pos, orn = p.getBasePositionAndOrientation(self._drone)
            rot = np.reshape(p.getMatrixFromQuaternion(orn), (3, 3))
            p.applyExternalForce(self._drone, -1, (rot[:, 2] * thrust.sum()).tolist(), pos, pybullet.WORLD_FRAME)
            p.applyExternalTorque(self._drone, -1, (rot @ body_torque).tolist(), pybullet.WORLD_FRAME)
            p.stepSimulation()
        self._last_thrust = float(thrust.sum())

    def _observe(self) -> np.ndarray:
        p = self._client
        pos, orn = p.getBasePositionAndOrientation(self._drone)
        vel, omega = p.getBaseVelocity(self._drone)
        rot = np.reshape(p.getMatrixFromQuaternion(orn), (3, 3))
        ref_pos, ref_vel = reference(self.reference, self._step * self.dt)
        return np.concatenate([np.asarray(pos) - ref_pos, [pos[2]], vel, rot.ravel(), rot.T @ omega, ref_vel])

    def _get_sim_state(self) -> tuple[int, float]:
        return self._client.saveState(), self._last_thrust

    def _set_sim_state(self, state: tuple[int, float]) -> None:
        self._client.restoreState(stateId=state[0])
        self._last_thrust = state[1]

    def _release_sim_state(self, state: tuple[int, float]) -> None:
        self._client.removeState(state[0])

    def payload_offset(self) -> np.ndarray | None:
        """Payload position relative to the body (world frame), or None without a payload."""
        if self._payload is None:
            return None
        p = self._client
        body_pos = np.asarray(p.getBasePositionAndOrientation(self._drone)[0])
        return np.asarray(p.getBasePositionAndOrientation(self._payload[0])[0]) - body_pos

    def _metrics(self) -> dict[str, float]:
        pos = self._client.getBasePositionAndOrientation(self._drone)[0]
        ref_pos, _ = reference(self.reference, self._step * self.dt)
        return {
            "x_position": float(pos[0]), "y_position": float(pos[1]),
            "tracking_error": float(np.linalg.norm(np.asarray(pos) - ref_pos)),
            "altitude": float(pos[2]),
            "thrust": self._last_thrust,
        }

    @classmethod
    def episode_metrics(cls, start_info: dict[str, Any], infos: list[dict[str, Any]], terminated: bool,
                        dt: float) -> dict[str, float]:
        """RMS distance to the reference over the steps flown (m), whether and when it crashed (s)."""
        errors = np.array([info["tracking_error"] for info in infos])
        return {"tracking_rmse_m": float(np.sqrt(np.mean(errors**2))) if len(errors) else float("nan"),
                "crashed": bool(terminated), "crash_time_s": len(infos) * dt if terminated else float("nan")}

    @classmethod
    def termination_reason(cls, obs: np.ndarray) -> str:
        reasons = []
        if obs[OBS_Z] < MIN_ALTITUDE:
            reasons.append(f"hit the ground (z = {obs[OBS_Z]:.2f} m)")
        if obs[OBS_R22] < MIN_COS_TILT:
            reasons.append(f"tilted {np.degrees(np.arccos(np.clip(obs[OBS_R22], -1, 1))):.0f} degrees")
        if (obs[OBS_POS_ERR] ** 2).sum() > MAX_TRACKING_ERROR**2:
            reasons.append(f"lost: {np.linalg.norm(obs[OBS_POS_ERR]):.1f} m off the reference")
        if np.abs(obs[OBS_OMEGA]).max() > MAX_BODY_RATE:
            reasons.append(f"spinning at {np.abs(obs[OBS_OMEGA]).max():.0f} rad/s, past the gyro's range")
        return "crashed: " + ", ".join(reasons or ["non-finite state"])

    # ----- reward, termination, tasks ----------------------------------------------------------
    @staticmethod
    def reward(obs: Any, action: Any, next_obs: Any) -> Any:
        tracking_error = ((next_obs[:, OBS_POS_ERR] ** 2).sum(-1)) ** 0.5
        alive = ALIVE_BONUS * ~_crashed(next_obs)
        return alive - tracking_error - CTRL_COST_WEIGHT * (action**2).sum(-1)

    @staticmethod
    def is_terminal(next_obs: Any, margin: float = 0.0) -> Any:
        return _crashed(next_obs, margin)

    @classmethod
    def _sample_tasks(cls, n: int, split: str, rng: np.random.Generator) -> list[Task]:
        mass_range, cable_range = (TRAIN_MASS, TRAIN_CABLE) if split == "train" else (TEST_MASS, TEST_CABLE)
        tasks: list[Task] = []
        for _ in range(n):
            mass, cable = float(rng.uniform(*mass_range)), float(rng.uniform(*cable_range))
            if split == "train" and rng.random() < NO_PAYLOAD_FRACTION:
                mass = 0.0
            tasks.append(PayloadTask(mass=round(mass, 4), cable_length=round(cable, 3)))
        return tasks

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        p = self._client
        target = p.getBasePositionAndOrientation(self._drone)[0]
        view = p.computeViewMatrixFromYawPitchRoll(target, 0.8, 30, -15, 0, 2)
        proj = p.computeProjectionMatrixFOV(60, 4 / 3, 0.05, 20)
        _, _, rgba, _, _ = p.getCameraImage(320, 240, view, proj, renderer=pybullet.ER_TINY_RENDERER)
        return np.asarray(rgba, dtype=np.uint8).reshape(240, 320, 4)[..., :3]

    def close(self) -> None:
        if getattr(self, "_client", None) is not None:
            self._client.disconnect()
            self._client = None


def _crashed(obs: Any, margin: float = 0.0) -> Any:
    """Below the minimum altitude, tilted past 60 degrees, lost (2 m off), spinning past the gyro's range,
    or non-finite (numpy or torch).

    `margin` shrinks each limit by that fraction: the tilt limit, the distance off the reference and the
    body rate, and the altitude floor rises by that fraction of the way to the 1 m flight altitude.
    """
    crashed = obs[:, OBS_Z] < MIN_ALTITUDE + margin * (FLIGHT_ALTITUDE - MIN_ALTITUDE)
    flipped = obs[:, OBS_R22] < (math.cos(MAX_TILT * (1 - margin)) if margin else MIN_COS_TILT)
    lost = (obs[:, OBS_POS_ERR] ** 2).sum(-1) > (MAX_TRACKING_ERROR * (1 - margin)) ** 2
    spinning = (abs(obs[:, OBS_OMEGA]) > MAX_BODY_RATE * (1 - margin)).any(-1)
    finite = (abs(obs) < float("inf")).all(-1)
    return crashed | flipped | lost | spinning | ~finite
