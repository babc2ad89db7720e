"""What a SQL backend supplies to the shared stores: transactions and a dialect.

The shared stores write every statement once, with ``?`` placeholders (SQLite's
style; a backend whose driver wants another style translates in its
:class:`Connection`).  What really differs between databases is on
:class:`Dialect`: how a time is stored, which column gives insertion order, how a
writer locks what it reads, and the few statements with no common spelling.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Cursor(Protocol):
    """The result of :meth:`Connection.execute` (a DB-API cursor)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """A connection inside a transaction, taking ``?`` placeholders."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Any: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]], /) -> Any: ...


class Transactions(Protocol):
    """How the shared stores reach the database.

    ``write`` runs ``fn`` in one write transaction, commits, and retries transient
    failures after rolling back (a unique-key conflict too, with
    ``retry_conflicts``); ``snapshot`` is a read transaction that sees one state;
    ``reading`` is a connection for a single-statement read.
    """

    def write(self, fn: Callable[[Any], T], *, retry_conflicts: bool = False) -> T: ...

    def snapshot(self) -> AbstractContextManager[Any]: ...

    def reading(self) -> AbstractContextManager[Any]: ...


class Dialect(abc.ABC):
    """The statements and conversions that differ between SQL databases.

    Attributes:
        name: the database's name, for messages.
        seq: the column that orders rows by insertion (a tie-breaker after times).
        for_update: appended to a ``SELECT`` that locks the rows it reads until
            commit (empty where a write transaction already excludes other writers).
    """

    name: str
    seq: str
    for_update: str = ""

    @abc.abstractmethod
    def write_time(self, value: datetime) -> Any:
        """A timezone-aware time as the database stores it."""

    @abc.abstractmethod
    def read_time(self, value: Any) -> Any:
        """A stored time as a timezone-aware datetime, ``NULL`` as ``None``.

        Typed ``Any`` as a database value is: the column says whether it may be null.
        """

    @abc.abstractmethod
    def time_text(self, value: Any) -> str | None:
        """A stored time as the fixed-width UTC text lineage attributes carry."""

    @abc.abstractmethod
    def json_equals(self, column: str, key: str, value: Any) -> tuple[str, list[Any]]:
        """A condition: top-level ``key`` of the JSON text in ``column`` equals ``value``."""

    def serialize(self, conn: Any, key: str) -> None:  # noqa: B027 - optional
        """Make writers of ``key`` wait for each other until this transaction commits.

        Nothing to do by default: for a database whose write transactions already
        exclude each other (SQLite's ``BEGIN IMMEDIATE``).
        """

    @abc.abstractmethod
    def replace_sql(self, table: str, columns: Sequence[str]) -> str:
        """An ``INSERT`` of ``columns`` that replaces the row with the same ``id`` and
        moves it last in insertion order (no ``RETURNING``: the caller adds one)."""

    @abc.abstractmethod
    def missing_reference_errors(self) -> tuple[type[BaseException], ...]:
        """What a write raises when a foreign key points at no row."""
