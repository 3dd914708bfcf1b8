"""The contract every robot keeps: gymnasium API, batched reward, determinism, clear errors."""

import numpy as np
import pytest
import torch
import yaml
from conftest import random_episode
from gymnasium.utils.env_checker import check_env

import robots
from controllers.scripted import AntTrot, QuadrotorPD
from robots.rollout import rollout

SCRIPTED = {"ant": AntTrot, "quadrotor": QuadrotorPD}


def recorded_transitions(env, robot_name, seed=0):
    """Transitions from a scripted controller (long episodes) and random actions (terminations)."""
    episode = rollout(env, SCRIPTED[robot_name](env.observation_space, env.action_space), seed=seed, max_steps=150)
    obs = [episode.observations[:-1]]
    act = [episode.actions]
    next_obs = [episode.observations[1:]]
    rew = [episode.rewards]
    terms = [np.zeros(episode.length, bool)]
    terms[0][-1] = episode.terminated
    for s in range(3):
        o, a, r, t = random_episode(env, seed + s, 100)
        obs.append(o[:-1])
        act.append(a)
        next_obs.append(o[1:])
        rew.append(r)
        terms.append(t)
    return [np.concatenate(x) for x in (obs, act, next_obs, rew, terms)]


def test_batched_reward_and_termination_equal_the_env(robot_name):
    env = robots.make(robot_name)
    obs, act, next_obs, rew, terms = recorded_transitions(env, robot_name)
    assert terms.any() and not terms.all(), "the recording should contain both terminal and live steps"
    batched = env.reward(torch.as_tensor(obs), torch.as_tensor(act), torch.as_tensor(next_obs))
    assert batched.shape == (len(obs),)
    np.testing.assert_allclose(batched.numpy(), rew, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(env.is_terminal(torch.as_tensor(next_obs)).numpy(), terms)
    # float32 batches, as planners use them, agree to float32 precision
    batched32 = env.reward(*(torch.as_tensor(x, dtype=torch.float32) for x in (obs, act, next_obs)))
    np.testing.assert_allclose(batched32.numpy(), rew, rtol=1e-4, atol=1e-4)


def test_a_safety_margin_only_ever_adds_terminal_states(robot_name):
    """The planner's stricter safe set: margin 0 is the episode's own test, a larger margin flags a
    superset of states (monotone), and some states the episode lives through count as unsafe at 0.8; what a
    planner on a learned model treats as terminal (`planning_terminal`) is a superset again, also monotone."""
    env = robots.make(robot_name)
    _, _, next_obs, _, terms = recorded_transitions(env, robot_name)
    states = torch.as_tensor(next_obs)
    np.testing.assert_array_equal(env.is_terminal(states, 0.0).numpy(), terms)
    flagged = [env.is_terminal(states, m).numpy() for m in (0.0, 0.2, 0.5, 0.8)]
    planning = [env.planning_terminal(states, m).numpy() for m in (0.0, 0.2, 0.5, 0.8)]
    for flags in (flagged, planning):
        assert all((stricter >= looser).all() for looser, stricter in zip(flags[:-1], flags[1:], strict=True))
    assert all((plan >= episode).all() for episode, plan in zip(flagged, planning, strict=True))
    assert flagged[-1].sum() > terms.sum()


@pytest.mark.filterwarnings("ignore:.*Box observation space m")
def test_gymnasium_env_checker_passes(robot_name):
    check_env(robots.make(robot_name), skip_render_check=True)


def test_same_seed_same_trajectory_and_other_seed_differs(robot_name):
    first = random_episode(robots.make(robot_name), seed=3, steps=60)
    second = random_episode(robots.make(robot_name), seed=3, steps=60)
    other = random_episode(robots.make(robot_name), seed=4, steps=60)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0][:10], other[0][:10])


def test_reused_env_reproduces_a_fresh_one(robot_name):
    env = robots.make(robot_name)
    random_episode(env, seed=1, steps=40)
    np.testing.assert_array_equal(random_episode(env, seed=2, steps=40)[0],
                                  random_episode(robots.make(robot_name), seed=2, steps=40)[0])


@pytest.mark.parametrize("bad, message", [
    ("nan", "finite"), ("inf", "finite"), ("shape", "shape"), ("text", "numeric"),
])
def test_bad_actions_raise_clear_value_errors(robot_name, bad, message):
    env = robots.make(robot_name)
    env.reset(seed=0)
    action = np.zeros(env.action_space.shape)
    if bad == "nan":
        action[1] = np.nan
    elif bad == "inf":
        action[0] = np.inf
    elif bad == "shape":
        action = np.zeros(env.action_space.shape[0] + 1)
    else:
        action = "forward"
    with pytest.raises(ValueError, match=message):
        env.step(action)


def test_bad_task_descriptions_name_the_problem(robot_name):
    env = robots.make(robot_name)
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['colour'\]; valid fields are \["):
        env.set_task({"colour": "red"})
    with pytest.raises(ValueError, match="unknown task 'nope'; named tasks are"):
        env.set_task("nope")
    with pytest.raises(ValueError, match="at_step"):
        env.set_task({"at_step": -1})


def test_tasks_round_trip_through_yaml(robot_name):
    env_type = robots.ROBOTS[robot_name]
    for split in ("train", "test"):
        for task in env_type.sample_tasks(5, split, np.random.default_rng(0)):
            assert env_type.parse_task(yaml.safe_load(yaml.safe_dump(task.to_dict()))) == task


def test_sample_tasks_is_seeded_and_checks_its_arguments(robot_name):
    env_type = robots.ROBOTS[robot_name]
    draw = lambda: env_type.sample_tasks(6, "train", np.random.default_rng(7))  # noqa: E731
    assert draw() == draw()
    with pytest.raises(ValueError, match="split must be one of"):
        env_type.sample_tasks(2, "validation")


def test_info_carries_the_task_in_force(robot_name):
    env = robots.make(robot_name)
    named = {"ant": "break-leg-3-midway", "quadrotor": "pickup"}[robot_name]
    env.set_task(named)
    env.reset(seed=0)
    at = env.task.at_step
    names = [env.step(np.zeros(env.action_space.shape))[4]["task"] for _ in range(at + 2)]
    assert names[at - 1] == env.task.nominal().name
    assert names[at + 1] == env.task.active(at).name != names[at - 1]


def test_stepping_before_reset_is_a_clear_error(robot_name):
    with pytest.raises(RuntimeError, match=r"step\(\) called before reset\(\)"):
        robots.make(robot_name).step(np.zeros(robots.make(robot_name).action_space.shape))


def test_unknown_robot_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown robot 'tank'; choose one of"):
        robots.make("tank")
