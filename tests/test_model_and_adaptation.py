"""Dynamics model, MAML inner step, online adapter and its guard."""

import dataclasses

import numpy as np
import pytest
import torch

import robots
from controllers.scripted import RandomController
from mbmeta.adaptation import OnlineAdapter
from mbmeta.config import FieldError
from mbmeta.data import TransitionStore, WindowSampler
from mbmeta.grbal import load_model
from mbmeta.maml import MetaConfig, MetaTrainer, adapt
from mbmeta.model import DynamicsModel, ModelConfig
from robots.ant import AntTask
from robots.rollout import rollout
from scripts.common import SHIPPED


@pytest.fixture(scope="module")
def ant_store():
    env = robots.make("ant", episode_length=100)
    store = TransitionStore(28, 8)
    for seed, leg in enumerate([None, 0, 1, 2] * 3):
        env.set_task(AntTask(broken_leg=leg))
        ep = rollout(env, RandomController(env.observation_space, env.action_space, seed=seed), seed=seed)
        store.add_episode(ep.observations, ep.actions, ep.tasks)
    return store


def small_model(store, **kw):
    torch.manual_seed(0)
    model = DynamicsModel(28, 8, ModelConfig(hidden=(32, 32), **kw))
    model.fit_normalizer(store.obs, store.actions, store.next_obs)
    return model


def snapshot(model):
    return {n: p.detach().clone() for n, p in model.prior().items()}


def test_one_inner_step_lowers_the_loss_on_the_adaptation_window(ant_store):
    model = small_model(ant_store)
    step_sizes = {n: torch.full_like(p, 0.01) for n, p in model.prior().items()}
    w = WindowSampler(ant_store, 5, 5).sample(16, np.random.default_rng(0))
    for b in range(16):
        o, a, n = w.past_obs[b], w.past_act[b], w.past_next[b]
        phi = adapt(model, model.prior(), step_sizes, o, a, n, steps=1)
        assert model.loss(phi, o, a, n) < model.loss(model.prior(), o, a, n)


def test_adaptation_and_meta_losses_leave_the_prior_untouched(ant_store):
    model = small_model(ant_store)
    before = snapshot(model)
    trainer = MetaTrainer(model, MetaConfig())
    trainer.window_losses(WindowSampler(ant_store, 5, 16).sample(8, np.random.default_rng(1))).mean().backward()
    adapter = OnlineAdapter(model, dict(trainer.step_sizes))
    phi = adapter.adapt(ant_store.obs[:5], ant_store.actions[:5], ant_store.next_obs[:5])
    for n, p in model.prior().items():
        torch.testing.assert_close(p.detach(), before[n], rtol=0, atol=0)
        assert not torch.equal(phi[n], before[n]), "the adapted parameters differ from the prior"


@pytest.mark.parametrize("config", [
    MetaConfig(), MetaConfig(first_order=True), MetaConfig(inner_lr_mode="per_layer"),
    MetaConfig(inner_lr_mode="per_parameter"), MetaConfig(inner_steps=2), MetaConfig(inner_steps=0),
    MetaConfig(future_loss="rollout", prior_loss_weight=1.0), MetaConfig(inner_steps=0, future_loss="rollout"),
])
def test_every_trainer_variant_reduces_its_loss(ant_store, config):
    model = small_model(ant_store, learn_variance=config.inner_steps == 2)
    trainer = MetaTrainer(model, config)
    sampler = WindowSampler(ant_store, config.k, config.K)
    fixed = sampler.sample(40, np.random.default_rng(0))
    start = trainer.window_losses(fixed).mean().item()
    rng = np.random.default_rng(1)
    for _ in range(60):
        trainer.step(sampler.sample(config.meta_batch_size, rng))
    assert trainer.window_losses(fixed).mean().item() < start
    if config.inner_lr_mode != "fixed":
        assert any(not torch.allclose(a, torch.tensor(config.inner_lr)) for a in trainer.step_sizes.values())


def test_the_guard_falls_back_to_the_prior_on_nan_and_on_a_blown_up_step(ant_store):
    model = small_model(ant_store)
    step_sizes = {n: torch.full_like(p, 0.01) for n, p in model.prior().items()}
    adapter = OnlineAdapter(model, step_sizes)
    window = [x[:5].copy() for x in (ant_store.obs, ant_store.actions, ant_store.next_obs)]
    assert adapter.adapt(*window) is not adapter.prior and adapter.fallbacks == 0
    window[2][2, 4] = np.nan
    assert adapter.adapt(*window) is adapter.prior and adapter.fallbacks == 1
    huge = OnlineAdapter(model, {n: torch.full_like(p, 1e4) for n, p in model.prior().items()})
    assert huge.adapt(*(x[:5] for x in (ant_store.obs, ant_store.actions, ant_store.next_obs))) is huge.prior
    assert huge.fallbacks == 1


