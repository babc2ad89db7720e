"""The PostgreSQL metadata store: :class:`conveyor.sqlstore.SQLMetadataStore` in a schema."""

from __future__ import annotations

from typing import Any

from conveyor.sqlstore.metadata import SQLMetadataStore
from conveyor_postgres.config import PostgresMetadataStoreConfig
from conveyor_postgres.dialect import PostgresSchema


class PostgresMetadataStore(PostgresSchema, SQLMetadataStore):
    """The metadata store in a PostgreSQL schema.

    Attributes:
        db: the database, schema and connection pool.
    """

    def __init__(
        self, *, app: Any = None, config: PostgresMetadataStoreConfig | None = None
    ) -> None:
        if config is None:
            raise ValueError("PostgresMetadataStore needs a config with a url")
        self.app = app
        self._open(config)
