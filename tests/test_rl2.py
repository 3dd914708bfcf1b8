"""RL² learns to use its memory across the episodes of a trial."""

import numpy as np
import torch

from mbmeta.rl2 import RL2Config, episode_returns, run_trial, train_rl2
from robots.toys import TwoArmedBandit


def test_rl2_earns_more_in_the_second_episode_because_it_remembers_the_first():
    env = TwoArmedBandit(pulls=2)
    config = RL2Config(budget=8000, hidden=32, lr=1e-3, trials_per_update=32)
    policy, log = train_rl2(env, config, progress=False)
    rng = np.random.default_rng(123)
    tasks = env.sample_tasks(200, "test", rng)
    with torch.no_grad():
        remembering = episode_returns([run_trial(env, policy, rng, t, 2) for t in tasks], 2).mean(0)
        forgetting = episode_returns([run_trial(env, policy, rng, t, 2, forget_between_episodes=True)
                                      for t in tasks], 2).mean(0)
    # random pulls earn 1.0 per episode, perfect recall 2.0; the first episode must explore
    assert remembering[1] > remembering[0] + 0.25, remembering
    assert remembering[1] > 1.7, remembering
    assert forgetting[1] < remembering[1] - 0.25, (forgetting, remembering)  # the gain is memory
    assert log[-1]["steps"] >= config.budget


def test_a_stopped_run_resumed_with_a_larger_budget_equals_one_straight_run(tmp_path):
    config = RL2Config(budget=256, hidden=8, trials_per_update=32, minibatches=2)
    straight, _ = train_rl2(TwoArmedBandit(), config, tmp_path / "straight", progress=False)
    train_rl2(TwoArmedBandit(), RL2Config(budget=128, hidden=8, trials_per_update=32, minibatches=2),
              tmp_path / "resumed", progress=False)
    resumed, log = train_rl2(TwoArmedBandit(), config, tmp_path / "resumed", progress=False)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    assert [row["steps"] for row in log] == [128, 256]
    assert (tmp_path / "resumed" / "log.csv").read_text().count("\n") == 3