def test_an_adaptation_step_is_the_same_at_one_thread_and_two(ant_store):
    """The step runs at one thread (`one_thread`): at two, the weight gradients' sums over the window could be
    split, and the adapted model, with the whole episode after it, depended on the thread count (s49)."""
    model, step_sizes, _ = load_model(SHIPPED / "ant_grbal.pt")
    window = [x[:5] for x in (ant_store.obs, ant_store.actions, ant_store.next_obs)]
    threads, adapted = torch.get_num_threads(), []
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            adapted.append(OnlineAdapter(model, step_sizes).adapt(*window))
            assert torch.get_num_threads() == count  # restored after the step
    finally:
        torch.set_num_threads(threads)
    for name, p in adapted[0].items():
        torch.testing.assert_close(adapted[1][name], p, rtol=0, atol=0)


def test_continuing_from_the_last_adaptation_is_an_option(ant_store):
    model = small_model(ant_store)
    step_sizes = {n: torch.full_like(p, 0.01) for n, p in model.prior().items()}
    window = [x[:5] for x in (ant_store.obs, ant_store.actions, ant_store.next_obs)]
    from_prior = OnlineAdapter(model, step_sizes)
    chained = OnlineAdapter(model, step_sizes, from_prior=False)
    first = from_prior.adapt(*window)
    torch.testing.assert_close(from_prior.adapt(*window)["w0"], first["w0"])  # always one step from θ*
    once = chained.adapt(*window)["w0"].clone()
    assert not torch.allclose(chained.adapt(*window)["w0"], once)  # a second step from φ_{t-1}


def test_forgetting_continues_from_the_last_adaptation_pulled_back_toward_the_prior(ant_store):
    """With `forgetting = λ`, a step starts from θ* + (1 − λ)(φ_{t−1} − θ*): λ = 1 is GrBAL's from-θ* rule."""
    model = small_model(ant_store)
    step_sizes = {n: torch.full_like(p, 0.01) for n, p in model.prior().items()}
    first, second = ([torch.as_tensor(x[i:i + 5], dtype=torch.float32)
                      for x in (ant_store.obs, ant_store.actions, ant_store.next_obs)] for i in (0, 5))
    from_prior = OnlineAdapter(model, step_sizes)
    forget_all = OnlineAdapter(model, step_sizes, from_prior=False, forgetting=1.0)
    half = OnlineAdapter(model, step_sizes, from_prior=False, forgetting=0.5)
    for adapter in (from_prior, forget_all, half):
        adapter.adapt(*first)
    prior, last = half.prior, dict(half.params)
    midway = {n: prior[n] + 0.5 * (last[n] - prior[n]) for n in prior}
    torch.testing.assert_close(forget_all.adapt(*second), from_prior.adapt(*second))
    torch.testing.assert_close(half.adapt(*second), half._gradient_steps(midway, *second))


@pytest.mark.parametrize("steps", [1, 2])
def test_online_adaptation_takes_exactly_the_first_order_maml_step(ant_store, steps):
    """The controller's fast autograd path and the meta-trainer's functional `adapt` are the same step."""
    model = small_model(ant_store)
    step_sizes = {n: torch.rand_like(p) * 0.02 for n, p in model.prior().items()}
    window = [torch.as_tensor(x[10:15], dtype=torch.float32) for x in (ant_store.obs, ant_store.actions,
                                                                         ant_store.next_obs)]
    online = OnlineAdapter(model, step_sizes, steps=steps, max_loss_ratio=1e9).adapt(*window)
    with torch.enable_grad():
        functional = adapt(model, model.prior(), step_sizes, *window, steps, first_order=True)
    for n, p in functional.items():
        torch.testing.assert_close(online[n], p.detach(), rtol=1e-6, atol=1e-7)


def test_ensemble_and_variance_heads_predict_states(ant_store):
    model = small_model(ant_store, ensemble_size=3, learn_variance=True)
    obs = torch.as_tensor(ant_store.obs[:7], dtype=torch.float32)
    act = torch.as_tensor(ant_store.actions[:7], dtype=torch.float32)
    mean, logvar = model.forward_normalized(model.prior(), obs, act)
    assert mean.shape == logvar.shape == (3, 7, 28)
    assert model.predict(obs, act).shape == (7, 28)


def test_the_rollout_loss_of_one_transition_is_the_one_step_loss_and_grows_with_the_horizon(ant_store):
    model = small_model(ant_store)
    obs, act, nxt = (torch.as_tensor(x[:10], dtype=torch.float32)
                     for x in (ant_store.obs, ant_store.actions, ant_store.next_obs))
    with torch.no_grad():
        torch.testing.assert_close(model.rollout_loss(model.prior(), obs[:1], act[:1], nxt[:1]),
                                   model.loss(model.prior(), obs[:1], act[:1], nxt[:1]))
        assert model.rollout_loss(model.prior(), obs, act, nxt) > model.loss(model.prior(), obs, act, nxt)
    with pytest.raises(FieldError, match="future_loss"):
        MetaTrainer(small_model(ant_store, ensemble_size=2), MetaConfig(future_loss="rollout"))


