"""Closed-loop episodes: one function that runs any agent on any robot and records what happened."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from robots.base import RobotEnv


class Agent(Protocol):
    """What `rollout` needs of a controller (mbmeta's `Controller` class satisfies it)."""

    def reset(self, obs: np.ndarray, new_task: bool = True) -> None: ...

    def act(self, obs: np.ndarray) -> np.ndarray: ...

    def observe(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray,
                done: bool) -> None: ...


@dataclasses.dataclass
class Episode:
    """One episode: T transitions, with the task in force at each step."""

    observations: np.ndarray  # (T + 1, obs_dim)
    actions: np.ndarray  # (T, act_dim)
    rewards: np.ndarray  # (T,)
    tasks: list[str]  # (T,) name of the task whose dynamics produced each transition
    terminated: bool
    infos: list[dict[str, Any]]  # (T,) what `env.step` reported after each transition
    start_info: dict[str, Any] = dataclasses.field(default_factory=dict)  # what `env.reset` reported

    @property
    def length(self) -> int:
        return len(self.actions)

    @property
    def total_reward(self) -> float:
        return float(self.rewards.sum())


def rollout(env: RobotEnv, agent: Agent, seed: int | None = None, max_steps: int | None = None,
            new_task: bool = True, on_step: Callable[[int, dict[str, Any]], None] | None = None) -> Episode:
    """Run one episode of `agent` on `env` from `env.reset(seed=seed)`; `on_step(step, info)` is called
    after every step (a progress bar, a live metric)."""
    obs, start_info = env.reset(seed=seed)
    agent.reset(obs, new_task=new_task)
    observations, actions, rewards, tasks, infos = [obs], [], [], [], []
    terminated = False
    limit = max_steps if max_steps is not None else env.episode_length
    for _ in range(limit):
        action = agent.act(obs)
        next_obs, reward, terminated, truncated, info = env.step(action)
        agent.observe(obs, action, reward, next_obs, terminated or truncated)
        observations.append(next_obs)
        actions.append(np.asarray(action, dtype=np.float64))
        rewards.append(reward)
        tasks.append(info["task"])
        infos.append(info)
        obs = next_obs
        if on_step is not None:
            on_step(len(actions), info)
        if terminated or truncated:
            break
    return Episode(np.array(observations), np.array(actions).reshape(len(actions), -1), np.array(rewards),
                   tasks, terminated, infos, start_info)
