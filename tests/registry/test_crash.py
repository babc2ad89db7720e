"""A promoter SIGKILLed in the middle of a promotion leaves the registry consistent."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

WORKER = Path(__file__).with_name("_crash_worker.py")


@pytest.fixture
def project(conveyor_app: Any) -> Any:
    """A project with model ``m`` v1..v4 (validated) and production on v1, then v2."""
    (conveyor_app.root / "conveyor.toml").write_text('[project]\nname = "crash"\n')
    info = conveyor_app.artifacts.put_bytes("models/m/model.txt", b"tree\n")
    registry = conveyor_app.registry
    for _ in range(4):
        mv = registry.register("m", artifact_uri=info.uri, sha256=info.sha256)
        registry.record_validation("m", mv.version, passed=True, summary="ok")
    registry.set_alias("m", "production", 1, actor="setup")
    registry.set_alias("m", "production", 2, actor="setup")
    return conveyor_app


def _run(project: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(WORKER), str(project.root), "m", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _models_check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conveyor", "models", "check"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _assert_consistent(project: Any, allowed: set[int]) -> int:
    registry = project.registry
    holder = registry.resolve("m", "production")
    assert holder is not None
    assert holder.version in allowed
    last = registry.history("m", alias="production")[-1]
    assert last.to_version == holder.version  # the audit log ends where the alias is
    assert [f for f in registry.check(deep=True) if f.blocking] == []
    checked = _models_check(project.root)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    return holder.version


@pytest.mark.parametrize(
    ("action", "point", "expected"),
    [
        ("set", "set.begin", 2),
        ("set", "set.before_audit", 2),
        ("set", "set.after_audit", 2),
        ("set", "set.after_alias", 2),
        ("set", "set.committed", 3),
        ("rollback", "rollback.after_audit", 2),
        ("rollback", "rollback.after_alias", 2),
    ],
)
def test_sigkill_at_each_point_of_a_promotion(
    project: Any, action: str, point: str, expected: int
) -> None:
    before = len(project.registry.history("m"))
    result = _run(project, action, point, "3")
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert "finished" not in result.stdout
    assert _assert_consistent(project, {expected}) == expected
    assert len(project.registry.history("m")) == before + (expected == 3)
    # the killed writer left no lock behind: the next promotion goes through at once
    started = time.monotonic()
    project.registry.set_alias("m", "production", 4, actor="after")
    assert time.monotonic() - started < 2
    assert _assert_consistent(project, {4}) == 4


def test_sigkill_at_random_moments_of_a_promotion_loop(project: Any) -> None:
    rng = random.Random(7)
    for _ in range(4):
        proc = subprocess.Popen(
            [sys.executable, str(WORKER), str(project.root), "m", "set", "loop"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
        _assert_consistent(project, {1, 2, 3, 4})
    assert len(project.registry.history("m", alias="production")) > 10
