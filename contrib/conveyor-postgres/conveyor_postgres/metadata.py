"""The PostgreSQL metadata store: runs, steps, artifacts, metrics, trigger events, lineage."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

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
from conveyor.sqlite import dumps, now
from conveyor_postgres.config import PostgresMetadataStoreConfig
from conveyor_postgres.db import Database, redact
from conveyor_postgres.definitions import PostgresDefinitions
from conveyor_postgres.leases import PostgresLeases
from conveyor_postgres.lineage import read_model_features, traverse, write_model
from conveyor_postgres.rows import (
    ARTIFACT_COLUMNS,
    ARTIFACT_COLUMNS_A,
    EVENT_COLUMNS,
    RUN_COLUMNS,
    RUN_COLUMNS_R,
    artifact_value,
    event_value,
    finite_or_none,
    insert_artifact,
    like_prefix,
    metric_value,
    new_id,
    ordered,
    pipeline_value,
    run_value,
)

if TYPE_CHECKING:
    import psycopg

_OPERATORS = {"<": "<", "<=": "<=", "=": "=", "==": "=", ">=": ">=", ">": ">", "!=": "!="}


class PostgresMetadataStore(PostgresDefinitions, PostgresLeases, MetadataStore):
    """The metadata store in a PostgreSQL schema.

    Attributes:
        db: the database, schema and connection pool.
    """

    def __init__(
        self, *, app: Any = None, config: PostgresMetadataStoreConfig | None = None
    ) -> None:
        if config is None:
            raise ValueError("PostgresMetadataStore needs a config with a url")
        self.app = app
        self.db = Database(
            config.url,
            schema=config.schema,
            pool_size=config.pool_size,
            connect_timeout_s=config.connect_timeout_s,
            lock_timeout_s=config.lock_timeout_s,
        )
        self.db.pool  # noqa: B018 - connect and migrate now, so errors surface at construction

    def close(self) -> None:
        self.db.close()

    def describe(self) -> dict[str, Any]:
        return {
            "url": redact(self.db.url),
            "schema": self.db.schema,
            "schema_version": self.db.schema_version(),
        }

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
        at = now()
        params = dumps(dict(parameters or {}))

        def write(conn: psycopg.Connection) -> None:
            conn.execute(
                "INSERT INTO pipelines (name, code_fingerprint, git_commit, created, updated) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (name) DO UPDATE SET "
                "code_fingerprint = coalesce(excluded.code_fingerprint, "
                "pipelines.code_fingerprint), "
                "git_commit = coalesce(excluded.git_commit, pipelines.git_commit), "
                "updated = excluded.updated",
                (pipeline, code_fingerprint, git_commit, at, at),
            )
            if (
                trigger_event is not None
                and conn.execute(
                    "SELECT 1 FROM trigger_events WHERE id = %s", (trigger_event,)
                ).fetchone()
                is None
            ):
                raise NotFoundError(
                    f"no trigger event {trigger_event!r}",
                    hint="record it first with record_trigger_event()",
                )
            # the run key: a trigger event starts at most one run (a unique index)
            if (
                conn.execute(
                    "INSERT INTO runs (id, pipeline, status, started, parameters, "
                    "trigger_event, code_fingerprint, git_commit) VALUES (%s, %s, 'running', "
                    "%s, %s, %s, %s, %s) ON CONFLICT (trigger_event) WHERE trigger_event IS "
                    "NOT NULL DO NOTHING",
                    (run_id, pipeline, at, params, trigger_event, code_fingerprint, git_commit),
                ).rowcount
                == 0
            ):
                raise AlreadyExistsError(
                    f"trigger event {trigger_event!r} already started a run",
                    hint="a trigger event starts one run; record a new event to run again",
                )

        self.db.write(write)
        return run_id

    def finish_run(self, run_id: str, status: str, *, error: str | None = None) -> None:
        if status not in FINISHED_RUN_STATUSES:
            raise ConveyorError(
                f"{status!r} is not a finished run status",
                hint=f"use one of: {', '.join(FINISHED_RUN_STATUSES)}",
            )

        def write(conn: psycopg.Connection) -> None:
            cursor = conn.execute(
                "UPDATE runs SET status = %s, ended = %s, error = %s WHERE id = %s",
                (status, now(), error, run_id),
            )
            if cursor.rowcount == 0:
                raise self._no_run(run_id)

        self.db.write(write)

    @staticmethod
    def _no_run(run_id: str) -> NotFoundError:
        return NotFoundError(f"no run {run_id!r}", hint="`conveyor runs list` shows the runs")

    def _resolve_run_id(self, conn: psycopg.Connection, run_id: str) -> str:
        if conn.execute("SELECT 1 FROM runs WHERE id = %s", (run_id,)).fetchone():
            return run_id
        rows = (
            conn.execute(
                "SELECT id FROM runs WHERE id LIKE %s ESCAPE '\\' LIMIT 2", (like_prefix(run_id),)
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
                f"SELECT {RUN_COLUMNS} FROM runs WHERE id = %s", (run_id,)
            ).fetchone()
            metrics = self._latest_metrics(conn, [run_id]).get(run_id, {})
            step_ids = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM steps WHERE run_id = %s ORDER BY started, seq", (run_id,)
                )
            ]
            steps = [self._step(conn, sid) for sid in step_ids]
            return run_value(row, metrics, steps)

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
                where.append(f"r.{column} = %s")
                args.append(value)
        if started_after is not None:
            where.append("r.started >= %s")
            args.append(started_after)
        if started_before is not None:
            where.append("r.started < %s")
            args.append(started_before)
        for key, value in (parameters or {}).items():
            where.append("coalesce(r.parameters::jsonb -> %s, 'null') = %s::jsonb")
            args.extend([key, json.dumps(value)])
        for key, (op, value) in (metrics or {}).items():
            if op not in _OPERATORS:
                raise ConveyorError(
                    f"unknown metric operator {op!r}", hint=f"use one of: {' '.join(_OPERATORS)}"
                )
            where.append(
                "(SELECT m.value FROM metrics m WHERE m.run_id = r.id AND m.step_id IS NULL "
                f"AND m.key = %s ORDER BY m.id DESC LIMIT 1) {_OPERATORS[op]} %s"
            )
            args.extend([key, float(value)])
        sql = f"SELECT {RUN_COLUMNS_R} FROM runs r"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY r.started DESC, r.seq DESC LIMIT %s"
        args.append(int(limit))
        with self.db.snapshot() as conn:
            rows = conn.execute(sql, args).fetchall()
            latest = self._latest_metrics(conn, [r[0] for r in rows])
        return [run_value(row, latest.get(row[0], {}), ()) for row in rows]

    @staticmethod
    def _latest_metrics(
        conn: psycopg.Connection, run_ids: list[str]
    ) -> dict[str, dict[str, float]]:
        result: dict[str, dict[str, float]] = {}
        if run_ids:
            for run_id, key, value in conn.execute(
                "SELECT run_id, key, value FROM metrics WHERE run_id = ANY(%s) "
                "AND step_id IS NULL ORDER BY id",
                (run_ids,),
            ):
                result.setdefault(run_id, {})[key] = metric_value(value)
        return result

    def get_pipeline(self, name: str) -> PipelineRecord:
        row = self.db.fetchone(
            "SELECT name, code_fingerprint, git_commit, created, updated "
            "FROM pipelines WHERE name = %s",
            (name,),
        )
        if row is None:
            raise NotFoundError(
                f"no pipeline {name!r} has run yet",
                hint="`conveyor runs list` shows the pipelines that ran",
            )
        return pipeline_value(row)

    def list_pipelines(self) -> list[PipelineRecord]:
        return [
            pipeline_value(r)
            for r in self.db.fetchall(
                "SELECT name, code_fingerprint, git_commit, created, updated FROM pipelines "
                "ORDER BY name"
            )
        ]

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
        at = now()

        def write(conn: psycopg.Connection) -> None:
            if conn.execute("SELECT 1 FROM runs WHERE id = %s", (run_id,)).fetchone() is None:
                raise self._no_run(run_id)
            conn.execute(
                "INSERT INTO steps (id, run_id, name, status, started, cache_key) "
                "VALUES (%s, %s, %s, 'running', %s, %s)",
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
        at = now()

        def write(conn: psycopg.Connection) -> StepExecution:
            row = conn.execute(
                "SELECT run_id FROM steps WHERE id = %s FOR UPDATE", (step_id,)
            ).fetchone()
            if row is None:
                raise NotFoundError(f"no step execution {step_id!r}")
            conn.execute(
                "UPDATE steps SET status = %s, ended = %s, logs_uri = %s, "
                "cache_hit = %s, error = %s WHERE id = %s",
                (status, at, logs_uri, bool(cache_hit), error, step_id),
            )
            self._link(conn, step_id, "output", outputs, at)
            if metrics:
                with conn.cursor() as cursor:
                    cursor.executemany(
                        "INSERT INTO metrics (run_id, step_id, key, value, idx, at) "
                        "VALUES (%s, %s, %s, %s, 0, %s)",
                        [(row[0], step_id, k, finite_or_none(v), at) for k, v in metrics.items()],
                    )
            return self._step(conn, step_id)

        return self.db.write(write)

    def _link(
        self,
        conn: psycopg.Connection,
        step_id: str,
        direction: str,
        refs: Mapping[str, ArtifactRef] | Sequence[ArtifactRef],
        at: datetime,
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
        if rows:
            with conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO step_artifacts (step_id, direction, name, "
                    "artifact_id) VALUES (%s, %s, %s, %s)",
                    rows,
                )

    def _artifact_ref(self, conn: psycopg.Connection, ref: ArtifactRef, at: datetime) -> str:
        """The artifact id of ``ref``, recording the artifact when given by URI."""
        if isinstance(ref, ArtifactRecord):
            return ref.id
        if isinstance(ref, str):
            if conn.execute("SELECT 1 FROM artifacts WHERE id = %s", (ref,)).fetchone() is None:
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

    def _step(self, conn: psycopg.Connection, step_id: str) -> StepExecution:
        row = conn.execute(
            "SELECT id, run_id, name, status, started, ended, logs_uri, cache_key, cache_hit, "
            "error FROM steps WHERE id = %s",
            (step_id,),
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no step execution {step_id!r}")
        inputs: dict[str, ArtifactRecord] = {}
        outputs: dict[str, ArtifactRecord] = {}
        for direction, label, *artifact in conn.execute(
            f"SELECT sa.direction, sa.name, {ARTIFACT_COLUMNS_A} FROM step_artifacts sa "
            "JOIN artifacts a ON a.id = sa.artifact_id WHERE sa.step_id = %s",
            (step_id,),
        ):
            (inputs if direction == "input" else outputs)[label] = artifact_value(artifact)
        metrics = {
            key: metric_value(value)
            for key, value in conn.execute(
                "SELECT key, value FROM metrics WHERE step_id = %s ORDER BY id", (step_id,)
            )
        }
        return StepExecution(
            id=row[0],
            run_id=row[1],
            name=row[2],
            status=row[3],
            started=row[4],
            ended=row[5],
            logs_uri=row[6],
            cache_key=row[7],
            cache_hit=bool(row[8]),
            error=row[9],
            inputs=ordered(inputs),
            outputs=ordered(outputs),
            metrics=metrics,
        )

    def find_cached_step(self, cache_key: str) -> StepExecution | None:
        with self.db.snapshot() as conn:
            row = conn.execute(
                "SELECT id FROM steps WHERE cache_key = %s AND status IN ('succeeded', "
                "'cached') ORDER BY ended DESC LIMIT 1",
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

        def write(conn: psycopg.Connection) -> ArtifactRecord:
            aid = insert_artifact(
                conn,
                uri,
                fingerprint,
                kind=kind,
                size=size,
                media_type=media_type,
                metadata=metadata,
                at=now(),
            )
            return self._artifact(conn, aid)

        return self.db.write(write)

    @staticmethod
    def _artifact(conn: psycopg.Connection, aid: str) -> ArtifactRecord:
        row = conn.execute(
            f"SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE id = %s", (aid,)
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no artifact record {aid!r}")
        return artifact_value(row)

    def get_artifact(self, artifact_id: str) -> ArtifactRecord:
        with self.db.reading() as conn:
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
                where.append(f"{column} = %s")
                args.append(value)
        sql = f"SELECT {ARTIFACT_COLUMNS} FROM artifacts"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created DESC, seq DESC LIMIT %s"
        return [artifact_value(r) for r in self.db.fetchall(sql, [*args, int(limit)])]

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
        from psycopg import errors

        at = now()
        rows = [(run_id, step, str(k), finite_or_none(v), int(i), at) for k, v, i in triples]
        sql = (
            "INSERT INTO metrics (run_id, step_id, key, value, idx, at) "
            "VALUES (%s, %s, %s, %s, %s, %s)"
        )

        def write(conn: psycopg.Connection) -> None:
            if len(rows) == 1:
                conn.execute(sql, rows[0])
            else:
                with conn.cursor() as cursor:
                    cursor.executemany(sql, rows)

        try:
            self.db.write(write)
        except errors.ForeignKeyViolation:
            raise NotFoundError(
                f"no run {run_id!r}" + (f" with step {step!r}" if step else ""),
                hint="start the run (and step) before logging metrics",
            ) from None

    def get_metrics(
        self, run_id: str, *, key: str | None = None, step: str | None = None
    ) -> list[MetricPoint]:
        sql = "SELECT key, value, step_id, idx, at FROM metrics WHERE run_id = %s"
        args: list[Any] = [run_id]
        if key is not None:
            sql += " AND key = %s"
            args.append(key)
        if step is not None:
            sql += " AND step_id = %s"
            args.append(step)
        return [
            MetricPoint(key=k, value=metric_value(v), step=s, index=i, at=at)
            for k, v, s, i, at in self.db.fetchall(sql + " ORDER BY id", args)
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
        at = now()

        def write(conn: psycopg.Connection) -> TriggerEvent:
            row = conn.execute(
                "INSERT INTO trigger_events (id, trigger, reason, details, key, fired, "
                "created) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (trigger, key) "
                f"DO NOTHING RETURNING {EVENT_COLUMNS}",
                (event_id, trigger, reason, dumps(dict(details or {})), key, bool(fired), at),
            ).fetchone()
            if row is not None:
                return event_value(row)
            existing = conn.execute(
                f"SELECT {EVENT_COLUMNS} FROM trigger_events WHERE trigger = %s AND key = %s",
                (trigger, key),
            ).fetchone()
            event = event_value(existing)
            return TriggerEvent(
                id=event.id,
                trigger=event.trigger,
                reason=event.reason,
                details=event.details,
                key=event.key,
                fired=event.fired,
                created=event.created,
                is_new=False,
            )

        return self.db.write(write)

    def get_trigger_event(self, event_id: str) -> TriggerEvent:
        row = self.db.fetchone(
            f"SELECT {EVENT_COLUMNS} FROM trigger_events WHERE id = %s", (event_id,)
        )
        if row is None:
            raise NotFoundError(f"no trigger event {event_id!r}")
        return event_value(row)

    def list_trigger_events(
        self, *, trigger: str | None = None, limit: int = 50
    ) -> list[TriggerEvent]:
        sql = f"SELECT {EVENT_COLUMNS} FROM trigger_events"
        args: list[Any] = []
        if trigger is not None:
            sql += " WHERE trigger = %s"
            args.append(trigger)
        rows = self.db.fetchall(
            sql + " ORDER BY created DESC, seq DESC LIMIT %s", [*args, int(limit)]
        )
        return [event_value(r) for r in rows]

    # -- lineage ----------------------------------------------------------------------

    def record_model(self, record: ModelRecord) -> None:
        self.db.write(lambda conn: write_model(conn, record), retry_conflicts=True)

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
