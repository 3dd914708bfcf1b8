"""GrBAL training loop: configs, atomic checkpoints, exact resume."""

import dataclasses
import os
import platform
import re
import stat
import typing

import numpy as np
import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from controllers.collection import collection_policy
from controllers.registry import ControllerConfig
from mbmeta import config as config_module
from mbmeta.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from mbmeta.config import ConfigError, from_dict, load_yaml, to_dict
from mbmeta.grbal import PolishConfig, TrainConfig, export_model, load_model, train
from mbmeta.maml import MetaConfig
from mbmeta.model import ModelConfig
from mbmeta.pearl import PEARLConfig
from mbmeta.polish import polish
from mbmeta.rl2 import RL2Config
from scripts.common import SHIPPED

TINY = TrainConfig(robot="ant", iterations=2, episodes_per_iteration=3, episode_length=60,
                   train_steps_per_iteration=8, model=ModelConfig(hidden=(16, 16)),
                   meta=MetaConfig(meta_batch_size=4, K=5))


def test_a_config_round_trips_and_unknown_keys_are_rejected_by_name(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(to_dict(TINY)))
    assert load_yaml(TrainConfig, path) == TINY
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['hiden'\]; valid keys are \['activation'"):
        from_dict(TrainConfig, {"model": {"hiden": [64]}})
    with pytest.raises(ConfigError, match=r"config: unknown key\(s\) \['iters'\]"):
        from_dict(TrainConfig, {"iters": 3})
    with pytest.raises(ConfigError, match="config.meta.k: expected an int, got 'five'"):
        from_dict(TrainConfig, {"meta": {"k": "five"}})
    with pytest.raises(ConfigError, match=r"expected one of \['constant', 'cosine'\]"):
        from_dict(TrainConfig, {"meta": {"lr_schedule": "linear"}})
    with pytest.raises(ConfigError, match=r"config.robot: expected one of \['ant', 'quadrotor'\], got 'tank'"):
        from_dict(TrainConfig, {"robot": "tank"})


def config_fields():
    """(config class, dotted field path, type hint, allowed range) of every field a user can set in YAML."""
    out = []

    def walk(cls, prefix, data_of):
        for field in dataclasses.fields(cls):
            hint = typing.get_type_hints(cls)[field.name]
            nested = config_module._dataclass_of(hint)
            if nested is not None:
                walk(nested, f"{prefix}{field.name}.", lambda d, f=field.name, o=data_of: o({f: d}))
            else:
                out.append((cls, f"{prefix}{field.name}", hint, getattr(cls, "RANGES", {}).get(field.name), data_of))

    for top in (TrainConfig, RL2Config, PEARLConfig, ControllerConfig):
        walk(top, f"{top.__name__}:", lambda d: d)
    return out


def numeric(hint):
    args = typing.get_args(hint) or (hint,)
    return any(a in (int, float) for a in args) or any(typing.get_args(a)[:1] in ((int,), (float,)) for a in args)


FIELDS = config_fields()


@pytest.mark.parametrize("cls, key, hint, allowed, data_of", FIELDS, ids=[f[1] for f in FIELDS])
def test_every_config_field_rejects_a_string_nan_and_an_out_of_range_value_by_name(cls, key, hint, allowed, data_of):
    top = {"TrainConfig": TrainConfig, "RL2Config": RL2Config, "PEARLConfig": PEARLConfig,
           "ControllerConfig": ControllerConfig}[key.split(":")[0]]
    path = key.split(":")[1]
    name = path.split(".")[-1]
    where = "c.yaml." + path
    is_tuple = typing.get_origin(hint) is tuple or any(typing.get_origin(a) is tuple for a in typing.get_args(hint))
    bad_values = [[1, 2]] if str in (typing.get_args(hint) or (hint,)) else ["fast"]
    if numeric(hint):
        assert allowed is not None, f"{key} is numeric and declares no range in its class's RANGES"
        bad_values.append([float("nan")] if is_tuple else float("nan"))
        outside = allowed.low - 1 if allowed.low is not None else allowed.high + 1
        bad_values.append([outside] if is_tuple else outside)
    for bad in bad_values:
        with pytest.raises(ConfigError, match=re.escape(where) + ": "):
            from_dict(top, data_of({name: bad}), where="c.yaml")


def test_flipped_bytes_inside_a_checkpoint_are_a_one_line_error_and_files_get_normal_permissions(tmp_path):
    for shipped in sorted(SHIPPED.glob("*.pt")):
        load_checkpoint(shipped)  # every shipped file carries a digest that matches
        data = bytearray(shipped.read_bytes())
        middle = len(data) // 2
        data[middle:middle + 16] = bytes(b ^ 0xFF for b in data[middle:middle + 16])
        damaged = tmp_path / shipped.name
        damaged.write_bytes(bytes(data))
        with pytest.raises(CheckpointError, match="is damaged \\(its SHA-256 does not match") as err:
            load_checkpoint(damaged)
        assert "\n" not in str(err.value) and shipped.name in str(err.value)
    save_checkpoint(tmp_path / "new.pt", {"format": "test"})
    old = os.umask(0o022)
    os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.pt").stat().st_mode) == 0o666 & ~old


def params_of(path):
    model, step_sizes, _ = load_model(path)
    return {n: p.clone() for n, p in model.prior().items()}, step_sizes


def test_training_is_seeded_and_resume_continues_exactly(tmp_path):
    straight = train(TINY, tmp_path / "straight", collection_policy, progress=False)
    again = train(TINY, tmp_path / "again", collection_policy, progress=False)
    # A run that crashes in its second iteration, then is started again with the same command.
    def crashing_policy(iteration, *args):
        if iteration == 1:
            raise RuntimeError("simulated crash")
        return collection_policy(iteration, *args)

    with pytest.raises(RuntimeError, match="simulated crash"):
        train(TINY, tmp_path / "resumed", crashing_policy, progress=False)
    resumed = train(TINY, tmp_path / "resumed", collection_policy, progress=False)
    for other in (again, resumed):
        for n, p in params_of(straight)[0].items():
            torch.testing.assert_close(params_of(other)[0][n], p, rtol=0, atol=0)
    assert (tmp_path / "straight" / "log.csv").read_text().count("\n") == 3


def test_a_checkpoint_round_trips_exactly(tmp_path):
    path = train(TINY, tmp_path, collection_policy, progress=False)
    model, step_sizes, config = load_model(path)
    assert config == TINY
    state = load_checkpoint(path)
    for name, tensor in state["model"].items():
        torch.testing.assert_close(model.state_dict()[name], tensor, rtol=0, atol=0)


def test_a_checkpoint_and_its_export_record_the_cpu_and_libraries_it_was_trained_with(tmp_path):
    # Training replays only on the CPU it ran on, so where a model was made must travel with it.
    path = train(TINY, tmp_path, collection_policy, progress=False)
    exported = load_checkpoint(export_model(path, tmp_path / "model.pt"))
    for state in (load_checkpoint(path), exported):
        made = state["trained_on"]
        assert made["torch"] == torch.__version__ and made["machine"] == platform.machine()
        assert made["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert "rng" not in exported


def test_a_truncated_checkpoint_is_a_clear_error_and_a_crash_mid_save_keeps_the_last_one(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"format": "test", "value": torch.arange(1000)})

    def crash(obj, f):  # a process killed while writing: half a file, then death
        f.write(b"\x80\x02partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"format": "test", "value": torch.zeros(3)})
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)["value"], torch.arange(1000))
    assert list(tmp_path.iterdir()) == [path], "no temporary file is left behind"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="is damaged \\(its SHA-256 does not match"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing.pt")


