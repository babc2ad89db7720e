"""Leases, watcher state and monitoring results in the PostgreSQL metadata store."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from conveyor.errors import ConveyorError, NotFoundError
from conveyor.interfaces.leases import Lease, WatchState
from conveyor.monitoring.result import MonitoringResult
from conveyor.sqlite import dumps, loads, now
from conveyor_postgres.db import Database

if TYPE_CHECKING:
    import psycopg

_LEASE = "name, holder, key, acquired, expires"
_RESULT = (
    "id, model, version, kind, window_start, window_end, rows, scores, breached, details, created"
)


def _lease(row: Sequence[Any] | None) -> Lease | None:
    return (
        None
        if row is None
        else Lease(name=row[0], holder=row[1], key=row[2], acquired=row[3], expires=row[4])
    )


def _check(name: str, holder: str, at: datetime, ttl: timedelta) -> None:
    if not name or not holder:
        raise ConveyorError("a lease needs a name and a holder")
    if at.tzinfo is None:
        raise ConveyorError(
            f"lease {name!r}: naive time {at.isoformat()}", hint="pass a timezone-aware datetime"
        )
    if ttl <= timedelta(0):
        raise ConveyorError(f"lease {name!r}: ttl must be positive, not {ttl}")


def _result(row: Sequence[Any]) -> MonitoringResult:
    return MonitoringResult(
        id=row[0],
        model=row[1],
        version=row[2],
        kind=row[3],
        window_start=row[4],
        window_end=row[5],
        rows=row[6],
        scores=loads(row[7]),
        breached=loads(row[8]),
        details=loads(row[9]),
        created=row[10],
    )


class PostgresLeases:
    """The metadata store's lease, watcher-state and monitoring-result methods.

    A lease is one row; taking it is one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE``
    (the holder renews, anyone takes an expired lease), so two processes never both
    hold a name.  Times are the caller's, never the server's clock.
    """

    db: Database

    def acquire_lease(
        self, name: str, holder: str, *, now: datetime, ttl: timedelta, key: str | None = None
    ) -> Lease | None:
        _check(name, holder, now, ttl)

        def write(conn: psycopg.Connection) -> Lease | None:
            return _lease(
                conn.execute(
                    "INSERT INTO leases (name, holder, key, acquired, expires) "
                    "VALUES (%(n)s, %(h)s, %(k)s, %(at)s, %(until)s) ON CONFLICT (name) DO UPDATE "
                    "SET key = excluded.key, expires = excluded.expires, "
                    "holder = excluded.holder, acquired = CASE WHEN leases.holder = "
                    "excluded.holder THEN leases.acquired ELSE excluded.acquired END "
                    "WHERE leases.holder = excluded.holder OR leases.expires <= excluded.acquired "
                    f"RETURNING {_LEASE}",
                    {"n": name, "h": holder, "k": key, "at": now, "until": now + ttl},
                ).fetchone()
            )

        return self.db.write(write, retry_conflicts=True)

    def renew_lease(self, name: str, holder: str, *, now: datetime, ttl: timedelta) -> Lease | None:
        _check(name, holder, now, ttl)
        return self.db.write(
            lambda conn: _lease(
                conn.execute(
                    "UPDATE leases SET expires = %s WHERE name = %s AND holder = %s "
                    f"RETURNING {_LEASE}",
                    (now + ttl, name, holder),
                ).fetchone()
            )
        )

    def release_lease(self, name: str, holder: str) -> bool:
        return self.db.write(
            lambda conn: (
                conn.execute(
                    "DELETE FROM leases WHERE name = %s AND holder = %s", (name, holder)
                ).rowcount
                == 1
            )
        )

    def get_lease(self, name: str) -> Lease | None:
        return _lease(self.db.fetchone(f"SELECT {_LEASE} FROM leases WHERE name = %s", (name,)))

    def put_watch_state(self, name: str, state: Mapping[str, Any]) -> WatchState:
        if not name:
            raise ConveyorError("watcher state needs a name")
        text, at = dumps(dict(state)), now()
        self.db.write(
            lambda conn: conn.execute(
                "INSERT INTO watch_state (name, state, updated) VALUES (%s, %s, %s) "
                "ON CONFLICT (name) DO UPDATE SET state = excluded.state, "
                "updated = excluded.updated",
                (name, text, at),
            )
        )
        return WatchState(name=name, state=loads(text), updated=at)

    def get_watch_state(self, name: str) -> WatchState | None:
        row = self.db.fetchone(
            "SELECT name, state, updated FROM watch_state WHERE name = %s", (name,)
        )
        return None if row is None else WatchState(name=row[0], state=loads(row[1]), updated=row[2])

    # -- monitoring results -------------------------------------------------------------

    def record_monitoring_result(self, result: MonitoringResult) -> MonitoringResult:
        # scores hold only finite floats (JSON has no NaN), as in every Conveyor store
        scores = {k: float(v) for k, v in result.scores.items() if math.isfinite(v)}
        values = (
            result.id,
            result.model,
            int(result.version),
            result.kind,
            result.window_start,
            result.window_end,
            int(result.rows),
            dumps(scores),
            dumps(list(result.breached)),
            dumps(result.details),
            result.created,
        )
        marks = ", ".join(["%s"] * len(values))
        updates = ", ".join(f"{c} = excluded.{c}" for c in _RESULT.split(", ")[1:])
        return self.db.write(
            lambda conn: _result(
                conn.execute(
                    f"INSERT INTO monitoring_results ({_RESULT}) VALUES ({marks}) ON CONFLICT (id) "
                    f"DO UPDATE SET {updates}, seq = nextval(pg_get_serial_sequence("
                    f"'monitoring_results', 'seq')) RETURNING {_RESULT}",
                    values,
                ).fetchone()
            ),
            retry_conflicts=True,
        )

    def get_monitoring_result(self, result_id: str) -> MonitoringResult:
        row = self.db.fetchone(
            f"SELECT {_RESULT} FROM monitoring_results WHERE id = %s", (result_id,)
        )
        if row is None:
            raise NotFoundError(
                f"no monitoring result {result_id!r}",
                hint="see conveyor monitor drift|skew|performance",
            )
        return _result(row)

    def list_monitoring_results(
        self, *, model: str, version: int | None = None, kind: str | None = None, limit: int = 50
    ) -> list[MonitoringResult]:
        sql = f"SELECT {_RESULT} FROM monitoring_results WHERE model = %s"
        args: list[Any] = [model]
        if version is not None:
            sql += " AND version = %s"
            args.append(int(version))
        if kind is not None:
            sql += " AND kind = %s"
            args.append(kind)
        rows = self.db.fetchall(
            sql + " ORDER BY created DESC, seq DESC LIMIT %s", [*args, int(limit)]
        )
        return [_result(r) for r in rows]
