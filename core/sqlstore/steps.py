"""Step executions and artifact records in a SQL metadata store."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from conveyor.errors import ConveyorError, NotFoundError
from conveyor.interfaces.metadata import (
    STEP_STATUSES,
    ArtifactRecord,
    ArtifactRef,
    StepExecution,
)
from conveyor.sqlite import now
from conveyor.sqlstore.dialect import Connection, Dialect, Transactions
from conveyor.sqlstore.values import (
    ARTIFACT_COLUMNS,
    ARTIFACT_COLUMNS_A,
    STEP_COLUMNS,
    artifact_value,
    finite_or_none,
    insert_artifact,
    like_prefix,
    metric_value,
    new_id,
    ordered,
)

Refs = Mapping[str, ArtifactRef] | Sequence[ArtifactRef]


def no_run(run_id: str) -> NotFoundError:
    """The error for a run id that names no run."""
    return NotFoundError(f"no run {run_id!r}", hint="`conveyor runs list` shows the runs")


def resolve_run_id(conn: Connection, run_id: str) -> str:
    """The run id that ``run_id`` (a whole id or a unique prefix) names."""
    if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone():
        return run_id
    rows = (
        conn.execute(
            "SELECT id FROM runs WHERE id LIKE ? ESCAPE '\\' LIMIT 2", (like_prefix(run_id),)
        ).fetchall()
        if run_id
        else []
    )
    if len(rows) == 1:
        return str(rows[0][0])
    if len(rows) > 1:
        raise NotFoundError(
            f"run id prefix {run_id!r} is ambiguous", hint="give more characters of the id"
        )
    raise no_run(run_id)


class SQLSteps:
    """The metadata store's step and artifact methods, over ``self.sql``."""

    sql: Transactions
    dialect: Dialect

    def start_step(
        self,
        run_id: str,
        name: str,
        *,
        inputs: Refs = (),
        cache_key: str | None = None,
    ) -> str:
        step_id = new_id()
        at = self.dialect.write_time(now())

        def write(conn: Connection) -> None:
            if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                raise no_run(run_id)
            conn.execute(
                "INSERT INTO steps (id, run_id, name, status, started, cache_key) "
                "VALUES (?, ?, ?, 'running', ?, ?)",
                (step_id, run_id, name, at, cache_key),
            )
            self._link(conn, step_id, "input", inputs, at)

        self.sql.write(write)
        return step_id

    def finish_step(
        self,
        step_id: str,
        status: str,
        *,
        outputs: Refs = (),
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
        at = self.dialect.write_time(now())

        def write(conn: Connection) -> StepExecution:
            row = conn.execute(
                f"SELECT run_id FROM steps WHERE id = ?{self.dialect.for_update}", (step_id,)
            ).fetchone()
            if row is None:
                raise NotFoundError(f"no step execution {step_id!r}")
            conn.execute(
                "UPDATE steps SET status = ?, ended = ?, logs_uri = ?, "
                "cache_hit = ?, error = ? WHERE id = ?",
                (status, at, logs_uri, bool(cache_hit), error, step_id),
            )
            self._link(conn, step_id, "output", outputs, at)
            if metrics:
                conn.executemany(
                    "INSERT INTO metrics (run_id, step_id, key, value, idx, at) "
                    "VALUES (?, ?, ?, ?, 0, ?)",
                    [(row[0], step_id, k, finite_or_none(v), at) for k, v in metrics.items()],
                )
            return self._step(conn, step_id)

        return self.sql.write(write)

    def _link(self, conn: Connection, step_id: str, direction: str, refs: Refs, at: Any) -> None:
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
            conn.executemany(
                "INSERT INTO step_artifacts (step_id, direction, name, artifact_id) "
                "VALUES (?, ?, ?, ?)",
                rows,
            )

    def _artifact_ref(self, conn: Connection, ref: ArtifactRef, at: Any) -> str:
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
        with self.sql.snapshot() as conn:
            return self._step(conn, step_id)

    def _step(self, conn: Connection, step_id: str) -> StepExecution:
        row = conn.execute(f"SELECT {STEP_COLUMNS} FROM steps WHERE id = ?", (step_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no step execution {step_id!r}")
        read_time = self.dialect.read_time
        inputs: dict[str, ArtifactRecord] = {}
        outputs: dict[str, ArtifactRecord] = {}
        for direction, label, *artifact in conn.execute(
            f"SELECT sa.direction, sa.name, {ARTIFACT_COLUMNS_A} FROM step_artifacts sa "
            "JOIN artifacts a ON a.id = sa.artifact_id WHERE sa.step_id = ?",
            (step_id,),
        ):
            (inputs if direction == "input" else outputs)[label] = artifact_value(
                artifact, read_time
            )
        metrics = {
            key: metric_value(value)
            for key, value in conn.execute(
                "SELECT key, value FROM metrics WHERE step_id = ? ORDER BY id", (step_id,)
            )
        }
        return StepExecution(
            id=row[0],
            run_id=row[1],
            name=row[2],
            status=row[3],
            started=read_time(row[4]),
            ended=read_time(row[5]),
            logs_uri=row[6],
            cache_key=row[7],
            cache_hit=bool(row[8]),
            error=row[9],
            inputs=ordered(inputs),
            outputs=ordered(outputs),
            metrics=metrics,
        )

    def find_cached_step(self, cache_key: str) -> StepExecution | None:
        with self.sql.snapshot() as conn:
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
        at = self.dialect.write_time(now())

        def write(conn: Connection) -> ArtifactRecord:
            aid = insert_artifact(
                conn,
                uri,
                fingerprint,
                kind=kind,
                size=size,
                media_type=media_type,
                metadata=metadata,
                at=at,
            )
            return self._artifact(conn, aid)

        return self.sql.write(write)

    def _artifact(self, conn: Connection, aid: str) -> ArtifactRecord:
        row = conn.execute(
            f"SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE id = ?", (aid,)
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no artifact record {aid!r}")
        return artifact_value(row, self.dialect.read_time)

    def get_artifact(self, artifact_id: str) -> ArtifactRecord:
        with self.sql.reading() as conn:
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
        sql = f"SELECT {ARTIFACT_COLUMNS} FROM artifacts"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY created DESC, {self.dialect.seq} DESC LIMIT ?"
        with self.sql.reading() as conn:
            rows = conn.execute(sql, [*args, int(limit)]).fetchall()
        return [artifact_value(r, self.dialect.read_time) for r in rows]
