"""The SQLite metadata store: runs, steps, artifacts, metrics, trigger events, lineage."""

from __future__ import annotations

import hashlib
import math
import sqlite3
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from conveyor.errors import ConveyorError, NotFoundError
from conveyor.interfaces.metadata import (
    FINISHED_RUN_STATUSES,
    STEP_STATUSES,
    ArtifactRecord,
    ArtifactRef,
    Definition,
    Direction,
    LineageEdge,
    LineageGraph,
    LineageNode,
    MetadataStore,
    MetricPoint,
    PipelineRecord,
    Run,
    StepExecution,
    TriggerEvent,
    parse_node,
)
from conveyor.plugins.sqlite.config import SQLiteMetadataStoreConfig
from conveyor.plugins.sqlite.db import Database, dumps, loads, now, parse_ts, path_from_url, ts

_OPERATORS = {"<": "<", "<=": "<=", "=": "=", "==": "=", ">=": ">=", ">": ">", "!=": "!="}


def new_id() -> str:
    """A random id: 16 hex digits (64 bits)."""
    return uuid.uuid4().hex[:16]


def artifact_id(uri: str, fingerprint: str) -> str:
    """The stable id of an artifact record: derived from its URI and fingerprint."""
    return hashlib.sha256(f"{uri}\0{fingerprint}".encode()).hexdigest()[:20]


def _finite_or_none(value: float) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def _metric_value(value: float | None) -> float:
    return math.nan if value is None else float(value)


