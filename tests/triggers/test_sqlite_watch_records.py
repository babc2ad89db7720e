"""Migration 0004 of the SQLite store keeps every run and step while widening runs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from conveyor.errors import AlreadyExistsError
from conveyor.plugins.sqlite.metadata import SQLiteMetadataStore
from conveyor.plugins.sqlite.registry import PACKAGE
from conveyor.sqlite import migrations, split_statements


def test_migration_0004_keeps_runs_steps_and_their_references(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    for number, _name, sql in migrations(PACKAGE):
        if number >= 4:
            break
        for statement in split_statements(sql):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {number}")
    at = "2024-01-01T00:00:00.000000+00:00"
    conn.execute("INSERT INTO pipelines (name, created, updated) VALUES ('train', ?, ?)", (at, at))
    conn.execute(
        "INSERT INTO trigger_events (id, trigger, reason, created) "
        "VALUES ('ev1', 'manual', 'why', ?)",
        (at,),
    )
    conn.execute(
        "INSERT INTO runs (id, pipeline, status, started, trigger_event) "
        "VALUES ('run1', 'train', 'succeeded', ?, 'ev1')",
        (at,),
    )
    conn.execute(
        "INSERT INTO steps (id, run_id, name, status, started) "
        "VALUES ('step1', 'run1', 'fit', 'succeeded', ?)",
        (at,),
    )
    conn.close()

    store = SQLiteMetadataStore(path=path)
    assert store.db.schema_version() >= 4
    run = store.get_run("run1")
    assert (run.status, run.trigger_event, [s.id for s in run.steps]) == (
        "succeeded",
        "ev1",
        ["step1"],
    )
    with store.db.locked() as check:
        assert check.execute("PRAGMA foreign_key_check").fetchall() == []
    with pytest.raises(AlreadyExistsError):
        store.start_run("train", trigger_event="ev1")
    store.finish_run(store.start_run("train"), "interrupted")
    store.close()
