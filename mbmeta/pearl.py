"""PEARL (Rakelly, Zhou, Quillen, Finn, Levine, ICML 2019): off-policy meta-RL with a probabilistic context.

An encoder maps each transition (s, a, r, s') of a task to a Gaussian factor over a latent z; the
posterior q(z|c) is the product of the factors, so it narrows as context accumulates. Soft
actor-critic acts and learns on (s, z). The critic's loss, plus KL(q(z|c) ‖ N(0, I)) weighted by
`kl_weight`, trains the encoder: z comes to hold what the Q function needs to know about the task.

Differences from the original code, and why:
- The critic is SAC's twin Q networks with target networks and a learned entropy temperature
  (Haarnoja et al. 2018b) instead of the original Q + V + target V with a fixed temperature: it
  removes one network and the per-robot tuning of the temperature through `reward_scale`.
- The context holds s' as well as (s, a, r): our tasks change the dynamics (a broken leg, a payload),
  which only s' reveals; the original left s' out for its reward-varying tasks.

Data follow the original: a fixed set of training tasks, each with its own replay buffer (for the
actor-critic) and context buffer (for the encoder). Each iteration, for a few sampled tasks, the
context buffer is refilled with `prior_steps` collected with z from the prior, then `posterior_steps`
more go to the replay buffer only, collected with z from the posterior of that context.

Works with any environment with gymnasium's reset/step, a Box action space and the task interface of
`robots` (`sample_tasks(n, split, rng)`, `set_task(task)`).
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
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

CHECKPOINT_FORMAT = "mbmeta.pearl/1"


@dataclasses.dataclass
class PEARLConfig(RLRunConfig):
    """Defaults are the original's (configs/default.py of the PEARL code) unless noted."""

    latent_dim: int = 5
    kl_weight: float = 0.1
    hidden: int = 300
    layers: int = 3
    encoder_hidden: int = 200
    train_tasks: int = 100
    initial_steps: int = 2000  # per training task, z from the prior, before the first update
    tasks_per_iteration: int = 5
    prior_steps: int = 400
    posterior_steps: int = 400  # replay buffer only ("num_extra_rl_steps_posterior")
    updates_per_iteration: int = 2000
    meta_batch: int = 16  # tasks per gradient step
    batch_size: int = 256  # transitions per task for the actor-critic
    context_size: int = 64  # transitions per task for the encoder
    gamma: float = 0.99
    tau: float = 0.005
    lr: float = 3e-4
    reward_scale: float = 5.0
    alpha: float | None = None  # entropy temperature; None: learned, aiming at entropy -|A| (not in the original)
    buffer_size: int = 1_000_000  # transitions per training task

    RANGES: ClassVar[dict[str, Range]] = {
        **RLRunConfig.RANGES, "latent_dim": at_least(1), "kl_weight": NON_NEGATIVE, "hidden": at_least(1),
        "layers": at_least(1), "encoder_hidden": at_least(1), "train_tasks": at_least(1),
        "initial_steps": NON_NEGATIVE, "tasks_per_iteration": at_least(1),
        "prior_steps": at_least(1),  # the encoder learns from that context
        "posterior_steps": NON_NEGATIVE, "updates_per_iteration": NON_NEGATIVE, "meta_batch": at_least(1),
        "batch_size": at_least(1), "context_size": at_least(1), "gamma": FRACTION, "tau": Range(0, 1, low_open=True),
        "lr": POSITIVE, "reward_scale": POSITIVE, "alpha": POSITIVE, "buffer_size": at_least(1)}


def mlp(inputs: int, outputs: int, hidden: int, layers: int) -> nn.Sequential:
    sizes = [inputs] + [hidden] * layers
    blocks = [m for a, b in zip(sizes, sizes[1:], strict=False) for m in (nn.Linear(a, b), nn.ReLU())]
    return nn.Sequential(*blocks, nn.Linear(sizes[-1], outputs))


