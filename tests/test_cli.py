"""The command line: help, clear one-line errors, and a closed-loop run on a shipped checkpoint."""

import subprocess
import sys

import pytest

from scripts.cli import main
from scripts.common import shipped_checkpoint

COMMANDS = ["run", "train", "compare", "bench", "eval-model", "export", "polish"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_examples(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "example" in capsys.readouterr().out


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "scripts.cli", *args], capture_output=True, text=True, timeout=300)


def test_a_bad_config_key_is_one_clear_line_and_a_failure(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("robot: ant\nmodel:\n  hiden: [64]\n")
    result = run_cli("train", str(config), "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "unknown key(s) ['hiden']; valid keys are" in result.stderr and "Traceback" not in result.stderr


def test_budget_is_for_rl_learners_and_a_bad_learner_is_named(tmp_path):
    result = run_cli("train", "ant_grbal", "--budget", "5", "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 2 and "--budget sets an RL learner's environment steps" in result.stderr
    config = tmp_path / "c.yaml"
    config.write_text("learner: sac\n")
    result = run_cli("train", str(config))
    expected = "c.yaml.learner: expected one of ['grbal', 'rl2', 'pearl'], got 'sac'"
    assert result.returncode == 2 and expected in result.stderr


@pytest.mark.parametrize("flag, value, allowed", [("--episodes", "-1", ">= 1"), ("--episodes", "0", ">= 1"),
                                                   ("--seed", "-1", ">= 0"), ("--steps", "ten", "an integer")])
def test_a_bad_number_on_the_command_line_names_the_flag(flag, value, allowed):
    result = run_cli("run", "quadrotor", flag, value)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert f"argument {flag}: " in result.stderr and allowed in result.stderr


def test_help_imports_no_heavy_module_and_its_names_match_the_registries():
    code = ("import sys; from scripts.cli import main\ntry: main(['run', '--help'])\nexcept SystemExit: pass\n"
            "print(sorted(m for m in ('torch', 'mujoco', 'pybullet', 'numba') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip().endswith("[]"), result.stdout
    import robots
    from controllers.registry import CONTROLLERS
    from scripts.cli import CONTROLLER_NAMES, ROBOT_NAMES
    from scripts.common import ALIASES

    assert sorted(ROBOT_NAMES) == sorted(robots.ROBOTS)
    assert sorted(CONTROLLER_NAMES) == sorted([*ALIASES, *CONTROLLERS])


def test_a_bad_robot_name_lists_the_choices():
    result = run_cli("run", "tank")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "invalid choice: 'tank' (choose from" in result.stderr and "'quadrotor'" in result.stderr


def test_a_bad_task_and_a_missing_checkpoint_are_one_line_errors(tmp_path):
    result = run_cli("run", "ant", "--task", "broken-leg-9")
    assert result.returncode == 2 and result.stderr.startswith("mbmeta: error: unknown task 'broken-leg-9'")
    result = run_cli("run", "ant", "--checkpoint", str(tmp_path / "none.pt"))
    assert result.returncode == 2 and "no checkpoint at" in result.stderr
    result = run_cli("polish", str(tmp_path), str(tmp_path / "out.pt"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "has no data.npz" in result.stderr


@pytest.mark.parametrize("robot, task", [("ant", "broken-leg-3"), ("quadrotor", "heavy-payload")])
def test_run_with_the_shipped_checkpoint_finishes_an_episode(robot, task):
    assert shipped_checkpoint(robot, "adaptive").exists()
    result = run_cli("run", robot, "--controller", "adaptive", "--task", task, "--steps", "40")
    assert result.returncode == 0, result.stderr
    metric = {"ant": "distance (m)", "quadrotor": "RMS tracking error (m)"}[robot]
    assert f"{robot} | adaptive | task " in result.stdout and f"| episode 0 | {metric} " in result.stdout
    assert "| return " in result.stdout and "latency p50" in result.stdout and "adaptations" in result.stdout
    assert "adaptation: guard fell back on " in result.stdout


def test_train_an_rl_learner_writes_checkpoint_log_and_learning_curve_and_resumes(tmp_path):
    config = tmp_path / "pearl.yaml"
    config.write_text("learner: pearl\nrobot: quadrotor\nepisode_length: 10\nbudget: 20\ntrain_tasks: 2\n"
                      "initial_steps: 10\nprior_steps: 10\nposterior_steps: 0\nhidden: 8\nlayers: 1\n"
                      "encoder_hidden: 8\nupdates_per_iteration: 2\nmeta_batch: 2\nbatch_size: 4\ncontext_size: 4\n")
    run = tmp_path / "run"
    result = run_cli("train", str(config), "--run-dir", str(run))
    assert result.returncode == 0, result.stderr
    assert (run / "checkpoint.pt").exists() and (run / "learning_curve.png").stat().st_size > 0
    result = run_cli("train", str(config), "--run-dir", str(run), "--budget", "40")
    assert result.returncode == 0, result.stderr
    assert (run / "log.csv").read_text().count("\n") == 3  # header, the first run's iteration, one more


def test_compare_merge_names_a_missing_file_and_what_it_cannot_be_combined_with(tmp_path):
    result = run_cli("compare", "ant", "--merge", str(tmp_path / "none.csv"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "--merge: no file" in result.stderr and "results.csv" in result.stderr
    result = run_cli("compare", "ant", "--merge", str(tmp_path / "none.csv"), "--quick")
    assert result.returncode == 2 and "drop --models, --quick and --video" in result.stderr
