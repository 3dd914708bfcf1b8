"""The measuring stick: the oracle planner is exact and beats random; task metrics; confidence intervals;
`compare` over several training seeds writes its tables and plots."""

import csv
import dataclasses
import json
import math
import shutil

import mujoco
import numpy as np
import pytest
import torch

import robots
from controllers.registry import ControllerConfig, default_mpc, make_controller
from mbmeta.checkpoint import write_csv
from mbmeta.grbal import load_model
from robots.base import RobotEnv
from robots.quadrotor import PayloadTask, QuadrotorEnv
from scripts.common import SHIPPED, mpc_settings, timed_episode
from scripts.compare import (
    CompareConfig,
    Evaluate,
    cell,
    decimals,
    lead_cell,
    make_jobs,
    merge_results,
    mpc_changes,
    mpc_record,
    run_compare,
)
from scripts.stats import mean_ci95, t_quantile_975


def test_the_confidence_interval_matches_a_hand_computed_case():
    # mean 2.5; sample sd sqrt(5/3) = 1.2910; standard error 0.6455; t(0.975, 3) = 3.182 -> 2.054
    mean, half = mean_ci95([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5 and half == pytest.approx(3.182 * math.sqrt(5 / 3) / 2, rel=1e-12)
    assert half == pytest.approx(2.054, abs=1e-3)
    assert mean_ci95([5.0, float("nan"), 7.0]) == (6.0, pytest.approx(12.706 * math.sqrt(2) / math.sqrt(2)))
    assert math.isnan(mean_ci95([3.0])[1]) and math.isnan(mean_ci95([])[0])
    assert t_quantile_975(30) == 2.042 and t_quantile_975(60) == pytest.approx(2.000, abs=1e-3)
    assert t_quantile_975(120) == pytest.approx(1.980, abs=1e-3)


def test_a_cell_over_seeds_lists_each_seed_and_marks_one_without_a_value():
    """A metric some seeds have no value of (the step of a fall, in a seed none of whose episodes fell) is
    averaged over the seeds that have one, and the others are listed as "—", in their place."""
    # seeds 0 and 2: means 300 and 500, s.d. 141.4, half-width t(1) × 141.4 / √2
    rows = [{"training_seed": s, "fell_at": v} for s, v in [(0, 200.0), (0, 400.0), (1, math.nan), (2, 500.0)]]
    assert cell(rows, "fell_at") == f"400.00 ± {t_quantile_975(1) * 100:.2f} (2 seeds: 300.00, —, 500.00)"
    # small values keep two significant digits: a quadrotor's 0.020 m, not 0.02
    assert [decimals(v) for v in (19.8, 0.1, 0.053, 0.0099, 0.0, math.nan)] == [2, 2, 3, 4, 2, 2]
    assert cell([{"training_seed": s, "e": v} for s, v in [(0, 0.018), (1, 0.022)]], "e").startswith("0.020 ± ")


def test_the_lead_of_one_controller_pairs_seeds_and_says_whether_the_intervals_are_apart():
    # per-seed means: first 10, 12, 14; other 8, 9, 10 -> differences 2, 3, 4 (mean 3, s.d. 1), ratio 12 / 9
    def rows(means):
        return [{"training_seed": s, "seed": e, "distance_m": m + d} for s, m in enumerate(means) for e, d in
                enumerate((-1.0, 1.0))]
    first, other = rows([10.0, 12.0, 14.0]), rows([8.0, 9.0, 10.0])
    half = t_quantile_975(2) / math.sqrt(3)
    assert lead_cell(first, other, "distance_m") == f"+3.00 ± {half:.2f} (3 seeds), 1.33×, intervals overlap"
    apart = rows([20.0, 20.5, 21.0])  # interval 20.5 ± 1.24 against 9 ± 2.48
    assert lead_cell(apart, other, "distance_m").endswith("intervals apart")
    assert "no ratio to 0" in lead_cell(first, rows([0.0, 0.0, 0.0]), "distance_m")  # a zero mean: no ratio
    # an unpaired comparison (seeds against episodes, or a bool metric) is not made
    assert lead_cell(first, [{**r, "training_seed": 0} for r in other], "distance_m") == "—"
    assert lead_cell([{**r, "fell": False} for r in first], other, "fell") == "—"


def test_task_metrics_of_episodes_with_known_motion():
    ant = robots.ROBOTS["ant"]
    infos = [{"x_position": 0.5 + 0.05 * (t + 1), "upright": 1.0} for t in range(40)]  # 0.05 m a 0.05 s step: 1 m/s
    metrics = ant.episode_metrics({"x_position": 0.5}, infos, terminated=True, dt=0.05)
    assert metrics["distance_m"] == pytest.approx(2.0) and metrics["forward_speed_mps"] == pytest.approx(1.0)
    assert metrics["fell"] is True and metrics["fell_step"] == 40
    assert metrics["flipped"] is False and math.isnan(metrics["flipped_step"])
    assert math.isnan(metrics["stalled"])  # no whole 2.5 s spell yet
    # walks 2.5 m in the first 2.5 s spell, then 0.025 m in each of the next two: stalled 2 of 3 spells
    standing = [{"x_position": 0.5 + (0.05 * t if t <= 50 else 2.5 + 0.0005 * t), "upright": 1.0}
                for t in range(1, 161)]
    assert ant.episode_metrics({"x_position": 0.5}, standing, terminated=False, dt=0.05)["stalled"] == 2 / 3
    # thrown on its back at step 60 (the up axis through the horizon), lying there: flipped, not fallen
    for info in standing[59:]:
        info["upright"] = -0.95
    metrics = ant.episode_metrics({"x_position": 0.5}, standing, terminated=False, dt=0.05)
    assert metrics["flipped"] is True and metrics["flipped_step"] == 60 and metrics["fell"] is False
    quad = robots.ROBOTS["quadrotor"]
    metrics = quad.episode_metrics({}, [{"tracking_error": 3.0}, {"tracking_error": 4.0}], terminated=False, dt=0.1)
    assert metrics["tracking_rmse_m"] == pytest.approx(math.sqrt(12.5)) and metrics["crashed"] is False
    assert math.isnan(metrics["crash_time_s"])
    # and on a real episode: the distance is the torso's x displacement in the simulator
    env = robots.make("ant", episode_length=30)
    controller = make_controller(ControllerConfig(controller="scripted"), env)
    result = timed_episode(env, controller, seed=3)
    start_x = result.episode.start_info["x_position"]
    assert result.metrics["distance_m"] == pytest.approx(env.data.qpos[0] - start_x)
    assert result.metrics["fell"] == result.episode.terminated
    assert result.metrics["flipped"] is False and result.episode.infos[0]["upright"] > 0.9  # the trot stays upright
    env.data.qpos[3:7] = [0.0, 1.0, 0.0, 0.0]  # the torso turned half a turn about x: on its back
    mujoco.mj_forward(env.model, env.data)
    assert env._metrics()["upright"] == pytest.approx(-1.0)


@pytest.mark.parametrize("robot, task", [("ant", "broken-leg-3"), ("quadrotor", "heavy-payload"),
                                         ("quadrotor", "pickup")])
def test_the_oracle_imagines_exactly_what_the_simulator_does_and_leaves_it_untouched(robot, task):
    """`imagine` (rewards, terminations) and `imagine_path` (observations) give the numbers `step` gives."""
    env, twin = robots.make(robot, task=task), robots.make(robot, task=task)
    rng = np.random.default_rng(0)
    nominal = default_mpc(robot).planner.nominal_action or (0.0,) * env.action_space.shape[0]
    for e in (env, twin):
        e.reset(seed=4)
    for _ in range(93):  # past the pickup at step 96 within the horizon below
        action = np.clip(np.asarray(nominal) + rng.normal(0, 0.05, env.action_space.shape), -1, 1)
        env.step(action)
        twin.step(action)
    candidates = np.clip(np.asarray(nominal) + rng.normal(0, 0.2, (6, 8, env.action_space.shape[0])), -1, 1)
    rewards, terminated = env.imagine(candidates)
    paths = [env.imagine_path(c) for c in candidates]
    for i in range(len(candidates)):  # each candidate, stepped for real in a copy of the episode
        copy = robots.make(robot, task=task)
        copy.reset(seed=4)
        replay = np.random.default_rng(0)
        for _ in range(93):
            copy.step(np.clip(np.asarray(nominal) + replay.normal(0, 0.05, env.action_space.shape), -1, 1))
        np.testing.assert_array_equal(paths[i][0], copy._obs)
        for t in range(candidates.shape[1]):
            obs, reward, done, _, _ = copy.step(candidates[i, t])
            assert reward == rewards[i, t] and done == terminated[i, t], (i, t)
            np.testing.assert_array_equal(paths[i][t + 1], obs)
            if done:
                assert np.all(rewards[i, t + 1:] == 0.0) and np.all(terminated[i, t:])
                break
    after, twin_after = env.step(candidates[0, 0]), twin.step(candidates[0, 0])
    np.testing.assert_array_equal(after[0], twin_after[0])  # imagining left the simulator as it was
    assert after[1] == twin_after[1]


@pytest.mark.parametrize("robot, task, steps", [("ant", "broken-leg-3", 25), ("quadrotor", "heavy-payload", 60)])
def test_the_oracle_beats_random(robot, task, steps):
    small = dataclasses.replace(default_mpc(robot), planner=dataclasses.replace(
        default_mpc(robot).planner, population=24, horizon=8, iterations=2))
    results = {}
    for name in ("oracle", "random"):
        env = robots.make(robot, task=task, episode_length=steps)
        controller = make_controller(ControllerConfig(controller=name, mpc=small), env)
        results[name] = timed_episode(env, controller, seed=1)
    oracle, random = results["oracle"], results["random"]
    if robot == "ant":  # random actions jitter in place; the oracle walks
        assert oracle.metrics["distance_m"] > random.metrics["distance_m"] + 0.5, (oracle.metrics, random.metrics)
        assert not oracle.metrics["fell"]
    else:  # random motor commands crash within a second; the oracle tracks the whole episode
        assert random.metrics["crashed"] and not oracle.metrics["crashed"], (oracle.metrics, random.metrics)
        assert oracle.metrics["tracking_rmse_m"] < 0.3


def rewritten(source, path, **columns):
    """A copy of the results.csv `source` at `path` with `columns` set in every row (None: the column left out)."""
    with open(source, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for key, value in columns.items():
            row.pop(key) if value is None else row.update({key: value})
    write_csv(path, rows)
    return path


def test_compare_over_two_training_seeds_writes_intervals_csv_and_every_plot(tmp_path):
    seeds = []
    for i in range(2):  # two copies of the shipped models stand for two training seeds
        folder = tmp_path / f"seed{i}"
        folder.mkdir()
        for name in ("quadrotor_grbal.pt", "quadrotor_mb.pt"):
            shutil.copy(SHIPPED / name, folder / name)
        seeds.append(folder)
    config = CompareConfig(robot="quadrotor", controllers=["adaptive", "nonadaptive", "scripted"], episodes=2,
                           episode_length=100, models=seeds, out=tmp_path / "out")
    out = run_compare(config, progress=False)
    csv = (out / "results.csv").read_text().splitlines()
    header = csv[0].split(",")
    for column in ("tracking_rmse_m", "crashed", "crash_time_s", "training_seed", "adaptation_fallback_rate",
                   "window_loss_before", "window_loss_after", "return"):
        assert column in header
    # tasks (3) x (2 model-based controllers x 2 seeds + scripted once) x 2 episodes + change: 2 curves x 2 seeds x 2
    assert len(csv) - 1 == 3 * (2 * 2 + 1) * 2 + 2 * 2 * 2
    table = (out / "results.md").read_text()
    assert "## RMS tracking error (m)" in table and "(2 seeds: " in table and "(2 episodes)" in table
    assert "## crashed" in table and "## adaptation fallback rate" in table
    assert "| pickup (change) |" in table and "scripted | " in table  # the change: a column, for the curve ones
    scripted_row = next(line for line in table.splitlines() if line.startswith("| scripted |"))
    assert scripted_row.rstrip().endswith("| — |")
    lead = table[table.index("## adaptive against the others: RMS tracking error (m)"):]
    assert "| nonadaptive | " in lead and "(2 seeds), " in lead and "| scripted |" not in lead  # seeds vs episodes
    for plot in ("trajectories.png", "change.png", "adaptation_loss.png"):
        assert (out / plot).stat().st_size > 10_000, plot

    # Run again: every episode is reused (the measured latencies too), until a model file changes; not one kept
    # under the same name but run with other settings (a default changed since).
    assert (run_compare(config, progress=False) / "results.csv").read_text().splitlines() == csv
    evaluate = Evaluate(config)
    assert evaluate.ran_as_configured({"mpc_full": mpc_record("quadrotor", None)}) and evaluate.ran_as_configured({})
    assert not evaluate.ran_as_configured({"mpc_full": json.dumps(json.loads(mpc_record("quadrotor", None))
                                                                  | {"safety_margin": 0.1})})
    job = next(j for j in make_jobs(config) if j.controller == "nonadaptive")
    before = Evaluate(config).saved_path(job)
    assert Evaluate(dataclasses.replace(config, mpc=default_mpc("quadrotor"))).saved_path(job) == before
    shutil.copy(SHIPPED / "quadrotor_grbal.pt", job.models / "quadrotor_mb.pt")
    assert before.exists() and Evaluate(config).saved_path(job) != before

    # The same episodes as two runs of one seed each, merged: the same table.
    parts = []
    for i in range(2):
        lines = [line for line in csv[1:] if f",{seeds[i]}," in line]
        parts.append(tmp_path / f"part{i}.csv")
        parts[-1].write_text("\n".join([csv[0], *lines]) + "\n")
    merged = merge_results(dataclasses.replace(config, out=tmp_path / "merged", models=[]), parts)
    assert (merged / "results.md").read_text() == table
    with pytest.raises(ValueError, match="also in"):
        merge_results(config, [parts[0], parts[0]])
    # Each row records the MPC settings it ran with, as changes from the defaults (`mpc`) and every one
    # (`mpc_full`); merge states them, and refuses rows that differ.
    assert "mpc" in header and all(line.endswith(",defaults") for line in csv[1:])
    # the rows of a run from before `mpc_full` was recorded are read by their changes, against today's defaults
    continual = rewritten(parts[1], tmp_path / "continual.csv", mpc="from_prior=false", mpc_full=None)
    with pytest.raises(ValueError, match=r"different MPC settings \(defaults \| from_prior=false\)"):
        merge_results(config, [parts[0], continual])
    with pytest.raises(ValueError, match="different MPC settings"):  # the same episodes under two settings
        merge_results(config, [parts[1], continual])
    with pytest.raises(ValueError, match="--mpc: the runs ran with defaults, not from_prior=false"):
        merge_results(dataclasses.replace(config, mpc=mpc_settings("quadrotor", ["from_prior=false"])), parts)
    # a run that set what is the default today (here the quadrotor's margin) merges with runs at the default
    margin = default_mpc("quadrotor").safety_margin
    explicit = rewritten(parts[1], tmp_path / "explicit.csv", mpc=f"safety_margin={margin}", mpc_full=None)
    merged = merge_results(dataclasses.replace(config, out=tmp_path / "explicit", models=[]), [parts[0], explicit])
    assert (merged / "results.md").read_text() == table
    # but a run recorded as "defaults" before a default changed is told apart by its full record
    before = json.loads(mpc_record("quadrotor", None)) | {"safety_margin": 0.1}
    old_defaults = rewritten(parts[1], tmp_path / "old-defaults.csv", mpc_full=json.dumps(before))
    with pytest.raises(ValueError, match=r"different MPC settings \(defaults \| safety_margin=0.1\)"):
        merge_results(config, [parts[0], old_defaults])
    alone = merge_results(dataclasses.replace(config, out=tmp_path / "continual"), [continual])
    assert "MPC settings changed from the robot's defaults: from_prior=False." in (alone / "results.md").read_text()
    # A merge of one task's runs has that task's column alone.
    pickup = tmp_path / "pickup.csv"
    pickup.write_text("\n".join([csv[0], *(line for line in csv[1:] if ",pickup," in line)]) + "\n")
    one_task = (merge_results(dataclasses.replace(config, out=tmp_path / "one"), [pickup]) / "results.md").read_text()
    assert "| controller | pickup (change) |\n" in one_task and "heavy-payload" not in one_task


def test_the_results_say_which_mpc_settings_differ_from_the_robots_defaults():
    def header(pairs):
        config = CompareConfig(robot="quadrotor", controllers=["adaptive"], mpc=mpc_settings("quadrotor", pairs))
        return mpc_changes(config)

    assert header([]) == header([f"safety_margin={default_mpc('quadrotor').safety_margin}"]) == \
        "settings: the robot's defaults"
    assert header(["safety_margin=0", "planner.population=200"]) == \
        "settings changed from the robot's defaults: planner.population=200, safety_margin=0.0"


@pytest.mark.parametrize("robot", ["ant", "quadrotor"])
def test_the_full_record_of_the_mpc_settings_reads_back_as_the_settings(robot):
    """`mpc_full` round-trips (tuples, None, floats), so a kept episode at today's settings is reused."""
    for mpc in (None, mpc_settings(robot, ["planner.population=50", "safety_margin=0.1"])):
        config = CompareConfig(robot=robot, controllers=["adaptive"], mpc=mpc)
        assert Evaluate(config).ran_as_configured({"mpc_full": mpc_record(robot, mpc)})
        other = mpc_settings(robot, ["planner.population=51"])
        assert not Evaluate(config).ran_as_configured({"mpc_full": mpc_record(robot, other)})


class MyDrone(QuadrotorEnv):
    """A user's robot: its own tasks and evaluation split, no mid-episode change."""

    named_tasks = {"empty": PayloadTask(), "bag": PayloadTask(mass=0.008, cable_length=0.15)}
    evaluation_tasks = {"test": ("bag",), "train": ("empty",)}
    change_task = None


def test_a_users_registered_robot_is_compared_on_its_own_tasks(tmp_path, monkeypatch):
    monkeypatch.setitem(robots.ROBOTS, "mydrone", MyDrone)
    config = CompareConfig(robot="mydrone", controllers=["scripted", "random"], curve_controllers=[], episodes=1,
                           episode_length=30, out=tmp_path)
    table = (run_compare(config, progress=False) / "results.md").read_text()
    assert "| controller | bag (test) | empty (train) |" in table
    assert (tmp_path / "trajectories.png").exists() and not (tmp_path / "change.png").exists()

    class Plain(RobotEnv):
        named_tasks = {"a": None, "b": None}

    assert Plain.tasks_to_evaluate() == {"all": ("a", "b")}  # nothing declared: every named task


def test_onpolicy_error_scores_the_parameters_each_step_planned_with():
    """The diagnostic of model error on the MPC's own states: for the non-adaptive controller what it
    planned with is the prior, exactly; adapting changes the parameters, and every error is finite."""
    from scripts.onpolicy_error import onpolicy_errors

    env = robots.make("quadrotor", episode_length=30)
    env.set_task("heavy-payload")
    errors = {}
    for name in ("cem_mpc", "cem_adaptive"):
        controller = make_controller(ControllerConfig(controller=name, checkpoint=str(SHIPPED / "quadrotor_grbal.pt")),
                                     env)
        errors[name] = onpolicy_errors(env, controller, episodes=1, horizon=4, seed=0, before_end=5)
    fixed, adaptive = errors["cem_mpc"], errors["cem_adaptive"]
    assert fixed["planned with"]["all"].shape == (30 - 4 + 1, env.observation_space.shape[0])
    np.testing.assert_array_equal(fixed["planned with"]["all"], fixed["prior"]["all"])
    assert not np.array_equal(adaptive["planned with"]["all"], adaptive["prior"]["all"])
    assert all(np.isfinite(part).all() for parts in adaptive.values() for part in parts.values())


def test_onpolicy_error_reports_the_states_before_an_early_end_or_a_flip_apart():
    """An ant on its back ends its walk, not its episode: the states before either are what the model believed
    just before the controller lost the robot."""
    from scripts.onpolicy_error import end_of_walk

    nan = float("nan")
    assert end_of_walk({"flipped_step": nan}, 1000, terminated=False) is None
    assert end_of_walk({"tracking_rmse_m": 0.1}, 300, terminated=True) == 300  # no flips on the quadrotor
    assert end_of_walk({"flipped_step": 226}, 1000, terminated=False) == 226
    assert end_of_walk({"flipped_step": 226}, 400, terminated=True) == 226


def test_onpolicy_error_traces_the_one_step_miss_of_an_observation_over_every_step():
    """With `trace`, what happened to observation I minus its one-step prediction, every step: the same error
    the one-step table squares (in units of the training data's spread)."""
    from scripts.onpolicy_error import onpolicy_errors

    env = robots.make("quadrotor", episode_length=30)
    env.set_task("heavy-payload")
    controller = make_controller(ControllerConfig(controller="cem_mpc", checkpoint=str(SHIPPED / "quadrotor_grbal.pt")),
                                 env)
    errors = onpolicy_errors(env, controller, episodes=1, horizon=1, seed=0, before_end=5, trace=2)["planned with"]
    scale = controller.model.in_std[2].item()
    assert errors["miss"].shape == errors["seen"].shape == (30,) and np.abs(errors["miss"]).max() > 0
    np.testing.assert_allclose((errors["miss"] / scale) ** 2, errors["all"][:, 2], rtol=1e-4, atol=1e-10)


def test_onpolicy_error_scores_a_checkpoint_on_the_states_of_a_controller_without_a_model():
    """E.g. the oracle's states: the checkpoint's prior is scored there; scored again as the baseline it
    gives the same numbers; without a model to score it is a clear error."""
    from scripts.onpolicy_error import onpolicy_errors

    env = robots.make("quadrotor", episode_length=20)
    model = load_model(SHIPPED / "quadrotor_grbal.pt")[0]
    controller = make_controller(ControllerConfig(controller="scripted", seed=0), env)
    errors = onpolicy_errors(env, controller, episodes=1, horizon=4, seed=0, before_end=5, baseline=model,
                             scored=model)
    assert set(errors) == {"checkpoint", "baseline"}
    assert errors["checkpoint"]["all"].shape == (20 - 4 + 1, model.obs_dim)
    np.testing.assert_array_equal(errors["checkpoint"]["all"], errors["baseline"]["all"])
    with pytest.raises(ValueError, match="plans on no learned model"):
        onpolicy_errors(env, controller, episodes=1, horizon=4, seed=0, before_end=5)


def test_plan_check_scores_the_oracle_s_plan_along_the_simulator_as_the_simulator_pays_it():
    """With a planning objective that is the task's own (no margin or caps: the quadrotor at margin 0), the
    oracle plan's objective along the simulator's states is its task reward, step for step; the model's
    scores are finite; a controller that does not adapt scores its own plan in θ* as in its model."""
    from scripts.plan_check import run

    env = robots.make("quadrotor", episode_length=10)
    env.set_task("heavy-payload")
    mpc = mpc_settings("quadrotor", ["safety_margin=0", "planner.population=12", "planner.horizon=4",
                                     "planner.iterations=2"])
    controller = make_controller(ControllerConfig(controller="cem_adaptive", checkpoint=str(SHIPPED /
                                                  "quadrotor_grbal.pt"), mpc=mpc), env)
    rows, recent = run(env, controller, steps=7, every=3, seed=0)
    assert len(rows) == len(recent) == 2  # steps 3 and 6
    for row in rows:
        sim_oracle, task, ended, by_planning_limit = row[8:]
        assert ended == 4 and not by_planning_limit  # hovering near the reference, nothing ends the plan
        assert sim_oracle == pytest.approx(task, rel=1e-4, abs=1e-4)
        assert np.isfinite(row).all()
    controller = make_controller(ControllerConfig(controller="cem_mpc", checkpoint=str(SHIPPED / "quadrotor_mb.pt"),
                                                  mpc=mpc), env)
    (row,), _ = run(env, controller, steps=4, every=3, seed=0)
    assert row[3:6] == row[0:3]  # each plan in θ* as in the model it planned with


def test_reward_bias_is_zero_for_what_happened_and_positive_for_an_optimistic_path():
    from robots.ant import OBS_VX
    from scripts.onpolicy_error import reward_bias

    env = robots.make("ant")
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    observations, actions = [obs], rng.uniform(-0.3, 0.3, (12, 8))
    for a in actions:
        observations.append(env.step(a)[0])
    observations = np.array(observations)
    horizon = 4
    paths = np.stack([observations[t + 1:t + 1 + horizon] for t in range(len(actions) - horizon + 1)])
    np.testing.assert_allclose(reward_bias(env, paths, observations, actions), 0.0, atol=1e-12)
    faster = paths.copy()
    faster[..., OBS_VX] += 0.5  # the ant's forward speed (its reward's first term), 0.5 m/s more than happened
    np.testing.assert_allclose(reward_bias(env, faster, observations, actions), 0.5, atol=1e-9)


def test_onpolicy_trace_prints_what_happened_next_to_the_one_step_prediction(capsys):
    from scripts.onpolicy_error import print_trace

    model = load_model(SHIPPED / "quadrotor_grbal.pt")[0]
    obs = np.random.default_rng(0).normal(size=(6, model.obs_dim)).astype(np.float32)
    actions = np.full((5, model.act_dim), 0.5, np.float32)
    print_trace(model, [model.prior()] * 5, obs, actions, index=2, steps=3)
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    assert [int(r[0]) for r in rows] == [2, 3, 4]
    predicted = model.predict(torch.as_tensor(obs[4:5]), torch.as_tensor(actions[4:5]))[0, 2]
    np.testing.assert_allclose([float(rows[-1][2]), float(rows[-1][3])], [predicted, obs[5, 2]], atol=1e-3)


def test_compare_runs_only_the_tasks_asked_for_and_names_an_unknown_one():
    config = CompareConfig(robot="ant", controllers=["adaptive", "nonadaptive", "oracle"], episodes=2,
                           tasks=["broken-leg-3", "break-leg-3-midway"])
    jobs = make_jobs(config)
    assert {(j.split, j.task) for j in jobs} == {("test", "broken-leg-3"), ("change", "break-leg-3-midway")}
    assert {j.controller for j in jobs if j.split == "change"} == {"adaptive", "nonadaptive"}
    assert len(jobs) == 2 * (3 + 2)  # episodes x (three controllers on leg 3, two on the mid-episode change)
    assert config.columns() == [("test", "broken-leg-3"), ("change", "break-leg-3-midway")]
    everything = make_jobs(dataclasses.replace(config, tasks=None))
    assert {j.task for j in everything} > {j.task for j in jobs}
    with pytest.raises(ValueError, match="--tasks: 'broken-leg-4' is not one of the tasks ant is compared on"):
        CompareConfig(robot="ant", controllers=["adaptive"], tasks=["broken-leg-4"])
