"""The SQLite metadata store: runs, steps, artifacts, metrics, trigger events, lineage."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from conveyor.errors import AlreadyExistsError, ConveyorError, NotFoundError
from conveyor.interfaces.metadata import (
    FINISHED_RUN_STATUSES,
    STEP_STATUSES,
    ArtifactRecord,
    ArtifactRef,
    Direction,
    FeatureViewUse,
    LineageGraph,
    MetadataStore,
    MetricPoint,
    ModelRecord,
    PipelineRecord,
    Run,
    StepExecution,
    TriggerEvent,
)
from conveyor.plugins.sqlite.config import SQLiteMetadataStoreConfig
from conveyor.plugins.sqlite.definitions import SQLiteDefinitions
from conveyor.plugins.sqlite.leases import SQLiteLeases
from conveyor.plugins.sqlite.lineage import read_model_features, traverse, write_model
from conveyor.plugins.sqlite.monitoring import SQLiteMonitoringResults
from conveyor.plugins.sqlite.registry import PACKAGE
from conveyor.plugins.sqlite.rows import (
    _ARTIFACT_COLUMNS,
    _ARTIFACT_COLUMNS_A,
    _RUN_COLUMNS,
    _RUN_COLUMNS_R,
    _artifact,
    _event,
    _fields,
    _finite_or_none,
    _json_path,
    _like_prefix,
    _metric_value,
    _ordered,
    _pipeline,
    _run,
    insert_artifact,
    new_id,
)
from conveyor.sqlite import Database, dumps, now, parse_ts, path_from_url, ts

_OPERATORS = {"<": "<", "<=": "<=", "=": "=", "==": "=", ">=": ">=", ">": ">", "!=": "!="}


class SQLiteMetadataStore(SQLiteDefinitions, SQLiteLeases, SQLiteMonitoringResults, MetadataStore):
    """The metadata store on a SQLite file (see :mod:`conveyor.sqlite`).

    Attributes:
        db: the database file and its connection.
    """

    def __init__(
        self,
        *,
        app: Any = None,
        config: SQLiteMetadataStoreConfig | None = None,
        path: str | Path | None = None,
    ) -> None:
        config = config or SQLiteMetadataStoreConfig()
        if path is None:
            root = app.config.root if app is not None else Path.cwd()
            path = path_from_url(config.url, root)
        self.app = app
        self.db = Database(
            Path(path),
            package=PACKAGE,
            busy_timeout_s=config.busy_timeout_s,
            synchronous=config.synchronous,
        )
        self.db.conn  # noqa: B018 - open and migrate now, so errors surface at construction

    def close(self) -> None:
        self.db.close()

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.db.path), "schema_version": self.db.schema_version()}

    # -- pipelines and runs -----------------------------------------------------------

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
        at = ts(now())
        params = dumps(dict(parameters or {}))

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO pipelines (name, code_fingerprint, git_commit, created, updated) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                "code_fingerprint = coalesce(excluded.code_fingerprint, code_fingerprint), "
                "git_commit = coalesce(excluded.git_commit, git_commit), "
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
            try:
                conn.execute(
                    "INSERT INTO runs (id, pipeline, status, started, parameters, trigger_event, "
                    "code_fingerprint, git_commit) VALUES (?, ?, 'running', ?, ?, ?, ?, ?)",
                    (run_id, pipeline, at, params, trigger_event, code_fingerprint, git_commit),
                )
            except sqlite3.IntegrityError as exc:
                if trigger_event is None or "runs.trigger_event" not in str(exc):
                    raise
                raise AlreadyExistsError(
                    f"trigger event {trigger_event!r} already started a run",
                    hint="a trigger event starts one run; record a new event to run again",
                ) from None

        self.db.write(write)
        return run_id

    def finish_run(self, run_id: str, status: str, *, error: str | None = None) -> None:
        if status not in FINISHED_RUN_STATUSES:
            raise ConveyorError(
                f"{status!r} is not a finished run status",
                hint=f"use one of: {', '.join(FINISHED_RUN_STATUSES)}",
            )

        def write(conn: sqlite3.Connection) -> None:
            cursor = conn.execute(
                "UPDATE runs SET status = ?, ended = ?, error = ? WHERE id = ?",
                (status, ts(now()), error, run_id),
            )
            if cursor.rowcount == 0:
                raise self._no_run(run_id)

        self.db.write(write)

    @staticmethod
    def _no_run(run_id: str) -> NotFoundError:
        return NotFoundError(f"no run {run_id!r}", hint="`conveyor runs list` shows the runs")

    def _resolve_run_id(self, conn: sqlite3.Connection, run_id: str) -> str:
        if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone():
            return run_id
        rows = (
            conn.execute(
                "SELECT id FROM runs WHERE id LIKE ? ESCAPE '\\' LIMIT 2", (_like_prefix(run_id),)
            ).fetchall()
            if run_id
            else []
        )
        if len(rows) == 1:
            return rows[0][0]
        if len(rows) > 1:
            raise NotFoundError(
                f"run id prefix {run_id!r} is ambiguous", hint="give more characters of the id"
            )
        raise self._no_run(run_id)

    def get_run(self, run_id: str) -> Run:
        with self.db.snapshot() as conn:
            run_id = self._resolve_run_id(conn, run_id)
            row = conn.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)
            ).fetchone()
            metrics = self._latest_metrics(conn, [run_id]).get(run_id, {})
            step_ids = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM steps WHERE run_id = ? ORDER BY started, rowid", (run_id,)
                )
            ]
            steps = [self._step(conn, sid) for sid in step_ids]
            return _run(row, metrics, steps)

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
        if started_after is not None:
            where.append("r.started >= ?")
            args.append(ts(started_after))
        if started_before is not None:
            where.append("r.started < ?")
            args.append(ts(started_before))
        for key, value in (parameters or {}).items():
            where.append("json_extract(r.parameters, ?) IS ?")
            args.extend([_json_path(key), value if not isinstance(value, bool) else int(value)])
        for key, (op, bound) in (metrics or {}).items():
            if op not in _OPERATORS:
                raise ConveyorError(
                    f"unknown metric operator {op!r}", hint=f"use one of: {' '.join(_OPERATORS)}"
                )
            where.append(
                "(SELECT m.value FROM metrics m WHERE m.run_id = r.id AND m.step_id IS NULL "
                f"AND m.key = ? ORDER BY m.id DESC LIMIT 1) {_OPERATORS[op]} ?"
            )
            args.extend([key, float(bound)])
        sql = f"SELECT {_RUN_COLUMNS_R} FROM runs r"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY r.started DESC, r.rowid DESC LIMIT ?"
        args.append(int(limit))
        with self.db.snapshot() as conn:
            rows = conn.execute(sql, args).fetchall()
            latest = self._latest_metrics(conn, [r[0] for r in rows])
        return [_run(row, latest.get(row[0], {}), ()) for row in rows]

    def _latest_metrics(
        self, conn: sqlite3.Connection, run_ids: list[str]
    ) -> dict[str, dict[str, float]]:
        result: dict[str, dict[str, float]] = {}
        for chunk_start in range(0, len(run_ids), 500):
            chunk = run_ids[chunk_start : chunk_start + 500]
            marks = ",".join("?" * len(chunk))
            for run_id, key, value in conn.execute(
                f"SELECT run_id, key, value FROM metrics WHERE run_id IN ({marks}) "
                "AND step_id IS NULL ORDER BY id",
                chunk,
            ):
                result.setdefault(run_id, {})[key] = _metric_value(value)
        return result

    def get_pipeline(self, name: str) -> PipelineRecord:
        with self.db.locked() as conn:
            row = conn.execute(
                "SELECT name, code_fingerprint, git_commit, created, updated "
                "FROM pipelines WHERE name = ?",
                (name,),
            ).fetchone()
        if row is None:
            raise NotFoundError(
                f"no pipeline {name!r} has run yet",
                hint="`conveyor runs list` shows the pipelines that ran",
            )
        return _pipeline(row)

    def list_pipelines(self) -> list[PipelineRecord]:
        with self.db.locked() as conn:
            rows = conn.execute(
                "SELECT name, code_fingerprint, git_commit, created, updated "
                "FROM pipelines ORDER BY name"
            ).fetchall()
        return [_pipeline(r) for r in rows]

    # -- steps ------------------------------------------------------------------------

    def start_step(
        self,
        run_id: str,
        name: str,
        *,
        inputs: Mapping[str, ArtifactRef] | Sequence[ArtifactRef] = (),
        cache_key: str | None = None,
    ) -> str:
        step_id = new_id()
        at = ts(now())

        def write(conn: sqlite3.Connection) -> None:
            if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                raise self._no_run(run_id)
            conn.execute(
                "INSERT INTO steps (id, run_id, name, status, started, cache_key) "
                "VALUES (?, ?, ?, 'running', ?, ?)",
                (step_id, run_id, name, at, cache_key),
            )
            self._link(conn, step_id, "input", inputs, at)

        self.db.write(write)
        return step_id

    def finish_step(
        self,
        step_id: str,
        status: str,
        *,
        outputs: Mapping[str, ArtifactRef] | Sequence[ArtifactRef] = (),
        metrics: Mapping[str, float] | None = None,
        logs_uri: str | None = None,
        cache_hit: bool = False,
        error: str | None = None,
    ) -> StepExecution:
        if status not in STEP_STATUSES or status == "running":
            raise ConveyorError(
                f"{status!r} is not a finished step status",
                hint=f"use one of: {', '.join(STEP_STATUSES[1:])}",
            )
        at = ts(now())

        def write(conn: sqlite3.Connection) -> StepExecution:
            row = conn.execute("SELECT run_id FROM steps WHERE id = ?", (step_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"no step execution {step_id!r}")
            conn.execute(
                "UPDATE steps SET status = ?, ended = ?, logs_uri = ?, "
                "cache_hit = ?, error = ? WHERE id = ?",
                (status, at, logs_uri, int(cache_hit), error, step_id),
            )
            self._link(conn, step_id, "output", outputs, at)
            if metrics:
                conn.executemany(
                    "INSERT INTO metrics (run_id, step_id, key, value, idx, at) "
                    "VALUES (?, ?, ?, ?, 0, ?)",
                    [(row[0], step_id, k, _finite_or_none(v), at) for k, v in metrics.items()],
                )
            return self._step(conn, step_id)

        return self.db.write(write)

    def _link(
        self,
        conn: sqlite3.Connection,
        step_id: str,
        direction: str,
        refs: Mapping[str, ArtifactRef] | Sequence[ArtifactRef],
        at: str,
    ) -> None:
        items = (
            refs.items()
            if isinstance(refs, Mapping)
            else ((str(i), ref) for i, ref in enumerate(refs))
        )
        rows = [
            (step_id, direction, str(label), self._artifact_ref(conn, ref, at))
            for label, ref in items
        ]
        conn.executemany(
            "INSERT INTO step_artifacts (step_id, direction, name, artifact_id) "
            "VALUES (?, ?, ?, ?)",
            rows,
        )

    def _artifact_ref(self, conn: sqlite3.Connection, ref: ArtifactRef, at: str) -> str:
        """The artifact id of ``ref``, recording the artifact when given by URI."""
        if isinstance(ref, ArtifactRecord):
            return ref.id
        if isinstance(ref, str):
            if conn.execute("SELECT 1 FROM artifacts WHERE id = ?", (ref,)).fetchone() is None:
                raise NotFoundError(
                    f"no artifact record {ref!r}", hint="record it first with record_artifact()"
                )
            return ref
        if isinstance(ref, Mapping):
            uri, fingerprint = ref["uri"], ref.get("fingerprint") or ref.get("sha256")
            kind, size = ref.get("kind", "artifact"), ref.get("size")
            media_type, metadata = ref.get("media_type"), ref.get("metadata")
        else:
            uri, fingerprint = getattr(ref, "uri", None), getattr(ref, "sha256", None)
            kind, size = "artifact", getattr(ref, "size", None)
            media_type, metadata = getattr(ref, "media_type", None), None
        if not uri or not fingerprint:
            raise ConveyorError(
                f"cannot tell which artifact {ref!r} is",
                hint="pass an ArtifactRecord, an artifact id, an ArtifactInfo or "
                "{'uri': ..., 'fingerprint': ...}",
            )
        return insert_artifact(
            conn,
            uri,
            fingerprint,
            kind=kind,
            size=size,
            media_type=media_type,
            metadata=metadata,
            at=at,
        )

    def get_step(self, step_id: str) -> StepExecution:
        with self.db.snapshot() as conn:
            return self._step(conn, step_id)

    def _step(self, conn: sqlite3.Connection, step_id: str) -> StepExecution:
        row = conn.execute(
            "SELECT id, run_id, name, status, started, ended, logs_uri, cache_key, cache_hit, "
            "error FROM steps WHERE id = ?",
            (step_id,),
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no step execution {step_id!r}")
        inputs: dict[str, ArtifactRecord] = {}
        outputs: dict[str, ArtifactRecord] = {}
        for direction, label, *artifact in conn.execute(
            f"SELECT sa.direction, sa.name, {_ARTIFACT_COLUMNS_A} FROM step_artifacts sa "
            "JOIN artifacts a ON a.id = sa.artifact_id WHERE sa.step_id = ?",
            (step_id,),
        ):
            (inputs if direction == "input" else outputs)[label] = _artifact(artifact)
        metrics = {
            key: _metric_value(value)
            for key, value in conn.execute(
                "SELECT key, value FROM metrics WHERE step_id = ? ORDER BY id", (step_id,)
            )
        }
        return StepExecution(
            id=row[0],
            run_id=row[1],
            name=row[2],
            status=row[3],
            started=parse_ts(row[4]),
            ended=parse_ts(row[5]),
            logs_uri=row[6],
            cache_key=row[7],
            cache_hit=bool(row[8]),
            error=row[9],
            inputs=_ordered(inputs),
            outputs=_ordered(outputs),
            metrics=metrics,
        )

    def find_cached_step(self, cache_key: str) -> StepExecution | None:
        with self.db.snapshot() as conn:
            row = conn.execute(
                "SELECT id FROM steps WHERE cache_key = ? AND status IN ('succeeded', 'cached') "
                "ORDER BY ended DESC LIMIT 1",
                (cache_key,),
            ).fetchone()
            return None if row is None else self._step(conn, row[0])

    # -- artifacts --------------------------------------------------------------------

    def record_artifact(
        self,
        uri: str,
        fingerprint: str,
        *,
        kind: str = "artifact",
        size: int | None = None,
        media_type: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> ArtifactRecord:
        if not uri or not fingerprint:
            raise ConveyorError("an artifact record needs a URI and a fingerprint")

        def write(conn: sqlite3.Connection) -> ArtifactRecord:
            aid = insert_artifact(
                conn,
                uri,
                fingerprint,
                kind=kind,
                size=size,
                media_type=media_type,
                metadata=metadata,
                at=ts(now()),
            )
            return self._artifact(conn, aid)

        return self.db.write(write)

    def _artifact(self, conn: sqlite3.Connection, aid: str) -> ArtifactRecord:
        row = conn.execute(
            f"SELECT {_ARTIFACT_COLUMNS} FROM artifacts WHERE id = ?", (aid,)
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no artifact record {aid!r}")
        return _artifact(row)

    def get_artifact(self, artifact_id: str) -> ArtifactRecord:
        with self.db.locked() as conn:
            return self._artifact(conn, artifact_id)

    def find_artifacts(
        self,
        *,
        uri: str | None = None,
        fingerprint: str | None = None,
        kind: str | None = None,
        limit: int = 100,
    ) -> list[ArtifactRecord]:
        where, args = [], []
        for column, value in (("uri", uri), ("fingerprint", fingerprint), ("kind", kind)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        sql = f"SELECT {_ARTIFACT_COLUMNS} FROM artifacts"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created DESC, rowid DESC LIMIT ?"
        with self.db.locked() as conn:
            return [_artifact(r) for r in conn.execute(sql, [*args, int(limit)])]

    # -- metrics ----------------------------------------------------------------------

    def log_metric(
        self, run_id: str, key: str, value: float, *, step: str | None = None, index: int = 0
    ) -> None:
        self._insert_metrics(run_id, [(key, value, index)], step)

    def log_metrics(
        self,
        run_id: str,
        metrics: Mapping[str, float] | Sequence[tuple[str, float, int]],
        *,
        step: str | None = None,
    ) -> None:
        triples = (
            [(k, v, 0) for k, v in metrics.items()]
            if isinstance(metrics, Mapping)
            else [tuple(t) for t in metrics]
        )
        self._insert_metrics(run_id, triples, step)

    def _insert_metrics(
        self, run_id: str, triples: Sequence[tuple[Any, ...]], step: str | None
    ) -> None:
        at = ts(now())
        rows = [(run_id, step, str(k), _finite_or_none(v), int(i), at) for k, v, i in triples]

        def write(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO metrics (run_id, step_id, key, value, idx, at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )

        try:
            self.db.write(write)
        except sqlite3.IntegrityError:
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
        with self.db.locked() as conn:
            rows = conn.execute(sql + " ORDER BY id", args).fetchall()
        return [
            MetricPoint(key=k, value=_metric_value(v), step=s, index=i, at=parse_ts(at))
            for k, v, s, i, at in rows
        ]

    # -- trigger events ---------------------------------------------------------------

    def record_trigger_event(
        self,
        trigger: str,
        reason: str,
        *,
        details: Mapping[str, Any] | None = None,
        key: str | None = None,
        fired: bool = True,
    ) -> TriggerEvent:
        event_id = new_id()
        at = ts(now())

        def write(conn: sqlite3.Connection) -> TriggerEvent:
            cursor = conn.execute(
                "INSERT INTO trigger_events (id, trigger, reason, details, key, fired, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (trigger, key) DO NOTHING",
                (event_id, trigger, reason, dumps(dict(details or {})), key, int(fired), at),
            )
            if cursor.rowcount == 1:
                return self._event(conn, event_id)
            row = conn.execute(
                "SELECT id FROM trigger_events WHERE trigger = ? AND key = ?", (trigger, key)
            ).fetchone()
            existing = self._event(conn, row[0])
            return TriggerEvent(**{**_fields(existing), "is_new": False})

        return self.db.write(write)

    def _event(self, conn: sqlite3.Connection, event_id: str) -> TriggerEvent:
        row = conn.execute(
            "SELECT id, trigger, reason, details, key, fired, created "
            "FROM trigger_events WHERE id = ?",
            (event_id,),
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no trigger event {event_id!r}")
        return _event(row)

    def get_trigger_event(self, event_id: str) -> TriggerEvent:
        with self.db.locked() as conn:
            return self._event(conn, event_id)

    def list_trigger_events(
        self, *, trigger: str | None = None, limit: int = 50
    ) -> list[TriggerEvent]:
        sql = "SELECT id, trigger, reason, details, key, fired, created FROM trigger_events"
        args: list[Any] = []
        if trigger is not None:
            sql += " WHERE trigger = ?"
            args.append(trigger)
        with self.db.locked() as conn:
            rows = conn.execute(
                sql + " ORDER BY created DESC, rowid DESC LIMIT ?", [*args, int(limit)]
            ).fetchall()
        return [_event(r) for r in rows]

    # -- lineage ----------------------------------------------------------------------

    def record_model(self, record: ModelRecord) -> None:
        self.db.write(lambda conn: write_model(conn, record))

    def model_features(self, model: str, version: int) -> tuple[FeatureViewUse, ...]:
        with self.db.snapshot() as conn:
            return read_model_features(conn, model, version)

    def lineage(
        self,
        node: str,
        *,
        direction: Direction = "upstream",
        depth: int = 10,
        max_nodes: int = 1000,
    ) -> LineageGraph:
        with self.db.snapshot() as conn:
            return traverse(
                conn,
                node,
                direction=direction,
                depth=depth,
                max_nodes=max_nodes,
                resolve_run=self._resolve_run_id,
            )
