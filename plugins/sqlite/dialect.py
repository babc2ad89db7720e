"""SQLite's side of :mod:`conveyor.sqlstore`: times as text, JSON1, ``BEGIN IMMEDIATE``."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from conveyor.sqlite import parse_ts, ts
from conveyor.sqlstore.dialect import Dialect


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
