"""The SQLite metadata store: :class:`conveyor.sqlstore.SQLMetadataStore` on one file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conveyor.plugins.sqlite.config import SQLiteMetadataStoreConfig
from conveyor.plugins.sqlite.dialect import DIALECT
from conveyor.plugins.sqlite.registry import PACKAGE
from conveyor.sqlite import Database, path_from_url
from conveyor.sqlstore.metadata import SQLMetadataStore


class SQLiteMetadataStore(SQLMetadataStore):
    """The metadata store on a SQLite file (see :mod:`conveyor.sqlite`).

    Attributes:
        db: the database file and its connection.
    """

    def __init__(
        self,
        *,
        app: Any = None,
        config: SQLiteMetadataStoreConfig | None = None,
        path: str | Path | None = None,
    ) -> None:
        config = config or SQLiteMetadataStoreConfig()
        if path is None:
            root = app.config.root if app is not None else Path.cwd()
            path = path_from_url(config.url, root)
        self.app = app
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
