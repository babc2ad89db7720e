"""The PostgreSQL metadata store: :class:`conveyor.sqlstore.SQLMetadataStore` in a schema."""

from __future__ import annotations

from typing import Any

from conveyor.sqlstore.metadata import SQLMetadataStore
from conveyor_postgres.config import PostgresMetadataStoreConfig
from conveyor_postgres.db import Database, redact
from conveyor_postgres.dialect import PostgresDialect, QmarkTransactions


class PostgresMetadataStore(SQLMetadataStore):
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
        self.db = Database(
            config.url,
            schema=config.schema,
            pool_size=config.pool_size,
            connect_timeout_s=config.connect_timeout_s,
            lock_timeout_s=config.lock_timeout_s,
        )
        self.sql = QmarkTransactions(self.db)
        self.dialect = PostgresDialect(config.schema)
        self.db.pool  # noqa: B018 - connect and migrate now, so errors surface at construction

    def close(self) -> None:
        self.db.close()

    def describe(self) -> dict[str, Any]:
        return {
            "url": redact(self.db.url),
            "schema": self.db.schema,
            "schema_version": self.db.schema_version(),
        }
