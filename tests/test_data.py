"""The transition store and window sampler."""

import numpy as np
import pytest

from mbmeta.data import TransitionStore, WindowSampler


def fake_episode(T, tasks, ds=3, da=2, offset=0.0):
    obs = offset + np.arange((T + 1) * ds, dtype=float).reshape(T + 1, ds)
    return obs, np.ones((T, da)), tasks


def make_store():
    store = TransitionStore(3, 2, capacity=4)  # tiny capacity: growth is exercised
    store.add_episode(*fake_episode(30, ["healthy"] * 30))
    store.add_episode(*fake_episode(40, ["healthy"] * 12 + ["broken-leg-3"] * 28, offset=1000))
    store.add_episode(*fake_episode(8, ["broken-leg-1"] * 8, offset=2000))  # too short for a window
    return store


def test_store_grows_keeps_order_and_labels_segments():
    store = make_store()
    assert len(store) == 78 and store.n_episodes == 3
    assert store.segments == [(0, 30, 0), (30, 42, 0), (42, 70, 1), (70, 78, 2)]
    np.testing.assert_array_equal(store.next_obs[:29], store.obs[1:30])


def test_windows_stay_inside_one_episode_and_one_task():
    store = make_store()
    sampler = WindowSampler(store, k=5, K=6)
    starts = np.concatenate(list(sampler._starts.values())) if sampler.num_windows() else []
    spans = [(a, b) for a, b, _ in store.segments]
    for s in starts:
        assert any(a <= s and s + 11 <= b for a, b in spans)
    assert sampler.num_windows() == (30 - 10) + (12 - 10) + (28 - 10)
    w = sampler.sample(64, np.random.default_rng(0))
    assert w.past_obs.shape == (64, 5, 3) and w.future_next.shape == (64, 6, 3)
    # consecutive: each window's future starts where its past ends
    np.testing.assert_array_equal(w.past_next[:, -1].numpy(), w.future_obs[:, 0].numpy())


def test_crossing_a_task_change_only_when_asked():
    store = make_store()
    assert WindowSampler(store, 5, 6, cross_task_changes=True).num_windows() == (30 - 10) + (40 - 10)


def test_sampling_draws_tasks_evenly_and_is_seeded():
    store = make_store()
    sampler = WindowSampler(store, 5, 6)
    draw = lambda: sampler.sample(200, np.random.default_rng(3)).past_obs.numpy()  # noqa: E731
    np.testing.assert_array_equal(draw(), draw())
    broken = (draw()[:, 0, 0] >= 1000 + 12 * 3).mean()  # windows from the broken-leg stretch
    assert 0.4 < broken < 0.6


def test_store_round_trips_through_disk_and_truncates_to_an_episode(tmp_path):
    store = make_store()
    store.save(tmp_path / "data.npz")
    loaded = TransitionStore.load(tmp_path / "data.npz")
    for name in ("obs", "actions", "next_obs", "task_codes", "episodes"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(store, name))
    assert loaded.segments == store.segments and loaded.task_names == store.task_names
    loaded.truncate(30)
    assert len(loaded) == 30 and loaded.n_episodes == 1 and loaded.segments == [(0, 30, 0)]
    with pytest.raises(ValueError, match="episode boundary"):
        loaded.truncate(17)


def test_mismatched_episode_shapes_are_rejected():
    store = TransitionStore(3, 2)
    with pytest.raises(ValueError, match="episode shapes disagree"):
        store.add_episode(np.zeros((5, 3)), np.zeros((5, 2)), ["t"] * 5)
