"""The README's two set-up commands are the ones users and CI run."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def setup_commands():
    section = ROOT.joinpath("README.md").read_text().split("## Set-up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_readme_has_exactly_two_setup_commands_and_ci_runs_the_test_one():
    commands = setup_commands()
    assert len(commands) == 2
    assert "mbmeta run" in commands[0] and "pytest" in commands[1]
    ci_lines = ROOT.joinpath(".ci/run").read_text().splitlines()
    assert any(line.endswith(commands[1].removeprefix("pip install")) for line in ci_lines)
