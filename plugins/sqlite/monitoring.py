"""Monitoring results in the SQLite metadata store (read by the drift/performance triggers)."""

from __future__ import annotations

import math
import sqlite3
from typing import Any

from conveyor.errors import NotFoundError
from conveyor.monitoring.result import MonitoringResult
from conveyor.sqlite import Database, dumps, loads, parse_ts, ts

_COLUMNS = (
    "id, model, version, kind, window_start, window_end, rows, scores, breached, details, created"
)


def _result(row: tuple[Any, ...]) -> MonitoringResult:
    return MonitoringResult(
        id=row[0],
        model=row[1],
        version=row[2],
        kind=row[3],
        window_start=parse_ts(row[4]),
        window_end=parse_ts(row[5]),
        rows=row[6],
        scores=loads(row[7]),
        breached=loads(row[8]),
        details=loads(row[9]),
        created=parse_ts(row[10]),
    )


class SQLiteMonitoringResults:
    """The metadata store's ``*_monitoring_result*`` methods, over ``self.db``."""

    db: Database

    def record_monitoring_result(self, result: MonitoringResult) -> MonitoringResult:
        # scores hold only finite floats (JSON has no NaN): a NaN score would come
        # back as None and break the value type, so it is not stored
        scores = {k: float(v) for k, v in result.scores.items() if math.isfinite(v)}
        values = (
            result.id,
            result.model,
            int(result.version),
            result.kind,
            ts(result.window_start),
            ts(result.window_end),
            int(result.rows),
            dumps(scores),
            dumps(list(result.breached)),
            dumps(result.details),
            ts(result.created),
        )

        def write(conn: sqlite3.Connection) -> MonitoringResult:
            conn.execute(
                f"INSERT OR REPLACE INTO monitoring_results ({_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )
            return self._monitoring_result(conn, result.id)

        return self.db.write(write)

    def _monitoring_result(self, conn: sqlite3.Connection, result_id: str) -> MonitoringResult:
        row = conn.execute(
            f"SELECT {_COLUMNS} FROM monitoring_results WHERE id = ?", (result_id,)
        ).fetchone()
        if row is None:
            raise NotFoundError(
                f"no monitoring result {result_id!r}",
                hint="see conveyor monitor drift|skew|performance",
            )
        return _result(row)

    def get_monitoring_result(self, result_id: str) -> MonitoringResult:
        with self.db.locked() as conn:
            return self._monitoring_result(conn, result_id)

    def list_monitoring_results(
        self, *, model: str, version: int | None = None, kind: str | None = None, limit: int = 50
    ) -> list[MonitoringResult]:
        sql = f"SELECT {_COLUMNS} FROM monitoring_results WHERE model = ?"
        args: list[Any] = [model]
        if version is not None:
            sql += " AND version = ?"
            args.append(int(version))
        if kind is not None:
            sql += " AND kind = ?"
            args.append(kind)
        with self.db.locked() as conn:
            rows = conn.execute(
                sql + " ORDER BY created DESC, rowid DESC LIMIT ?", [*args, int(limit)]
            ).fetchall()
        return [_result(r) for r in rows]
