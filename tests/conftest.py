import os

# The CUDA kernels are tested on Numba's CUDA simulator, which must be chosen before numba.cuda loads.
os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import numpy as np
import pytest

import robots


@pytest.fixture(params=sorted(robots.ROBOTS))
def robot_name(request):
    return request.param


def random_episode(env, seed, steps):
    """Random actions from a seeded generator; returns (observations, actions, rewards, terminated flags)."""
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    observations, actions, rewards, terms = [obs], [], [], []
    for _ in range(steps):
        action = rng.uniform(env.action_space.low, env.action_space.high)
        obs, reward, terminated, truncated, _ = env.step(action)
        observations.append(obs)
        actions.append(action)
        rewards.append(reward)
        terms.append(terminated)
        if terminated or truncated:
            break
    return np.array(observations), np.array(actions), np.array(rewards), np.array(terms)