class PEARLAgent(nn.Module):
    """Encoder, tanh-Gaussian policy and twin Q networks. Actions inside the networks are in [-1, 1];
    `to_env` and `from_env` map them to and from the robot's action box."""

    def __init__(self, obs_dim: int, low: np.ndarray, high: np.ndarray, config: PEARLConfig) -> None:
        super().__init__()
        act_dim, latent = len(low), config.latent_dim
        self.obs_dim, self.act_dim, self.latent_dim = obs_dim, act_dim, latent
        self.context_dim = 2 * obs_dim + act_dim + 1  # one transition (s, a, r, s')
        self.context_size = config.context_size  # transitions per task it was trained on
        self.register_buffer("low", torch.as_tensor(low, dtype=torch.float32))
        self.register_buffer("high", torch.as_tensor(high, dtype=torch.float32))
        self.encoder = mlp(self.context_dim, 2 * latent, config.encoder_hidden, 3)
        self.policy = mlp(obs_dim + latent, 2 * act_dim, config.hidden, config.layers)
        self.q1 = mlp(obs_dim + act_dim + latent, 1, config.hidden, config.layers)
        self.q2 = mlp(obs_dim + act_dim + latent, 1, config.hidden, config.layers)

    def to_env(self, action: torch.Tensor) -> torch.Tensor:
        return self.low + (action + 1) * (self.high - self.low) / 2

    def from_env(self, action: torch.Tensor) -> torch.Tensor:
        return 2 * (action - self.low) / (self.high - self.low) - 1

    def posterior(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance of q(z|c) for context (..., C, 2·obs + act + 1); N(0, I) when C = 0."""
        if context.shape[-2] == 0:
            shape = (*context.shape[:-2], self.latent_dim)
            return torch.zeros(shape), torch.ones(shape)
        mu, raw = self.encoder(context).chunk(2, dim=-1)
        var = F.softplus(raw).clamp_min(1e-7)
        post_var = 1.0 / (1.0 / var).sum(-2)
        return post_var * (mu / var).sum(-2), post_var

    def pi(self, obs: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A sampled action in [-1, 1], its log-probability, and the deterministic (mean) action."""
        mean, log_std = self.policy(torch.cat([obs, z], -1)).chunk(2, dim=-1)
        std = log_std.clamp(-20, 2).exp()
        u = mean + std * torch.randn_like(mean)
        action = torch.tanh(u)
        logp = (torch.distributions.Normal(mean, std).log_prob(u) - torch.log(1 - action**2 + 1e-6)).sum(-1)
        return action, logp, torch.tanh(mean)

    def q(self, obs: torch.Tensor, action: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([obs, action, z], -1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)


def context_rows(obs: np.ndarray, action: np.ndarray, reward: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
    """Encoder inputs (s, a, r, s'), with a in [-1, 1] (as the agent's `from_env` maps it)."""
    return np.concatenate([obs, action, np.asarray(reward)[..., None], next_obs], -1)


class TaskBuffer:
    """Transitions of one task, oldest overwritten first once `capacity` is reached; actions stored in
    [-1, 1]. Storage grows as data arrive, so a large capacity costs nothing until it is used."""

    def __init__(self, obs_dim: int, act_dim: int, capacity: int) -> None:
        self.shapes = {"obs": (obs_dim,), "act": (act_dim,), "rew": (), "next_obs": (obs_dim,), "term": ()}
        self.capacity, self.size, self.next = capacity, 0, 0
        self.data = self._allocate(min(capacity, 1024))

    def _allocate(self, n: int) -> dict[str, np.ndarray]:
        return {key: np.zeros((n, *shape), np.float32) for key, shape in self.shapes.items()}

    def add(self, **transition: np.ndarray) -> None:
        if self.next == len(self.data["rew"]) < self.capacity:  # full but allowed to grow
            grown = self._allocate(min(2 * self.next, self.capacity))
            for key, value in self.data.items():
                grown[key][: self.next] = value
            self.data = grown
        for key, value in transition.items():
            self.data[key][self.next] = value
        self.next = (self.next + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def clear(self) -> None:
        self.size = self.next = 0

    def sample(self, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        index = rng.integers(self.size, size=n)
        return {key: value[index] for key, value in self.data.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"data": {k: torch.from_numpy(v[: self.size].copy()) for k, v in self.data.items()}, "next": self.next}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.size, self.next = len(state["data"]["rew"]), state["next"]
        self.data = self._allocate(max(self.size, min(self.capacity, 1024)))
        for key, value in state["data"].items():
            self.data[key][: self.size] = value.numpy()


def sample_context(buffer: TaskBuffer, n: int, rng: np.random.Generator) -> np.ndarray:
    """n encoder rows drawn from `buffer`."""
    sample = buffer.sample(n, rng)
    return context_rows(sample["obs"], sample["act"], sample["rew"], sample["next_obs"])


def collect(env: Any, agent: PEARLAgent, task: Any, steps: int, rng: np.random.Generator,
            buffers: list[TaskBuffer], context: np.ndarray | None = None) -> tuple[int, list[float]]:
    """Whole episodes on `task` until `steps` transitions, into every buffer in `buffers`; z is drawn
    once per episode from the posterior of the `context` rows (from the prior without them), as in
    the original. Returns the number of transitions and the episode returns."""
    env.set_task(task)
    if context is None:
        context = np.zeros((0, agent.context_dim), np.float32)
    with torch.no_grad():
        mean, var = agent.posterior(torch.as_tensor(context))
    n, returns = 0, []
    while n < steps:
        z = mean + var.sqrt() * torch.randn(mean.shape)
        obs, _ = env.reset(seed=int(rng.integers(2**31)))
        done, total = False, 0.0
        while not done:
            with torch.no_grad():
                action, _, _ = agent.pi(torch.as_tensor(obs, dtype=torch.float32), z)
            next_obs, reward, terminated, truncated, _ = env.step(agent.to_env(action).numpy().astype(np.float64))
            for buffer in buffers:
                buffer.add(obs=obs, act=action.numpy(), rew=reward, next_obs=next_obs, term=float(terminated))
            obs, done, total, n = next_obs, terminated or truncated, total + reward, n + 1
        returns.append(total)
    return n, returns


class SAC:
    """The actor-critic update with the encoder in the critic's graph, batched over tasks."""

    def __init__(self, agent: PEARLAgent, config: PEARLConfig) -> None:
        self.agent, self.config = agent, config
        self.target = copy.deepcopy(agent).requires_grad_(False)
        self.log_alpha = torch.zeros((), requires_grad=config.alpha is None)
        if config.alpha is not None:
            self.log_alpha.data.fill_(float(np.log(config.alpha)))
        critic = [*agent.q1.parameters(), *agent.q2.parameters(), *agent.encoder.parameters()]
        self.optimizers = {"critic": torch.optim.Adam(critic, lr=config.lr),
                           "policy": torch.optim.Adam(agent.policy.parameters(), lr=config.lr),
                           "alpha": torch.optim.Adam([self.log_alpha], lr=config.lr)}

    def update(self, batch: dict[str, torch.Tensor], context: torch.Tensor) -> dict[str, float]:
        """One gradient step; batch entries are (tasks, B, ...), context is (tasks, C, ...)."""
        agent, c = self.agent, self.config
        mean, var = agent.posterior(context)
        z = (mean + var.sqrt() * torch.randn_like(mean))[:, None].expand(-1, batch["rew"].shape[1], -1)
        kl = 0.5 * (var + mean**2 - 1 - var.log()).sum(-1).mean()
        alpha = self.log_alpha.exp().detach()
        with torch.no_grad():
            next_action, next_logp, _ = agent.pi(batch["next_obs"], z)
            target_q = torch.min(*self.target.q(batch["next_obs"], next_action, z)) - alpha * next_logp
            y = c.reward_scale * batch["rew"] + c.gamma * (1 - batch["term"]) * target_q
        q1, q2 = agent.q(batch["obs"], batch["act"], z)
        critic_loss = F.mse_loss(q1, y) + F.mse_loss(q2, y) + c.kl_weight * kl
        self._step("critic", critic_loss)

        z = z.detach()  # the policy's loss does not train the encoder
        action, logp, _ = agent.pi(batch["obs"], z)
        policy_loss = (alpha * logp - torch.min(*agent.q(batch["obs"], action, z))).mean()
        self._step("policy", policy_loss)
        if c.alpha is None:
            self._step("alpha", -(self.log_alpha * (logp.detach() - agent.act_dim)).mean())
        with torch.no_grad():
            for p, t in zip(agent.parameters(), self.target.parameters(), strict=True):
                t.lerp_(p, c.tau)
        return {"critic_loss": critic_loss.item(), "policy_loss": policy_loss.item(), "kl": kl.item(),
                "alpha": float(alpha)}

    def _step(self, name: str, loss: torch.Tensor) -> None:
        self.optimizers[name].zero_grad()
        loss.backward()
        self.optimizers[name].step()

    def state_dict(self) -> dict[str, Any]:
        return {"target": self.target.state_dict(), "log_alpha": self.log_alpha.detach().clone(),
                "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.target.load_state_dict(state["target"])
        self.log_alpha.data.copy_(state["log_alpha"])
        for key, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][key])


def sample_batch(buffers: list[TaskBuffer], n: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """n transitions from each buffer, stacked to (tasks, n, ...) for the actor-critic."""
    samples = [b.sample(n, rng) for b in buffers]
    return {key: torch.as_tensor(np.stack([s[key] for s in samples])) for key in samples[0]}


def train_pearl(env: Any, config: PEARLConfig, run_dir: str | Path | None = None, resume: bool = True,
                progress: bool = True) -> tuple[PEARLAgent, list[dict[str, float]]]:
    """Train PEARL on `env`'s training tasks for `config.budget` environment steps.

    With `run_dir`, an atomic checkpoint (networks, optimisers, buffers, RNG states) and log.csv are
    written after every iteration, and a run found there (same config but for the budget) continues
    exactly where it stopped.
    """
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    obs_dim = int(np.prod(env.observation_space.shape))
    agent = PEARLAgent(obs_dim, env.action_space.low, env.action_space.high, config)
    sac = SAC(agent, config)
    tasks = env.sample_tasks(config.train_tasks, "train", rng)
    replay = [TaskBuffer(obs_dim, agent.act_dim, config.buffer_size) for _ in tasks]
    context_capacity = max(config.initial_steps, config.prior_steps) + config.episode_length  # one collection
    contexts = [TaskBuffer(obs_dim, agent.act_dim, context_capacity) for _ in tasks]
    log: list[dict[str, float]] = []
    steps, iteration = 0, 0
    run_log = RunLog(run_dir) if run_dir is not None else None
    path = Path(run_dir) / "checkpoint.pt" if run_dir is not None else None
    if path is not None and resume and path.exists():
        state = resume_run(path, to_dict(config), rng, "a PEARL")
        agent.load_state_dict(state["agent"])
        sac.load_state_dict(state["sac"])
        for buffer, saved in zip(replay + contexts, state["replay"] + state["contexts"], strict=True):
            buffer.load_state_dict(saved)
        log, steps, iteration = state["log"], state["steps"], state["iteration"]
    bar = tqdm(total=config.budget, initial=steps, desc="PEARL", unit="step", disable=not progress)
    while steps < config.budget:
        prior_returns, posterior_returns = [], []
        chosen = range(len(tasks)) if iteration == 0 else rng.choice(len(tasks), config.tasks_per_iteration)
        for i in chosen:
            contexts[i].clear()
            first = config.initial_steps if iteration == 0 else config.prior_steps
            n, returns = collect(env, agent, tasks[i], first, rng, [replay[i], contexts[i]])
            steps += n
            prior_returns += returns
            if iteration > 0 and config.posterior_steps > 0:
                n, returns = collect(env, agent, tasks[i], config.posterior_steps, rng, [replay[i]],
                                     sample_context(contexts[i], config.context_size, rng))
                steps += n
                posterior_returns += returns
        stats: dict[str, float] = {}
        for _ in range(config.updates_per_iteration):
            batch_tasks = rng.choice(len(tasks), config.meta_batch)
            context = np.stack([sample_context(contexts[i], config.context_size, rng) for i in batch_tasks])
            stats = sac.update(sample_batch([replay[i] for i in batch_tasks], config.batch_size, rng),
                               torch.as_tensor(context))
        iteration += 1
        bar.update(min(steps, config.budget) - bar.n)
        log.append({"steps": steps, "iteration": iteration, "return_prior": float(np.mean(prior_returns)),
                    "return_posterior": float(np.mean(posterior_returns)) if posterior_returns else float("nan"),
                    **stats})
        bar.set_postfix(ret=f"{log[-1]['return_prior']:.1f} / {log[-1]['return_posterior']:.1f}")
        if path is not None:
            save_checkpoint(path, {
                "format": CHECKPOINT_FORMAT, "config": to_dict(config), "agent": agent.state_dict(),
                "sac": sac.state_dict(), "replay": [b.state_dict() for b in replay],
                "contexts": [b.state_dict() for b in contexts], "steps": steps, "iteration": iteration, "log": log,
                "rng": rng_states(rng), "trained_on": provenance(), "obs_dim": obs_dim,
                "low": env.action_space.low.tolist(), "high": env.action_space.high.tolist()})
            run_log.write(log)
    bar.close()
    return agent, log


def load_pearl(path: str | Path) -> PEARLAgent:
    """The agent saved by `train_pearl(..., run_dir)`, for acting."""
    state = load_checkpoint(path, CHECKPOINT_FORMAT, "a PEARL agent")
    config = from_dict(PEARLConfig, state["config"], where=str(path))
    agent = PEARLAgent(state["obs_dim"], np.array(state["low"]), np.array(state["high"]), config)
    missing, unexpected = agent.load_state_dict(state["agent"], strict=False)
    if unexpected or any(not key.startswith(("q1.", "q2.")) for key in missing):  # exports drop the critic
        raise ValueError(f"{path}: the PEARL agent's parameters do not match its config ({missing + unexpected})")
    return agent.requires_grad_(False)


def export_pearl(checkpoint: str | Path, dest: str | Path) -> Path:
    """What acting needs (encoder and policy), without the critic, replay buffers or optimiser state."""
    def actor(state: dict[str, Any]) -> dict[str, Any]:
        return {"agent": {k: v for k, v in state["agent"].items() if not k.startswith(("q1.", "q2."))}}

    return export_checkpoint(checkpoint, dest, CHECKPOINT_FORMAT, "a PEARL agent",
                             ["config", "obs_dim", "low", "high", "steps", "log"], actor)
