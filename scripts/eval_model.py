"""Prediction error of dynamics models on held-out tasks: non-adaptive vs. meta-learned prior vs. adapted.

    python -m scripts.eval_model --adaptive runs/ant-grbal/checkpoint.pt --baseline runs/ant-mb/checkpoint.pt

Collects fresh episodes on the robot's test tasks (and, for context, its training tasks) with the
exploration policy used for training data, seeded, then for every window of k past and H future
transitions inside one task reports the 1-step and H-step open-loop error of
  (a) the non-adaptive model, (b) the meta-learned prior θ*, (c) θ* adapted on the k preceding transitions.
Errors are mean squared errors in units of the per-dimension spread of one-step state changes on the
training tasks' evaluation data (one scale for every model and both splits; floored at 5% of the
dimension's state spread, so nearly constant dimensions do not dominate), mean over windows ± standard error.
"""

from __future__ import annotations

import argparse
import os
import platform

import numpy as np
import torch

import robots
from controllers.collection import collection_policy
from mbmeta.data import TransitionStore, Windows, WindowSampler
from mbmeta.grbal import collect, episode_jobs, load_model
from mbmeta.maml import adapt
from mbmeta.model import DynamicsModel, Params


def collect_split(robot: str, split: str, episodes: int, episode_length: int, seed: int) -> TransitionStore:
    """Fresh episodes of the exploration policy on `episodes` tasks drawn from `split`."""
    env = robots.make(robot, episode_length=episode_length)
    rng = np.random.default_rng(seed)
    store = TransitionStore(env.observation_space.shape[0], env.action_space.shape[0])
    jobs = episode_jobs(robot, episode_length, 0, 0, env.sample_tasks(episodes, split, rng), rng)
    collect(jobs, collection_policy, store=store)  # iteration 0: the exploration policy
    return store


def open_loop(model: DynamicsModel, params: Params, windows: Windows, batched_params: bool) -> torch.Tensor:
    """Predicted states (B, H, ds) rolled out from each window's first future state on its actions."""
    def step(p: Params, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return model.predict(obs, act, p)

    predict = torch.vmap(step) if batched_params else step
    state, states = windows.future_obs[:, 0], []
    for h in range(windows.future_act.shape[1]):
        state = predict(params, state, windows.future_act[:, h])
        states.append(state)
    return torch.stack(states, dim=1)


def errors(model: DynamicsModel, windows: Windows, scale: torch.Tensor, adapted: bool,
           step_sizes: Params | None = None, inner_steps: int = 1) -> dict[str, tuple[float, float]]:
    params: Params = model.prior()
    if adapted:
        params = torch.vmap(lambda o, a, n: adapt(model, model.prior(), step_sizes, o, a, n, inner_steps,
                                                  first_order=True))(windows.past_obs, windows.past_act,
                                                                     windows.past_next)
    with torch.no_grad():
        pred = open_loop(model, params, windows, batched_params=adapted)
    sq = (((pred - windows.future_next) / scale) ** 2).mean(-1)  # (B, H)

    def mean_se(x: torch.Tensor) -> tuple[float, float]:
        return float(x.mean()), float(x.std() / np.sqrt(len(x)))

    return {"1-step": mean_se(sq[:, 0]), f"{sq.shape[1]}-step": mean_se(sq[:, -1])}


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    example = ("example:\n  mbmeta eval-model --adaptive runs/ant_grbal/checkpoint.pt "
               "--baseline runs/ant_mb/checkpoint.pt")
    parser = argparse.ArgumentParser(prog=prog, description=__doc__, epilog=example,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adaptive", required=True, help="GrBAL checkpoint (meta-learned prior)")
    parser.add_argument("--baseline", required=True, help="non-adaptive (MB) checkpoint")
    parser.add_argument("--episodes", type=int, default=40)
    parser.add_argument("--episode-length", type=int, default=200)
    parser.add_argument("--horizon", type=int, default=10)
    parser.add_argument("--max-windows", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=1000)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    meta, step_sizes, config = load_model(args.adaptive)
    baseline, _, base_config = load_model(args.baseline)
    if base_config.robot != config.robot:
        raise ValueError(f"the checkpoints are for different robots: {config.robot} and {base_config.robot}")
    k = config.meta.k
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}; robot {config.robot}; "
          f"{args.episodes} episodes per split, seed {args.seed}; k={k}, H={args.horizon}")
    print(f"adaptive: {args.adaptive}; baseline: {args.baseline}\n")
    rng = np.random.default_rng(args.seed)
    stores = {split: collect_split(config.robot, split, args.episodes, args.episode_length, args.seed)
              for split in ("train", "test")}
    train = stores["train"]
    spread = np.maximum((train.next_obs - train.obs).std(0), 0.05 * train.obs.std(0)) + 1e-6
    scale = torch.as_tensor(spread, dtype=torch.float32)
    for split in ("test", "train"):
        store = stores[split]
        sampler = WindowSampler(store, k, args.horizon)
        starts = np.concatenate([np.arange(a, b - k - args.horizon + 1) for a, b, _ in store.segments
                                 if b - a >= k + args.horizon])
        starts = np.sort(rng.choice(starts, size=min(len(starts), args.max_windows), replace=False))
        windows = sampler.windows_at(starts)
        rows = [("(a) non-adaptive model", errors(baseline, windows, scale, adapted=False)),
                ("(b) meta-learned prior θ*", errors(meta, windows, scale, adapted=False)),
                (f"(c) θ* adapted on the {k} preceding transitions",
                 errors(meta, windows, scale, adapted=True, step_sizes=step_sizes,
                        inner_steps=config.meta.inner_steps))]
        tasks = sorted(set(store.task_names))
        shown = ", ".join(tasks[:4]) + (f", ... ({len(tasks)} tasks)" if len(tasks) > 4 else "")
        print(f"{split} tasks {shown}: {len(starts)} windows from {store.n_episodes} episodes")
        keys = list(rows[0][1])
        print("| model | " + " | ".join(f"{key} error" for key in keys) + " |")
        print("|---|" + "---|" * len(keys))
        for name, result in rows:
            print(f"| {name} | " + " | ".join(f"{m:.4f} ± {se:.4f}" for m, se in result.values()) + " |")
        print()
    return 0


if __name__ == "__main__":
    main()
