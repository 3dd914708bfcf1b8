"""Collection on Ray (a local cluster of 2 workers) gives the episodes serial collection gives, and
loses or duplicates none when a worker dies mid-episode."""

import os
import sys

import numpy as np
import pytest
import ray
import ray.cloudpickle
import torch

import robots
from controllers.collection import collection_policy
from mbmeta.grbal import collect, episode_jobs
from mbmeta.model import DynamicsModel, ModelConfig
from mbmeta.parallel import init_ray, map_ordered

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module


@pytest.fixture(scope="module")
def cluster():
    init_ray(workers=2)
    yield
    ray.shutdown()


def jobs(robot, iteration, n=3, length=20):
    env = robots.make(robot, episode_length=length)
    rng = np.random.default_rng(3)
    return episode_jobs(robot, length, iteration, 5, env.sample_tasks(n, "train", rng), rng)


def assert_same_episodes(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.observations, y.observations)
        np.testing.assert_array_equal(x.actions, y.actions)
        assert x.tasks == y.tasks


@pytest.mark.parametrize("robot", sorted(robots.ROBOTS))
def test_ray_collection_equals_serial_collection(cluster, robot):
    env = robots.make(robot)
    model = DynamicsModel(env.observation_space.shape[0], env.action_space.shape[0], ModelConfig(hidden=(16, 16)))
    step_sizes = {name: torch.tensor(0.01) for name in model.params}
    for iteration in (0, 1):  # exploration, then adaptive MPC on a (small, untrained) model
        serial = collect(jobs(robot, iteration), collection_policy, model, step_sizes)
        parallel = collect(jobs(robot, iteration), collection_policy, model, step_sizes, workers=2)
        assert_same_episodes(serial, parallel)


class Dying:
    """A policy whose worker process dies at step 10."""

    def __init__(self, policy):
        self.policy, self.steps = policy, 0

    def reset(self, obs, new_task=True):
        self.policy.reset(obs, new_task)

    def act(self, obs):
        self.steps += 1
        if self.steps == 10:
            os._exit(1)
        return self.policy.act(obs)

    def observe(self, *args):
        self.policy.observe(*args)


class DiesOnce:
    """Exploration whose first episode anywhere kills its worker process mid-episode."""

    def __init__(self, marker):
        self.marker = marker

    def __call__(self, iteration, env, model, step_sizes, window, rng):
        policy = collection_policy(iteration, env, model, step_sizes, window, rng)
        try:
            os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL))  # only one caller wins
        except FileExistsError:
            return policy
        return Dying(policy)


def test_a_worker_killed_mid_episode_loses_and_duplicates_nothing(cluster, tmp_path):
    marker = str(tmp_path / "died")
    survived = collect(jobs("ant", 0, n=6), DiesOnce(marker), workers=2)
    assert os.path.exists(marker)  # a worker did die
    assert_same_episodes(survived, collect(jobs("ant", 0, n=6), collection_policy))


def test_map_ordered_keeps_order_and_names_bad_worker_counts(cluster):
    assert map_ordered(abs, [-3, 1, -2, 5, -4], workers=2) == [3, 1, 2, 5, 4]
    with pytest.raises(ValueError, match="workers must be >= 1"):
        map_ordered(abs, [1], workers=0)


def test_without_ray_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ValueError, match=r"pip install 'mbmeta\[ray\]'"):
        map_ordered(abs, [1], workers=2)


def test_compare_on_two_workers_writes_the_same_table_as_serial(cluster, tmp_path):
    from scripts.compare import CompareConfig, run_compare

    def table(out, workers):
        config = CompareConfig(robot="quadrotor", controllers=["scripted", "random"], episodes=2, episode_length=100,
                               curve_controllers=["scripted"], out=tmp_path / out, workers=workers)
        run_compare(config, progress=False)
        return [line.split(",")[:8] for line in (tmp_path / out / "results.csv").read_text().splitlines()]

    serial, parallel = table("serial", 1), table("parallel", 2)
    # header + tasks × controllers × seeds + the mid-episode change's episodes
    assert serial == parallel and len(serial) == 1 + 3 * 2 * 2 + 2
    assert (tmp_path / "parallel" / "change.png").stat().st_size > 0
