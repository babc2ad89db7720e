"""Ids, artifact records and row -> value conversion, shared by the SQL stores."""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from conveyor.interfaces.metadata import (
    ArtifactRecord,
    Definition,
    PipelineRecord,
    Run,
    StepExecution,
    TriggerEvent,
)
from conveyor.sqlite import dumps, loads
from conveyor.sqlstore.dialect import Connection

#: A dialect's ``read_time``: a stored time as a datetime (``NULL`` as ``None``).
ReadTime = Callable[[Any], Any]


def new_id() -> str:
    """A random id: 16 hex digits (64 bits)."""
    return uuid.uuid4().hex[:16]


def artifact_id(uri: str, fingerprint: str) -> str:
    """The stable id of an artifact record, derived from its URI and fingerprint.

    The same derivation in every Conveyor metadata store, so lineage node ids survive
    ``conveyor migrate``.
    """
    return hashlib.sha256(f"{uri}\0{fingerprint}".encode()).hexdigest()[:20]


def finite_or_none(value: float) -> float | None:
    """A metric value as stored: NaN becomes ``NULL``."""
    value = float(value)
    return None if math.isnan(value) else value


def metric_value(value: float | None) -> float:
    """A stored metric value: ``NULL`` becomes NaN."""
    return math.nan if value is None else float(value)


def like_prefix(value: str) -> str:
    """A ``LIKE ... ESCAPE '\\'`` pattern matching values that start with ``value``."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def ordered(items: dict[str, ArtifactRecord]) -> dict[str, ArtifactRecord]:
    """Positional names (``"0"``, ``"1"``, ...) in numeric order, others by name."""
    return dict(
        sorted(
            items.items(),
            key=lambda kv: (not kv[0].isdigit(), int(kv[0]) if kv[0].isdigit() else 0, kv[0]),
        )
    )


def insert_artifact(
    conn: Connection,
    uri: str,
    fingerprint: str,
    *,
    kind: str = "artifact",
    size: int | None = None,
    media_type: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    at: Any,
    table: str = "artifacts",
) -> str:
    """Record an artifact inside the caller's transaction (idempotent); returns its id.

    ``at`` is a time as the dialect stores it (``Dialect.write_time``).  ``size`` and
    ``media_type`` are written only when given, so a registry's own artifact table
    (``table``) needs neither column.
    """
    aid = artifact_id(uri, fingerprint)
    columns = ["id", "uri", "fingerprint", "kind", "metadata", "created"]
    values = [aid, uri, fingerprint, kind, dumps(dict(metadata)) if metadata else "{}", at]
    for column, value in (("size", size), ("media_type", media_type)):
        if value is not None:
            columns.append(column)
            values.append(value)
    conn.execute(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(values))}) "
        "ON CONFLICT (id) DO NOTHING",
        values,
    )
    return aid


# -- row conversion ---------------------------------------------------------------------

RUN_NAMES = (
    "id",
    "pipeline",
    "status",
    "started",
    "ended",
    "parameters",
    "trigger_event",
    "code_fingerprint",
    "git_commit",
    "error",
)
RUN_COLUMNS = ", ".join(RUN_NAMES)
RUN_COLUMNS_R = ", ".join(f"r.{c}" for c in RUN_NAMES)
ARTIFACT_NAMES = ("id", "uri", "fingerprint", "kind", "size", "media_type", "metadata", "created")
ARTIFACT_COLUMNS = ", ".join(ARTIFACT_NAMES)
ARTIFACT_COLUMNS_A = ", ".join(f"a.{c}" for c in ARTIFACT_NAMES)
EVENT_COLUMNS = "id, trigger, reason, details, key, fired, created"
PIPELINE_COLUMNS = "name, code_fingerprint, git_commit, created, updated"
DEFINITION_COLUMNS = "kind, name, version, spec, fingerprint, created"
STEP_COLUMNS = "id, run_id, name, status, started, ended, logs_uri, cache_key, cache_hit, error"


def run_value(
    row: Sequence[Any],
    metrics: dict[str, float],
    steps: Sequence[StepExecution],
    time: ReadTime,
) -> Run:
    return Run(
        id=row[0],
        pipeline=row[1],
        status=row[2],
        started=time(row[3]),
        ended=time(row[4]),
        parameters=loads(row[5]),
        trigger_event=row[6],
        code_fingerprint=row[7],
        git_commit=row[8],
        error=row[9],
        metrics=metrics,
        steps=steps,
    )


def artifact_value(row: Sequence[Any], time: ReadTime) -> ArtifactRecord:
    return ArtifactRecord(
        id=row[0],
        uri=row[1],
        fingerprint=row[2],
        kind=row[3],
        size=row[4],
        media_type=row[5],
        metadata=loads(row[6]),
        created=time(row[7]),
    )


def event_value(row: Sequence[Any], time: ReadTime) -> TriggerEvent:
    return TriggerEvent(
        id=row[0],
        trigger=row[1],
        reason=row[2],
        details=loads(row[3]),
        key=row[4],
        fired=bool(row[5]),
        created=time(row[6]),
    )


def pipeline_value(row: Sequence[Any], time: ReadTime) -> PipelineRecord:
    return PipelineRecord(
        name=row[0],
        code_fingerprint=row[1],
        git_commit=row[2],
        created=time(row[3]),
        updated=time(row[4]),
    )


def definition_value(row: Sequence[Any], time: ReadTime) -> Definition:
    return Definition(
        kind=row[0],
        name=row[1],
        version=row[2],
        spec=loads(row[3]),
        fingerprint=row[4],
        created=time(row[5]),
    )
