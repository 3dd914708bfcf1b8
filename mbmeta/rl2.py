"""RL² (Duan et al., 2016; Wang et al., 2016): a recurrent policy trained with PPO over trials.

A trial is several episodes of one task. The GRU sees (observation, previous action, previous
reward, episode-start flag) and its hidden state runs through the whole trial, so what it learned
in the first episode can be used in the next: the recurrent dynamics are the learning algorithm.
The RL objective is the return of the whole trial (no discount reset between its episodes).

Works with any environment that has gymnasium's reset/step, Box or Discrete actions, and the task
interface of `robots` (`sample_tasks(n, split, rng)`, `set_task(task)`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from mbmeta.checkpoint import (
    RunLog,
    export_checkpoint,
    load_checkpoint,
    provenance,
    resume_run,
    rng_states,
    save_checkpoint,
)
from mbmeta.config import FRACTION, NON_NEGATIVE, POSITIVE, Range, RLRunConfig, at_least, from_dict, to_dict

CHECKPOINT_FORMAT = "mbmeta.rl2/1"


@dataclasses.dataclass
class RL2Config(RLRunConfig):
    episodes_per_trial: int = 2
    trials_per_update: int = 32
    hidden: int = 128
    lr: float = 3e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip: float = 0.2
    entropy_coef: float = 0.01
    value_coef: float = 0.5
    epochs: int = 4
    minibatches: int = 4
    max_grad_norm: float = 0.5

    RANGES: ClassVar[dict[str, Range]] = {
        **RLRunConfig.RANGES, "episodes_per_trial": at_least(1), "trials_per_update": at_least(1),
        "hidden": at_least(1), "lr": POSITIVE, "gamma": FRACTION, "gae_lambda": FRACTION, "clip": POSITIVE,
        "entropy_coef": NON_NEGATIVE, "value_coef": NON_NEGATIVE, "epochs": at_least(1), "minibatches": at_least(1),
        "max_grad_norm": POSITIVE}


class RL2Policy(nn.Module):
    """GRU actor-critic; Gaussian actions (tanh-free, clipped by the caller) or categorical ones."""

    def __init__(self, obs_dim: int, action_space: gym.Space, hidden: int) -> None:
        super().__init__()
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        self.act_dim = int(action_space.n) if self.discrete else int(np.prod(action_space.shape))
        self.act_input = self.act_dim  # one-hot (discrete) or the action itself
        self.gru = nn.GRU(obs_dim + self.act_input + 2, hidden, batch_first=True)
        self.pi = nn.Linear(hidden, self.act_dim)
        self.v = nn.Linear(hidden, 1)
        self.log_std = nn.Parameter(torch.full((self.act_dim,), -0.5)) if not self.discrete else None
        self.hidden = hidden

    def forward(self, inputs: torch.Tensor, h: torch.Tensor | None = None) -> tuple[Any, torch.Tensor, torch.Tensor]:
        """inputs (B, T, in) -> (action distribution, values (B, T), last hidden (1, B, H))."""
        out, h = self.gru(inputs, h)
        logits = self.pi(out)
        if self.discrete:
            dist = torch.distributions.Categorical(logits=logits)
        else:
            dist = torch.distributions.Independent(torch.distributions.Normal(logits, self.log_std.exp()), 1)
        return dist, self.v(out).squeeze(-1), h

    def encode_action(self, action: np.ndarray | int) -> np.ndarray:
        if self.discrete:
            return np.eye(self.act_dim)[int(action)]
        return np.asarray(action, dtype=np.float64).reshape(self.act_dim)


def step_input(obs: np.ndarray, prev_action: np.ndarray, prev_reward: float, episode_start: bool) -> np.ndarray:
    """What the GRU sees at one step."""
    return np.concatenate([np.asarray(obs, np.float64).ravel(), prev_action, [prev_reward, float(episode_start)]])


def run_trial(env: Any, policy: RL2Policy, rng: np.random.Generator, task: Any, episodes: int,
              forget_between_episodes: bool = False) -> dict[str, Any]:
    """One trial of `episodes` episodes on `task`, the hidden state carried across them (or, as an
    ablation, zeroed at each episode start)."""
    env.set_task(task)
    inputs, actions, logps, values, rewards, episode_of = [], [], [], [], [], []
    h = None
    prev_action, prev_reward = np.zeros(policy.act_input), 0.0
    for e in range(episodes):
        obs, _ = env.reset(seed=int(rng.integers(2**31)))
        start, done = True, False
        if forget_between_episodes:
            h, prev_action, prev_reward = None, np.zeros(policy.act_input), 0.0
        while not done:
            x = step_input(obs, prev_action, prev_reward, start)
            with torch.no_grad():
                dist, value, h = policy(torch.as_tensor(x, dtype=torch.float32)[None, None], h)
                action = dist.sample()
            a = action[0, 0].numpy()
            env_action = int(a) if policy.discrete else np.clip(a, env.action_space.low, env.action_space.high)
            obs, reward, terminated, truncated, _ = env.step(env_action)
            done = terminated or truncated
            inputs.append(x)
            actions.append(a)
            logps.append(float(dist.log_prob(action)[0, 0]))
            values.append(float(value[0, 0]))
            rewards.append(float(reward))
            episode_of.append(e)
            prev_action, prev_reward, start = policy.encode_action(a), float(reward), False
    return {"inputs": np.array(inputs), "actions": np.array(actions), "logps": np.array(logps),
            "values": np.array(values), "rewards": np.array(rewards), "episode": np.array(episode_of)}


def episode_returns(trials: list[dict[str, Any]], episodes: int) -> np.ndarray:
    """Return of each episode of each trial: (trials, episodes)."""
    return np.array([[t["rewards"][t["episode"] == e].sum() for e in range(episodes)] for t in trials])


def advantages(rewards: np.ndarray, values: np.ndarray, gamma: float, lam: float) -> np.ndarray:
    """GAE over one trial, terminal at its end only."""
    adv = np.zeros_like(rewards)
    last = 0.0
    for t in reversed(range(len(rewards))):
        next_value = values[t + 1] if t + 1 < len(rewards) else 0.0
        delta = rewards[t] + gamma * next_value - values[t]
        last = delta + gamma * lam * last
        adv[t] = last
    return adv


def ppo_update(policy: RL2Policy, optimizer: torch.optim.Optimizer, trials: list[dict], config: RL2Config,
               rng: np.random.Generator) -> dict[str, float]:
    """PPO epochs over whole trials (sequences are padded to the longest trial and masked)."""
    for trial in trials:
        trial["adv"] = advantages(trial["rewards"], trial["values"], config.gamma, config.gae_lambda)
        trial["ret"] = trial["adv"] + trial["values"]
    length = max(len(t["rewards"]) for t in trials)

    def pad(key: str, dtype: torch.dtype) -> torch.Tensor:
        first = trials[0][key]
        out = np.zeros((len(trials), length, *first.shape[1:]))
        for i, t in enumerate(trials):
            out[i, : len(t[key])] = t[key]
        return torch.as_tensor(out, dtype=dtype)

    inputs, old_logp, adv, ret = pad("inputs", torch.float32), pad("logps", torch.float32), pad(
        "adv", torch.float32), pad("ret", torch.float32)
    actions = pad("actions", torch.long if policy.discrete else torch.float32)
    mask = torch.zeros(len(trials), length)
    for i, t in enumerate(trials):
        mask[i, : len(t["rewards"])] = 1.0
    valid = mask.bool()
    adv = (adv - adv[valid].mean()) / (adv[valid].std() + 1e-8)
    stats = {}
    for _ in range(config.epochs):
        order = rng.permutation(len(trials))
        for batch in np.array_split(order, config.minibatches):
            dist, values, _ = policy(inputs[batch])
            logp = dist.log_prob(actions[batch])
            m = mask[batch]
            ratio = torch.exp(logp - old_logp[batch])
            surrogate = torch.min(ratio * adv[batch], ratio.clamp(1 - config.clip, 1 + config.clip) * adv[batch])
            policy_loss = -(surrogate * m).sum() / m.sum()
            value_loss = (((values - ret[batch]) ** 2) * m).sum() / m.sum()
            entropy = (dist.entropy() * m).sum() / m.sum()
            loss = policy_loss + config.value_coef * value_loss - config.entropy_coef * entropy
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(policy.parameters(), config.max_grad_norm)
            optimizer.step()
            stats = {"policy_loss": policy_loss.item(), "value_loss": value_loss.item(), "entropy": entropy.item()}
    return stats


def train_rl2(env: Any, config: RL2Config, run_dir: str | Path | None = None, resume: bool = True,
              progress: bool = True) -> tuple[RL2Policy, list[dict[str, float]]]:
    """Train RL² on `env`'s training tasks for `config.budget` environment steps.

    With `run_dir`, an atomic checkpoint and log.csv are written after every update, and a run
    found there (same config but for the budget) continues exactly where it stopped.
    """
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    policy = RL2Policy(int(np.prod(env.observation_space.shape)), env.action_space, config.hidden)
    optimizer = torch.optim.Adam(policy.parameters(), lr=config.lr)
    log: list[dict[str, float]] = []
    steps = 0
    path = Path(run_dir) / "checkpoint.pt" if run_dir is not None else None
    run_log = RunLog(run_dir) if run_dir is not None else None
    if path is not None and resume and path.exists():
        state = resume_run(path, to_dict(config), rng, "an RL²")
        policy.load_state_dict(state["policy"])
        optimizer.load_state_dict(state["optimizer"])
        log, steps = state["log"], state["steps"]
    bar = tqdm(total=config.budget, initial=steps, desc="RL²", unit="step", disable=not progress)
    while steps < config.budget:
        tasks = env.sample_tasks(config.trials_per_update, "train", rng)
        trials = [run_trial(env, policy, rng, task, config.episodes_per_trial) for task in tasks]
        n = sum(len(t["rewards"]) for t in trials)
        steps += n
        bar.update(n)
        per_episode = episode_returns(trials, config.episodes_per_trial).mean(0)
        log.append({"steps": steps, **{f"return_episode_{e + 1}": float(r) for e, r in enumerate(per_episode)},
                    **ppo_update(policy, optimizer, trials, config, rng)})
        bar.set_postfix(ret=" / ".join(f"{r:.2f}" for r in per_episode))
        if path is not None:
            save_checkpoint(path, {
                "format": CHECKPOINT_FORMAT, "config": to_dict(config), "policy": policy.state_dict(),
                "optimizer": optimizer.state_dict(), "steps": steps, "log": log,
                "rng": rng_states(rng), "trained_on": provenance(),
                "obs_dim": int(np.prod(env.observation_space.shape)), "act_dim": policy.act_dim,
                "discrete": policy.discrete})
            run_log.write(log)
    bar.close()
    return policy, log


def load_rl2(path: str | Path) -> RL2Policy:
    """The policy saved by `train_rl2(..., run_dir)`."""
    state = load_checkpoint(path, CHECKPOINT_FORMAT, "an RL² policy")
    space = (gym.spaces.Discrete(state["act_dim"]) if state["discrete"]
             else gym.spaces.Box(-1.0, 1.0, shape=(state["act_dim"],)))
    policy = RL2Policy(state["obs_dim"], space, from_dict(RL2Config, state["config"], where=str(path)).hidden)
    policy.load_state_dict(state["policy"])
    return policy.requires_grad_(False)


def export_rl2(checkpoint: str | Path, dest: str | Path) -> Path:
    """The policy alone (no optimiser or RNG state): what `load_rl2` needs."""
    return export_checkpoint(checkpoint, dest, CHECKPOINT_FORMAT, "an RL² policy",
                             ["config", "policy", "obs_dim", "act_dim", "discrete", "steps", "log"])
