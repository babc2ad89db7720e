"""The plugin guide's example orchestrator, installed for real, runs a scaffolded project."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from conveyor.testing import install_in_virtualenv

pytestmark = pytest.mark.slow


def test_conveyor_hello_orchestrator_runs_the_scaffolded_pipeline(repo_root, tmp_path):
    python = install_in_virtualenv(repo_root / "tests/fixtures/conveyor-hello", tmp_path / "venv")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}

    def conveyor(*args: str, cwd=tmp_path) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(python), "-m", "conveyor", *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    made = conveyor("init", "proj", "--rows", "4000")
    assert made.returncode == 0, made.stderr
    project = tmp_path / "proj"
    with (project / "conveyor.toml").open("a") as config:
        config.write('\n[orchestrator]\nbackend = "hello"\nworkers = 2\n')
    ran = conveyor("run", "--json", "-p", "train={num_boost_round = 30}", cwd=project)
    assert ran.returncode == 0, ran.stderr + ran.stdout
    summary = json.loads(ran.stdout)
    assert summary["status"] == "succeeded"
    assert {s["status"] for s in summary["steps"]} == {"succeeded"}
    listed = json.loads(conveyor("models", "list", "--json", cwd=project).stdout)
    assert listed[0]["aliases"] == {"production": 1, "staging": 1}
    again = json.loads(
        conveyor("run", "--json", "-p", "train={num_boost_round = 30}", cwd=project).stdout
    )
    assert again["status"] == "succeeded"
