"""GrBAL training loop: configs, atomic checkpoints, exact resume."""

import dataclasses

import pytest
import torch
import yaml

from controllers.collection import collection_policy
from mbmeta.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from mbmeta.config import ConfigError, from_dict, load_yaml, to_dict
from mbmeta.grbal import TrainConfig, load_model, train
from mbmeta.maml import MetaConfig
from mbmeta.model import ModelConfig

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
    with pytest.raises(ConfigError, match="config.meta.k: expected int, got 'five'"):
        from_dict(TrainConfig, {"meta": {"k": "five"}})
    with pytest.raises(ConfigError, match=r"expected one of \['constant', 'cosine'\]"):
        from_dict(TrainConfig, {"meta": {"lr_schedule": "linear"}})
    with pytest.raises(ValueError, match="robot must be one of"):
        from_dict(TrainConfig, {"robot": "tank"})


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
    with pytest.raises(CheckpointError, match="is not a readable mbmeta checkpoint \\(truncated or damaged"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing.pt")


def test_resuming_with_another_config_is_refused(tmp_path):
    train(dataclasses.replace(TINY, iterations=1), tmp_path, collection_policy, progress=False)
    with pytest.raises(ValueError, match="holds a run with another config"):
        train(dataclasses.replace(TINY, seed=5), tmp_path, collection_policy, progress=False)
