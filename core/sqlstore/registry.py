"""The registry backend written once for SQL databases: versions, aliases, audit log.

Storage primitives only (:class:`~conveyor.interfaces.RegistryBackend`); every
rule is core's (:class:`conveyor.registry.ModelRegistry`).  A backend subclasses
:class:`SQLRegistryBackend`, sets ``self.sql`` and ``self.dialect`` (see
:mod:`conveyor.sqlstore`) and adds :meth:`~SQLRegistryBackend._storage_findings`;
where its database offers a faster spelling of a step (one round trip for a move,
one statement for a read) it overrides :meth:`~SQLRegistryBackend._move_alias`,
:meth:`~SQLRegistryBackend._audit` or ``_read_versions``.

Concurrency: a version number is allocated by ``INSERT ... ON CONFLICT DO UPDATE
... RETURNING`` on the model's row, and an alias move locks that row before it
reads the holder (``Dialect.for_update``), so each compare-and-set is one
critical section; the audit record is written in the same transaction.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from attrs import asdict, evolve

from conveyor.checks import Finding
from conveyor.interfaces.registry import (
    AliasChange,
    Approval,
    Governance,
    ModelVersion,
    NewVersion,
    RegistryBackend,
    StaleAliasError,
    ValidationVerdict,
)
from conveyor.registry.audit import check_numbering
from conveyor.sqlite import dumps, loads, now
from conveyor.sqlstore.dialect import Connection
from conveyor.sqlstore.registry_reads import SQLRegistryReads
from conveyor.sqlstore.registry_values import VERDICT_COLUMNS, AliasMove, verdict_value
from conveyor.sqlstore.values import insert_artifact

_NO_GOVERNANCE = Governance()


class SQLRegistryBackend(SQLRegistryReads, RegistryBackend):
    """The registry's state in SQL tables (see the module docstring)."""

    def _checkpoint(self, name: str) -> None:
        """A no-op seam inside write transactions; crash tests replace it to kill here."""

    # -- writes -----------------------------------------------------------------------

    def insert_version(self, new: NewVersion) -> ModelVersion:
        name, at = new.name, self.dialect.write_time(new.created)
        # everything but the SQL is prepared before the write lock is taken: under
        # contention the time the lock is held is what every other writer waits for
        gov = new.governance
        gov_json = (
            "{}"
            if gov == _NO_GOVERNANCE
            else dumps({k: v for k, v in asdict(gov).items() if k != "approvals"})
        )
        sig_json = dumps(new.signature.to_dict()) if new.signature.features else "[]"
        metrics_json = dumps(new.metrics) if new.metrics else "{}"
        params_json = dumps(new.params) if new.params else "{}"
        datasets = [
            (
                ref,
                ref.start and self.dialect.write_time(ref.start),
                ref.end and self.dialect.write_time(ref.end),
            )
            for ref in new.datasets
        ]

        def write(conn: Connection) -> int:
            version = int(
                conn.execute(
                    "INSERT INTO models (name, latest_version, created, updated) "
                    "VALUES (?, 1, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                    "latest_version = models.latest_version + 1, updated = excluded.updated "
                    "RETURNING latest_version",
                    (name, at, at),
                ).fetchone()[0]
            )
            aid = insert_artifact(
                conn,
                new.artifact_uri,
                new.sha256,
                kind="model",
                at=at,
                metadata={"model_format": new.model_format},
                table=self.artifacts,
            )
            conn.execute(
                "INSERT INTO model_versions (name, version, created, created_by, artifact_uri, "
                "sha256, artifact_id, model_format, metrics, params, governance, signature, "
                "profile_uri, run_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    name,
                    version,
                    at,
                    new.created_by,
                    new.artifact_uri,
                    new.sha256,
                    aid,
                    new.model_format,
                    metrics_json,
                    params_json,
                    gov_json,
                    sig_json,
                    new.profile_uri,
                    new.run_id,
                ),
            )
            for ref, start, end in datasets:
                daid = insert_artifact(
                    conn, ref.uri, ref.fingerprint, kind="dataset", at=at, table=self.artifacts
                )
                conn.execute(
                    "INSERT INTO model_datasets (name, version, artifact_id, role, start, "
                    '"end") VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING',
                    (name, version, daid, ref.role, start, end),
                )
            return version

        version = self.sql.write(write, retry_conflicts=True)
        return ModelVersion(
            id=f"{name}:{version}",
            name=name,
            version=version,
            created=new.created,
            artifact_uri=new.artifact_uri,
            sha256=new.sha256,
            model_format=new.model_format,
            datasets=new.datasets,
            metrics=dict(new.metrics),
            params=loads(params_json) if new.params else {},
            governance=gov,
            signature=new.signature,
            profile_uri=new.profile_uri,
            run_id=new.run_id,
            created_by=new.created_by,
        )

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
        move = AliasMove(
            name=name,
            alias=alias,
            target=target,
            expected=expected,
            action=action,
            actor=actor,
            reason=reason,
            forced=forced,
            evidence=evidence,
            after=after,
        )
        return self.sql.write(lambda conn: self._move_alias(conn, move))

    def _move_alias(self, conn: Connection, move: AliasMove) -> list[AliasChange]:
        """The compare-and-set of :meth:`move_alias`, inside its write transaction."""
        name, alias, target = move.name, move.alias, move.target
        self._checkpoint(f"{move.action}.begin")
        self._lock_model(conn, name)
        row = conn.execute(
            "SELECT version FROM aliases WHERE name = ? AND alias = ?", (name, alias)
        ).fetchone()
        current = None if row is None else row[0]
        last = (
            None
            if move.after is None
            else conn.execute(
                "SELECT max(id) FROM alias_audit WHERE name = ? AND alias = ?", (name, alias)
            ).fetchone()[0]
        )
        compare(move, current, last)
        changes: list[AliasChange] = []
        if target is not None and self._archived(conn, name, target):
            changes.append(self._append_audit(conn, self._unarchive_draft(move)))
            conn.execute(
                "UPDATE model_versions SET archived = ? WHERE name = ? AND version = ?",
                (False, name, target),
            )
        self._checkpoint(f"{move.action}.before_audit")
        change = self._append_audit(conn, self._move_draft(move, current))
        self._checkpoint(f"{move.action}.after_audit")
        if target is None:
            conn.execute("DELETE FROM aliases WHERE name = ? AND alias = ?", (name, alias))
        else:
            conn.execute(
                "INSERT INTO aliases (name, alias, version, audit_id) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version, "
                "audit_id = excluded.audit_id",
                (name, alias, target, change.id),
            )
        self._checkpoint(f"{move.action}.after_alias")
        changes.append(change)
        return changes

    def set_archived(
        self, name: str, version: int, archived: bool, *, actor: str, reason: str = ""
    ) -> AliasChange:
        def write(conn: Connection) -> AliasChange:
            self._lock_model(conn, name)
            self._archived(conn, name, version)
            if (
                archived
                and conn.execute(
                    "SELECT 1 FROM aliases WHERE name = ? AND version = ?", (name, version)
                ).fetchone()
            ):
                raise StaleAliasError(f"{name} v{version} holds an alias")
            change = self._append_audit(
                conn,
                self._draft(
                    name,
                    "archived",
                    None if archived else version,
                    version if archived else None,
                    "archive" if archived else "unarchive",
                    actor,
                    reason,
                ),
            )
            conn.execute(
                "UPDATE model_versions SET archived = ? WHERE name = ? AND version = ?",
                (bool(archived), name, version),
            )
            return change

        return self.sql.write(write)

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
        at = self.dialect.write_time(now())
        text = dumps(dict(details or {}))

        def write(conn: Connection) -> ValidationVerdict:
            self._archived(conn, name, version)
            row = conn.execute(
                "INSERT INTO validations (name, version, passed, at, actor, run_id, summary, "
                f"details) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING {VERDICT_COLUMNS}",
                (name, version, bool(passed), at, actor, run_id, summary, text),
            ).fetchone()
            return verdict_value(row, self.dialect.read_time)

        return self.sql.write(write)

    def add_approval(self, name: str, version: int, *, by: str, comment: str = "") -> Approval:
        at = now()
        stored = self.dialect.write_time(at)

        def write(conn: Connection) -> None:
            self._archived(conn, name, version)
            conn.execute(
                "INSERT INTO approvals (name, version, by, at, comment) VALUES (?, ?, ?, ?, ?)",
                (name, version, by, stored, comment),
            )

        self.sql.write(write)
        return Approval(model=name, version=int(version), by=by, at=at, comment=comment)

    @staticmethod
    def _draft(
        name: str,
        alias: str,
        from_version: int | None,
        to_version: int | None,
        action: str,
        actor: str,
        reason: str = "",
        forced: bool = False,
        evidence: Mapping[str, Any] | None = None,
    ) -> AliasChange:
        """An audit record to append: :meth:`_append_audit` gives it its id and time."""
        return AliasChange(
            id=0,
            model=name,
            alias=alias,
            from_version=from_version,
            to_version=to_version,
            action=action,
            actor=actor,
            at=now(),
            reason=reason,
            forced=forced,
            evidence=loads(dumps(dict(evidence or {}))),
        )

    def _move_draft(self, move: AliasMove, current: int | None) -> AliasChange:
        """The audit record of ``move`` away from ``current``."""
        return self._draft(
            move.name,
            move.alias,
            current,
            move.target,
            move.action,
            move.actor,
            move.reason,
            move.forced,
            move.evidence,
        )

    def _unarchive_draft(self, move: AliasMove) -> AliasChange:
        """The audit record of unarchiving ``move``'s target before the move."""
        return self._draft(
            move.name,
            "archived",
            move.target,
            None,
            "unarchive",
            move.actor,
            f"{move.action} of {move.alias!r}",
        )

    def _append_audit(self, conn: Connection, draft: AliasChange) -> AliasChange:
        """Write ``draft`` to the audit log (inside the caller's transaction); returns it
        with its id and time.

        Relies on the write transaction excluding other writers, so the last
        record read here stays the last until commit.
        """
        at = draft.at
        last = conn.execute("SELECT at FROM alias_audit ORDER BY id DESC LIMIT 1").fetchone()
        if last is not None:
            # keep the log's times increasing even if clocks of two hosts disagree
            previous = self.dialect.read_time(last[0])
            if at <= previous:
                at = previous + timedelta(microseconds=1)
        stored = self.dialect.write_time(at)
        audit_id = conn.execute(
            "INSERT INTO alias_audit (name, alias, from_version, to_version, action, actor, at, "
            "reason, forced, evidence) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (
                draft.model,
                draft.alias,
                draft.from_version,
                draft.to_version,
                draft.action,
                draft.actor,
                stored,
                draft.reason,
                draft.forced,
                dumps(draft.evidence),
            ),
        ).fetchone()[0]
        conn.execute("UPDATE models SET updated = ? WHERE name = ?", (stored, draft.model))
        return evolve(draft, id=audit_id, at=at)

    # -- checks -------------------------------------------------------------------------

    def check_storage(self) -> list[Finding]:
        with self.sql.snapshot() as conn:
            findings = self._storage_findings(conn)
            numbers: dict[str, list[int]] = {}
            for n, v in conn.execute(
                "SELECT name, version FROM model_versions ORDER BY name, version"
            ):
                numbers.setdefault(n, []).append(v)
            for name, latest in conn.execute(
                "SELECT name, latest_version FROM models ORDER BY name"
            ):
                finding = check_numbering(name, numbers.get(name, []), latest)
                if finding is not None:
                    findings.append(finding)
        return findings

    @abc.abstractmethod
    def _storage_findings(self, conn: Connection) -> list[Finding]:
        """What the database's own integrity checks find (inside a read snapshot)."""


def compare(move: AliasMove, current: int | None, last: int | None) -> None:
    """The compare of a compare-and-set: ``current`` holds the alias now, ``last`` is
    the id of its last audit record (needed only when the move names ``after``)."""
    if current != move.expected:
        raise StaleAliasError(
            f"alias {move.alias!r} of {move.name!r} is held by v{current}, not v{move.expected}"
        )
    if move.after is not None and last != move.after:
        raise StaleAliasError(
            f"alias {move.alias!r} of {move.name!r} moved after record {move.after}"
        )