def test_resuming_with_another_config_is_refused(tmp_path):
    train(dataclasses.replace(TINY, iterations=1), tmp_path, collection_policy, progress=False)
    with pytest.raises(ValueError, match="holds a run with another config"):
        train(dataclasses.replace(TINY, seed=5), tmp_path, collection_policy, progress=False)


def test_a_finished_run_trained_longer_equals_one_trained_straight_to_the_new_count(tmp_path):
    straight = train(TINY, tmp_path / "straight", collection_policy, progress=False)
    train(dataclasses.replace(TINY, iterations=1), tmp_path / "longer", collection_policy, progress=False)
    longer = train(TINY, tmp_path / "longer", collection_policy, progress=False)
    for n, p in params_of(straight)[0].items():
        torch.testing.assert_close(params_of(longer)[0][n], p, rtol=0, atol=0)
    assert load_checkpoint(longer)["train_config"] == to_dict(TINY)
    with pytest.raises(ValueError, match="has done 2 iterations; iterations 1 would undo them"):
        train(dataclasses.replace(TINY, iterations=1), tmp_path / "longer", collection_policy, progress=False)
    cosine = dataclasses.replace(TINY, iterations=1, meta=dataclasses.replace(TINY.meta, lr_schedule="cosine"))
    train(cosine, tmp_path / "cosine", collection_policy, progress=False)
    with pytest.raises(ValueError, match="would change the cosine learning-rate schedule"):
        train(dataclasses.replace(cosine, iterations=2), tmp_path / "cosine", collection_policy, progress=False)


