"""Row -> value conversion of the registry's tables, shared by the SQL registries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from attrs import field, frozen

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
from conveyor.sqlstore.values import ReadTime

VERSION_NAMES = (
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
VERSION_COLUMNS_V = ", ".join(f"v.{c}" for c in VERSION_NAMES)
AUDIT_COLUMNS = (
    "id, name, alias, from_version, to_version, action, actor, at, reason, forced, evidence"
)
VERDICT_COLUMNS = "id, name, version, passed, at, actor, run_id, summary, details"


@frozen(kw_only=True)
class AliasMove:
    """One compare-and-set of an alias, as :meth:`RegistryBackend.move_alias` takes it.

    Attributes:
        name: the model.
        alias: the alias to move.
        target: the version it moves to (``None``: unset).
        expected: the version that must hold it now.
        action: the audit action (``set``, ``rollback``, ``remove``).
        actor: who moves it.
        reason: why.
        forced: whether a policy was overridden.
        evidence: what the move relied on.
        after: the id the alias's last audit record must have (``None``: any).
    """

    name: str
    alias: str
    target: int | None
    expected: int | None
    action: str
    actor: str
    reason: str = ""
    forced: bool = False
    evidence: Mapping[str, Any] | None = field(default=None, eq=False)
    after: int | None = None


def version_value(
    row: Sequence[Any],
    aliases: list[str],
    approvals: list[Approval],
    datasets: list[DatasetRef],
    time: ReadTime,
) -> ModelVersion:
    """A ``model_versions`` row (:data:`VERSION_NAMES`) with what is read beside it."""
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
    return ModelVersion(
        id=f"{row[0]}:{row[1]}",
        name=row[0],
        version=row[1],
        created=time(row[2]),
        created_by=row[3],
        artifact_uri=row[4],
        sha256=row[5],
        model_format=row[6],
        archived=archived,
        stage=stage,
        aliases=aliases,
        metrics=loads(row[8]),
        params=loads(row[9]),
        governance=Governance(**loads(row[10]), approvals=approvals),
        signature=Signature.from_dict(loads(row[11])),
        profile_uri=row[12],
        run_id=row[13],
        datasets=datasets,
    )


def change_value(row: Sequence[Any], time: ReadTime) -> AliasChange:
    """An ``alias_audit`` row (:data:`AUDIT_COLUMNS`)."""
    return AliasChange(
        id=row[0],
        model=row[1],
        alias=row[2],
        from_version=row[3],
        to_version=row[4],
        action=row[5],
        actor=row[6],
        at=time(row[7]),
        reason=row[8],
        forced=bool(row[9]),
        evidence=loads(row[10]),
    )


def verdict_value(row: Sequence[Any], time: ReadTime) -> ValidationVerdict:
    """A ``validations`` row (:data:`VERDICT_COLUMNS`)."""
    return ValidationVerdict(
        id=row[0],
        model=row[1],
        version=row[2],
        passed=bool(row[3]),
        at=time(row[4]),
        actor=row[5],
        run_id=row[6],
        summary=row[7],
        details=loads(row[8]),
    )
