"""The ant's legs break the way the task says."""

import numpy as np
import pytest

from controllers.scripted import AntTrot
from robots.ant import AntEnv, AntTask
from robots.base import GRAVITY
from robots.rollout import rollout


def joint_torques(env):
    """Actuator torque on each of the 8 leg joints (the dofs after the 6 of the free joint)."""
    return env.data.qfrc_actuator[6:].copy()


@pytest.mark.parametrize("leg", range(4))
def test_a_broken_leg_gets_zero_torque_and_the_others_do_not(leg):
    env = AntEnv(task=AntTask(broken_leg=leg))
    env.reset(seed=0)
    env.step(np.full(8, 0.7))
    torque = joint_torques(env)
    broken = np.zeros(8, bool)
    broken[2 * leg : 2 * leg + 2] = True
    np.testing.assert_array_equal(torque[broken], 0.0)
    np.testing.assert_allclose(torque[~broken], 0.7 * 150)  # gear 150, full strength


def test_a_weak_leg_delivers_its_fraction():
    env = AntEnv(task=AntTask(broken_leg=2, strength=0.25))
    env.reset(seed=0)
    env.step(np.full(8, -0.4))
    np.testing.assert_allclose(joint_torques(env)[4:6], 0.25 * -0.4 * 150)


def test_a_leg_breaks_mid_episode_on_schedule_and_on_demand():
    env = AntEnv(task=AntTask(broken_leg=1, at_step=3))
    env.reset(seed=0)
    torques = []
    for _ in range(5):
        env.step(np.full(8, 0.5))
        torques.append(joint_torques(env)[2:4])
    assert all(np.all(t != 0) for t in torques[:3]) and all(np.all(t == 0) for t in torques[3:])
    env.set_task(AntTask())  # repaired on the next step
    env.step(np.full(8, 0.5))
    assert np.all(joint_torques(env)[2:4] != 0)


@pytest.mark.parametrize("leg", range(4))
def test_a_broken_leg_walks_less_far_under_the_same_gait(leg):
    # From the same start (no reset noise): the open-loop gait is chaotic under perturbations.
    def distance(task):
        env = AntEnv(task=task, reset_noise_scale=0.0)
        episode = rollout(env, AntTrot(env.observation_space, env.action_space), seed=0, max_steps=200)
        return episode.infos[-1]["x_position"]

    healthy = distance(AntTask())
    assert healthy > 4.0, "the trot should carry a healthy ant forward (4.66 m in 10 s)"
    assert distance(AntTask(broken_leg=leg)) < healthy - 1.0


def test_splits_keep_the_test_leg_unseen():
    rng = np.random.default_rng(0)
    train = {t.broken_leg for t in AntEnv.sample_tasks(200, "train", rng)}
    test = {t.broken_leg for t in AntEnv.sample_tasks(50, "test", rng)}
    assert train == {None, 0, 1, 2} and test == {3}


def test_bad_leg_values_are_rejected_by_field():
    with pytest.raises(ValueError, match="broken_leg must be None or one of 0..3"):
        AntTask(broken_leg=4)
    with pytest.raises(ValueError, match=r"strength must lie in \[0, 1\]"):
        AntTask(broken_leg=0, strength=1.5)


