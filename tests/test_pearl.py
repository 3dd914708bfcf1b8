"""PEARL infers the task from context: its posterior narrows as context grows, and acting on the
posterior earns more than acting on the prior."""

import numpy as np
import pytest
import torch

from controllers.pearl import PEARLController
from mbmeta.pearl import PEARLConfig, TaskBuffer, collect, context_rows, train_pearl
from robots.rollout import rollout
from robots.toys import PointDirection

# Measured over 5 training seeds, each with the default and the scalar (ATEN_CPU_CAPABILITY=default) kernels
# (/tmp probe, closing note of issue 11): at 4,000 steps the per-step return ranged 8-24, so a bound met on
# one machine failed on another; at 6,000 it ranged 15.7-24.0 (per-episode posterior mean: gain over the
# prior 8.9-22.4). The bounds below sit about 3 standard deviations under those means.
BUDGET = 6000
SMALL = dict(hidden=64, layers=2, encoder_hidden=64, train_tasks=20, initial_steps=40, tasks_per_iteration=5,
             prior_steps=40, posterior_steps=40, updates_per_iteration=300, meta_batch=8, batch_size=64,
             context_size=16, episode_length=20, lr=1e-3)


@pytest.fixture(scope="module")
def trained():
    env = PointDirection()
    agent, log = train_pearl(env, PEARLConfig(budget=BUDGET, **SMALL), progress=False)
    return env, agent, log


def test_the_posterior_narrows_as_context_grows_and_tells_tasks_apart(trained):
    env, agent, _ = trained
    rng = np.random.default_rng(7)
    means = {}
    for task in (0.5, 0.5 + np.pi):  # opposite directions, not among the training tasks
        buffer = TaskBuffer(2, 2, 100)
        collect(env, agent, task, 40, rng, [buffer])
        stds = []
        for n in (0, 1, 4, 16, 40):
            d = buffer.data
            rows = context_rows(d["obs"][:n], d["act"][:n], d["rew"][:n], d["next_obs"][:n])
            mean, var = agent.posterior(torch.as_tensor(rows))
            stds.append(var.sqrt().mean().item())
        # no context: the prior N(0, I); then a product of more and more Gaussian factors
        assert stds[0] == 1.0 and all(a > b for a, b in zip(stds[1:], stds[2:], strict=False)), stds
        assert stds[-1] < 0.3, stds
        means[task] = mean
    gap = (means[0.5] - means[0.5 + np.pi]).norm().item()
    assert gap > 5 * stds[-1], (gap, stds)


def held_out_returns(env, agent, update, latent):
    """Returns of 3 episodes on each of 10 held-out tasks (10 x 3), memory kept across a task's episodes."""
    returns = []
    for i, task in enumerate(env.sample_tasks(10, "test", np.random.default_rng(11))):
        env.set_task(task)
        controller = PEARLController(env.observation_space, env.action_space, agent, update, latent, seed=i)
        returns.append([rollout(env, controller, seed=i, new_task=e == 0).total_reward for e in range(3)])
    return returns


@pytest.mark.parametrize("update, latent", [("episode", "mean"), ("step", "mean")])
def test_acting_on_the_posterior_earns_more_than_acting_on_the_prior(trained, update, latent):
    """Per-episode updates (the original's protocol) act on the prior throughout the first episode and
    on the posterior after it; per-step updates adapt within the first episode already."""
    env, agent, _ = trained
    returns = held_out_returns(env, agent, update, latent)
    first, last = np.mean(returns, axis=0)[[0, -1]]
    # knowing nothing earns 0 per step in expectation; knowing the direction, 1.27 (25 per episode)
    if update == "episode":  # the first episode acts on the prior mean throughout
        assert last > first + 5.0, returns
    else:
        assert last > 10.0, returns


def test_the_training_log_records_returns_with_and_without_context(trained):
    _, _, log = trained
    assert log[-1]["steps"] >= BUDGET
    late = log[len(log) // 2:]
    assert np.mean([r["return_posterior"] for r in late]) > np.mean([r["return_prior"] for r in late])


def test_a_stopped_run_resumed_with_a_larger_budget_equals_one_straight_run(tmp_path):
    tiny = {**SMALL, "hidden": 8, "encoder_hidden": 8, "train_tasks": 3, "updates_per_iteration": 3,
            "tasks_per_iteration": 2, "prior_steps": 20, "posterior_steps": 20}
    straight, _ = train_pearl(PointDirection(), PEARLConfig(budget=300, **tiny), tmp_path / "a", progress=False)
    train_pearl(PointDirection(), PEARLConfig(budget=150, **tiny), tmp_path / "b", progress=False)
    resumed, log = train_pearl(PointDirection(), PEARLConfig(budget=300, **tiny), tmp_path / "b", progress=False)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    assert [row["steps"] for row in log] == [120, 200, 280, 360]
    with pytest.raises(ValueError, match="another config"):
        train_pearl(PointDirection(), PEARLConfig(budget=300, **{**tiny, "kl_weight": 1.0}), tmp_path / "b")


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="meta_batch"):
        PEARLConfig(meta_batch=0)
    env = PointDirection()
    agent, _ = train_pearl(env, PEARLConfig(budget=1, **{**SMALL, "train_tasks": 1, "updates_per_iteration": 1}),
                           progress=False)
    with pytest.raises(ValueError, match="update must be"):
        PEARLController(env.observation_space, env.action_space, agent, update="sometimes")