def test_polish_lowers_the_held_out_loss_of_an_undertrained_run_is_seeded_and_exports_the_best(tmp_path):
    run = tmp_path / "run"
    train(TINY, run, collection_policy, progress=False)  # 16 meta-updates in all: far from converged
    first = polish(run, tmp_path / "a.pt", updates=300, lr=1e-3)
    assert first.best_update > 0 and first.held_out_after < 0.95 * first.held_out_before
    again = polish(run, tmp_path / "b.pt", updates=300, lr=1e-3)
    for n, p in params_of(first.path)[0].items():
        torch.testing.assert_close(params_of(again.path)[0][n], p, rtol=0, atol=0)
    state = load_checkpoint(first.path)
    assert state["polish"]["held_out_after"] == first.held_out_after and "rng" not in state
    assert load_model(first.path)[2] == TINY  # loads like any exported model
    with pytest.raises(FileNotFoundError, match="has no data.npz: polish needs a run directory"):
        polish(tmp_path, tmp_path / "c.pt")


def test_a_config_polish_gives_the_model_mbmeta_polish_gives_and_finishes_the_run(tmp_path):
    by_hand = tmp_path / "by-hand"
    train(TINY, by_hand, collection_policy, progress=False)
    expected = params_of(polish(by_hand, tmp_path / "a.pt", updates=300, lr=1e-3).path)
    polished = dataclasses.replace(TINY, polish=PolishConfig(updates=300, lr=1e-3))
    straight = train(polished, tmp_path / "straight", collection_policy, progress=False)
    resumed = train(polished, by_hand, collection_policy, progress=False)  # a finished run, polished now
    for checkpoint in (straight, resumed):
        exported = export_model(checkpoint, checkpoint.parent / "export.pt")
        for got, want in zip(params_of(exported), expected, strict=True):
            for n, p in want.items():
                torch.testing.assert_close(got[n], p, rtol=0, atol=0)
        assert load_checkpoint(exported)["polish"] == load_checkpoint(tmp_path / "a.pt")["polish"]
    before = resumed.stat().st_mtime_ns
    train(polished, by_hand, collection_policy, progress=False)  # finished and polished: nothing to do
    assert resumed.stat().st_mtime_ns == before
    with pytest.raises(ValueError, match="holds a finished, polished run: its iterations and polish cannot change"):
        train(dataclasses.replace(polished, iterations=3), by_hand, collection_policy, progress=False)
    with pytest.raises(ValueError, match="was polished when it trained .* export it with `mbmeta export"):
        polish(by_hand, tmp_path / "b.pt")
    with pytest.raises(ConfigError, match="config.polish.updates: must be >= 100, got 50"):
        from_dict(TrainConfig, {"polish": {"updates": 50}})


