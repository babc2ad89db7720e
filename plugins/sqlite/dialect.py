"""SQLite's side of :mod:`conveyor.sqlstore`: the file, times as text, JSON1,
``BEGIN IMMEDIATE``."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from conveyor.plugins.sqlite.config import SQLiteMetadataStoreConfig, SQLiteModelRegistryConfig
from conveyor.sqlite import Database, parse_ts, path_from_url, ts
from conveyor.sqlstore.dialect import Dialect, Transactions

#: The package whose ``migrations/`` create both stores' tables (one file can hold both).
PACKAGE = "conveyor.plugins.sqlite"


def _json_path(key: str) -> str:
    return '$."' + key.replace('"', '\\"') + '"'


class SQLiteDialect(Dialect):
    """Times are fixed-width ISO-8601 UTC text (it sorts as time sorts); every write
    transaction is ``BEGIN IMMEDIATE``, so a write excludes other writers from its
    start and no ``SELECT`` needs to lock rows."""

    name = "SQLite"
    seq = "rowid"

    def write_time(self, value: datetime) -> str:
        return ts(value)

    def read_time(self, value: Any) -> Any:
        return parse_ts(value)

    def time_text(self, value: Any) -> str | None:
        return value  # stored as that text already

    def json_equals(self, column: str, key: str, value: Any) -> tuple[str, list[Any]]:
        # JSON true/false come back from json_extract as 1/0
        return f"json_extract({column}, ?) IS ?", [
            _json_path(key),
            int(value) if isinstance(value, bool) else value,
        ]

    def replace_sql(self, table: str, columns: Sequence[str]) -> str:
        # REPLACE deletes the old row and inserts a new one: a new rowid, so it sorts last
        marks = ", ".join("?" * len(columns))
        return f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}) VALUES ({marks})"

    def missing_reference_errors(self) -> tuple[type[BaseException], ...]:
        return (sqlite3.IntegrityError,)


DIALECT = SQLiteDialect()


class SQLiteFile:
    """A store on one SQLite file: opens it (migrated) for the shared SQL stores.

    Attributes:
        db: the database file and its connection.
    """

    db: Database
    sql: Transactions
    dialect: Dialect

    def _open(
        self,
        app: Any,
        config: SQLiteMetadataStoreConfig | SQLiteModelRegistryConfig,
        path: str | Path | None,
    ) -> None:
        if path is None:
            root = app.config.root if app is not None else Path.cwd()
            path = path_from_url(config.url, root)
        self.db = Database(
            Path(path),
            package=PACKAGE,
            busy_timeout_s=config.busy_timeout_s,
            synchronous=config.synchronous,
        )
        self.sql = self.db
        self.dialect = DIALECT
        self.db.conn  # noqa: B018 - open and migrate now, so errors surface at construction

    def close(self) -> None:
        self.db.close()

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.db.path), "schema_version": self.db.schema_version()}
