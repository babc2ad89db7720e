"""A registry backend in memory, written only on the primitives.

It holds no rule at all (no name checks, no verdicts, no approvals policy, no
artifact checks, no events): that it passes the whole registry contract suite
shows those rules are core's.  Two instances built on one :class:`State` see
the same registry, like two processes on one database file.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
from attrs import Factory, define, evolve

from conveyor.checks import Finding
from conveyor.errors import NotFoundError
from conveyor.interfaces.registry import (
    AliasChange,
    Approval,
    AuditSnapshot,
    ModelSummary,
    ModelVersion,
    NewVersion,
    RegistryBackend,
    StaleAliasError,
    ValidationVerdict,
)
from conveyor.registry import check_numbering

Move = tuple[int | None, int | None]  # (from_version, to_version) of an audit record


@define
class State:
    """Everything the registry stores; one lock makes each primitive atomic."""

    versions: dict[str, list[ModelVersion]] = Factory(dict)
    updated: dict[str, datetime] = Factory(dict)
    aliases: dict[tuple[str, str], tuple[int, int]] = Factory(dict)
    archived: set[tuple[str, int]] = Factory(set)
    audit: list[AliasChange] = Factory(list)
    verdicts: list[ValidationVerdict] = Factory(list)
    approvals: list[Approval] = Factory(list)
    lock: threading.RLock = Factory(threading.RLock)


class MemoryRegistryBackend(RegistryBackend):
    """Registry primitives over a :class:`State` (shared by instances built on it)."""

    def __init__(self, state: State | None = None) -> None:
        self.state = state or State()

    # -- writes -----------------------------------------------------------------------

    def insert_version(self, new: NewVersion) -> ModelVersion:
        with self.state.lock:
            versions = self.state.versions.setdefault(new.name, [])
            number = len(versions) + 1
            fields = {f.name: getattr(new, f.name) for f in attrs.fields(NewVersion)}
            mv = ModelVersion(id=f"{new.name}:{number}", version=number, **fields)
            versions.append(mv)
            self.state.updated[new.name] = new.created
            return mv

    def _audit(self, name: str, alias: str, move: Move, **extra: Any) -> AliasChange:
        """Append an audit record; ``extra`` holds action, actor, reason and the rest."""
        at = datetime.now(UTC)
        if self.state.audit and at <= self.state.audit[-1].at:
            at = self.state.audit[-1].at + timedelta(microseconds=1)
        fields = dict(model=name, alias=alias, from_version=move[0], to_version=move[1], at=at)
        change = AliasChange(id=len(self.state.audit) + 1, **fields, **extra)
        self.state.audit.append(change)
        self.state.updated[name] = at
        return change

    def move_alias(
        self,
        name: str,
        alias: str,
        target: int | None,
        *,
        expected: int | None,
        action: str,
        actor: str,
        reason: str = "",
        forced: bool = False,
        evidence: Mapping[str, Any] | None = None,
        after: int | None = None,
    ) -> list[AliasChange]:
        with self.state.lock:
            self._stored(name, target) if target is not None else self._model(name)
            current = self.state.aliases.get((name, alias), (None, 0))[0]
            if current != expected:
                raise StaleAliasError(f"{alias!r} is held by v{current}, not v{expected}")
            last = max(
                (c.id for c in self.state.audit if (c.model, c.alias) == (name, alias)),
                default=None,
            )
            if after is not None and last != after:
                raise StaleAliasError(f"{alias!r} moved after record {after}")
            changes = []
            if target is not None and (name, target) in self.state.archived:
                self.state.archived.discard((name, target))
                unarchive = dict(action="unarchive", actor=actor, reason=f"{action} of {alias!r}")
                changes.append(self._audit(name, "archived", (target, None), **unarchive))
            kept = dict(reason=reason, forced=forced, evidence=dict(evidence or {}))
            change = self._audit(name, alias, (current, target), action=action, actor=actor, **kept)
            if target is None:
                del self.state.aliases[(name, alias)]
            else:
                self.state.aliases[(name, alias)] = (target, change.id)
            return [*changes, change]

    def set_archived(
        self, name: str, version: int, archived: bool, *, actor: str, reason: str = ""
    ) -> AliasChange:
        with self.state.lock:
            self._stored(name, version)
            if archived and any(
                key[0] == name and held == version for key, (held, _) in self.state.aliases.items()
            ):
                raise StaleAliasError(f"{name} v{version} holds an alias")
            (self.state.archived.add if archived else self.state.archived.discard)((name, version))
            move = (None, version) if archived else (version, None)
            action = "archive" if archived else "unarchive"
            return self._audit(name, "archived", move, action=action, actor=actor, reason=reason)

    def add_validation(
        self,
        name: str,
        version: int,
        *,
        passed: bool,
        actor: str = "",
        run_id: str | None = None,
        summary: str = "",
        details: Mapping[str, Any] | None = None,
    ) -> ValidationVerdict:
        with self.state.lock:
            self._stored(name, version)
            given = dict(model=name, version=version, passed=passed, actor=actor, run_id=run_id)
            number, at = len(self.state.verdicts) + 1, datetime.now(UTC)
            details = dict(details or {})
            verdict = ValidationVerdict(id=number, at=at, summary=summary, details=details, **given)
            self.state.verdicts.append(verdict)
            return verdict

    def add_approval(self, name: str, version: int, *, by: str, comment: str = "") -> Approval:
        with self.state.lock:
            self._stored(name, version)
            approval = Approval(
                model=name, version=version, by=by, at=datetime.now(UTC), comment=comment
            )
            self.state.approvals.append(approval)
            return approval

    # -- reads --------------------------------------------------------------------------

    def _model(self, name: str) -> list[ModelVersion]:
        if name not in self.state.versions:
            raise NotFoundError(f"no model named {name!r} is registered")
        return self.state.versions[name]

    def _stored(self, name: str, version: int) -> ModelVersion:
        versions = self._model(name)
        if not 1 <= int(version) <= len(versions):
            raise NotFoundError(f"model {name!r} has no version {version}")
        return versions[int(version) - 1]

    def _full(self, mv: ModelVersion) -> ModelVersion:
        """The stored version with what changes after insertion: aliases, flags, approvals."""
        held = sorted(
            a for (n, a), (v, _) in self.state.aliases.items() if n == mv.name and v == mv.version
        )
        archived = (mv.name, mv.version) in self.state.archived
        fallback = "archived" if archived else "development"
        stage = next((s for s in ("production", "staging") if s in held), fallback)
        approvals = [
            a for a in self.state.approvals if (a.model, a.version) == (mv.name, mv.version)
        ]
        governance = evolve(mv.governance, approvals=approvals)
        return evolve(mv, aliases=held, archived=archived, stage=stage, governance=governance)

    def get_version(self, name: str, version: int | None = None) -> ModelVersion:
        with self.state.lock:
            return self._full(self._stored(name, version or len(self._model(name))))

    def list_versions(self, name: str) -> list[ModelVersion]:
        with self.state.lock:
            return [self._full(mv) for mv in self._model(name)]

    def list_models(self) -> list[ModelSummary]:
        with self.state.lock:
            return [self._summary(name) for name in sorted(self.state.versions)]

    def _summary(self, name: str) -> ModelSummary:
        n, aliases = len(self.state.versions[name]), self.aliases(name)
        updated = self.state.updated[name]
        return ModelSummary(
            name=name, latest_version=n, versions=n, aliases=aliases, updated=updated
        )

    def resolve(self, name: str, alias: str) -> ModelVersion | None:
        with self.state.lock:
            held = self.state.aliases.get((name, alias))
            return None if held is None else self._full(self._stored(name, held[0]))

    def aliases(self, name: str) -> dict[str, int]:
        with self.state.lock:
            self._model(name)
            return {a: v for (n, a), (v, _) in sorted(self.state.aliases.items()) if n == name}

    def history(self, name: str, *, alias: str | None = None) -> list[AliasChange]:
        with self.state.lock:
            self._model(name)
            return [c for c in self.state.audit if c.model == name and alias in (None, c.alias)]

    def changes_since(
        self, audit_id: int, *, model: str | None = None, limit: int = 1000
    ) -> list[AliasChange]:
        with self.state.lock:
            return [c for c in self.state.audit[audit_id:] if model in (None, c.model)][:limit]

    def validations(self, name: str, version: int) -> list[ValidationVerdict]:
        with self.state.lock:
            self._stored(name, version)
            return [v for v in self.state.verdicts if (v.model, v.version) == (name, version)]

    def audit_snapshot(self) -> AuditSnapshot:
        with self.state.lock:
            stored = [mv for versions in self.state.versions.values() for mv in versions]
            artifacts = [(mv.name, mv.version, mv.artifact_uri, mv.sha256) for mv in stored]
            holders, archived = dict(self.state.aliases), set(self.state.archived)
            changes = list(self.state.audit)
            return AuditSnapshot(
                holders=holders, archived=archived, changes=changes, artifacts=artifacts
            )

    def check_storage(self) -> list[Finding]:
        with self.state.lock:
            found = (
                check_numbering(name, [mv.version for mv in versions], len(versions))
                for name, versions in self.state.versions.items()
            )
            return [f for f in found if f is not None]
