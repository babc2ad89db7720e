"""A run's records: markers commit without waiting for the disk, finishes wait."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conveyor.sqlite import Database, deferred_sync

#: ``PRAGMA synchronous`` answers
NORMAL, FULL, EXTRA = 1, 2, 3


def _insert_and_read_pragma(conn: sqlite3.Connection) -> int:
    conn.execute("INSERT INTO t (v) VALUES (1)")
    return int(conn.execute("PRAGMA synchronous").fetchone()[0])


@pytest.mark.parametrize(("setting", "value"), [("full", FULL), ("extra", EXTRA)])
def test_deferred_writes_commit_without_syncing_and_the_setting_comes_back(
    tmp_path: Path, setting: str, value: int
) -> None:
    db = Database(tmp_path / "x.db", package=None, synchronous=setting)
    db.write(lambda conn: conn.execute("CREATE TABLE t (v INTEGER)"))
    with deferred_sync():
        assert db.write(_insert_and_read_pragma) == NORMAL
    assert db.write(_insert_and_read_pragma) == value

    def fails(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t (v) VALUES (2)")
        raise ValueError("rolled back")

    with deferred_sync(), pytest.raises(ValueError, match="rolled back"):
        db.write(fails)
    assert db.conn.execute("PRAGMA synchronous").fetchone()[0] == value
    # committed, so another connection (another process) sees both rows, not the failed one
    other = sqlite3.connect(tmp_path / "x.db")
    assert other.execute("SELECT v FROM t").fetchall() == [(1,), (1,)]
    other.close()
    db.close()


def test_a_normal_database_is_left_alone(tmp_path: Path) -> None:
    db = Database(tmp_path / "x.db", package=None, synchronous="normal")
    db.write(lambda conn: conn.execute("CREATE TABLE t (v INTEGER)"))
    with deferred_sync():
        assert db.write(_insert_and_read_pragma) == NORMAL
    db.close()


CRASHING_PIPELINE = """
    import os
    import sys

    from conveyor.app import Conveyor
    from conveyor.pipeline import pipeline, step
    from conveyor.runs import run_pipeline


    @step(cache=False)
    def first() -> int:
        return 1


    @step(cache=False)
    def crashes(value: int) -> int:
        sys.stdout.flush()
        os._exit(9)  # the process dies mid-step: no clean-up, no finally


    @pipeline
    def crashing():
        crashes(first())


    if __name__ == "__main__":
        run_pipeline(Conveyor.load(cwd="."), crashing)
"""


def test_a_process_killed_mid_step_leaves_its_run_and_started_step_recorded(
    tmp_path: Path,
) -> None:
    from conveyor.app import Conveyor

    (tmp_path / "conveyor.toml").write_text('[project]\nname = "crash"\n')
    (tmp_path / "crashing.py").write_text(textwrap.dedent(CRASHING_PIPELINE))
    done = subprocess.run(
        [sys.executable, "crashing.py"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 9, done.stderr
    app = Conveyor.load(cwd=tmp_path)
    try:
        (run,) = app.metadata.list_runs()
        run = app.metadata.get_run(run.id)
        assert run.status == "running"
        assert {s.name: s.status for s in run.steps} == {
            "first": "succeeded",
            "crashes": "running",
        }
    finally:
        app.close()
