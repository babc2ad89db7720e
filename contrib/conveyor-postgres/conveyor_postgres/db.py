"""One PostgreSQL schema: a connection pool, migrations and write transactions.

The rules every write follows (RELIABILITY.md #4):

* constraints decide (primary and unique keys), and a writer locks the row it is
  about to change (``INSERT ... ON CONFLICT DO UPDATE``, ``SELECT ... FOR UPDATE``)
  before it reads what depends on it, so no read-then-write spans two transactions;
* a serialization failure, a deadlock or (where the caller allows it) a unique-key
  conflict rolls the transaction back *first* and is then retried, a bounded number
  of times, with jittered backoff;
* a method returns only after its transaction committed.

Migrations are numbered SQL files (``0001_initial.sql``, ...) shipped as package
data.  They are applied in one transaction holding an advisory lock derived from
the schema's name, which re-reads the schema version after taking it, so N
processes opening a new database at once apply each migration exactly once.
"""

from __future__ import annotations

import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from typing import TYPE_CHECKING, Any, TypeVar

from conveyor.errors import ConfigError, ConveyorError

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

T = TypeVar("T")

#: Attempts for one write transaction before the error is raised.
MAX_ATTEMPTS = 10
PACKAGE = "conveyor_postgres"
_MIGRATION = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class DatabaseUnavailableError(ConveyorError):
    """The PostgreSQL server could not be reached, or refused the connection."""


