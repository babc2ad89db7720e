"""conveyor.sqlstore: what the shared SQL stores need from a backend, and nothing more."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conveyor.plugins.sqlite.dialect import DIALECT
from conveyor.plugins.sqlite.metadata import SQLiteMetadataStore
from conveyor.sqlite import Database
from conveyor.sqlstore.values import artifact_id, insert_artifact


def test_core_sqlstore_imports_no_plugin_and_no_psycopg() -> None:
    code = (
        "import sys\n"
        "import conveyor.sqlstore.metadata, conveyor.sqlstore.registry\n"
        "print(sorted(m for m in ('psycopg', 'conveyor_postgres', 'conveyor.plugins.sqlite') "
        "if m in sys.modules))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == "[]"


def test_sqlite_dialect_times_round_trip_as_sortable_text() -> None:
    early = datetime(2024, 3, 31, 1, 0, 0, 5, tzinfo=UTC)
    late = datetime(2024, 3, 31, 1, 0, 1, tzinfo=UTC)
    stored = DIALECT.write_time(early), DIALECT.write_time(late)
    assert stored[0] < stored[1]
    assert DIALECT.read_time(stored[0]) == early
    assert DIALECT.time_text(stored[0]) == stored[0]
    assert DIALECT.read_time(None) is None


def test_parameter_search_matches_json_booleans_and_nulls(tmp_path: Path) -> None:
    store = SQLiteMetadataStore(path=tmp_path / "m.db")
    on = store.start_run("p", parameters={"flag": True, "x": None})
    off = store.start_run("p", parameters={"flag": False})
    assert [r.id for r in store.search_runs(parameters={"flag": True})] == [on]
    assert [r.id for r in store.search_runs(parameters={"flag": False})] == [off]
    assert [r.id for r in store.search_runs(parameters={"x": None})] == [off, on]
    store.close()


def test_insert_artifact_writes_size_and_media_type_only_when_given(tmp_path: Path) -> None:
    db = Database(tmp_path / "own.db", package=None)
    db.write(
        lambda conn: conn.execute(
            "CREATE TABLE short (id TEXT PRIMARY KEY, uri TEXT, fingerprint TEXT, kind TEXT, "
            "metadata TEXT, created TEXT)"
        )
    )
    aid = db.write(lambda conn: insert_artifact(conn, "s3://b/k", "f" * 64, at="t", table="short"))
    again = db.write(
        lambda conn: insert_artifact(conn, "s3://b/k", "f" * 64, at="u", table="short")
    )
    assert aid == again == artifact_id("s3://b/k", "f" * 64)
    with db.reading() as conn:
        assert conn.execute("SELECT uri, kind, metadata, created FROM short").fetchall() == [
            ("s3://b/k", "artifact", "{}", "t")
        ]
    with pytest.raises(Exception, match="size"):  # the table has no size column
        db.write(lambda conn: insert_artifact(conn, "u", "g" * 64, size=3, at="t", table="short"))
    db.close()
