"""Planners find a known optimum, warm starts pay, and every rollout backend agrees with torch."""

import numpy as np
import pytest
import torch

from controllers.mpc import make_evaluate
from controllers.planners import PlannerConfig, colored_noise, make_planner
from controllers.rollout import CudaRollout, NumbaRollout, TorchRollout, make_rollout
from mbmeta.model import DynamicsModel, ModelConfig

GOAL = np.array([0.5, -0.3], dtype=np.float32)


def integrator(state, actions):
    """Exact dynamics s' = s + a, states (N, H+1, 2)."""
    steps = np.cumsum(actions, axis=1) + state
    return np.concatenate([np.broadcast_to(state, (len(actions), 1, 2)), steps], axis=1)


def reward(obs, act, next_obs):
    return -((next_obs - GOAL) ** 2).sum(-1)


def no_termination(next_obs):
    return np.zeros(len(next_obs), bool)


def evaluate_from(state):
    return make_evaluate(integrator, reward, no_termination, np.asarray(state, np.float32))


# The optimum from 0: move to the goal at once, then stay; its return is 0. The landscape is flat
# along (a0 + d, a1 - d) (an error d costs only d^2), so the tolerance is on the return gap, with a
# looser bound on the first action. Random shooting searches a shorter horizon (4 dimensions, not 10).
@pytest.mark.parametrize("kind, config, gap, first_action", [
    ("random", dict(horizon=2, population=4000, iterations=1), 0.05, 0.2),
    ("cem", dict(horizon=5, population=300, iterations=10, noise_beta=0.0), 0.03, 0.15),
    ("mppi", dict(horizon=5, population=300, iterations=8, temperature=0.1, mppi_std=0.3, noise_beta=0.0), 0.03, 0.15),
])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_each_planner_reaches_the_known_optimum(kind, config, gap, first_action, seed):
    planner = make_planner(PlannerConfig(kind=kind, **config), -np.ones(2), np.ones(2), seed=seed)
    plan = planner.plan(evaluate_from([0.0, 0.0]))
    assert plan.shape == (config["horizon"], 2)
    assert evaluate_from([0.0, 0.0])(plan[None])[0] >= -gap
    np.testing.assert_allclose(plan[0], GOAL, atol=first_action)


def iterations_to_reach(planner, state, target):
    planner.plan(evaluate_from(state))
    return next((i + 1 for i, best in enumerate(planner.history) if best >= target), np.inf)


@pytest.mark.parametrize("kind", ["cem", "mppi", "random"])
def test_warm_starting_reaches_a_good_plan_in_fewer_iterations(kind):
    config = PlannerConfig(kind=kind, horizon=5, population=100, iterations=8, temperature=0.01, mppi_std=0.3,
                           noise_beta=0.0)
    warm = make_planner(config, -np.ones(2), np.ones(2), seed=1)
    first = warm.plan(evaluate_from([0.0, 0.0]))
    state = first[0]  # the robot took the first action
    target = evaluate_from(state)(np.concatenate([first[1:], first[-1:]])[None])[0] - 1e-3
    cold = make_planner(config, -np.ones(2), np.ones(2), seed=1)
    assert iterations_to_reach(warm, state, target) < iterations_to_reach(cold, state, target)


def test_colored_noise_is_unit_variance_and_smoother_for_larger_beta():
    rng = np.random.default_rng(0)
    white, red = colored_noise(0.0, (2000, 30, 2), rng), colored_noise(2.0, (2000, 30, 2), rng)
    assert abs(red.std() - 1) < 0.05 and abs(white.std() - 1) < 0.05
    roughness = lambda x: np.abs(np.diff(x, axis=1)).mean()  # noqa: E731
    assert roughness(red) < 0.5 * roughness(white)