def test_a_planner_treats_a_fast_rising_torso_as_a_fall_and_the_episode_does_not():
    """The ant falls by jumping, launched by kicks its models miss: for a planner, a torso that a kick
    `PLANNED_KICK_MARGIN` m/s stronger than imagined would throw over the healthy range ends the imagined
    episode, or with `rise_cap` given, one rising faster than that times (1 - margin); the real one goes on."""
    from robots.ant import OBS_VZ, OBS_Z, PLANNED_KICK_MARGIN

    env = AntEnv()
    obs, _ = env.reset(seed=0)
    states = np.repeat(obs[None], 3, axis=0)
    states[:, OBS_Z] = 0.6  # torso height mid-range
    states[:, OBS_VZ] = [0.3, 0.9, 1.2]  # apex with a 2 m/s kick: 0.87, 1.03, 1.12 m
    np.testing.assert_array_equal(env.is_terminal(states), [False, False, False])
    np.testing.assert_array_equal(env.is_terminal(states, 0.3), [False, False, False])
    np.testing.assert_array_equal(env.planning_terminal(states), [False, True, True])
    np.testing.assert_array_equal(env.planning_terminal(states, kick_margin=PLANNED_KICK_MARGIN), [False, True, True])
    np.testing.assert_array_equal(env.planning_terminal(states, rise_cap=1.0), [False, False, True])
    np.testing.assert_array_equal(env.planning_terminal(states, 0.3, rise_cap=1.0), [False, True, True])
    states[:, OBS_Z] = 1.1  # above the healthy range: terminal whatever the limit
    np.testing.assert_array_equal(env.planning_terminal(states, rise_cap=2.0), [True, True, True])
    np.testing.assert_array_equal(env.planning_terminal(states, kick_margin=0.0), [True, True, True])


def test_a_tilt_limit_ends_the_imagined_episode_of_a_torso_tipping_over():
    """With `tilt_limit` d degrees, an imagined state ends the plan where the torso's up axis is more than d from
    vertical, read from the predicted quaternion whatever its length; the real episode goes on (Ant-v5 ends on
    the height only)."""
    import torch

    from robots.ant import OBS_DIM, OBS_Z

    states = np.zeros((4, OBS_DIM))
    states[:, OBS_Z] = 0.55
    half = np.radians([0.0, 30.0, 60.0, 180.0]) / 2  # turned about x by these angles
    states[:, 1], states[:, 2] = np.cos(half), np.sin(half)
    states[1] *= [1, 2, 2, 2, 2, *[1] * (OBS_DIM - 5)]  # a predicted quaternion of length 2: the same tilt
    np.testing.assert_array_equal(AntEnv.planning_terminal(states, tilt_limit=45.0), [False, False, True, True])
    np.testing.assert_array_equal(AntEnv.planning_terminal(torch.as_tensor(states), tilt_limit=45.0).numpy(),
                                  [False, False, True, True])
    np.testing.assert_array_equal(AntEnv.is_terminal(states), [False, False, False, False])


def test_a_kick_margin_limits_the_planned_rise_by_the_torso_height():
    """With `kick_margin` k, an imagined state ends the plan where the torso, rising k m/s faster than imagined,
    would fly above the healthy range (z + (max(vz, 0) + k)^2 / 2g > 1.0): the same rise that a low torso may
    plan ends a plan from a high one. It replaces the flat rise cap (both set: an error), on numpy and torch."""
    import torch

    from robots.ant import OBS_VZ, OBS_Z

    env = AntEnv()
    assert env.model.opt.gravity[2] == -GRAVITY  # the ballistic apex uses the simulator's own gravity
    obs, _ = env.reset(seed=0)
    states = np.repeat(obs[None], 4, axis=0)
    states[:, OBS_Z] = [0.5, 0.5, 0.7, 0.7]
    states[:, OBS_VZ] = [1.0, 1.2, 0.3, 0.5]  # apex with a 2 m/s kick: 0.96, 1.02, 0.97, 1.02 m
    expected = [False, True, False, True]
    np.testing.assert_array_equal(env.planning_terminal(states, kick_margin=2.0), expected)
    np.testing.assert_array_equal(env.planning_terminal(torch.as_tensor(states), kick_margin=2.0).numpy(), expected)
    np.testing.assert_array_equal(env.planning_terminal(states, kick_margin=0.0), [False] * 4)
    falling = states.copy()
    falling[:, OBS_VZ] = -3.0  # a falling torso is judged as one at rest
    np.testing.assert_array_equal(env.planning_terminal(falling, kick_margin=2.0), [False] * 4)
    with pytest.raises(ValueError, match="MPCConfig.rise_cap: .* set one"):
        env.planning_terminal(states, rise_cap=1.43, kick_margin=2.0)


