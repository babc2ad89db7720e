"""Pipelines, runs and metrics in a SQL metadata store."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from conveyor.errors import AlreadyExistsError, ConveyorError, NotFoundError
from conveyor.interfaces.metadata import (
    FINISHED_RUN_STATUSES,
    MetricPoint,
    PipelineRecord,
    Run,
)
from conveyor.sqlite import dumps, now
from conveyor.sqlstore.dialect import Connection
from conveyor.sqlstore.steps import SQLSteps, no_run, resolve_run_id
from conveyor.sqlstore.values import (
    PIPELINE_COLUMNS,
    RUN_COLUMNS,
    RUN_COLUMNS_R,
    finite_or_none,
    metric_value,
    new_id,
    pipeline_value,
    run_value,
)

_OPERATORS = {"<": "<", "<=": "<=", "=": "=", "==": "=", ">=": ">=", ">": ">", "!=": "!="}
#: Run ids per ``IN (...)`` list when reading the latest metrics of many runs.
_CHUNK = 500


class SQLRuns(SQLSteps):
    """The metadata store's pipeline, run and metric methods, over ``self.sql``."""

    def start_run(
        self,
        pipeline: str,
        *,
        parameters: Mapping[str, Any] | None = None,
        trigger_event: str | None = None,
        code_fingerprint: str | None = None,
        git_commit: str | None = None,
    ) -> str:
        if not pipeline:
            raise ConveyorError("a run needs a pipeline name", hint="pass pipeline='name'")
        run_id = new_id()
        at = self.dialect.write_time(now())
        params = dumps(dict(parameters or {}))

        def write(conn: Connection) -> None:
            conn.execute(
                "INSERT INTO pipelines (name, code_fingerprint, git_commit, created, updated) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                "code_fingerprint = coalesce(excluded.code_fingerprint, "
                "pipelines.code_fingerprint), "
                "git_commit = coalesce(excluded.git_commit, pipelines.git_commit), "
                "updated = excluded.updated",
                (pipeline, code_fingerprint, git_commit, at, at),
            )
            if (
                trigger_event is not None
                and conn.execute(
                    "SELECT 1 FROM trigger_events WHERE id = ?", (trigger_event,)
                ).fetchone()
                is None
            ):
                raise NotFoundError(
                    f"no trigger event {trigger_event!r}",
                    hint="record it first with record_trigger_event()",
                )
            # the run key: a trigger event starts at most one run (a partial unique index)
            inserted = conn.execute(
                "INSERT INTO runs (id, pipeline, status, started, parameters, trigger_event, "
                "code_fingerprint, git_commit) VALUES (?, ?, 'running', ?, ?, ?, ?, ?) "
                "ON CONFLICT (trigger_event) WHERE trigger_event IS NOT NULL DO NOTHING",
                (run_id, pipeline, at, params, trigger_event, code_fingerprint, git_commit),
            ).rowcount
            if inserted == 0:
                raise AlreadyExistsError(
                    f"trigger event {trigger_event!r} already started a run",
                    hint="a trigger event starts one run; record a new event to run again",
                )

        self.sql.write(write)
        return run_id

    def finish_run(self, run_id: str, status: str, *, error: str | None = None) -> None:
        if status not in FINISHED_RUN_STATUSES:
            raise ConveyorError(
                f"{status!r} is not a finished run status",
                hint=f"use one of: {', '.join(FINISHED_RUN_STATUSES)}",
            )
        at = self.dialect.write_time(now())

        def write(conn: Connection) -> None:
            cursor = conn.execute(
                "UPDATE runs SET status = ?, ended = ?, error = ? WHERE id = ?",
                (status, at, error, run_id),
            )
            if cursor.rowcount == 0:
                raise no_run(run_id)

        self.sql.write(write)

    def get_run(self, run_id: str) -> Run:
        with self.sql.snapshot() as conn:
            run_id = resolve_run_id(conn, run_id)
            row = conn.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
            metrics = self._latest_metrics(conn, [run_id]).get(run_id, {})
            step_ids = [
                r[0]
                for r in conn.execute(
                    f"SELECT id FROM steps WHERE run_id = ? ORDER BY started, {self.dialect.seq}",
                    (run_id,),
                )
            ]
            steps = [self._step(conn, sid) for sid in step_ids]
            return run_value(row, metrics, steps, self.dialect.read_time)

    def search_runs(
        self,
        *,
        pipeline: str | None = None,
        status: str | None = None,
        trigger_event: str | None = None,
        started_after: datetime | None = None,
        started_before: datetime | None = None,
        parameters: Mapping[str, Any] | None = None,
        metrics: Mapping[str, tuple[str, float]] | None = None,
        limit: int = 100,
    ) -> list[Run]:
        where: list[str] = []
        args: list[Any] = []
        for column, value in (
            ("pipeline", pipeline),
            ("status", status),
            ("trigger_event", trigger_event),
        ):
            if value is not None:
                where.append(f"r.{column} = ?")
                args.append(value)
        for condition, bound in (
            ("r.started >= ?", started_after),
            ("r.started < ?", started_before),
        ):
            if bound is not None:
                where.append(condition)
                args.append(self.dialect.write_time(bound))
        for key, value in (parameters or {}).items():
            condition, values = self.dialect.json_equals("r.parameters", key, value)
            where.append(condition)
            args.extend(values)
        for key, (op, number) in (metrics or {}).items():
            if op not in _OPERATORS:
                raise ConveyorError(
                    f"unknown metric operator {op!r}", hint=f"use one of: {' '.join(_OPERATORS)}"
                )
            where.append(
                "(SELECT m.value FROM metrics m WHERE m.run_id = r.id AND m.step_id IS NULL "
                f"AND m.key = ? ORDER BY m.id DESC LIMIT 1) {_OPERATORS[op]} ?"
            )
            args.extend([key, float(number)])
        sql = f"SELECT {RUN_COLUMNS_R} FROM runs r"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY r.started DESC, r.{self.dialect.seq} DESC LIMIT ?"
        args.append(int(limit))
        with self.sql.snapshot() as conn:
            rows = conn.execute(sql, args).fetchall()
            latest = self._latest_metrics(conn, [r[0] for r in rows])
        read_time = self.dialect.read_time
        return [run_value(row, latest.get(row[0], {}), (), read_time) for row in rows]

    @staticmethod
    def _latest_metrics(conn: Connection, run_ids: list[str]) -> dict[str, dict[str, float]]:
        result: dict[str, dict[str, float]] = {}
        for start in range(0, len(run_ids), _CHUNK):
            chunk = run_ids[start : start + _CHUNK]
            marks = ", ".join("?" * len(chunk))
            for run_id, key, value in conn.execute(
                f"SELECT run_id, key, value FROM metrics WHERE run_id IN ({marks}) "
                "AND step_id IS NULL ORDER BY id",
                chunk,
            ):
                result.setdefault(run_id, {})[key] = metric_value(value)
        return result

    def get_pipeline(self, name: str) -> PipelineRecord:
        with self.sql.reading() as conn:
            row = conn.execute(
                f"SELECT {PIPELINE_COLUMNS} FROM pipelines WHERE name = ?", (name,)
            ).fetchone()
        if row is None:
            raise NotFoundError(
                f"no pipeline {name!r} has run yet",
                hint="`conveyor runs list` shows the pipelines that ran",
            )
        return pipeline_value(row, self.dialect.read_time)

    def list_pipelines(self) -> list[PipelineRecord]:
        with self.sql.reading() as conn:
            rows = conn.execute(
                f"SELECT {PIPELINE_COLUMNS} FROM pipelines ORDER BY name"
            ).fetchall()
        return [pipeline_value(r, self.dialect.read_time) for r in rows]

    # -- metrics ----------------------------------------------------------------------

    def log_metrics(
        self,
        run_id: str,
        metrics: Mapping[str, float] | Sequence[tuple[str, float, int]],
        *,
        step: str | None = None,
    ) -> None:
        triples: list[tuple[Any, ...]] = (
            [(k, v, 0) for k, v in metrics.items()]
            if isinstance(metrics, Mapping)
            else [tuple(t) for t in metrics]
        )
        at = self.dialect.write_time(now())
        rows = [(run_id, step, str(k), finite_or_none(v), int(i), at) for k, v, i in triples]
        try:
            self.sql.write(
                lambda conn: conn.executemany(
                    "INSERT INTO metrics (run_id, step_id, key, value, idx, at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    rows,
                )
            )
        except self.dialect.missing_reference_errors():
            raise NotFoundError(
                f"no run {run_id!r}" + (f" with step {step!r}" if step else ""),
                hint="start the run (and step) before logging metrics",
            ) from None

    def get_metrics(
        self, run_id: str, *, key: str | None = None, step: str | None = None
    ) -> list[MetricPoint]:
        sql = "SELECT key, value, step_id, idx, at FROM metrics WHERE run_id = ?"
        args: list[Any] = [run_id]
        if key is not None:
            sql += " AND key = ?"
            args.append(key)
        if step is not None:
            sql += " AND step_id = ?"
            args.append(step)
        with self.sql.reading() as conn:
            rows = conn.execute(sql + " ORDER BY id", args).fetchall()
        read_time = self.dialect.read_time
        return [
            MetricPoint(key=k, value=metric_value(v), step=s, index=i, at=read_time(at))
            for k, v, s, i, at in rows
        ]