def migrations(package: str = PACKAGE) -> list[tuple[int, str, str]]:
    """``(number, file name, sql)`` of every migration in ``package``'s ``migrations/``."""
    folder = resources.files(package).joinpath("migrations")
    found = sorted(
        (int(m.group(1)), entry.name, entry.read_text("utf-8"))
        for entry in folder.iterdir()
        if (m := _MIGRATION.match(entry.name))
    )
    numbers = [n for n, _, _ in found]
    if numbers != list(range(1, len(numbers) + 1)):
        raise RuntimeError(f"migrations in {package} are not numbered 1..N: {numbers}")
    return found


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def redact(url: str) -> str:
    """``url`` without its password (for messages and ``describe``)."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


class Database:
    """A schema in a PostgreSQL database, reached through a per-process connection pool.

    Attributes:
        url: the ``postgresql://`` connection URL.
        schema: the schema holding the tables (created on first use).
    """

    def __init__(
        self,
        url: str,
        *,
        schema: str = "public",
        pool_size: int = 4,
        connect_timeout_s: float = 10.0,
        lock_timeout_s: float = 30.0,
        package: str = PACKAGE,
    ) -> None:
        self.url = (
            "postgresql://" + url.split("://", 1)[1] if url.startswith("postgres://") else url
        )
        self.schema = schema
        self.pool_size = pool_size
        self.connect_timeout_s = connect_timeout_s
        self.lock_timeout_s = lock_timeout_s
        self.package = package
        self._pool: ConnectionPool | None = None
        self._pid = 0
        self._lock = threading.Lock()

    # -- connections -------------------------------------------------------------------

    @property
    def pool(self) -> ConnectionPool:
        """The pool of this process (a forked child opens its own)."""
        if self._pool is None or self._pid != os.getpid():
            with self._lock:
                if self._pool is None or self._pid != os.getpid():
                    self._pool = self._open()
                    self._pid = os.getpid()
        return self._pool

    def _configure(self, conn: psycopg.Connection) -> None:
        conn.execute(f"SET search_path TO {quote_ident(self.schema)}")
        conn.execute("SET TIME ZONE 'UTC'")
        conn.execute(f"SET lock_timeout = {int(self.lock_timeout_s * 1000)}")

    def connect(self) -> psycopg.Connection:
        """A new connection outside the pool (for LISTEN), configured like the pool's."""
        import psycopg

        try:
            conn = psycopg.connect(
                self.url, autocommit=True, connect_timeout=max(1, int(self.connect_timeout_s))
            )
        except psycopg.OperationalError as exc:
            raise self._unavailable(exc) from None
        self._configure(conn)
        return conn

    def _unavailable(self, exc: BaseException) -> DatabaseUnavailableError:
        return DatabaseUnavailableError(
            f"cannot connect to PostgreSQL at {redact(self.url)}: {str(exc).strip()}",
            hint="check the server is running and the url (host, port, database, user) "
            "in [metadata_store] / [model_registry]",
        )

    def _open(self) -> ConnectionPool:
        import psycopg
        from psycopg_pool import ConnectionPool, PoolTimeout

        pool = ConnectionPool(
            self.url,
            min_size=1,
            max_size=self.pool_size,
            open=False,
            kwargs={"autocommit": True},
            configure=self._configure,
            timeout=self.connect_timeout_s,
            name=f"conveyor:{self.schema}",
        )
        try:
            pool.open(wait=True, timeout=self.connect_timeout_s)
        except (PoolTimeout, psycopg.OperationalError) as exc:
            pool.close()
            raise self._unavailable(exc) from None
        try:
            self._migrate(pool)
        except BaseException:
            pool.close()
            raise
        return pool

    def _migrate(self, pool: ConnectionPool) -> None:
        found = migrations(self.package)
        latest = len(found)
        with pool.connection() as conn:
            if self._version(conn) == latest:
                return
            with conn.transaction():
                conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(%s))",
                    (f"conveyor-migrate:{self.schema}",),
                )
                conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(self.schema)}")
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS conveyor_schema "
                    "(one boolean PRIMARY KEY DEFAULT true CHECK (one), "
                    "version integer NOT NULL)"
                )
                current = self._version(conn)
                if current > latest:
                    raise ConfigError(
                        f"the PostgreSQL schema {self.schema!r} is at version {current}, "
                        f"newer than this conveyor-postgres ({latest})",
                        hint="upgrade conveyor-postgres",
                    )
                for number, _name, sql in found[current:]:
                    conn.execute(sql)
                    conn.execute(
                        "INSERT INTO conveyor_schema (one, version) VALUES (true, %s) "
                        "ON CONFLICT (one) DO UPDATE SET version = excluded.version",
                        (number,),
                    )

    @staticmethod
    def _version(conn: psycopg.Connection) -> int:
        if conn.execute("SELECT to_regclass('conveyor_schema')").fetchone()[0] is None:
            return 0
        row = conn.execute("SELECT version FROM conveyor_schema").fetchone()
        return 0 if row is None else int(row[0])

    def schema_version(self) -> int:
        with self.pool.connection() as conn:
            return self._version(conn)

    def close(self) -> None:
        with self._lock:
            if self._pool is not None and self._pid == os.getpid():
                self._pool.close()
            self._pool = None

    # -- transactions ------------------------------------------------------------------

    def write(self, fn: Callable[[psycopg.Connection], T], *, retry_conflicts: bool = False) -> T:
        """Run ``fn(conn)`` in one transaction; roll back and retry transient failures."""
        import psycopg
        from psycopg import errors

        retryable: tuple[type[BaseException], ...] = (
            errors.SerializationFailure,
            errors.DeadlockDetected,
            errors.LockNotAvailable,
        )
        if retry_conflicts:
            retryable += (errors.UniqueViolation,)
        for attempt in range(MAX_ATTEMPTS):
            try:
                with self.pool.connection() as conn, conn.transaction():
                    return fn(conn)
            except retryable as exc:  # the transaction was rolled back on the way out
                if attempt == MAX_ATTEMPTS - 1:
                    raise ConveyorError(
                        f"a PostgreSQL write kept failing after {MAX_ATTEMPTS} attempts: "
                        f"{str(exc).strip()}",
                        hint="another writer holds the rows for long: retry, or raise "
                        "lock_timeout_s",
                    ) from exc
                time.sleep(random.uniform(0, 0.002 * 2 ** min(attempt, 6)))
            except psycopg.OperationalError as exc:
                raise self._unavailable(exc) from None
        raise AssertionError("unreachable")

    @contextmanager
    def snapshot(self) -> Iterator[psycopg.Connection]:
        """A read-only transaction that sees one consistent state (REPEATABLE READ)."""
        import psycopg

        try:
            with self.pool.connection() as conn:
                # one round trip to begin (conn.transaction() would add a SET TRANSACTION)
                conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                try:
                    yield conn
                finally:
                    conn.execute("COMMIT")  # read only: nothing to keep or lose
        except psycopg.OperationalError as exc:
            raise self._unavailable(exc) from None

    @contextmanager
    def reading(self) -> Iterator[psycopg.Connection]:
        """A connection for a single-statement read (autocommit)."""
        import psycopg

        try:
            with self.pool.connection() as conn:
                yield conn
        except psycopg.OperationalError as exc:
            raise self._unavailable(exc) from None

    def fetchall(self, sql: str, args: Any = ()) -> list[tuple[Any, ...]]:
        with self.reading() as conn:
            return conn.execute(sql, args).fetchall()

    def fetchone(self, sql: str, args: Any = ()) -> tuple[Any, ...] | None:
        with self.reading() as conn:
            return conn.execute(sql, args).fetchone()
