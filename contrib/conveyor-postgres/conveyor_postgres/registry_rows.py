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

VERSION_COLUMNS = ("name, version, created, created_by, artifact_uri, sha256, model_format, "
                   "archived, metrics, params, governance, signature, profile_uri, run_id")
AUDIT_COLUMNS = ("id, name, alias, from_version, to_version, action, actor, at, reason, "
                 "forced, evidence")
VERDICT_COLUMNS = "id, name, version, passed, at, actor, run_id, summary, details"


def read_versions(conn: psycopg.Connection, name: str,
                  version: int | None = None) -> list[ModelVersion]:
    """Versions of ``name`` (one, or all oldest first) with aliases, approvals, datasets."""
    extra, args = ("", [name]) if version is None else (" AND version = %s",
                                                       [name, int(version)])
    rows = conn.execute(f"SELECT {VERSION_COLUMNS} FROM model_versions WHERE name = %s"
                        f"{extra} ORDER BY version", args).fetchall()
    if not rows:
        return []
    held: dict[int, list[str]] = {}
    for alias, v in conn.execute("SELECT alias, version FROM aliases WHERE name = %s "
                                 "ORDER BY alias", (name,)):
        held.setdefault(v, []).append(alias)
    approvals: dict[int, list[Approval]] = {}
    for v, by, at, comment in conn.execute(
            f"SELECT version, by, at, comment FROM approvals WHERE name = %s{extra} "
            "ORDER BY id", args):
        approvals.setdefault(v, []).append(
            Approval(model=name, version=v, by=by, at=at, comment=comment))
    datasets: dict[int, list[DatasetRef]] = {}
    for v, uri, fingerprint, role, start, end in conn.execute(
            "SELECT d.version, a.uri, a.fingerprint, d.role, d.start, d.\"end\" "
            "FROM model_datasets d JOIN registry_artifacts a ON a.id = d.artifact_id "
            f"WHERE d.name = %s{extra.replace('version', 'd.version')} "
            "ORDER BY d.role, a.uri", args):
        datasets.setdefault(v, []).append(DatasetRef(
            uri=uri, fingerprint=fingerprint, role=role, start=start, end=end))
    return [version_value(row, held.get(row[1], []), approvals.get(row[1], []),
                          datasets.get(row[1], [])) for row in rows]


def version_value(row: Sequence[Any], aliases: list[str], approvals: list[Approval],
                  datasets: list[DatasetRef]) -> ModelVersion:
    archived = bool(row[7])
    stage = ("production" if "production" in aliases else "staging" if "staging" in aliases
             else "archived" if archived else "development")
    governance = Governance(**loads(row[10]), approvals=approvals)
    return ModelVersion(
        id=f"{row[0]}:{row[1]}", name=row[0], version=row[1], created=row[2],
        created_by=row[3], artifact_uri=row[4], sha256=row[5], model_format=row[6],
        archived=archived, stage=stage, aliases=aliases, metrics=loads(row[8]),
        params=loads(row[9]), governance=governance,
        signature=Signature.from_dict(loads(row[11])), profile_uri=row[12], run_id=row[13],
        datasets=datasets)


def change_value(row: Sequence[Any]) -> AliasChange:
    return AliasChange(id=row[0], model=row[1], alias=row[2], from_version=row[3],
                       to_version=row[4], action=row[5], actor=row[6], at=row[7],
                       reason=row[8], forced=bool(row[9]), evidence=loads(row[10]))


def verdict_value(row: Sequence[Any]) -> ValidationVerdict:
    return ValidationVerdict(id=row[0], model=row[1], version=row[2], passed=bool(row[3]),
                             at=row[4], actor=row[5], run_id=row[6], summary=row[7],
                             details=loads(row[8]))
