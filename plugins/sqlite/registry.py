"""The SQLite registry backend: :class:`conveyor.sqlstore.SQLRegistryBackend` on one file.

Every write is one ``BEGIN IMMEDIATE`` transaction (see :mod:`conveyor.sqlite`),
so a compare-and-set and its audit record never interleave with another writer's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conveyor.checks import Finding
from conveyor.plugins.sqlite.config import SQLiteModelRegistryConfig
from conveyor.plugins.sqlite.dialect import PACKAGE, SQLiteFile
from conveyor.sqlstore.dialect import Connection
from conveyor.sqlstore.registry import SQLRegistryBackend

__all__ = ["PACKAGE", "SQLiteRegistryBackend"]


class SQLiteRegistryBackend(SQLiteFile, SQLRegistryBackend):
    """The registry's state in a SQLite file (see :mod:`conveyor.sqlite`).

    Attributes:
        db: the database file and its connection.
        config: the backend's settings.
    """

    def __init__(
        self,
        *,
        app: Any = None,
        config: SQLiteModelRegistryConfig | None = None,
        path: str | Path | None = None,
    ) -> None:
        self.config = config or SQLiteModelRegistryConfig()
        self._open(app, self.config, path)

    def _storage_findings(self, conn: Connection) -> list[Finding]:
        result = conn.execute("PRAGMA quick_check").fetchone()[0]
        if result == "ok":
            return []
        return [
            Finding(
                check="registry.sqlite",
                subject=str(self.db.path),
                message=f"SQLite quick_check failed: {result}",
            )
        ]
