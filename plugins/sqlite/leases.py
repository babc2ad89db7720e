"""Leases and watcher state in the SQLite metadata store (``conveyor watch``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from conveyor.errors import ConveyorError
from conveyor.interfaces.leases import Lease, WatchState
from conveyor.sqlite import Database, dumps, loads, now, parse_ts, ts

_LEASE = "SELECT name, holder, key, acquired, expires FROM leases WHERE name = ?"


def _lease(row: Sequence[Any] | None) -> Lease | None:
    if row is None:
        return None
    return Lease(
        name=row[0], holder=row[1], key=row[2], acquired=parse_ts(row[3]), expires=parse_ts(row[4])
    )


def _check(name: str, holder: str, now_: datetime, ttl: timedelta) -> None:
    if not name or not holder:
        raise ConveyorError("a lease needs a name and a holder")
    if now_.tzinfo is None:
        raise ConveyorError(
            f"lease {name!r}: naive time {now_.isoformat()}", hint="pass a timezone-aware datetime"
        )
    if ttl <= timedelta(0):
        raise ConveyorError(f"lease {name!r}: ttl must be positive, not {ttl}")


class SQLiteLeases:
    """The metadata store's lease and watcher-state methods, over ``self.db``.

    Expiry compares ISO-8601 UTC text, which sorts as time sorts; each operation
    is one ``BEGIN IMMEDIATE`` transaction, so two processes never both hold a name.
    """

    db: Database

    def acquire_lease(
        self, name: str, holder: str, *, now: datetime, ttl: timedelta, key: str | None = None
    ) -> Lease | None:
        _check(name, holder, now, ttl)
        at, until = ts(now), ts(now + ttl)

        def write(conn: sqlite3.Connection) -> Lease | None:
            row = conn.execute(_LEASE, (name,)).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO leases (name, holder, key, acquired, expires) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (name, holder, key, at, until),
                )
            elif row[1] == holder:
                conn.execute(
                    "UPDATE leases SET key = ?, expires = ? WHERE name = ?", (key, until, name)
                )
            elif row[4] <= at:
                conn.execute(
                    "UPDATE leases SET holder = ?, key = ?, acquired = ?, "
                    "expires = ? WHERE name = ?",
                    (holder, key, at, until, name),
                )
            else:
                return None
            return _lease(conn.execute(_LEASE, (name,)).fetchone())

        return self.db.write(write)

    def renew_lease(self, name: str, holder: str, *, now: datetime, ttl: timedelta) -> Lease | None:
        _check(name, holder, now, ttl)

        def write(conn: sqlite3.Connection) -> Lease | None:
            cursor = conn.execute(
                "UPDATE leases SET expires = ? WHERE name = ? AND holder = ?",
                (ts(now + ttl), name, holder),
            )
            if cursor.rowcount == 0:
                return None
            return _lease(conn.execute(_LEASE, (name,)).fetchone())

        return self.db.write(write)

    def release_lease(self, name: str, holder: str) -> bool:
        return self.db.write(
            lambda conn: (
                conn.execute(
                    "DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder)
                ).rowcount
                == 1
            )
        )

    def get_lease(self, name: str) -> Lease | None:
        with self.db.locked() as conn:
            return _lease(conn.execute(_LEASE, (name,)).fetchone())

    def put_watch_state(self, name: str, state: Mapping[str, Any]) -> WatchState:
        if not name:
            raise ConveyorError("watcher state needs a name")
        text, at = dumps(dict(state)), ts(now())

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO watch_state (name, state, updated) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET state = excluded.state, "
                "updated = excluded.updated",
                (name, text, at),
            )

        self.db.write(write)
        return WatchState(name=name, state=loads(text), updated=parse_ts(at))

    def get_watch_state(self, name: str) -> WatchState | None:
        with self.db.locked() as conn:
            row = conn.execute(
                "SELECT name, state, updated FROM watch_state WHERE name = ?", (name,)
            ).fetchone()
        return (
            None
            if row is None
            else WatchState(name=row[0], state=loads(row[1]), updated=parse_ts(row[2]))
        )
