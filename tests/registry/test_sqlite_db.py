"""The SQLite layer: migrations without races, WAL, append-only audit, bounded retries."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from conveyor.errors import ConfigError
from conveyor.plugins.sqlite.metadata import SQLiteMetadataStore
from conveyor.plugins.sqlite.registry import PACKAGE, SQLiteRegistryBackend
from conveyor.registry import ModelRegistry
from conveyor.sqlite import Database, DatabaseBusyError, migrations, split_statements

OPENER = """
import sys, time
from conveyor.plugins.sqlite.metadata import SQLiteMetadataStore
from conveyor.plugins.sqlite.registry import SQLiteRegistryBackend
start = float(sys.argv[2])
while time.time() < start:
    pass
cls = SQLiteRegistryBackend if int(sys.argv[3]) % 2 else SQLiteMetadataStore
store = cls(path=sys.argv[1])
print(store.db.schema_version())
"""


def test_processes_opening_a_new_file_at_once_migrate_it_once(tmp_path: Path) -> None:
    db = tmp_path / "fresh" / "conveyor.db"
    start = time.time() + 1.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPENER, str(db), str(start), str(n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(8)
    ]
    outputs = [proc.communicate(timeout=60) for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 8, [err for _, err in outputs]
    latest = len(migrations(PACKAGE))
    assert [int(out) for out, _ in outputs] == [latest] * 8
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == latest
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    assert len(tables) == len(set(tables))
    assert {"runs", "model_versions", "alias_audit", "aliases"} <= set(tables)


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    SQLiteMetadataStore(path=path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 999")
    conn.close()
    with pytest.raises(ConfigError, match="newer"):
        SQLiteMetadataStore(path=path)


def test_the_audit_log_is_append_only(tmp_path: Path) -> None:
    registry = ModelRegistry(SQLiteRegistryBackend(path=tmp_path / "r.db"))
    registry.register("m", artifact_uri="file:///m.txt", sha256="a" * 64)
    registry.set_alias("m", "champion", 1, actor="me")
    conn = sqlite3.connect(tmp_path / "r.db")
    for statement in ("UPDATE alias_audit SET actor = 'mallory'", "DELETE FROM alias_audit"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute(statement)
    assert registry.history("m")[0].actor == "me"


def test_check_detects_an_alias_moved_behind_the_logs_back(tmp_path: Path) -> None:
    registry = ModelRegistry(SQLiteRegistryBackend(path=tmp_path / "r.db"))
    for _ in range(2):
        registry.register("m", artifact_uri="file:///m.txt", sha256="a" * 64)
    registry.set_alias("m", "champion", 1, actor="me")
    assert [f for f in registry.check() if f.blocking] == []
    conn = sqlite3.connect(tmp_path / "r.db", isolation_level=None)
    conn.execute("UPDATE aliases SET version = 2")
    problems = [f for f in registry.check() if f.blocking]
    assert [f.check for f in problems] == ["registry.audit_replay"]
    assert "v1" in problems[0].message


def test_a_held_write_lock_gives_a_bounded_retry_then_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    SQLiteMetadataStore(path=path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    db = Database(path, package=PACKAGE, busy_timeout_s=0.02)
    attempts: list[int] = []

    def write(conn: sqlite3.Connection) -> None:
        attempts.append(1)

    started = time.monotonic()
    with pytest.raises(DatabaseBusyError) as caught:
        db.write(write)
    assert time.monotonic() - started < 10
    assert caught.value.hint
    assert not db.conn.in_transaction  # rolled back before giving up
    holder.execute("ROLLBACK")
    db.write(write)
    assert attempts == [1]


def test_writes_wait_for_the_lock_themselves_and_leave_reads_their_busy_timeout(
    tmp_path: Path,
) -> None:
    path = tmp_path / "wait.db"
    SQLiteMetadataStore(path=path).close()
    db = Database(path, package=PACKAGE, busy_timeout_s=5)
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.05, lambda: holder.execute("ROLLBACK"))
    release.start()
    try:
        db.write(
            lambda conn: conn.execute(
                "INSERT INTO pipelines (name, created, updated) VALUES ('p', 'now', 'now')"
            )
        )
    finally:
        release.join()
    with db.locked() as conn:
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
        assert conn.execute("SELECT name FROM pipelines").fetchall() == [("p",)]
    holder.close()


def test_a_failed_write_rolls_back_everything(tmp_path: Path) -> None:
    store = SQLiteMetadataStore(path=tmp_path / "m.db")
    run_id = store.start_run("p")
    with pytest.raises(Exception, match="cannot tell"):
        store.start_step(
            run_id, "s", inputs=[{"uri": "file:///a", "fingerprint": "f"}, {"uri": ""}]
        )
    assert store.get_run(run_id).steps == ()
    assert store.find_artifacts() == []


def test_bad_urls_are_config_errors(conveyor_app: Any, tmp_path: Path) -> None:
    from conveyor.app import Conveyor
    from conveyor.config import Config

    (tmp_path / "conveyor.toml").write_text('[metadata_store]\nurl = "sqlite:///:memory:"\n')
    app = Conveyor(config=Config.load(cwd=tmp_path), pm=conveyor_app.pm)
    with pytest.raises(ConfigError, match="metadata_store"):
        app.metadata


def test_the_url_is_relative_to_the_project_root(conveyor_app: Any, tmp_path: Path) -> None:
    from conveyor.app import Conveyor
    from conveyor.config import Config

    (tmp_path / "conveyor.toml").write_text(
        '[model_registry]\nurl = "sqlite:///state/registry.db"\n'
    )
    app = Conveyor(config=Config.load(cwd=tmp_path), pm=conveyor_app.pm)
    assert app.registry.backend.db.path == tmp_path / "state" / "registry.db"
    assert conveyor_app.metadata.db.path == tmp_path / ".conveyor" / "conveyor.db"
    app.close()


def test_commits_are_fsynced_by_default_and_normal_is_a_choice(
    conveyor_app: Any, tmp_path: Path
) -> None:
    from conveyor.app import Conveyor
    from conveyor.config import Config

    def pragma(db: Database) -> int:
        with db.locked() as conn:
            return conn.execute("PRAGMA synchronous").fetchone()[0]

    full, normal = 2, 1  # SQLite's numbers for the two settings
    assert pragma(conveyor_app.registry.backend.db) == full
    assert pragma(conveyor_app.metadata.db) == full
    (tmp_path / "conveyor.toml").write_text(
        '[model_registry]\nsynchronous = "normal"\n[metadata_store]\nsynchronous = "normal"\n'
    )
    app = Conveyor(config=Config.load(cwd=tmp_path), pm=conveyor_app.pm)
    assert pragma(app.registry.backend.db) == normal
    assert pragma(app.metadata.db) == normal
    app.close()
    with pytest.raises(ConfigError, match="synchronous"):
        Database(tmp_path / "x.db", package=PACKAGE, synchronous="off")


def test_migration_2_keeps_the_lineage_of_versions_registered_before_it(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    number, _name, sql = migrations(PACKAGE)[0]
    for statement in split_statements(sql):
        conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {number}")
    at = "2024-01-01T00:00:00.000000+00:00"
    conn.execute(
        "INSERT INTO artifacts (id, uri, fingerprint, kind, created) VALUES "
        "('a1', 'file:///m.txt', ?, 'model', ?), ('d1', 'file:///t.parquet', 'f', "
        "'dataset', ?)",
        ("a" * 64, at, at),
    )
    conn.execute("INSERT INTO models VALUES ('m', 1, ?, ?)", (at, at))
    conn.execute(
        "INSERT INTO model_versions (name, version, created, artifact_uri, sha256, "
        "artifact_id, model_format) VALUES ('m', 1, ?, 'file:///m.txt', ?, 'a1', "
        "'lightgbm-text')",
        (at, "a" * 64),
    )
    conn.execute("INSERT INTO model_datasets VALUES ('m', 1, 'd1', 'train', NULL, NULL)")
    conn.close()
    store = SQLiteMetadataStore(path=path)
    assert store.db.schema_version() == len(migrations(PACKAGE))
    graph = store.lineage("model:m:1")
    assert {"artifact:a1", "artifact:d1"} <= set(graph.nodes)
    assert "model:m:1" in store.lineage("artifact:d1", direction="downstream").nodes
    store.close()


def test_a_database_without_migrations_holds_the_tables_its_owner_makes(tmp_path: Path) -> None:
    db = Database(tmp_path / "own.db", package=None, fresh_writes=True)
    assert db.schema_version() == 0
    db.write(lambda conn: conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)"))
    reader = db.conn

    def nested(conn: sqlite3.Connection) -> None:
        assert conn is not reader  # the write runs on its own connection
        conn.execute("INSERT INTO t VALUES (1, 'a')")
        # a nested write joins the outer transaction, on the same connection
        db.write(lambda inner: inner.execute("INSERT INTO t VALUES (2, 'b')"))

    db.write(nested)
    assert db.conn is reader  # the read connection stayed open across the writes
    assert db.conn.execute("SELECT k, v FROM t ORDER BY k").fetchall() == [(1, "a"), (2, "b")]
    with pytest.raises(sqlite3.IntegrityError):
        db.write(
            lambda conn: (
                conn.execute("INSERT INTO t VALUES (3, 'c')"),
                conn.execute("INSERT INTO t VALUES (1, 'dup')"),
            )
        )
    assert db.conn.execute("SELECT count(*) FROM t").fetchone()[0] == 2  # rolled back whole
    db.close()
