"""Hand-written controllers: a random floor, an open-loop ant trot, and a PD hover controller.

They need no training, so they drive the demo, collect first data, and make tests of the robots
independent of learning.
"""

from __future__ import annotations

import math

import numpy as np
from gymnasium import spaces

from controllers.base import Controller
from robots import quadrotor as quad


class RandomController(Controller):
    """Uniform random actions: the floor every learned controller must beat."""

    def __init__(self, observation_space: spaces.Box, action_space: spaces.Box, seed: int = 0) -> None:
        super().__init__(observation_space, action_space)
        self.rng = np.random.default_rng(seed)

    def _act(self, obs: np.ndarray) -> np.ndarray:
        return self.rng.uniform(self.action_space.low, self.action_space.high)


class AntTrot(Controller):
    """An open-loop trot: diagonal legs in phase, hips and ankles a quarter period apart.

    Walks a healthy ant forward at roughly 0.5 m/s; knows nothing of broken legs.
    """

    def __init__(self, observation_space: spaces.Box, action_space: spaces.Box, dt: float = 0.05,
                 frequency: float = 2.5, hip_amplitude: float = 1.0, ankle_amplitude: float = 0.5) -> None:
        super().__init__(observation_space, action_space)
        self.dt, self.frequency = dt, frequency
        self.hip_amplitude, self.ankle_amplitude = hip_amplitude, ankle_amplitude
        self.t = 0

    def reset(self, obs: np.ndarray, new_task: bool = True) -> None:
        self.t = 0

    def _act(self, obs: np.ndarray) -> np.ndarray:
        phase = 2 * math.pi * self.frequency * self.t * self.dt + np.array([0.0, math.pi, 0.0, math.pi])
        hips = self.hip_amplitude * np.sin(phase) * np.array([1.0, -1.0, 1.0, -1.0])
        ankles = self.ankle_amplitude * np.sin(phase - math.pi / 2)
        self.t += 1
        return np.stack([hips, ankles], axis=1).ravel()


class QuadrotorPD(Controller):
    """Geometric PID tracking controller (after Lee, Leok & McClamroch, CDC 2010) for the quadrotor.

    Assumes the vehicle's nominal mass. Without integral action (`ki=0`, the default) a payload
    makes it sag below the reference, which is what adaptation should fix; with `ki > 0` the
    integral slowly takes up the payload's weight.
    """

    def __init__(self, observation_space: spaces.Box, action_space: spaces.Box, kp: float = 6.0,
                 kd: float = 4.0, ki: float = 0.0, k_att: float = 400.0, k_rate: float = 32.0,
                 mass: float = quad.MASS) -> None:
        super().__init__(observation_space, action_space)
        self.kp, self.kd, self.ki, self.k_att, self.k_rate, self.mass = kp, kd, ki, k_att, k_rate, mass
        self.integral = np.zeros(3)
        # Rotor thrusts -> (collective thrust, body torques x, y, z).
        yaw_per_thrust = quad.ROTOR_SPIN * quad.KM / quad.KF
        self.mix = np.stack([np.ones(4), quad.ROTOR_XY[:, 1], -quad.ROTOR_XY[:, 0], yaw_per_thrust])
        self.max_thrust = quad.KF * quad.MAX_RPM**2

    def reset(self, obs: np.ndarray, new_task: bool = True) -> None:
        self.integral = np.zeros(3)

    def _act(self, obs: np.ndarray) -> np.ndarray:
        pos_err, vel = obs[quad.OBS_POS_ERR], obs[quad.OBS_VEL]
        rot = obs[quad.OBS_ROT].reshape(3, 3)
        omega, ref_vel = obs[quad.OBS_OMEGA], obs[quad.OBS_REF_VEL]
        self.integral = np.clip(self.integral + pos_err / quad.CONTROL_HZ, -2.0, 2.0)
        accel = -self.kp * pos_err - self.ki * self.integral + self.kd * (ref_vel - vel)
        force = self.mass * (accel + np.array([0.0, 0.0, quad.GRAVITY]))
        collective = float(force @ rot[:, 2])
        z_des = force / np.linalg.norm(force)
        y_des = np.cross(z_des, [1.0, 0.0, 0.0])
        y_des /= np.linalg.norm(y_des)
        rot_des = np.stack([np.cross(y_des, z_des), y_des, z_des], axis=1)
        err = 0.5 * (rot_des.T @ rot - rot.T @ rot_des)
        e_rot = np.array([err[2, 1], err[0, 2], err[1, 0]])
        torque = np.asarray(quad.INERTIA) * (-self.k_att * e_rot - self.k_rate * omega)
        thrusts = np.clip(np.linalg.solve(self.mix, np.concatenate([[collective], torque])), 0.0, self.max_thrust)
        return np.array([quad.motor_command(t) for t in thrusts])


class NoisyController(Controller):
    """Another controller's actions plus Gaussian noise: exploration for data collection.

    `noise_std` is a fixed level, or a (low, high) range from which each episode draws its own.
    """

    def __init__(self, base: Controller, noise_std: float | tuple[float, float], seed: int = 0) -> None:
        super().__init__(base.observation_space, base.action_space)
        self.base, self.noise_range = base, (noise_std, noise_std) if np.isscalar(noise_std) else noise_std
        self.rng = np.random.default_rng(seed)
        self.noise_std = float(self.noise_range[0])

    def reset(self, obs: np.ndarray, new_task: bool = True) -> None:
        self.noise_std = float(self.rng.uniform(*self.noise_range))
        self.base.reset(obs, new_task)

    def _act(self, obs: np.ndarray) -> np.ndarray:
        return self.base.act(obs) + self.noise_std * self.rng.standard_normal(self.action_space.shape)

    def _observe(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray, done: bool) -> None:
        self.base.observe(obs, action, reward, next_obs, done)
