"""Reading model versions, audit records and verdicts from the registry's tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from conveyor.interfaces.registry import (
    AliasChange,
    Approval,
    DatasetRef,
    Governance,
    ModelVersion,
    Signature,
    ValidationVerdict,
)
from conveyor.sqlite import loads

if TYPE_CHECKING:
    import psycopg

VERSION_COLUMNS_V = ", ".join(
    f"v.{c}"
    for c in (
        "name",
        "version",
        "created",
        "created_by",
        "artifact_uri",
        "sha256",
        "model_format",
        "archived",
        "metrics",
        "params",
        "governance",
        "signature",
        "profile_uri",
        "run_id",
    )
)
AUDIT_COLUMNS = (
    "id, name, alias, from_version, to_version, action, actor, at, reason, forced, evidence"
)
VERDICT_COLUMNS = "id, name, version, passed, at, actor, run_id, summary, details"


def read_versions(conn: psycopg.Connection, where: str, args: Sequence[Any]) -> list[ModelVersion]:
    """Versions matching ``where`` (on ``model_versions v``), oldest first, with their
    aliases, approvals and datasets: one statement, so one round trip and one
    consistent state."""
    rows = conn.execute(
        f"SELECT {VERSION_COLUMNS_V}, "
        "array(SELECT a.alias FROM aliases a WHERE a.name = v.name AND a.version = v.version "
        "ORDER BY a.alias), "
        "array(SELECT ARRAY[p.by, p.comment] FROM approvals p WHERE p.name = v.name AND "
        "p.version = v.version ORDER BY p.id), "
        "array(SELECT p.at FROM approvals p WHERE p.name = v.name AND p.version = v.version "
        "ORDER BY p.id), "
        "array(SELECT ARRAY[r.uri, r.fingerprint, d.role] FROM model_datasets d JOIN "
        "registry_artifacts r ON r.id = d.artifact_id WHERE d.name = v.name AND "
        "d.version = v.version ORDER BY d.role, r.uri), "
        'array(SELECT ARRAY[d.start, d."end"] FROM model_datasets d JOIN registry_artifacts r '
        "ON r.id = d.artifact_id WHERE d.name = v.name AND d.version = v.version "
        "ORDER BY d.role, r.uri) "
        f"FROM model_versions v WHERE {where} ORDER BY v.version",
        args,
    ).fetchall()
    result = []
    for row in rows:
        name, version = row[0], row[1]
        aliases, approvals, approved_at, datasets, spans = row[14:19]
        result.append(
            version_value(
                row,
                list(aliases),
                [
                    Approval(model=name, version=version, by=by, at=at, comment=comment)
                    for (by, comment), at in zip(approvals, approved_at, strict=True)
                ],
                [
                    DatasetRef(uri=uri, fingerprint=fingerprint, role=role, start=start, end=end)
                    for (uri, fingerprint, role), (start, end) in zip(datasets, spans, strict=True)
                ],
            )
        )
    return result


def version_value(
    row: Sequence[Any], aliases: list[str], approvals: list[Approval], datasets: list[DatasetRef]
) -> ModelVersion:
    archived = bool(row[7])
    stage = (
        "production"
        if "production" in aliases
        else "staging"
        if "staging" in aliases
        else "archived"
        if archived
        else "development"
    )
    governance = Governance(**loads(row[10]), approvals=approvals)
    return ModelVersion(
        id=f"{row[0]}:{row[1]}",
        name=row[0],
        version=row[1],
        created=row[2],
        created_by=row[3],
        artifact_uri=row[4],
        sha256=row[5],
        model_format=row[6],
        archived=archived,
        stage=stage,
        aliases=aliases,
        metrics=loads(row[8]),
        params=loads(row[9]),
        governance=governance,
        signature=Signature.from_dict(loads(row[11])),
        profile_uri=row[12],
        run_id=row[13],
        datasets=datasets,
    )


def change_value(row: Sequence[Any]) -> AliasChange:
    return AliasChange(
        id=row[0],
        model=row[1],
        alias=row[2],
        from_version=row[3],
        to_version=row[4],
        action=row[5],
        actor=row[6],
        at=row[7],
        reason=row[8],
        forced=bool(row[9]),
        evidence=loads(row[10]),
    )


def verdict_value(row: Sequence[Any]) -> ValidationVerdict:
    return ValidationVerdict(
        id=row[0],
        model=row[1],
        version=row[2],
        passed=bool(row[3]),
        at=row[4],
        actor=row[5],
        run_id=row[6],
        summary=row[7],
        details=loads(row[8]),
    )
