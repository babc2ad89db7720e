"""Rows of the SQLite backends: ids, artifact records and row -> value conversion."""

from __future__ import annotations

import hashlib
import math
import sqlite3
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from conveyor.interfaces.metadata import (
    ArtifactRecord,
    Definition,
    PipelineRecord,
    Run,
    StepExecution,
    TriggerEvent,
)
from conveyor.sqlite import dumps, loads, parse_ts


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


# -- artifact records (the metadata store's, and the registry's own copy) -------------


INSERT_ARTIFACT = (
    "INSERT INTO artifacts (id, uri, fingerprint, kind, size, media_type, metadata, created) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING"
)


def artifact_values(
    uri: str,
    fingerprint: str,
    *,
    kind: str = "artifact",
    size: int | None = None,
    media_type: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    at: str,
) -> tuple[Any, ...]:
    """The :data:`INSERT_ARTIFACT` parameters of an artifact record; its id comes first."""
    return (
        artifact_id(uri, fingerprint),
        uri,
        fingerprint,
        kind,
        size,
        media_type,
        dumps(dict(metadata)) if metadata else "{}",
        at,
    )


def insert_artifact(
    conn: sqlite3.Connection,
    uri: str,
    fingerprint: str,
    *,
    kind: str = "artifact",
    size: int | None = None,
    media_type: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    at: str,
) -> str:
    """Record an artifact inside the caller's transaction (idempotent); returns its id."""
    values = artifact_values(
        uri, fingerprint, kind=kind, size=size, media_type=media_type, metadata=metadata, at=at
    )
    conn.execute(INSERT_ARTIFACT, values)
    return values[0]


# -- row conversion ---------------------------------------------------------------------

_RUN_NAMES = (
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
_RUN_COLUMNS = ", ".join(_RUN_NAMES)
_RUN_COLUMNS_R = ", ".join(f"r.{c}" for c in _RUN_NAMES)
_ARTIFACT_NAMES = ("id", "uri", "fingerprint", "kind", "size", "media_type", "metadata", "created")
_ARTIFACT_COLUMNS = ", ".join(_ARTIFACT_NAMES)
_ARTIFACT_COLUMNS_A = ", ".join(f"a.{c}" for c in _ARTIFACT_NAMES)


def _run(row: Sequence[Any], metrics: dict[str, float], steps: Sequence[StepExecution]) -> Run:
    return Run(
        id=row[0],
        pipeline=row[1],
        status=row[2],
        started=parse_ts(row[3]),
        ended=parse_ts(row[4]),
        parameters=loads(row[5]),
        trigger_event=row[6],
        code_fingerprint=row[7],
        git_commit=row[8],
        error=row[9],
        metrics=metrics,
        steps=steps,
    )


def _artifact(row: Sequence[Any]) -> ArtifactRecord:
    return ArtifactRecord(
        id=row[0],
        uri=row[1],
        fingerprint=row[2],
        kind=row[3],
        size=row[4],
        media_type=row[5],
        metadata=loads(row[6]),
        created=parse_ts(row[7]),
    )


def _event(row: Sequence[Any]) -> TriggerEvent:
    return TriggerEvent(
        id=row[0],
        trigger=row[1],
        reason=row[2],
        details=loads(row[3]),
        key=row[4],
        fired=bool(row[5]),
        created=parse_ts(row[6]),
    )


def _pipeline(row: Sequence[Any]) -> PipelineRecord:
    return PipelineRecord(
        name=row[0],
        code_fingerprint=row[1],
        git_commit=row[2],
        created=parse_ts(row[3]),
        updated=parse_ts(row[4]),
    )


def _definition(row: Sequence[Any]) -> Definition:
    return Definition(
        kind=row[0],
        name=row[1],
        version=row[2],
        spec=loads(row[3]),
        fingerprint=row[4],
        created=parse_ts(row[5]),
    )


def _fields(value: Any) -> dict[str, Any]:
    import attrs

    return attrs.asdict(value, recurse=False)


def _ordered(items: dict[str, ArtifactRecord]) -> dict[str, ArtifactRecord]:
    """Positional names (``"0"``, ``"1"``, ...) in numeric order, others by name."""
    return dict(
        sorted(
            items.items(),
            key=lambda kv: (not kv[0].isdigit(), int(kv[0]) if kv[0].isdigit() else 0, kv[0]),
        )
    )


def _json_path(key: str) -> str:
    return '$."' + key.replace('"', '\\"') + '"'


def _like_prefix(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
