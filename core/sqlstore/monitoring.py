"""Monitoring results in a SQL metadata store (read by the drift/performance triggers)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from conveyor.errors import NotFoundError
from conveyor.monitoring.result import MonitoringResult
from conveyor.sqlite import dumps, loads
from conveyor.sqlstore.dialect import Dialect, Transactions

_NAMES = (
    "id",
    "model",
    "version",
    "kind",
    "window_start",
    "window_end",
    "rows",
    "scores",
    "breached",
    "details",
    "created",
)
_COLUMNS = ", ".join(_NAMES)


class SQLMonitoringResults:
    """The metadata store's ``*_monitoring_result*`` methods, over ``self.sql``."""

    sql: Transactions
    dialect: Dialect

    def _result(self, row: Sequence[Any]) -> MonitoringResult:
        time = self.dialect.read_time
        return MonitoringResult(
            id=row[0],
            model=row[1],
            version=row[2],
            kind=row[3],
            window_start=time(row[4]),
            window_end=time(row[5]),
            rows=row[6],
            scores=loads(row[7]),
            breached=loads(row[8]),
            details=loads(row[9]),
            created=time(row[10]),
        )

    def record_monitoring_result(self, result: MonitoringResult) -> MonitoringResult:
        # scores hold only finite floats (JSON has no NaN): a NaN score would come
        # back as None and break the value type, so it is not stored
        scores = {k: float(v) for k, v in result.scores.items() if math.isfinite(v)}
        time = self.dialect.write_time
        values = (
            result.id,
            result.model,
            int(result.version),
            result.kind,
            time(result.window_start),
            time(result.window_end),
            int(result.rows),
            dumps(scores),
            dumps(list(result.breached)),
            dumps(result.details),
            time(result.created),
        )
        sql = self.dialect.replace_sql("monitoring_results", _NAMES) + f" RETURNING {_COLUMNS}"
        return self.sql.write(
            lambda conn: self._result(conn.execute(sql, values).fetchone()),
            retry_conflicts=True,
        )

    def get_monitoring_result(self, result_id: str) -> MonitoringResult:
        with self.sql.reading() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM monitoring_results WHERE id = ?", (result_id,)
            ).fetchone()
        if row is None:
            raise NotFoundError(
                f"no monitoring result {result_id!r}",
                hint="see conveyor monitor drift|skew|performance",
            )
        return self._result(row)

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
        sql += f" ORDER BY created DESC, {self.dialect.seq} DESC LIMIT ?"
        with self.sql.reading() as conn:
            rows = conn.execute(sql, [*args, int(limit)]).fetchall()
        return [self._result(r) for r in rows]
