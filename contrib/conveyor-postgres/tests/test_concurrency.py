"""Many processes on one PostgreSQL registry: registrations, alias races, SIGKILLed writers."""

from __future__ import annotations

import itertools
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conveyor.testing.registry import run_workers

WRITER = Path(__file__).with_name("_writer.py")


def _model_file(app: Any) -> Any:
    return app.artifacts.put_bytes("models/m/model.txt", b"tree\nversion=v4\n")


def test_16_processes_x_50_registrations(pg_app: Any) -> None:
    info = _model_file(pg_app)
    results = run_workers(
        pg_app.root, [["register", "many", "50", info.uri, info.sha256]] * 16, timeout=300
    )
    assert [e for r in results for e in r["errors"]] == []
    assert sorted(v for r in results for v in r["versions"]) == list(range(1, 801))
    assert [f for f in pg_app.registry.check() if f.blocking] == []


def test_concurrent_alias_moves_leave_one_holder_for_every_reader(pg_app: Any) -> None:
    info = _model_file(pg_app)
    registry = pg_app.registry
    for _ in range(6):
        mv = registry.register("flip", artifact_uri=info.uri, sha256=info.sha256)
        registry.record_validation("flip", mv.version, passed=True, summary="ok")
    registry.set_alias("flip", "production", 1, actor="setup")
    # four promoters in tight loops on a loaded machine: core's compare-and-set keeps
    # deciding again while it loses races (bounded by time, not by a count), so every
    # one of the 160 moves lands
    results = run_workers(
        pg_app.root,
        [["promote", "flip", "40", str(seed)] for seed in range(4)]
        + [["resolve", "flip", "3"] for _ in range(3)],
        timeout=300,
    )
    assert [e for r in results[:4] for e in r["errors"]] == []
    assert [e for r in results[4:] for e in r["errors"]] == []  # one holder, every read
    reads = [v for r in results[4:] for v in r["versions"]]
    assert len(reads) > 50
    assert set(reads) <= set(range(1, 7))
    history = registry.history("flip", alias="production")
    ids = [c.id for c in history]
    assert ids == sorted(ids)
    assert {i for r in results[:4] for i in r["ids"]} <= set(ids)
    assert len(history) == 1 + len({i for r in results[:4] for i in r["ids"]} - {ids[0]})
    assert all(a.to_version == b.from_version for a, b in itertools.pairwise(history))
    assert [f for f in registry.check() if f.blocking] == []


def _start(root: Path, seed: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, str(WRITER), str(root), "k", str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    assert line.strip() == "ready", line + proc.stderr.read()
    return proc


def _kill_writers(app: Any, kills: int, *, parallel: int = 3, seed: int = 11) -> int:
    """SIGKILL ``kills`` writers at random moments (``parallel`` at a time); returns ops seen."""
    rng = random.Random(seed)
    info = _model_file(app)
    for _ in range(3):
        mv = app.registry.register("k", artifact_uri=info.uri, sha256=info.sha256)
        app.registry.record_validation("k", mv.version, passed=True, summary="ok")
    running = [_start(app.root, s) for s in range(parallel)]
    done = 0
    ops = 0
    while done < kills:
        time.sleep(rng.uniform(0.05, 0.6) / parallel)
        victim = running.pop(rng.randrange(len(running)))
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        ops += len(victim.stdout.read().split())
        victim.stdout.close()
        victim.stderr.close()
        done += 1
        if done + len(running) < kills + parallel - 1:
            running.append(_start(app.root, 100 + done))
    for proc in running:
        proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()
    return ops


def _assert_consistent(app: Any) -> None:
    registry = app.registry
    assert [f for f in registry.check(deep=True) if f.blocking] == []
    checked = subprocess.run(
        [sys.executable, "-m", "conveyor", "models", "check"],
        cwd=app.root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    versions = [v.version for v in registry.list_versions("k")]
    assert versions == list(range(1, len(versions) + 1))
    for alias, holder in registry.aliases("k").items():
        assert registry.history("k", alias=alias)[-1].to_version == holder


def test_sigkilled_writers_leave_a_consistent_registry(pg_app: Any) -> None:
    ops = _kill_writers(pg_app, kills=8)
    assert ops > 0
    _assert_consistent(pg_app)


@pytest.mark.benchmark
def test_sigkilled_writers_at_24_random_moments(pg_app: Any) -> None:
    ops = _kill_writers(pg_app, kills=24, parallel=4)
    print(f"\n24 writers SIGKILLed after {ops} committed operations in all")
    assert ops > 0
    _assert_consistent(pg_app)