json_values = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True)
                           | st.text(max_size=5), lambda inner: st.lists(inner, max_size=3), max_leaves=5)


@settings(max_examples=300, deadline=None)
@given(top=st.sampled_from([TrainConfig, RL2Config, PEARLConfig, ControllerConfig]), data=st.data())
def test_any_yaml_value_for_any_field_builds_a_config_or_is_one_config_error(top, data):
    """Whatever a YAML file puts in a field, `from_dict` returns a config whose fields pass their checks, or
    raises a ConfigError naming the key: never a TypeError or a traceback from deep inside."""
    cls, key, hint, allowed, data_of = data.draw(st.sampled_from([f for f in FIELDS if f[1].startswith(top.__name__)]))
    name = key.split(":")[1].split(".")[-1]
    value = data.draw(json_values)
    try:
        config = from_dict(top, data_of({name: value}), where="c.yaml")
    except ConfigError as err:
        assert str(err).startswith("c.yaml.") and "\n" not in str(err)
    else:
        assert isinstance(config, top)


def test_early_stopping_keeps_the_best_held_out_parameters_and_fixed_data_trains_without_collecting(tmp_path):
    config = dataclasses.replace(TINY, iterations=1, initial_episodes=12, train_steps_per_iteration=3000,
                                 validation_every=4, patience=1, refit_normalizer=True)
    path = train(config, tmp_path / "a", collection_policy, progress=False)
    row = load_checkpoint(path)["log"][0]
    assert row["updates"] < 3000 and np.isfinite(row["validation_loss"])  # stopped once it got worse
    # the same learner on that run's data: nothing collected, the very same transitions
    path = train(dataclasses.replace(config, iterations=2), tmp_path / "b", collection_policy, progress=False,
                 data=tmp_path / "a" / "data.npz")
    state = load_checkpoint(path)
    assert [r["transitions"] for r in state["log"]] == [row["transitions"]] * 2
    assert np.isnan(state["log"][0]["mean_return"])


def test_the_adaptation_window_is_the_one_meta_trained_with_in_collection_and_at_run_time(tmp_path):
    """A model meta-trained on k = 3 is adapted on 3 transitions by the MPC that collects its data and by
    a controller built from its checkpoint, also when other MPC settings are overridden; an explicit k wins."""
    import robots
    from controllers.mpc import MPCConfig
    from controllers.registry import make_controller

    config = dataclasses.replace(TINY, meta=dataclasses.replace(TINY.meta, k=3))
    windows = []

    def recording_policy(iteration, env, model, step_sizes, window, rng):
        policy = collection_policy(iteration, env, model, step_sizes, window, rng)
        if iteration > 0:
            windows.append((window, policy.config.k))
        return policy

    path = str(train(config, tmp_path / "k3", recording_policy, progress=False))
    assert windows and set(windows) == {(3, 3)}
    env = robots.make("ant")
    for mpc, k in ((None, 3), (MPCConfig(backtracking=1), 3), (MPCConfig(k=7), 7)):
        controller = make_controller(ControllerConfig(controller="cem_adaptive", checkpoint=path, mpc=mpc), env)
        assert controller.config.k == k


def test_collection_plans_up_to_the_real_limits_while_the_deployed_controller_keeps_its_margin():
    """The quadrotor's deployed MPC plans with a safety margin; the MPC that collects training data does not
    (so the model sees the states near the limits), and plans with the same planner otherwise."""
    import robots
    from controllers.registry import default_mpc
    from mbmeta.model import DynamicsModel

    env = robots.make("quadrotor")
    model = DynamicsModel(env.observation_space.shape[0], env.action_space.shape[0])
    policy = collection_policy(1, env, model, model.prior(), 5, np.random.default_rng(0))
    deployed = default_mpc("quadrotor")
    assert deployed.safety_margin > 0 and policy.config.safety_margin == 0.0
    assert policy.config.planner == deployed.planner
