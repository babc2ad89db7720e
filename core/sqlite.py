"""One SQLite database file: connection, migrations and write transactions.

A utility for plugin authors: any backend that keeps its state in a SQLite file
(the bundled registry and metadata store, an online feature store, ...) opens
it with :class:`Database`, passing the package that holds its numbered
migration files::

    db = Database(path, package="my_plugin", synchronous="full")  # my_plugin/migrations/
    version = db.write(lambda conn: conn.execute("INSERT ...").lastrowid)

The rules every write follows (RELIABILITY.md #4):

* WAL journal, a busy timeout, and ``BEGIN IMMEDIATE`` for every write, so a
  writer takes the write lock before it reads what it is about to change;
* constraints decide (unique keys), never read-then-write across transactions;
* a busy or conflicting transaction is rolled back *first* and then retried, a
  bounded number of times.

A backend whose tables are created at run time (the online store makes one table
per feature view) passes ``package=None`` and creates them in a :meth:`Database.write`.

Migrations are numbered SQL files (``0001_initial.sql``, ...) shipped as package
data.  They are applied inside one ``BEGIN IMMEDIATE`` transaction that re-reads
``PRAGMA user_version`` after taking the lock, so N processes opening a new file
at once apply each migration exactly once.
"""

from __future__ import annotations

import contextvars
import json
import math
import os
import random
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar, overload

from conveyor.errors import ConfigError, ConveyorError

T = TypeVar("T")

#: Attempts for one write transaction before the error is raised.
MAX_ATTEMPTS = 8
_MIGRATION = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class DatabaseBusyError(ConveyorError):
    """Another process held the database's write lock for longer than the busy timeout."""


def now() -> datetime:
    """The current time, UTC."""
    return datetime.now(UTC)


def ts(value: datetime) -> str:
    """A datetime as fixed-width ISO-8601 UTC text (sorts as time sorts)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


@overload
def parse_ts(value: str) -> datetime: ...
@overload
def parse_ts(value: None) -> None: ...
def parse_ts(value: str | None) -> datetime | None:
    """Text written by :func:`ts` as a datetime (``NULL`` stays ``None``)."""
    return None if value is None else datetime.fromisoformat(value)


def dumps(value: Any) -> str:
    """Canonical JSON: sorted keys, no NaN tokens (they become ``null``)."""
    return json.dumps(
        _no_nan(value), sort_keys=True, separators=(",", ":"), default=str, allow_nan=False
    )


def loads(value: str | None) -> Any:
    return None if value is None else json.loads(value)


def _no_nan(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else str(value)
    if isinstance(value, dict):
        return {str(k): _no_nan(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_no_nan(v) for v in value]
    return value


def path_from_url(url: str, root: Path) -> Path:
    """``sqlite:///rel.db`` -> ``root/rel.db``; ``sqlite:////abs.db`` -> ``/abs.db``."""
    rest = url[len("sqlite:///") :]
    path = Path(rest).expanduser()
    return path if path.is_absolute() else root / path


#: ``synchronous`` pragma values: ``full`` (the default) fsyncs every commit, so a
#: commit that returned survives a power loss (but see :func:`deferred_sync`);
#: ``normal`` survives process crashes only (a power loss may drop the last commits)
#: and saves an fsync per commit.
SYNCHRONOUS = ("full", "normal", "extra")

_DEFERRED_SYNC: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "conveyor_sqlite_deferred_sync", default=False
)


@contextmanager
def deferred_sync() -> Iterator[None]:
    """Write transactions inside commit without waiting for the disk (``normal``).

    For records whose loss in a power cut costs only a marker (a step that
    started, nothing yet reusable): they are committed, so they survive a crash of
    the process, and the next commit that does wait (``full`` / ``extra``) makes
    them durable too, because the WAL is written and synced in order.  Core's run
    semantics decide which writes these are (:mod:`conveyor.runs`); on a
    ``normal`` database, or a store not on SQLite, this changes nothing.
    """
    token = _DEFERRED_SYNC.set(True)
    try:
        yield
    finally:
        _DEFERRED_SYNC.reset(token)


def migrations(package: str) -> list[tuple[int, str, str]]:
    """``(number, file name, sql)`` of every migration in ``package``'s ``migrations/``."""
    folder = resources.files(package).joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        match = _MIGRATION.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort()
    numbers = [n for n, _, _ in found]
    if numbers != list(range(1, len(numbers) + 1)):
        raise RuntimeError(f"SQLite migrations in {package} are not numbered 1..N: {numbers}")
    return found