def test_a_speed_cap_pays_the_planner_forward_speed_only_up_to_the_cap():
    """`planning_reward(speed_cap)` is the task's reward with the torso's forward speed counted up to the cap
    (numpy and torch alike); without a cap it is the task's reward."""
    import torch

    from robots.ant import OBS_VX

    env = AntEnv()
    obs, _ = env.reset(seed=0)
    states = np.repeat(obs[None], 3, axis=0)
    states[:, OBS_VX] = [-0.5, 0.3, 1.7]
    actions = np.full((3, 8), 0.2)
    reward = env.reward(states, actions, states)
    np.testing.assert_array_equal(env.planning_reward(states, actions, states), reward)
    np.testing.assert_allclose(env.planning_reward(states, actions, states, speed_cap=0.6), reward - [0, 0, 1.1])
    as_torch = env.planning_reward(*(torch.as_tensor(x) for x in (states, actions, states)), speed_cap=0.6)
    np.testing.assert_allclose(as_torch.numpy(), reward - [0, 0, 1.1])


def test_an_effort_weight_prices_the_planner_s_squared_action_at_that_weight():
    """`planning_reward(effort_weight=w)` is the task's reward with the squared action costing w instead of
    Ant-v5's 0.5; it composes with the speed cap."""
    env = AntEnv()
    obs, _ = env.reset(seed=0)
    states = np.repeat(obs[None], 2, axis=0)
    actions = np.stack([np.zeros(8), np.full(8, 0.5)])  # squared action 0 and 2
    reward = env.reward(states, actions, states)
    np.testing.assert_allclose(env.planning_reward(states, actions, states, effort_weight=0.1), reward + [0, 0.8])
    np.testing.assert_allclose(env.planning_reward(states, actions, states, effort_weight=0.5), reward)
    np.testing.assert_allclose(env.planning_reward(states, actions, states, speed_cap=10.0, effort_weight=0.0),
                               reward + [0, 1.0])


def test_the_ant_with_leg_3_broken_is_leg_0_broken_seen_in_the_mirror():
    """The held-out broken leg is the mirror image of a training one (issue 14): started in each other's
    mirror image and driven by mirrored actions, the two ants stay mirror images, with the same reward."""
    import mujoco

    mirror = AntEnv.mirror
    left, right = AntEnv(task=AntTask(broken_leg=0)), AntEnv(task=AntTask(broken_leg=3))
    obs_left, _ = left.reset(seed=0)
    right.reset(seed=1)
    seen = mirror.obs(obs_left)
    right.data.qpos[:] = [left.data.qpos[0], -left.data.qpos[1], *seen[:13]]
    right.data.qvel[:] = seen[13:27]
    mujoco.mj_forward(right.model, right.data)
    rng = np.random.default_rng(0)
    for _ in range(30):
        action = rng.uniform(-1, 1, 8)
        obs_left, reward_left, *_ = left.step(action)
        obs_right, reward_right, *_ = right.step(mirror.action(action))
        np.testing.assert_allclose(obs_right, mirror.obs(obs_left), atol=1e-9)  # measured: ~1e-14 after 10 steps
        assert reward_right == pytest.approx(reward_left, abs=1e-9)


def test_the_mirror_reflects_twice_to_the_original_and_a_wrong_one_is_refused():
    from robots.base import Mirror

    x = np.random.default_rng(0).standard_normal((5, 28)).astype(np.float32)
    twice = AntEnv.mirror.obs(AntEnv.mirror.obs(x))
    assert twice.dtype == np.float32 and np.array_equal(twice, x)
    with pytest.raises(ValueError, match="reflecting twice must give back the original"):
        Mirror(obs_index=(1, 2, 0), obs_sign=(1.0, 1.0, 1.0), act_index=(0,), act_sign=(1.0,))
    with pytest.raises(ValueError, match="act_index must permute"):
        Mirror(obs_index=(0,), obs_sign=(1.0,), act_index=(0, 0), act_sign=(1.0, 1.0))
