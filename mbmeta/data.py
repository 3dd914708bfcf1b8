"""Experience: a growing store of transitions with task and episode labels, and window sampling.

GrBAL learns from *windows*: k consecutive past transitions that adapt the model, followed by K
future transitions that score the adapted model. A window lies within one episode and, unless
asked otherwise, within one stretch of constant task (a leg breaking mid-episode ends a stretch).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from mbmeta.checkpoint import atomic_write


class TransitionStore:
    """Transitions (s, a, s') labelled with task and episode; grows by doubling, saves to .npz."""

    def __init__(self, obs_dim: int, act_dim: int, capacity: int = 4096) -> None:
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self._obs = np.empty((capacity, obs_dim))
        self._act = np.empty((capacity, act_dim))
        self._next = np.empty((capacity, obs_dim))
        self._task = np.empty(capacity, dtype=np.int64)
        self._episode = np.empty(capacity, dtype=np.int64)
        self.task_names: list[str] = []
        self.n = 0
        self.n_episodes = 0
        # Stretches of one episode with one task: (start, end, task code), end exclusive.
        self.segments: list[tuple[int, int, int]] = []

    def __len__(self) -> int:
        return self.n

    def add_episode(self, observations: np.ndarray, actions: np.ndarray, tasks: Sequence[str]) -> None:
        """Append one episode: observations (T+1, ds), actions (T, da), the task in force at each step."""
        T = len(actions)
        if observations.shape != (T + 1, self.obs_dim) or actions.shape != (T, self.act_dim) or len(tasks) != T:
            raise ValueError(f"episode shapes disagree: observations {observations.shape} (want ({T + 1}, "
                             f"{self.obs_dim})), actions {actions.shape} (want ({T}, {self.act_dim})), "
                             f"{len(tasks)} task labels (want {T})")
        if T == 0:
            return
        self._reserve(self.n + T)
        codes = np.array([self._code(t) for t in tasks])
        sl = slice(self.n, self.n + T)
        self._obs[sl], self._act[sl], self._next[sl] = observations[:-1], actions, observations[1:]
        self._task[sl], self._episode[sl] = codes, self.n_episodes
        change = np.flatnonzero(np.diff(codes)) + 1
        bounds = [0, *change.tolist(), T]
        pairs = zip(bounds[:-1], bounds[1:], strict=True)
        self.segments += [(self.n + a, self.n + b, int(codes[a])) for a, b in pairs]
        self.n += T
        self.n_episodes += 1

    def truncate(self, n: int) -> None:
        """Drop everything after the first `n` transitions (an episode boundary), e.g. to match a checkpoint."""
        if n > self.n or (n < self.n and n not in {start for start, _, _ in self.segments}):
            raise ValueError(f"can only truncate to an episode boundary at or below {self.n}, got {n}")
        self.segments = [seg for seg in self.segments if seg[1] <= n]
        self.n = n
        self.n_episodes = int(self._episode[n - 1]) + 1 if n else 0

    def _code(self, task: str) -> int:
        if task not in self.task_names:
            self.task_names.append(task)
        return self.task_names.index(task)

    def _reserve(self, size: int) -> None:
        capacity = len(self._obs)
        if size <= capacity:
            return
        while capacity < size:
            capacity *= 2
        for name in ("_obs", "_act", "_next", "_task", "_episode"):
            old = getattr(self, name)
            new = np.empty((capacity, *old.shape[1:]), dtype=old.dtype)
            new[: self.n] = old[: self.n]
            setattr(self, name, new)

    # Views of the filled part.
    @property
    def obs(self) -> np.ndarray:
        return self._obs[: self.n]

    @property
    def actions(self) -> np.ndarray:
        return self._act[: self.n]

    @property
    def next_obs(self) -> np.ndarray:
        return self._next[: self.n]

    @property
    def task_codes(self) -> np.ndarray:
        return self._task[: self.n]

    @property
    def episodes(self) -> np.ndarray:
        return self._episode[: self.n]

    def save(self, path: str | Path) -> None:
        """Write atomically: a crash mid-save leaves any earlier file intact."""
        atomic_write(path, lambda f: np.savez(
            f, obs=self.obs, actions=self.actions, next_obs=self.next_obs, tasks=self.task_codes,
            episodes=self.episodes, task_names=np.array(self.task_names, dtype=str),
            segments=np.array(self.segments, dtype=np.int64).reshape(-1, 3)))

    @classmethod
    def load(cls, path: str | Path) -> TransitionStore:
        with np.load(path) as z:
            store = cls(z["obs"].shape[1], z["actions"].shape[1], capacity=max(1, len(z["obs"])))
            store.n = len(z["obs"])
            store._obs[: store.n], store._act[: store.n], store._next[: store.n] = z["obs"], z["actions"], z["next_obs"]
            store._task[: store.n], store._episode[: store.n] = z["tasks"], z["episodes"]
            store.task_names = z["task_names"].tolist()
            store.segments = [tuple(int(v) for v in row) for row in z["segments"]]
            store.n_episodes = int(store._episode[: store.n].max()) + 1 if store.n else 0
        return store


@dataclasses.dataclass
class Windows:
    """A batch of B windows: k past transitions to adapt on, K future ones to score (torch, float32)."""

    past_obs: torch.Tensor  # (B, k, ds)
    past_act: torch.Tensor  # (B, k, da)
    past_next: torch.Tensor  # (B, k, ds)
    future_obs: torch.Tensor  # (B, K, ds)
    future_act: torch.Tensor  # (B, K, da)
    future_next: torch.Tensor  # (B, K, ds)


class WindowSampler:
    """Draws windows of k + K consecutive transitions, tasks first (uniformly), then a window in the task."""

    def __init__(self, store: TransitionStore, k: int, K: int, cross_task_changes: bool = False,
                 holdout_every: int = 0, holdout: bool = False) -> None:
        """With `holdout_every = n > 0`, every n-th episode (by its index in the store) is held out: this
        sampler draws only from those (`holdout=True`, a validation set) or only from the others."""
        if k < 1 or K < 1:
            raise ValueError(f"window sizes must be positive, got k={k}, K={K}")
        self.store, self.k, self.K, self.cross = store, k, K, cross_task_changes
        self.holdout_every, self.holdout = holdout_every, holdout
        self._indexed_n = -1
        self._starts: dict[int, np.ndarray] = {}

    def _index(self) -> None:
        if self._indexed_n == self.store.n:
            return
        length = self.k + self.K
        spans = self._episode_spans() if self.cross else self.store.segments
        starts: dict[int, list[np.ndarray]] = {}
        for start, end, task in spans:
            if self.holdout_every and (self.store.episodes[start] % self.holdout_every == 0) != self.holdout:
                continue
            if end - start >= length:
                starts.setdefault(task, []).append(np.arange(start, end - length + 1))
        self._starts = {task: np.concatenate(s) for task, s in starts.items()}
        self._indexed_n = self.store.n

    def _episode_spans(self) -> list[tuple[int, int, int]]:
        episodes = self.store.episodes
        bounds = [0, *(np.flatnonzero(np.diff(episodes)) + 1).tolist(), self.store.n]
        return [(a, b, int(self.store.task_codes[a])) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    def num_windows(self) -> int:
        self._index()
        return sum(len(s) for s in self._starts.values())

    def sample(self, batch_size: int, rng: np.random.Generator) -> Windows:
        self._index()
        if not self._starts:
            raise ValueError(f"no stretch of experience is long enough for a window of k + K = {self.k + self.K} "
                             f"transitions; collect longer episodes or shrink the window")
        tasks = list(self._starts)
        chosen = rng.choice(len(tasks), size=batch_size, replace=batch_size > len(tasks))
        starts = np.array([rng.choice(self._starts[tasks[i]]) for i in chosen])
        return self.windows_at(starts)

    def windows_at(self, starts: np.ndarray) -> Windows:
        """The windows that begin at the given transition indices."""
        idx = starts[:, None] + np.arange(self.k + self.K)
        s = self.store
        t = lambda a: torch.as_tensor(a[idx], dtype=torch.float32)  # noqa: E731
        obs, act, nxt = t(s.obs), t(s.actions), t(s.next_obs)
        k = self.k
        return Windows(obs[:, :k], act[:, :k], nxt[:, :k], obs[:, k:], act[:, k:], nxt[:, k:])
