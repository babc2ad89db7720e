"""Leases and watcher state in a SQL metadata store (``conveyor watch``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from conveyor.errors import ConveyorError
from conveyor.interfaces.leases import Lease, WatchState
from conveyor.sqlite import dumps, loads, now
from conveyor.sqlstore.dialect import Dialect, Transactions

_LEASE = "name, holder, key, acquired, expires"


def _check(name: str, holder: str, at: datetime, ttl: timedelta) -> None:
    if not name or not holder:
        raise ConveyorError("a lease needs a name and a holder")
    if at.tzinfo is None:
        raise ConveyorError(
            f"lease {name!r}: naive time {at.isoformat()}", hint="pass a timezone-aware datetime"
        )
    if ttl <= timedelta(0):
        raise ConveyorError(f"lease {name!r}: ttl must be positive, not {ttl}")


class SQLLeases:
    """The metadata store's lease and watcher-state methods, over ``self.sql``.

    A lease is one row; taking it is one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE``
    (the holder renews, anyone takes an expired lease), so two processes never both
    hold a name.  Times are the caller's, never the database's clock.
    """

    sql: Transactions
    dialect: Dialect

    def _lease(self, row: Sequence[Any] | None) -> Lease | None:
        if row is None:
            return None
        time = self.dialect.read_time
        return Lease(
            name=row[0], holder=row[1], key=row[2], acquired=time(row[3]), expires=time(row[4])
        )

    def acquire_lease(
        self, name: str, holder: str, *, now: datetime, ttl: timedelta, key: str | None = None
    ) -> Lease | None:
        _check(name, holder, now, ttl)
        at, until = self.dialect.write_time(now), self.dialect.write_time(now + ttl)
        return self.sql.write(
            lambda conn: self._lease(
                conn.execute(
                    "INSERT INTO leases (name, holder, key, acquired, expires) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE "
                    "SET key = excluded.key, expires = excluded.expires, "
                    "holder = excluded.holder, acquired = CASE WHEN leases.holder = "
                    "excluded.holder THEN leases.acquired ELSE excluded.acquired END "
                    "WHERE leases.holder = excluded.holder OR leases.expires <= excluded.acquired "
                    f"RETURNING {_LEASE}",
                    (name, holder, key, at, until),
                ).fetchone()
            ),
            retry_conflicts=True,
        )

    def renew_lease(self, name: str, holder: str, *, now: datetime, ttl: timedelta) -> Lease | None:
        _check(name, holder, now, ttl)
        until = self.dialect.write_time(now + ttl)
        return self.sql.write(
            lambda conn: self._lease(
                conn.execute(
                    "UPDATE leases SET expires = ? WHERE name = ? AND holder = ? "
                    f"RETURNING {_LEASE}",
                    (until, name, holder),
                ).fetchone()
            )
        )

    def release_lease(self, name: str, holder: str) -> bool:
        return self.sql.write(
            lambda conn: (
                conn.execute(
                    "DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder)
                ).rowcount
                == 1
            )
        )

    def get_lease(self, name: str) -> Lease | None:
        with self.sql.reading() as conn:
            return self._lease(
                conn.execute(f"SELECT {_LEASE} FROM leases WHERE name = ?", (name,)).fetchone()
            )

    def put_watch_state(self, name: str, state: Mapping[str, Any]) -> WatchState:
        if not name:
            raise ConveyorError("watcher state needs a name")
        text, at = dumps(dict(state)), now()
        stored = self.dialect.write_time(at)
        self.sql.write(
            lambda conn: conn.execute(
                "INSERT INTO watch_state (name, state, updated) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET state = excluded.state, "
                "updated = excluded.updated",
                (name, text, stored),
            )
        )
        return WatchState(name=name, state=loads(text), updated=at)

    def get_watch_state(self, name: str) -> WatchState | None:
        with self.sql.reading() as conn:
            row = conn.execute(
                "SELECT name, state, updated FROM watch_state WHERE name = ?", (name,)
            ).fetchone()
        if row is None:
            return None
        return WatchState(name=row[0], state=loads(row[1]), updated=self.dialect.read_time(row[2]))
