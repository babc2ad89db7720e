"""PostgreSQL's side of :mod:`conveyor.sqlstore`: timestamptz, jsonb, row locks.

The shared stores write ``?`` placeholders; :class:`QmarkConnection` turns them
into psycopg's ``%s`` (and a literal ``%`` into ``%%``) before a statement runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import frozen

from conveyor.sqlite import ts
from conveyor.sqlstore.dialect import Dialect, Transactions
from conveyor_postgres.db import Database, redact

if TYPE_CHECKING:
    import psycopg

    from conveyor_postgres.config import PostgresMetadataStoreConfig, PostgresModelRegistryConfig

T = TypeVar("T")


@lru_cache(maxsize=1024)
def pyformat(sql: str) -> str:
    """``sql`` with ``?`` placeholders as psycopg's ``%s`` ones."""
    return sql.replace("%", "%%").replace("?", "%s")


class QmarkConnection:
    """A psycopg connection that takes ``?`` placeholders.

    Attributes:
        raw: the psycopg connection, for statements written for PostgreSQL alone.
    """

    def __init__(self, raw: psycopg.Connection) -> None:
        self.raw = raw

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Any:
        return self.raw.execute(pyformat(sql), parameters)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]], /) -> None:
        rows = list(rows)
        if len(rows) == 1:  # one round trip, without a cursor of its own
            self.raw.execute(pyformat(sql), rows[0])
        elif rows:
            with self.raw.cursor() as cursor:
                cursor.executemany(pyformat(sql), rows)


class QmarkTransactions:
    """A :class:`~conveyor_postgres.db.Database`'s transactions, on :class:`QmarkConnection`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def write(self, fn: Callable[[QmarkConnection], T], *, retry_conflicts: bool = False) -> T:
        return self.db.write(
            lambda conn: fn(QmarkConnection(conn)), retry_conflicts=retry_conflicts
        )

    @contextmanager
    def snapshot(self) -> Iterator[QmarkConnection]:
        with self.db.snapshot() as conn:
            yield QmarkConnection(conn)

    @contextmanager
    def reading(self) -> Iterator[QmarkConnection]:
        with self.db.reading() as conn:
            yield QmarkConnection(conn)


@frozen
class PostgresDialect(Dialect):
    """Times are ``timestamptz``; a writer locks the rows it reads (``FOR UPDATE``)
    or a transaction-scoped advisory lock named after what it changes.

    Attributes:
        schema: the schema holding the tables (advisory lock names include it).
    """

    schema: str
    name = "PostgreSQL"
    seq = "seq"
    for_update = " FOR UPDATE"

    def write_time(self, value: datetime) -> datetime:
        return value

    def read_time(self, value: Any) -> Any:
        return value  # psycopg reads timestamptz as an aware datetime

    def time_text(self, value: Any) -> str | None:
        return None if value is None else ts(value)

    def json_equals(self, column: str, key: str, value: Any) -> tuple[str, list[Any]]:
        return f"coalesce({column}::jsonb -> ?, 'null') = ?::jsonb", [key, json.dumps(value)]

    def serialize(self, conn: Any, key: str) -> None:
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext(?))", (f"conveyor:{self.schema}:{key}",)
        )

    def replace_sql(self, table: str, columns: Sequence[str]) -> str:
        marks = ", ".join("?" * len(columns))
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c != "id")
        return (
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) ON CONFLICT (id) "
            f"DO UPDATE SET {updates}, seq = nextval(pg_get_serial_sequence('{table}', 'seq'))"
        )

    def missing_reference_errors(self) -> tuple[type[BaseException], ...]:
        from psycopg import errors

        return (errors.ForeignKeyViolation,)


class PostgresSchema:
    """A store in one PostgreSQL schema: connects (and migrates) for the shared SQL stores.

    Attributes:
        db: the database, schema and connection pool.
    """

    db: Database
    sql: Transactions
    dialect: Dialect

    def _open(self, config: PostgresMetadataStoreConfig | PostgresModelRegistryConfig) -> None:
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