@pytest.mark.parametrize("kw", [{}, {"learn_variance": True, "activation": "silu"}, {"ensemble_size": 3}])
def test_the_bound_predictor_predicts_what_predict_does(ant_store, kw):
    """The planners' fast path (`predictor`, used by the torch rollout) computes `predict`'s operations in the same
    order, with adapted parameters as well as the prior's (on x86_64 the numbers agree to the bit)."""
    model = small_model(ant_store, **kw)
    adapted = {n: p.detach() + 0.01 * torch.randn_like(p) for n, p in model.prior().items()}
    obs = torch.as_tensor(ant_store.obs[:50], dtype=torch.float32)
    act = torch.as_tensor(ant_store.actions[:50], dtype=torch.float32)
    with torch.no_grad():
        for params in (None, adapted):
            torch.testing.assert_close(model.predictor(params)(obs, act), model.predict(obs, act, params),
                                       rtol=1e-6, atol=1e-6)


def ant_data(first_seed, episodes):
    env = robots.make("ant", episode_length=100)
    store = TransitionStore(28, 8)
    for i in range(episodes):
        env.set_task(AntTask(broken_leg=[None, 0, 1, 2][i % 4]))
        policy = RandomController(env.observation_space, env.action_space, seed=first_seed + i)
        ep = rollout(env, policy, seed=first_seed + i)
        store.add_episode(ep.observations, ep.actions, ep.tasks)
    return store


def test_meta_training_makes_adaptation_lower_the_error_on_held_out_windows():
    """Ant with randomly broken legs, where one model cannot fit every task: after a short GrBAL run,
    adapting on 5 transitions lowers the error on the following 10, on episodes never trained on."""
    train, held_out = ant_data(0, 80), ant_data(10_000, 24)
    torch.manual_seed(0)
    model = DynamicsModel(28, 8, ModelConfig(hidden=(64, 64)))
    model.fit_normalizer(train.obs, train.actions, train.next_obs)
    config = MetaConfig(inner_lr_mode="per_parameter", K=10, meta_batch_size=16, lr=3e-3)
    trainer = MetaTrainer(model, config)
    sampler, rng = WindowSampler(train, config.k, config.K), np.random.default_rng(0)
    for _ in range(1200):
        trainer.step(sampler.sample(config.meta_batch_size, rng))
    w = WindowSampler(held_out, 5, 10).sample(500, np.random.default_rng(1))
    step_sizes = dict(trainer.step_sizes)
    phi = torch.vmap(lambda o, a, n: adapt(model, model.prior(), step_sizes, o, a, n, 1, first_order=True))(
        w.past_obs, w.past_act, w.past_next)
    with torch.no_grad():
        before = torch.vmap(lambda o, a, n: model.loss(model.prior(), o, a, n))(w.future_obs, w.future_act,
                                                                              w.future_next)
        after = torch.vmap(lambda p, o, a, n: model.loss(p, o, a, n))(phi, w.future_obs, w.future_act, w.future_next)
    assert after.mean() < 0.98 * before.mean()  # measured: 0.302 vs 0.317
    assert (after < before).float().mean() > 0.65  # measured: 78% of windows improve


def test_backtracking_shortens_an_overshooting_step_and_fallback_last_keeps_the_last_accepted(ant_store):
    model = small_model(ant_store)
    window = [x[:5].copy() for x in (ant_store.obs, ant_store.actions, ant_store.next_obs)]
    huge = {n: torch.full_like(p, 1e3) for n, p in model.prior().items()}
    plain = OnlineAdapter(model, huge)
    assert plain.adapt(*window) is plain.prior and plain.fallbacks == 1  # the whole step blows up
    careful = OnlineAdapter(model, huge, backtracking=30, fallback="last")
    accepted = careful.adapt(*window)
    assert accepted is not careful.prior and careful.fallbacks == 0
    assert careful.last["loss_after"] <= careful.last["loss_before"] and careful.last["step_scale"] < 0.01
    window[2][1, 3] = np.nan
    assert careful.adapt(*window) is accepted and careful.fallbacks == 1  # refused: the last accepted φ
    careful.reset()
    assert careful.params is careful.prior and careful.accepted is careful.prior


def test_the_prior_loss_term_adds_the_unadapted_loss_of_the_whole_window(ant_store):
    model = small_model(ant_store)
    windows = WindowSampler(ant_store, 5, 8).sample(6, np.random.default_rng(0))
    base = MetaConfig(k=5, K=8, inner_lr_mode="per_parameter")
    adapted = MetaTrainer(model, base).window_losses(windows)
    both = MetaTrainer(model, dataclasses.replace(base, prior_loss_weight=0.5)).window_losses(windows)
    plain = MetaTrainer(model, dataclasses.replace(base, inner_steps=0)).window_losses(windows)
    torch.testing.assert_close(both, adapted + 0.5 * plain)