class SQLiteMetadataStore(MetadataStore):
    """The metadata store on a SQLite file (see :mod:`conveyor.plugins.sqlite.db`).

    Attributes:
        db: the database file and its connection.
    """

    def __init__(self, *, app: Any = None, config: SQLiteMetadataStoreConfig | None = None,
                 path: str | Path | None = None) -> None:
        config = config or SQLiteMetadataStoreConfig()
        if path is None:
            root = app.config.root if app is not None else Path.cwd()
            path = path_from_url(config.url, root)
        self.app = app
        self.db = Database(Path(path), busy_timeout_s=config.busy_timeout_s,
                           synchronous=config.synchronous)
        self.db.conn  # noqa: B018 - open and migrate now, so errors surface at construction

    def close(self) -> None:
        self.db.close()

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.db.path), "schema_version": self.db.schema_version()}

    # -- pipelines and runs -----------------------------------------------------------

    def start_run(self, pipeline: str, *, parameters: Mapping[str, Any] | None = None,
                  trigger_event: str | None = None, code_fingerprint: str | None = None,
                  git_commit: str | None = None) -> str:
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
                (pipeline, code_fingerprint, git_commit, at, at))
            if trigger_event is not None and conn.execute(
                    "SELECT 1 FROM trigger_events WHERE id = ?", (trigger_event,)
            ).fetchone() is None:
                raise NotFoundError(f"no trigger event {trigger_event!r}",
                                    hint="record it first with record_trigger_event()")
            conn.execute(
                "INSERT INTO runs (id, pipeline, status, started, parameters, trigger_event, "
                "code_fingerprint, git_commit) VALUES (?, ?, 'running', ?, ?, ?, ?, ?)",
                (run_id, pipeline, at, params, trigger_event, code_fingerprint, git_commit))

        self.db.write(write)
        return run_id

    def finish_run(self, run_id: str, status: str, *, error: str | None = None) -> None:
        if status not in FINISHED_RUN_STATUSES:
            raise ConveyorError(f"{status!r} is not a finished run status",
                                hint=f"use one of: {', '.join(FINISHED_RUN_STATUSES)}")

        def write(conn: sqlite3.Connection) -> None:
            cursor = conn.execute(
                "UPDATE runs SET status = ?, ended = ?, error = ? WHERE id = ?",
                (status, ts(now()), error, run_id))
            if cursor.rowcount == 0:
                raise self._no_run(run_id)

        self.db.write(write)

    @staticmethod
    def _no_run(run_id: str) -> NotFoundError:
        return NotFoundError(f"no run {run_id!r}", hint="`conveyor runs list` shows the runs")

    def _resolve_run_id(self, conn: sqlite3.Connection, run_id: str) -> str:
        if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone():
            return run_id
        rows = conn.execute("SELECT id FROM runs WHERE id LIKE ? ESCAPE '\\' LIMIT 2",
                            (_like_prefix(run_id),)).fetchall() if run_id else []
        if len(rows) == 1:
            return rows[0][0]
        if len(rows) > 1:
            raise NotFoundError(f"run id prefix {run_id!r} is ambiguous",
                                hint="give more characters of the id")
        raise self._no_run(run_id)

    def get_run(self, run_id: str) -> Run:
        with self.db.snapshot() as conn:
            run_id = self._resolve_run_id(conn, run_id)
            row = conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?",
                               (run_id,)).fetchone()
            metrics = self._latest_metrics(conn, [run_id]).get(run_id, {})
            step_ids = [r[0] for r in conn.execute(
                "SELECT id FROM steps WHERE run_id = ? ORDER BY started, rowid", (run_id,))]
            steps = [self._step(conn, sid) for sid in step_ids]
            return _run(row, metrics, steps)

    def search_runs(self, *, pipeline: str | None = None, status: str | None = None,
                    trigger_event: str | None = None,
                    started_after: datetime | None = None,
                    started_before: datetime | None = None,
                    parameters: Mapping[str, Any] | None = None,
                    metrics: Mapping[str, tuple[str, float]] | None = None,
                    limit: int = 100) -> list[Run]:
        where: list[str] = []
        args: list[Any] = []
        for column, value in (("pipeline", pipeline), ("status", status),
                              ("trigger_event", trigger_event)):
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
        for key, (op, value) in (metrics or {}).items():
            if op not in _OPERATORS:
                raise ConveyorError(f"unknown metric operator {op!r}",
                                    hint=f"use one of: {' '.join(_OPERATORS)}")
            where.append(
                "(SELECT m.value FROM metrics m WHERE m.run_id = r.id AND m.step_id IS NULL "
                f"AND m.key = ? ORDER BY m.id DESC LIMIT 1) {_OPERATORS[op]} ?")
            args.extend([key, float(value)])
        sql = f"SELECT {_RUN_COLUMNS_R} FROM runs r"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY r.started DESC, r.rowid DESC LIMIT ?"
        args.append(int(limit))
        with self.db.snapshot() as conn:
            rows = conn.execute(sql, args).fetchall()
            latest = self._latest_metrics(conn, [r[0] for r in rows])
        return [_run(row, latest.get(row[0], {}), ()) for row in rows]

    def _latest_metrics(self, conn: sqlite3.Connection, run_ids: list[str]
                        ) -> dict[str, dict[str, float]]:
        result: dict[str, dict[str, float]] = {}
        for chunk_start in range(0, len(run_ids), 500):
            chunk = run_ids[chunk_start:chunk_start + 500]
            marks = ",".join("?" * len(chunk))
            for run_id, key, value in conn.execute(
                    f"SELECT run_id, key, value FROM metrics WHERE run_id IN ({marks}) "
                    "AND step_id IS NULL ORDER BY id", chunk):
                result.setdefault(run_id, {})[key] = _metric_value(value)
        return result

    def get_pipeline(self, name: str) -> PipelineRecord:
        with self.db.locked() as conn:
            row = conn.execute("SELECT name, code_fingerprint, git_commit, created, updated "
                               "FROM pipelines WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFoundError(f"no pipeline {name!r} has run yet",
                                hint="`conveyor runs list` shows the pipelines that ran")
        return _pipeline(row)

    def list_pipelines(self) -> list[PipelineRecord]:
        with self.db.locked() as conn:
            rows = conn.execute("SELECT name, code_fingerprint, git_commit, created, updated "
                                "FROM pipelines ORDER BY name").fetchall()
        return [_pipeline(r) for r in rows]

    # -- steps ------------------------------------------------------------------------

    def start_step(self, run_id: str, name: str, *,
                   inputs: Mapping[str, ArtifactRef] | Sequence[ArtifactRef] = (),
                   cache_key: str | None = None) -> str:
        step_id = new_id()
        at = ts(now())

        def write(conn: sqlite3.Connection) -> None:
            if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                raise self._no_run(run_id)
            conn.execute("INSERT INTO steps (id, run_id, name, status, started, cache_key) "
                         "VALUES (?, ?, ?, 'running', ?, ?)",
                         (step_id, run_id, name, at, cache_key))
            self._link(conn, step_id, "input", inputs, at)

        self.db.write(write)
        return step_id

    def finish_step(self, step_id: str, status: str, *,
                    outputs: Mapping[str, ArtifactRef] | Sequence[ArtifactRef] = (),
                    metrics: Mapping[str, float] | None = None,
                    logs_uri: str | None = None, cache_hit: bool = False,
                    error: str | None = None) -> StepExecution:
        if status not in STEP_STATUSES or status == "running":
            raise ConveyorError(f"{status!r} is not a finished step status",
                                hint=f"use one of: {', '.join(STEP_STATUSES[1:])}")
        at = ts(now())

        def write(conn: sqlite3.Connection) -> StepExecution:
            row = conn.execute("SELECT run_id FROM steps WHERE id = ?", (step_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"no step execution {step_id!r}")
            conn.execute("UPDATE steps SET status = ?, ended = ?, logs_uri = ?, "
                         "cache_hit = ?, error = ? WHERE id = ?",
                         (status, at, logs_uri, int(cache_hit), error, step_id))
            self._link(conn, step_id, "output", outputs, at)
            if metrics:
                conn.executemany(
                    "INSERT INTO metrics (run_id, step_id, key, value, idx, at) "
                    "VALUES (?, ?, ?, ?, 0, ?)",
                    [(row[0], step_id, k, _finite_or_none(v), at) for k, v in metrics.items()])
            return self._step(conn, step_id)

        return self.db.write(write)

    def _link(self, conn: sqlite3.Connection, step_id: str, direction: str,
              refs: Mapping[str, ArtifactRef] | Sequence[ArtifactRef], at: str) -> None:
        items = refs.items() if isinstance(refs, Mapping) else (
            (str(i), ref) for i, ref in enumerate(refs))
        rows = [(step_id, direction, str(label), self._artifact_ref(conn, ref, at))
                for label, ref in items]
        conn.executemany("INSERT INTO step_artifacts (step_id, direction, name, artifact_id) "
                         "VALUES (?, ?, ?, ?)", rows)

    def _artifact_ref(self, conn: sqlite3.Connection, ref: ArtifactRef, at: str) -> str:
        """The artifact id of ``ref``, recording the artifact when given by URI."""
        if isinstance(ref, ArtifactRecord):
            return ref.id
        if isinstance(ref, str):
            if conn.execute("SELECT 1 FROM artifacts WHERE id = ?", (ref,)).fetchone() is None:
                raise NotFoundError(f"no artifact record {ref!r}",
                                    hint="record it first with record_artifact()")
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
                "{'uri': ..., 'fingerprint': ...}")
        return insert_artifact(conn, uri, fingerprint, kind=kind, size=size,
                               media_type=media_type, metadata=metadata, at=at)

    def get_step(self, step_id: str) -> StepExecution:
        with self.db.snapshot() as conn:
            return self._step(conn, step_id)

    def _step(self, conn: sqlite3.Connection, step_id: str) -> StepExecution:
        row = conn.execute(
            "SELECT id, run_id, name, status, started, ended, logs_uri, cache_key, cache_hit, "
            "error FROM steps WHERE id = ?", (step_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no step execution {step_id!r}")
        inputs: dict[str, ArtifactRecord] = {}
        outputs: dict[str, ArtifactRecord] = {}
        for direction, label, *artifact in conn.execute(
                f"SELECT sa.direction, sa.name, {_ARTIFACT_COLUMNS_A} FROM step_artifacts sa "
                "JOIN artifacts a ON a.id = sa.artifact_id WHERE sa.step_id = ?", (step_id,)):
            (inputs if direction == "input" else outputs)[label] = _artifact(artifact)
        metrics = {key: _metric_value(value) for key, value in conn.execute(
            "SELECT key, value FROM metrics WHERE step_id = ? ORDER BY id", (step_id,))}
        return StepExecution(
            id=row[0], run_id=row[1], name=row[2], status=row[3], started=parse_ts(row[4]),
            ended=parse_ts(row[5]), logs_uri=row[6], cache_key=row[7],
            cache_hit=bool(row[8]), error=row[9], inputs=_ordered(inputs),
            outputs=_ordered(outputs), metrics=metrics)

    def find_cached_step(self, cache_key: str) -> StepExecution | None:
        with self.db.snapshot() as conn:
            row = conn.execute(
                "SELECT id FROM steps WHERE cache_key = ? AND status IN ('succeeded', 'cached') "
                "ORDER BY ended DESC LIMIT 1", (cache_key,)).fetchone()
            return None if row is None else self._step(conn, row[0])

    # -- artifacts --------------------------------------------------------------------

    def record_artifact(self, uri: str, fingerprint: str, *, kind: str = "artifact",
                        size: int | None = None, media_type: str | None = None,
                        metadata: Mapping[str, Any] | None = None) -> ArtifactRecord:
        if not uri or not fingerprint:
            raise ConveyorError("an artifact record needs a URI and a fingerprint")

        def write(conn: sqlite3.Connection) -> ArtifactRecord:
            aid = insert_artifact(conn, uri, fingerprint, kind=kind, size=size,
                                  media_type=media_type, metadata=metadata, at=ts(now()))
            return self._artifact(conn, aid)

        return self.db.write(write)

    def _artifact(self, conn: sqlite3.Connection, aid: str) -> ArtifactRecord:
        row = conn.execute(f"SELECT {_ARTIFACT_COLUMNS} FROM artifacts WHERE id = ?",
                           (aid,)).fetchone()
        if row is None:
            raise NotFoundError(f"no artifact record {aid!r}")
        return _artifact(row)

    def get_artifact(self, artifact_id: str) -> ArtifactRecord:
        with self.db.locked() as conn:
            return self._artifact(conn, artifact_id)

    def find_artifacts(self, *, uri: str | None = None, fingerprint: str | None = None,
                       kind: str | None = None, limit: int = 100) -> list[ArtifactRecord]:
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

    def log_metric(self, run_id: str, key: str, value: float, *, step: str | None = None,
                   index: int = 0) -> None:
        self._insert_metrics(run_id, [(key, value, index)], step)

    def log_metrics(self, run_id: str, metrics: Mapping[str, float]
                    | Sequence[tuple[str, float, int]], *, step: str | None = None) -> None:
        triples = ([(k, v, 0) for k, v in metrics.items()] if isinstance(metrics, Mapping)
                   else [tuple(t) for t in metrics])
        self._insert_metrics(run_id, triples, step)

    def _insert_metrics(self, run_id: str, triples: Sequence[tuple[Any, ...]],
                        step: str | None) -> None:
        at = ts(now())
        rows = [(run_id, step, str(k), _finite_or_none(v), int(i), at) for k, v, i in triples]

        def write(conn: sqlite3.Connection) -> None:
            conn.executemany("INSERT INTO metrics (run_id, step_id, key, value, idx, at) "
                             "VALUES (?, ?, ?, ?, ?, ?)", rows)

        try:
            self.db.write(write)
        except sqlite3.IntegrityError:
            raise NotFoundError(
                f"no run {run_id!r}" + (f" with step {step!r}" if step else ""),
                hint="start the run (and step) before logging metrics") from None

    def get_metrics(self, run_id: str, *, key: str | None = None,
                    step: str | None = None) -> list[MetricPoint]:
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
        return [MetricPoint(key=k, value=_metric_value(v), step=s, index=i, at=parse_ts(at))
                for k, v, s, i, at in rows]

    # -- trigger events ---------------------------------------------------------------

    def record_trigger_event(self, trigger: str, reason: str, *,
                             details: Mapping[str, Any] | None = None,
                             key: str | None = None, fired: bool = True) -> TriggerEvent:
        event_id = new_id()
        at = ts(now())

        def write(conn: sqlite3.Connection) -> TriggerEvent:
            cursor = conn.execute(
                "INSERT INTO trigger_events (id, trigger, reason, details, key, fired, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (trigger, key) DO NOTHING",
                (event_id, trigger, reason, dumps(dict(details or {})), key, int(fired), at))
            if cursor.rowcount == 1:
                return self._event(conn, event_id)
            row = conn.execute("SELECT id FROM trigger_events WHERE trigger = ? AND key = ?",
                               (trigger, key)).fetchone()
            existing = self._event(conn, row[0])
            return TriggerEvent(**{**_fields(existing), "is_new": False})

        return self.db.write(write)

    def _event(self, conn: sqlite3.Connection, event_id: str) -> TriggerEvent:
        row = conn.execute("SELECT id, trigger, reason, details, key, fired, created "
                           "FROM trigger_events WHERE id = ?", (event_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no trigger event {event_id!r}")
        return _event(row)

    def get_trigger_event(self, event_id: str) -> TriggerEvent:
        with self.db.locked() as conn:
            return self._event(conn, event_id)

    def list_trigger_events(self, *, trigger: str | None = None,
                            limit: int = 50) -> list[TriggerEvent]:
        sql = "SELECT id, trigger, reason, details, key, fired, created FROM trigger_events"
        args: list[Any] = []
        if trigger is not None:
            sql += " WHERE trigger = ?"
            args.append(trigger)
        with self.db.locked() as conn:
            rows = conn.execute(sql + " ORDER BY created DESC, rowid DESC LIMIT ?",
                                [*args, int(limit)]).fetchall()
        return [_event(r) for r in rows]

    # -- lineage ----------------------------------------------------------------------

    def lineage(self, node: str, *, direction: Direction = "upstream",
                depth: int = 10, max_nodes: int = 1000) -> LineageGraph:
        if direction not in ("upstream", "downstream"):
            raise ConveyorError(f"unknown lineage direction {direction!r}",
                                hint="use 'upstream' or 'downstream'")
        try:
            kind, _ = parse_node(node)
        except ValueError as exc:
            raise ConveyorError(str(exc)) from None
        with self.db.snapshot() as conn:
            if kind == "run":
                node = f"run:{self._resolve_run_id(conn, node[4:])}"
            root = _describe(conn, node)
            if root is None:
                raise NotFoundError(f"nothing is recorded for lineage node {node!r}")
            nodes = {node: root}
            edges: dict[tuple[str, str, str], LineageEdge] = {}
            frontier = [node]
            truncated = False
            for _level in range(depth):
                following: list[str] = []
                for current in frontier:
                    for edge, other, expand in _neighbours(conn, current, direction):
                        edges.setdefault((edge.src, edge.dst, edge.relation), edge)
                        if other in nodes:
                            continue
                        if len(nodes) >= max_nodes:
                            truncated = True
                            continue
                        described = _describe(conn, other)
                        nodes[other] = described or LineageNode(
                            id=other, kind=other.split(":", 1)[0], label=other,
                            attributes={"missing": True})
                        if expand:
                            following.append(other)
                frontier = following
                if not frontier:
                    break
            else:
                truncated = truncated or bool(frontier)
        kept = tuple(e for e in edges.values() if e.src in nodes and e.dst in nodes)
        return LineageGraph(root=node, direction=direction, nodes=nodes, edges=kept,
                            truncated=truncated)

    # -- definitions ------------------------------------------------------------------

    def put_definition(self, kind: str, name: str, spec: Mapping[str, Any]) -> Definition:
        if not kind or not name:
            raise ConveyorError("a definition needs a kind and a name")
        text = dumps(dict(spec))
        fingerprint = hashlib.sha256(text.encode()).hexdigest()
        at = ts(now())

        def write(conn: sqlite3.Connection) -> Definition:
            row = conn.execute(
                "SELECT version, fingerprint FROM definitions WHERE kind = ? AND name = ? "
                "ORDER BY version DESC LIMIT 1", (kind, name)).fetchone()
            if row is not None and row[1] == fingerprint:
                return self._definition(conn, kind, name, row[0])
            version = 1 if row is None else row[0] + 1
            conn.execute("INSERT INTO definitions (kind, name, version, spec, fingerprint, "
                         "created) VALUES (?, ?, ?, ?, ?, ?)",
                         (kind, name, version, text, fingerprint, at))
            return self._definition(conn, kind, name, version)

        return self.db.write(write, retry_conflicts=True)

    def _definition(self, conn: sqlite3.Connection, kind: str, name: str,
                    version: int | None) -> Definition:
        sql = ("SELECT kind, name, version, spec, fingerprint, created FROM definitions "
               "WHERE kind = ? AND name = ?")
        args: list[Any] = [kind, name]
        if version is None:
            sql += " ORDER BY version DESC LIMIT 1"
        else:
            sql += " AND version = ?"
            args.append(int(version))
        row = conn.execute(sql, args).fetchone()
        if row is None:
            which = f"{kind} {name!r}" + ("" if version is None else f" version {version}")
            raise NotFoundError(f"no {which} is defined",
                                hint="apply the definition first")
        return _definition(row)

    def get_definition(self, kind: str, name: str, version: int | None = None
                       ) -> Definition:
        with self.db.locked() as conn:
            return self._definition(conn, kind, name, version)

    def list_definitions(self, kind: str) -> list[Definition]:
        with self.db.locked() as conn:
            rows = conn.execute(
                "SELECT d.kind, d.name, d.version, d.spec, d.fingerprint, d.created "
                "FROM definitions d WHERE d.kind = ? AND d.version = (SELECT max(version) "
                "FROM definitions x WHERE x.kind = d.kind AND x.name = d.name) "
                "ORDER BY d.name", (kind,)).fetchall()
        return [_definition(r) for r in rows]

    def definition_history(self, kind: str, name: str) -> list[Definition]:
        with self.db.locked() as conn:
            rows = conn.execute(
                "SELECT kind, name, version, spec, fingerprint, created FROM definitions "
                "WHERE kind = ? AND name = ? ORDER BY version", (kind, name)).fetchall()
        return [_definition(r) for r in rows]


# -- shared with the registry -------------------------------------------------------------


INSERT_ARTIFACT = (
    "INSERT INTO artifacts (id, uri, fingerprint, kind, size, media_type, metadata, created) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING")


def artifact_values(uri: str, fingerprint: str, *, kind: str = "artifact",
                    size: int | None = None, media_type: str | None = None,
                    metadata: Mapping[str, Any] | None = None, at: str) -> tuple[Any, ...]:
    """The :data:`INSERT_ARTIFACT` parameters of an artifact record; its id comes first."""
    return (artifact_id(uri, fingerprint), uri, fingerprint, kind, size, media_type,
            dumps(dict(metadata)) if metadata else "{}", at)


def insert_artifact(conn: sqlite3.Connection, uri: str, fingerprint: str, *,
                    kind: str = "artifact", size: int | None = None,
                    media_type: str | None = None, metadata: Mapping[str, Any] | None = None,
                    at: str) -> str:
    """Record an artifact inside the caller's transaction (idempotent); returns its id."""
    values = artifact_values(uri, fingerprint, kind=kind, size=size, media_type=media_type,
                             metadata=metadata, at=at)
    conn.execute(INSERT_ARTIFACT, values)
    return values[0]


# -- lineage traversal --------------------------------------------------------------------


def _neighbours(conn: sqlite3.Connection, node: str, direction: str
                ) -> list[tuple[LineageEdge, str, bool]]:
    """``(edge, other node, expand it?)`` for each edge of ``node`` in ``direction``."""
    kind, key = node.split(":", 1)
    up = direction == "upstream"
    found: list[tuple[LineageEdge, str, bool]] = []

    def add(src: str, dst: str, relation: str, expand: bool = True) -> None:
        found.append((LineageEdge(src=src, dst=dst, relation=relation),
                      src if src != node else dst, expand))

    if kind == "artifact":
        if up:
            for (sid,) in conn.execute("SELECT step_id FROM step_artifacts WHERE artifact_id = ? "
                                       "AND direction = 'output'", (key,)):
                add(f"step:{sid}", node, "output")
        else:
            for (sid,) in conn.execute("SELECT step_id FROM step_artifacts WHERE artifact_id = ? "
                                       "AND direction = 'input'", (key,)):
                add(node, f"step:{sid}", "input")
            for name, version in conn.execute(
                    "SELECT name, version FROM model_versions WHERE artifact_id = ?", (key,)):
                add(node, f"model:{name}:{version}", "registered_as")
            for name, version in conn.execute(
                    "SELECT DISTINCT name, version FROM model_datasets WHERE artifact_id = ?",
                    (key,)):
                add(node, f"model:{name}:{version}", "trained_on")
    elif kind == "step":
        wanted = "input" if up else "output"
        for (aid,) in conn.execute("SELECT artifact_id FROM step_artifacts WHERE step_id = ? "
                                   "AND direction = ? ORDER BY name", (key, wanted)):
            if up:
                add(f"artifact:{aid}", node, "input")
            else:
                add(node, f"artifact:{aid}", "output")
        if up:
            row = conn.execute("SELECT run_id FROM steps WHERE id = ?", (key,)).fetchone()
            if row is not None:  # shown, not expanded: its sibling steps are not upstream
                add(f"run:{row[0]}", node, "contains", expand=False)
    elif kind == "run":
        for (sid,) in conn.execute("SELECT id FROM steps WHERE run_id = ? ORDER BY started, "
                                   "rowid", (key,)):
            add(node, f"step:{sid}", "contains")
        if up:
            row = conn.execute("SELECT trigger_event FROM runs WHERE id = ?", (key,)).fetchone()
            if row is not None and row[0] is not None:
                add(f"trigger:{row[0]}", node, "triggered")
        else:
            for name, version in conn.execute(
                    "SELECT name, version FROM model_versions WHERE run_id = ?", (key,)):
                add(node, f"model:{name}:{version}", "produced")
    elif kind == "trigger":
        if not up:
            for (rid,) in conn.execute("SELECT id FROM runs WHERE trigger_event = ?", (key,)):
                add(node, f"run:{rid}", "triggered")
    elif kind == "model" and up:
        name, _, version = key.rpartition(":")
        row = conn.execute("SELECT artifact_id, run_id FROM model_versions WHERE name = ? "
                           "AND version = ?", (name, _int(version))).fetchone()
        if row is not None:
            add(f"artifact:{row[0]}", node, "registered_as")
            if row[1]:
                add(f"run:{row[1]}", node, "produced")
            for (aid,) in conn.execute("SELECT artifact_id FROM model_datasets WHERE name = ? "
                                       "AND version = ? ORDER BY role", (name, _int(version))):
                add(f"artifact:{aid}", node, "trained_on")
    return found


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        return -1


def _describe(conn: sqlite3.Connection, node: str) -> LineageNode | None:
    """The node's label and attributes, or ``None`` when nothing is recorded for it."""
    kind, key = node.split(":", 1)
    if kind == "artifact":
        row = conn.execute("SELECT uri, fingerprint, kind FROM artifacts WHERE id = ?",
                           (key,)).fetchone()
        return row and LineageNode(id=node, kind=kind, label=row[0], attributes={
            "uri": row[0], "fingerprint": row[1], "artifact_kind": row[2]})
    if kind == "step":
        row = conn.execute("SELECT name, status, run_id, cache_hit FROM steps WHERE id = ?",
                           (key,)).fetchone()
        return row and LineageNode(id=node, kind=kind, label=row[0], attributes={
            "status": row[1], "run_id": row[2], "cache_hit": bool(row[3])})
    if kind == "run":
        row = conn.execute("SELECT pipeline, status, started, code_fingerprint, git_commit "
                           "FROM runs WHERE id = ?", (key,)).fetchone()
        return row and LineageNode(id=node, kind=kind, label=f"{row[0]} {key}",
                                   attributes={"pipeline": row[0], "status": row[1],
                                               "started": row[2], "code_fingerprint": row[3],
                                               "git_commit": row[4]})
    if kind == "trigger":
        row = conn.execute("SELECT trigger, reason, created FROM trigger_events WHERE id = ?",
                           (key,)).fetchone()
        return row and LineageNode(id=node, kind=kind, label=row[0],
                                   attributes={"reason": row[1], "at": row[2]})
    if kind == "model":
        name, _, version = key.rpartition(":")
        row = conn.execute("SELECT artifact_uri, sha256, created FROM model_versions "
                           "WHERE name = ? AND version = ?", (name, _int(version))).fetchone()
        return row and LineageNode(id=node, kind=kind, label=f"{name} v{version}",
                                   attributes={"artifact_uri": row[0], "sha256": row[1],
                                               "created": row[2]})
    return None


# -- row conversion ---------------------------------------------------------------------

_RUN_NAMES = ("id", "pipeline", "status", "started", "ended", "parameters", "trigger_event",
              "code_fingerprint", "git_commit", "error")
_RUN_COLUMNS = ", ".join(_RUN_NAMES)
_RUN_COLUMNS_R = ", ".join(f"r.{c}" for c in _RUN_NAMES)
_ARTIFACT_NAMES = ("id", "uri", "fingerprint", "kind", "size", "media_type", "metadata",
                   "created")
_ARTIFACT_COLUMNS = ", ".join(_ARTIFACT_NAMES)
_ARTIFACT_COLUMNS_A = ", ".join(f"a.{c}" for c in _ARTIFACT_NAMES)


def _run(row: Sequence[Any], metrics: dict[str, float], steps: Sequence[StepExecution]) -> Run:
    return Run(id=row[0], pipeline=row[1], status=row[2], started=parse_ts(row[3]),
               ended=parse_ts(row[4]), parameters=loads(row[5]), trigger_event=row[6],
               code_fingerprint=row[7], git_commit=row[8], error=row[9], metrics=metrics,
               steps=steps)


def _artifact(row: Sequence[Any]) -> ArtifactRecord:
    return ArtifactRecord(id=row[0], uri=row[1], fingerprint=row[2], kind=row[3], size=row[4],
                          media_type=row[5], metadata=loads(row[6]), created=parse_ts(row[7]))


def _event(row: Sequence[Any]) -> TriggerEvent:
    return TriggerEvent(id=row[0], trigger=row[1], reason=row[2], details=loads(row[3]),
                        key=row[4], fired=bool(row[5]), created=parse_ts(row[6]))


def _pipeline(row: Sequence[Any]) -> PipelineRecord:
    return PipelineRecord(name=row[0], code_fingerprint=row[1], git_commit=row[2],
                          created=parse_ts(row[3]), updated=parse_ts(row[4]))


def _definition(row: Sequence[Any]) -> Definition:
    return Definition(kind=row[0], name=row[1], version=row[2], spec=loads(row[3]),
                      fingerprint=row[4], created=parse_ts(row[5]))


def _fields(value: Any) -> dict[str, Any]:
    import attrs

    return attrs.asdict(value, recurse=False)


def _ordered(items: dict[str, ArtifactRecord]) -> dict[str, ArtifactRecord]:
    """Positional names (``"0"``, ``"1"``, ...) in numeric order, others by name."""
    return dict(sorted(items.items(), key=lambda kv: (not kv[0].isdigit(),
                                                      int(kv[0]) if kv[0].isdigit() else 0,
                                                      kv[0])))


def _json_path(key: str) -> str:
    return '$."' + key.replace('"', '\\"') + '"'


def _like_prefix(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