def test_terminated_rollouts_stop_earning_reward():
    def terminal(next_obs):
        return next_obs[:, 0] > 0.7  # crossing x = 0.7 ends the episode

    def alive_bonus(obs, act, next_obs):
        return np.ones(len(obs))

    evaluate = make_evaluate(integrator, alive_bonus, terminal, np.zeros(2, np.float32))
    stay, cross = np.zeros((1, 4, 2), np.float32), np.full((1, 4, 2), 0.5, np.float32)
    assert evaluate(stay)[0] == 4 and evaluate(cross)[0] == 2  # the terminal step's reward counts


@pytest.fixture(params=[(16, 16), (64, 64, 64)], ids=["2x16", "3x64"])
def model(request):
    torch.manual_seed(0)
    m = DynamicsModel(6, 2, ModelConfig(hidden=request.param))
    m.in_mean[:], m.in_std[:] = torch.randn(8) * 0.1, torch.rand(8) + 0.5
    m.delta_mean[:], m.delta_std[:] = torch.randn(6) * 0.01, torch.rand(6) * 0.1
    return m


@pytest.mark.parametrize("backend", [NumbaRollout, CudaRollout])
def test_fused_rollouts_equal_the_torch_rollout(model, backend):
    """The Numba CPU kernel and the CUDA kernel (here on Numba's CUDA simulator) match torch in float32."""
    rng = np.random.default_rng(0)
    state = rng.standard_normal(6).astype(np.float32)
    # 37: not a multiple of the CPU kernel's block; the CUDA kernel runs a block per candidate, and its
    # simulator runs each block's threads as Python threads, so 3 candidates cover it
    n = 37 if backend is NumbaRollout else 3
    actions = rng.uniform(-1, 1, (n, 4, 2)).astype(np.float32)
    expected = TorchRollout(model)(state, actions)
    np.testing.assert_allclose(backend(model)(state, actions), expected, rtol=1e-5, atol=1e-5)
    # and with adapted parameters swapped in
    phi = {n: p.detach() + 0.01 * torch.randn_like(p) for n, p in model.prior().items()}
    torch_rollout, fused = TorchRollout(model), backend(model)
    torch_rollout.set_params(phi)
    fused.set_params(phi)
    np.testing.assert_allclose(fused(state, actions), torch_rollout(state, actions), rtol=1e-5, atol=1e-5)


def test_backend_choice_and_clear_errors(model):
    assert isinstance(make_rollout("torch", model), TorchRollout)
    # auto: the fused CPU kernel for narrow models, torch for wide ones, CUDA never (no faster than the CPU
    # kernels at the default controllers' sizes on an H200, docs/gpu.md), only when asked for
    assert isinstance(make_rollout("auto", model), NumbaRollout)
    assert isinstance(make_rollout("auto", DynamicsModel(6, 2, ModelConfig(hidden=(256, 256)))), TorchRollout)
    assert isinstance(make_rollout("cuda", model), CudaRollout)  # here on Numba's CUDA simulator
    with pytest.raises(ValueError, match="unknown rollout backend 'tpu'"):
        make_rollout("tpu", model)
    ensemble = DynamicsModel(6, 2, ModelConfig(hidden=(8,), ensemble_size=2))
    assert isinstance(make_rollout("auto", ensemble), TorchRollout)
    with pytest.raises(ValueError, match="use backend='torch' for ensembles"):
        NumbaRollout(ensemble)


def test_omp_num_threads_caps_the_numba_kernel_and_leaves_torch_alone():
    """`OMP_NUM_THREADS=1` (two runs side by side) means one thread for the fused kernel too, and running
    the kernel does not raise torch's thread count (they share OpenMP)."""
    import os
    import subprocess
    import sys

    code = ("from controllers.rollout import NumbaRollout\n"  # mbmeta's import path: before numba itself
            "import numpy as np, numba, torch\n"
            "from mbmeta.model import DynamicsModel, ModelConfig\n"
            "r = NumbaRollout(DynamicsModel(6, 2, ModelConfig(hidden=(8,))))\n"
            "r(np.zeros(6, np.float32), np.zeros((40, 3, 2), np.float32))\n"
            "print(numba.get_num_threads(), torch.get_num_threads())\n")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_NUM_THREADS"} | {"OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "1"]
