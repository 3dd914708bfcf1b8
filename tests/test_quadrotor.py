"""The quadrotor carries its payload physically: weight, swing, pick-up."""

import numpy as np
import pytest

from controllers.scripted import QuadrotorPD
from robots.quadrotor import GRAVITY, MASS, PayloadTask, QuadrotorEnv, motor_command
from robots.rollout import rollout


def settled_hover_thrust(task):
    env = QuadrotorEnv(task=task, reference="hover", episode_length=5 * 48)
    episode = rollout(env, QuadrotorPD(env.observation_space, env.action_space), seed=0)
    assert not episode.terminated
    return np.mean([info["thrust"] for info in episode.infos[-48:]])


@pytest.mark.parametrize("mass", [0.004, 0.008])
def test_hover_thrust_rises_by_the_payload_weight(mass):
    extra = settled_hover_thrust(PayloadTask(mass=mass, cable_length=0.2)) - settled_hover_thrust(PayloadTask())
    assert extra == pytest.approx(mass * GRAVITY, rel=0.05)


def test_nominal_hover_command_holds_altitude_without_payload_and_sinks_with_one():
    command = np.full(4, motor_command(MASS * GRAVITY / 4))
    altitude = {}
    for task in (PayloadTask(), PayloadTask(mass=0.005, cable_length=0.2)):
        env = QuadrotorEnv(task=task, reference="hover", init_noise_scale=0.0)
        env.reset(seed=0)
        for _ in range(24):
            info = env.step(command)[4]
        altitude[task.mass] = info["altitude"]
    assert altitude[0.0] == pytest.approx(1.0, abs=1e-6)
    # expected fall after 0.5 s: a t^2 / 2 with a = m g / (M + m)
    expected_drop = 0.5 * (0.005 * GRAVITY / (MASS + 0.005)) * 0.5**2
    assert 1.0 - altitude[0.005] == pytest.approx(expected_drop, rel=0.05)


def test_the_payload_hangs_at_cable_length_and_swings_after_a_lateral_move():
    env = QuadrotorEnv(task=PayloadTask(mass=0.005, cable_length=0.3), reference="setpoints", init_noise_scale=0.0)
    controller = QuadrotorPD(env.observation_space, env.action_space)
    obs, _ = env.reset(seed=0)
    np.testing.assert_allclose(env.payload_offset(), [0, 0, -0.3], atol=1e-9)
    offsets = []
    for _ in range(int(3.5 * 48)):  # the setpoint moves 0.4 m sideways at 2.5 s
        obs = env.step(controller.act(obs))[0]
        offsets.append(env.payload_offset())
    offsets = np.array(offsets)
    np.testing.assert_allclose(np.linalg.norm(offsets, axis=1), 0.3, rtol=0.02)
    before, after = offsets[: 2 * 48], offsets[int(2.5 * 48):]
    assert np.abs(before[:, 0]).max() < 0.02, "hanging still while hovering"
    assert np.abs(after[:, 0]).max() > 0.05, "swinging after the lateral acceleration"
    assert np.ptp(after[:, 0]) > 0.05


def test_a_payload_is_picked_up_mid_flight():
    env = QuadrotorEnv(task=PayloadTask(mass=0.01, cable_length=0.25, at_step=10), reference="hover")
    env.reset(seed=0)
    for _ in range(10):
        env.step(np.zeros(4))
    assert env.payload_offset() is None
    env.step(np.zeros(4))
    assert np.linalg.norm(env.payload_offset()) == pytest.approx(0.25, rel=0.02)


def test_heavier_test_payloads_lie_outside_the_training_range():
    rng = np.random.default_rng(0)
    train = QuadrotorEnv.sample_tasks(300, "train", rng)
    test = QuadrotorEnv.sample_tasks(100, "test", rng)
    assert any(t.mass == 0.0 for t in train)
    assert max(t.mass for t in train) < min(t.mass for t in test)


def test_bad_payload_values_are_rejected_by_field():
    with pytest.raises(ValueError, match="PayloadTask.mass must lie in"):
        PayloadTask(mass=0.5)
    with pytest.raises(ValueError, match="PayloadTask.cable_length must lie in"):
        PayloadTask(mass=0.01, cable_length=3.0)
    with pytest.raises(ValueError, match="reference must be one of"):
        QuadrotorEnv(reference="circle")
