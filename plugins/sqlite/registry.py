"""The SQLite registry backend: :class:`conveyor.sqlstore.SQLRegistryBackend` on one file.

Every write is one ``BEGIN IMMEDIATE`` transaction (see :mod:`conveyor.sqlite`),
so a compare-and-set and its audit record never interleave with another writer's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conveyor.checks import Finding
from conveyor.plugins.sqlite.config import SQLiteModelRegistryConfig
from conveyor.plugins.sqlite.dialect import DIALECT
from conveyor.sqlite import Database, path_from_url
from conveyor.sqlstore.dialect import Connection
from conveyor.sqlstore.registry import SQLRegistryBackend

PACKAGE = "conveyor.plugins.sqlite"


class SQLiteRegistryBackend(SQLRegistryBackend):
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
        if path is None:
            root = app.config.root if app is not None else Path.cwd()
            path = path_from_url(self.config.url, root)
        self.db = Database(
            Path(path),
            package=PACKAGE,
            busy_timeout_s=self.config.busy_timeout_s,
            synchronous=self.config.synchronous,
        )
        self.sql = self.db
        self.dialect = DIALECT
        self.db.conn  # noqa: B018 - open and migrate now, so errors surface at construction

    def close(self) -> None:
        self.db.close()

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.db.path), "schema_version": self.db.schema_version()}

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