def split_statements(sql: str) -> list[str]:
    """Split a script into complete statements (triggers with inner ``;`` included)."""
    statements: list[str] = []
    current = ""
    for line in sql.splitlines(keepends=True):
        if not current and (not line.strip() or line.lstrip().startswith("--")):
            continue
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        raise RuntimeError(f"incomplete SQL statement in a migration: {current[:80]!r}")
    return statements


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class Database:
    """A SQLite file opened by one process: one connection, guarded by a lock.

    The connection is reopened after a fork (it is never shared between
    processes).  Reads run in autocommit mode or, through :meth:`snapshot`, in one
    read transaction; writes go through :meth:`write`.

    Attributes:
        path: the database file.
        package: the package whose ``migrations/`` folder holds the numbered
            migration files (shipped as package data), or ``None`` for a database
            whose owner creates its tables itself.
        busy_timeout_s: how long a writer waits for the lock.
        synchronous: the ``synchronous`` pragma (see :data:`SYNCHRONOUS`).
        fresh_writes: run each write transaction on a new connection (closed after).
            SQLite stamps a write with the change counter of the page-1 image its
            connection last read, so a long-lived connection and a fresh one stamp
            differently; with fresh writes the file depends only on the sequence of
            committed writes (a resumed job ends byte-identical to an uninterrupted
            one).  The long-lived connection stays open for reads, so closing the
            writer does not checkpoint the WAL on every write.
    """

    def __init__(
        self,
        path: Path,
        *,
        package: str | None,
        busy_timeout_s: float = 30.0,
        synchronous: str = "full",
        fresh_writes: bool = False,
    ) -> None:
        if synchronous not in SYNCHRONOUS:
            raise ConfigError(
                f"synchronous = {synchronous!r} is not a SQLite setting",
                hint=f"use one of: {', '.join(SYNCHRONOUS)}",
            )
        self.path = Path(path)
        self.package = package
        self.busy_timeout_s = busy_timeout_s
        self.synchronous = synchronous
        self.fresh_writes = fresh_writes
        self._busy_ms = int(busy_timeout_s * 1000)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._depth = 0
        # the connection of the write transaction in progress (nested writes join it)
        self._writing: sqlite3.Connection | None = None
        # True while the busy handler is off for writes (see _begin_immediate)
        self._writer_waits = False

    # -- connection --------------------------------------------------------------------

    @property
    def conn(self) -> sqlite3.Connection:
        """The connection, with SQLite's busy timeout in force (for reads)."""
        conn = self._connection()
        if self._writer_waits:
            conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
            self._writer_waits = False
        return conn

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():
            self._conn = self._open()
            self._pid = os.getpid()
            self._writer_waits = False
        return self._conn

    def _open(self) -> sqlite3.Connection:
        conn = self._connect()
        if self.package is not None:
            self._migrate(conn, self.package)
        return conn

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path,
            timeout=self.busy_timeout_s,
            isolation_level=None,
            check_same_thread=False,
            cached_statements=256,
        )
        conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
        self._retry_busy(lambda: self._set_wal(conn))
        conn.execute(f"PRAGMA synchronous = {self.synchronous.upper()}")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def _set_wal(self, conn: sqlite3.Connection) -> None:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise ConfigError(
                f"SQLite refused WAL mode for {self.path} (journal mode is {mode!r})",
                hint="put the database on a local filesystem (WAL needs shared memory; "
                "network filesystems do not provide it)",
            )

    def _retry_busy(self, fn: Callable[[], T]) -> T:
        """``fn`` retried while SQLite reports the file busy (bounded by the timeout).

        Changing the journal mode of a new file can fail with "database is locked"
        without waiting on the busy handler, so it is retried here.
        """
        deadline = time.monotonic() + self.busy_timeout_s
        delay = 0.001
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 0.05)

    def _migrate(self, conn: sqlite3.Connection, package: str) -> None:
        steps = migrations(package)
        latest = len(steps)
        current = conn.execute("PRAGMA user_version").fetchone()[0]
        if current == latest:
            return
        if current > latest:
            raise ConfigError(
                f"{self.path} has schema version {current}, newer than this Conveyor "
                f"understands ({latest})",
                hint="upgrade Conveyor (pip install -U conveyor) before opening this database",
            )

        def apply() -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                # re-read under the write lock: another process may have migrated meanwhile
                found = conn.execute("PRAGMA user_version").fetchone()[0]
                for number, _name, sql in steps:
                    if number <= found:
                        continue
                    for statement in split_statements(sql):
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {number}")
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise

        self._retry_busy(apply)

    def schema_version(self) -> int:
        with self._lock:
            return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    # -- transactions ------------------------------------------------------------------

    def write(self, fn: Callable[[sqlite3.Connection], T], *, retry_conflicts: bool = False) -> T:
        """Run ``fn(conn)`` in one ``BEGIN IMMEDIATE`` transaction and commit.

        A busy database (or, with ``retry_conflicts``, a constraint conflict) rolls
        the transaction back first and retries, at most :data:`MAX_ATTEMPTS` times.
        Any other error rolls back and propagates.  Nested calls join the outer
        transaction.
        """
        with self._lock:
            conn = self._connection()
            if self._depth:
                return fn(self._writing or conn)
            if self.fresh_writes:
                writer = self._connect()
                try:
                    return self._write_on(writer, fn, retry_conflicts)
                finally:
                    writer.close()
            return self._write_on(conn, fn, retry_conflicts)

    def _write_on(
        self, conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T], retry_conflicts: bool
    ) -> T:
        if _DEFERRED_SYNC.get() and self.synchronous != "normal":
            conn.execute("PRAGMA synchronous = NORMAL")
            try:
                return self._write_retrying(conn, fn, retry_conflicts)
            finally:
                conn.execute(f"PRAGMA synchronous = {self.synchronous.upper()}")
        return self._write_retrying(conn, fn, retry_conflicts)

    def _write_retrying(
        self, conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T], retry_conflicts: bool
    ) -> T:
        delay = 0.002
        for attempt in range(1, MAX_ATTEMPTS + 1):
            self._depth += 1
            self._writing = conn
            try:
                self._begin_immediate(conn)
                result = fn(conn)
                conn.execute("COMMIT")
                return result
            except sqlite3.OperationalError as exc:
                _rollback(conn)
                if not _is_busy(exc):
                    raise
                if attempt == MAX_ATTEMPTS:
                    raise self._busy_error(f"{MAX_ATTEMPTS} attempts") from exc
            except sqlite3.IntegrityError:
                _rollback(conn)
                if not retry_conflicts or attempt == MAX_ATTEMPTS:
                    raise
            except BaseException:
                _rollback(conn)
                raise
            finally:
                self._depth -= 1
                self._writing = None
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 0.2)
        raise AssertionError("unreachable")  # pragma: no cover

    def _busy_error(self, detail: str) -> DatabaseBusyError:
        return DatabaseBusyError(
            f"{self.path} stayed locked by another writer for more than "
            f"{self.busy_timeout_s:g}s ({detail})",
            hint="raise busy_timeout_s in the config, or find the process holding the "
            "database open in a long transaction",
        )

    def _begin_immediate(self, conn: sqlite3.Connection) -> None:
        """Take the write lock, polling in sub-millisecond steps while another writer has it.

        SQLite's own busy handler sleeps 1, 2, 5, 10, ... 100 ms between tries, so
        under contention the lock sits free for most of each sleep: with 8 writers
        that idle time, not the writes, sets the pace.  Here the busy handler is off
        while writes run and the wait starts at 0.1 ms, doubling to 2 ms (jittered),
        until ``busy_timeout_s`` has passed; then the writer gives up with
        :class:`DatabaseBusyError`.  (Inside a write transaction the lock is held, so
        no statement waits.)  The busy timeout comes back before the next read, through
        :attr:`conn`; writes in a row switch the handler off once.
        """
        if conn is not self._conn:  # a fresh writer: its own handler, never used for reads
            conn.execute("PRAGMA busy_timeout = 0")
        elif not self._writer_waits:
            conn.execute("PRAGMA busy_timeout = 0")
            self._writer_waits = True
        deadline = time.monotonic() + self.busy_timeout_s
        delay = 0.0001
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise
                if time.monotonic() > deadline:
                    raise self._busy_error("waiting for the write lock") from exc
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.002)

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every query inside sees one consistent state."""
        with self._lock:
            conn = self.conn
            if self._depth:
                yield conn
                return
            self._depth += 1
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                self._depth -= 1
                _rollback(conn)

    @contextmanager
    def locked(self) -> Iterator[sqlite3.Connection]:
        """The connection under this process's lock (for single-statement reads)."""
        with self._lock:
            yield self.conn

    #: :meth:`locked` under the name :class:`conveyor.sqlstore.dialect.Transactions` uses.
    reading = locked


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass
