"""docs/ci-cd.md: the workflow's commands, run in order on a temporary project."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path


def doc_blocks(repo_root: Path) -> tuple[str, list[str]]:
    """The toml block and every ``run: |`` block of the workflow, in order."""
    text = (repo_root / "docs" / "ci-cd.md").read_text()
    toml = re.search(r"```toml\n(.*?)```", text, re.S).group(1)
    workflow = re.search(r"```yaml\n(.*?)```", text, re.S).group(1)
    blocks = []
    for match in re.finditer(r"^( *)run: \|\n((?:\1  .*\n|\n)+)", workflow, re.M):
        indent = len(match.group(1)) + 2
        lines = [line[indent:] for line in match.group(2).splitlines()]
        blocks.append("\n".join(line for line in lines if not line.startswith("pip ")))
    return toml, blocks


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_ci_workflow_runs_in_order_on_a_temporary_project(repo_root, tmp_path):
    toml, blocks = doc_blocks(repo_root)
    assert len(blocks) >= 6
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["PORT"] = str(free_port())
    subprocess.run(
        ["conveyor", "init", "shop", "--rows", "1500"], cwd=tmp_path, env=env, check=True
    )
    project = tmp_path / "shop"
    with (project / "conveyor.toml").open("a") as f:
        f.write("\n" + toml)
    (project / "tests").mkdir()
    (project / "tests" / "test_training.py").write_text(
        "def test_training_builds_the_agreed_features(conveyor_pipeline):\n"
        '    run = conveyor_pipeline.run("training")\n'
        '    conveyor_pipeline.assert_lineage(run, "train_model", upstream=["load_data"])\n'
    )
    for block in blocks:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, (
            f"{block}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
        )
    assert (project / "check.md").read_text().startswith("## conveyor check: passed")
    assert (project / "skew.html").stat().st_size > 0
