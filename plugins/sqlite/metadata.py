"""The SQLite metadata store: :class:`conveyor.sqlstore.SQLMetadataStore` on one file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conveyor.plugins.sqlite.config import SQLiteMetadataStoreConfig
from conveyor.plugins.sqlite.dialect import SQLiteFile
from conveyor.sqlstore.metadata import SQLMetadataStore


class SQLiteMetadataStore(SQLiteFile, SQLMetadataStore):
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
        self.app = app
        self._open(app, config or SQLiteMetadataStoreConfig(), path)
