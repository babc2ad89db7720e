"""The SQLite registry backend: versions, aliases, audit log, verdicts, approvals.

Storage primitives only (:class:`~conveyor.interfaces.RegistryBackend`); every
rule is core's (:class:`conveyor.registry.ModelRegistry`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from attrs import asdict

from conveyor.checks import Finding
from conveyor.errors import NotFoundError
from conveyor.interfaces.registry import (
    AliasChange,
    Approval,
    AuditSnapshot,
    DatasetRef,
    Governance,
    ModelSummary,
    ModelVersion,
    NewVersion,
    RegistryBackend,
    Signature,
    StaleAliasError,
    ValidationVerdict,
)
from conveyor.plugins.sqlite.config import SQLiteModelRegistryConfig
from conveyor.registry.audit import check_numbering
from conveyor.sqlite import Database, dumps, loads, now, parse_ts, path_from_url, ts
from conveyor.sqlstore.values import insert_artifact

PACKAGE = "conveyor.plugins.sqlite"


class SQLiteRegistryBackend(RegistryBackend):
    """The registry's state in a SQLite file (see :mod:`conveyor.sqlite`).

    Attributes:
        db: the database file and its connection.
        config: the backend's settings.
    """

    def __init__(
        self,
        *,
        app: Any = None,
        config: SQLiteModelRegistryConfig | None = None,
        path: str | Path | None = None,
    ) -> None:
        self.config = config or SQLiteModelRegistryConfig()
        if path is None:
            root = app.config.root if app is not None else Path.cwd()
            path = path_from_url(self.config.url, root)
        self.db = Database(
            Path(path),
            package=PACKAGE,
            busy_timeout_s=self.config.busy_timeout_s,
            synchronous=self.config.synchronous,
        )
        self.db.conn  # noqa: B018 - open and migrate now, so errors surface at construction

    def close(self) -> None:
        self.db.close()

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.db.path), "schema_version": self.db.schema_version()}

    def _checkpoint(self, name: str) -> None:
        """A no-op seam inside write transactions; crash tests replace it to kill here."""

    # -- writes -----------------------------------------------------------------------

    def insert_version(self, new: NewVersion) -> ModelVersion:
        name, stamp = new.name, ts(new.created)
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

        def write(conn: sqlite3.Connection) -> int:
            version = conn.execute(
                "INSERT INTO models (name, latest_version, created, updated) VALUES (?, 1, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET latest_version = latest_version + 1, "
                "updated = excluded.updated RETURNING latest_version",
                (name, stamp, stamp),
            ).fetchone()[0]
            aid = insert_artifact(
                conn,
                new.artifact_uri,
                new.sha256,
                kind="model",
                at=stamp,
                metadata={"model_format": new.model_format},
            )
            conn.execute(
                "INSERT INTO model_versions (name, version, created, created_by, artifact_uri, "
                "sha256, artifact_id, model_format, metrics, params, governance, signature, "
                "profile_uri, run_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    name,
                    version,
                    stamp,
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
            for ref in new.datasets:
                daid = insert_artifact(conn, ref.uri, ref.fingerprint, kind="dataset", at=stamp)
                conn.execute(
                    "INSERT OR IGNORE INTO model_datasets (name, version, artifact_id, role, "
                    'start, "end") VALUES (?, ?, ?, ?, ?, ?)',
                    (
                        name,
                        version,
                        daid,
                        ref.role,
                        ref.start and ts(ref.start),
                        ref.end and ts(ref.end),
                    ),
                )
            return version

        version = self.db.write(write, retry_conflicts=True)
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
        def write(conn: sqlite3.Connection) -> list[AliasChange]:
            self._checkpoint(f"{action}.begin")
            self._model_exists(conn, name)
            row = conn.execute(
                "SELECT version, audit_id FROM aliases WHERE name = ? AND alias = ?", (name, alias)
            ).fetchone()
            current = None if row is None else row[0]
            if current != expected:
                raise StaleAliasError(
                    f"alias {alias!r} of {name!r} is held by v{current}, not v{expected}"
                )
            if after is not None:
                last = conn.execute(
                    "SELECT max(id) FROM alias_audit WHERE name = ? AND alias = ?", (name, alias)
                ).fetchone()[0]
                if last != after:
                    raise StaleAliasError(f"alias {alias!r} of {name!r} moved after record {after}")
            changes: list[AliasChange] = []
            if target is not None and self._archived(conn, name, target):
                changes.append(
                    _audit(
                        conn,
                        name,
                        "archived",
                        target,
                        None,
                        "unarchive",
                        actor,
                        f"{action} of {alias!r}",
                    )
                )
                conn.execute(
                    "UPDATE model_versions SET archived = 0 WHERE name = ? AND version = ?",
                    (name, target),
                )
            self._checkpoint(f"{action}.before_audit")
            change = _audit(
                conn, name, alias, current, target, action, actor, reason, forced, evidence
            )
            self._checkpoint(f"{action}.after_audit")
            if target is None:
                conn.execute("DELETE FROM aliases WHERE name = ? AND alias = ?", (name, alias))
            else:
                conn.execute(
                    "INSERT INTO aliases (name, alias, version, audit_id) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version, "
                    "audit_id = excluded.audit_id",
                    (name, alias, target, change.id),
                )
            self._checkpoint(f"{action}.after_alias")
            changes.append(change)
            return changes

        return self.db.write(write)

    def set_archived(
        self, name: str, version: int, archived: bool, *, actor: str, reason: str = ""
    ) -> AliasChange:
        def write(conn: sqlite3.Connection) -> AliasChange:
            self._archived(conn, name, version)
            if (
                archived
                and conn.execute(
                    "SELECT 1 FROM aliases WHERE name = ? AND version = ?", (name, version)
                ).fetchone()
            ):
                raise StaleAliasError(f"{name} v{version} holds an alias")
            change = _audit(
                conn,
                name,
                "archived",
                None if archived else version,
                version if archived else None,
                "archive" if archived else "unarchive",
                actor,
                reason,
            )
            conn.execute(
                "UPDATE model_versions SET archived = ? WHERE name = ? AND version = ?",
                (int(archived), name, version),
            )
            return change

        return self.db.write(write)

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
        at = ts(now())

        def write(conn: sqlite3.Connection) -> ValidationVerdict:
            self._archived(conn, name, version)
            cursor = conn.execute(
                "INSERT INTO validations (name, version, passed, at, actor, run_id, summary, "
                "details) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    name,
                    version,
                    int(bool(passed)),
                    at,
                    actor,
                    run_id,
                    summary,
                    dumps(dict(details or {})),
                ),
            )
            return _verdict(
                conn.execute(
                    f"SELECT {_VERDICT_COLUMNS} FROM validations WHERE id = ?", (cursor.lastrowid,)
                ).fetchone()
            )

        return self.db.write(write)

    def add_approval(self, name: str, version: int, *, by: str, comment: str = "") -> Approval:
        at = now()

        def write(conn: sqlite3.Connection) -> None:
            self._archived(conn, name, version)
            conn.execute(
                "INSERT INTO approvals (name, version, by, at, comment) VALUES (?, ?, ?, ?, ?)",
                (name, version, by, ts(at), comment),
            )

        self.db.write(write)
        return Approval(model=name, version=int(version), by=by, at=at, comment=comment)

    # -- reads --------------------------------------------------------------------------

    def _no_model(self, name: str) -> NotFoundError:
        return NotFoundError(
            f"no model named {name!r} is registered",
            hint="`conveyor models list` shows the registered models",
        )

    def _model_exists(self, conn: sqlite3.Connection, name: str) -> None:
        if conn.execute("SELECT 1 FROM models WHERE name = ?", (name,)).fetchone() is None:
            raise self._no_model(name)

    def _archived(self, conn: sqlite3.Connection, name: str, version: int) -> bool:
        """Whether the version is archived; NotFoundError when it does not exist."""
        row = conn.execute(
            "SELECT archived FROM model_versions WHERE name = ? AND version = ?",
            (name, int(version)),
        ).fetchone()
        if row is None:
            self._model_exists(conn, name)
            raise NotFoundError(
                f"model {name!r} has no version {version}",
                hint=f"`conveyor models show {name}` lists its versions",
            )
        return bool(row[0])

    def _versions(
        self, conn: sqlite3.Connection, name: str, version: int | None = None
    ) -> list[ModelVersion]:
        sql = f"SELECT {_VERSION_COLUMNS} FROM model_versions WHERE name = ?"
        args: list[Any] = [name]
        if version is not None:
            sql += " AND version = ?"
            args.append(int(version))
        rows = conn.execute(sql + " ORDER BY version", args).fetchall()
        if not rows:
            return []
        held: dict[int, list[str]] = {}
        for alias, v in conn.execute(
            "SELECT alias, version FROM aliases WHERE name = ? ORDER BY alias", (name,)
        ):
            held.setdefault(v, []).append(alias)
        extra = "" if version is None else " AND version = ?"
        approvals: dict[int, list[Approval]] = {}
        for v, by, at, comment in conn.execute(
            f"SELECT version, by, at, comment FROM approvals WHERE name = ?{extra} ORDER BY id",
            args,
        ):
            approvals.setdefault(v, []).append(
                Approval(model=name, version=v, by=by, at=parse_ts(at), comment=comment)
            )
        datasets: dict[int, list[DatasetRef]] = {}
        for v, uri, fingerprint, role, start, end in conn.execute(
            'SELECT d.version, a.uri, a.fingerprint, d.role, d.start, d."end" '
            f"FROM model_datasets d JOIN artifacts a ON a.id = d.artifact_id "
            f"WHERE d.name = ?{extra.replace('version', 'd.version')} "
            "ORDER BY d.role, a.uri",
            args,
        ):
            datasets.setdefault(v, []).append(
                DatasetRef(
                    uri=uri,
                    fingerprint=fingerprint,
                    role=role,
                    start=parse_ts(start),
                    end=parse_ts(end),
                )
            )
        return [
            _version(row, held.get(row[1], []), approvals.get(row[1], []), datasets.get(row[1], []))
            for row in rows
        ]

    def get_version(self, name: str, version: int | None = None) -> ModelVersion:
        with self.db.snapshot() as conn:
            if version is None:
                row = conn.execute(
                    "SELECT latest_version FROM models WHERE name = ?", (name,)
                ).fetchone()
                if row is None:
                    raise self._no_model(name)
                version = row[0]
            found = self._versions(conn, name, version)
            if not found:
                self._archived(conn, name, version)  # raises the right NotFoundError
            return found[0]

    def list_versions(self, name: str) -> list[ModelVersion]:
        with self.db.snapshot() as conn:
            self._model_exists(conn, name)
            return self._versions(conn, name)

    def list_models(self) -> list[ModelSummary]:
        with self.db.snapshot() as conn:
            rows = conn.execute(
                "SELECT m.name, m.latest_version, m.updated, (SELECT count(*) FROM "
                "model_versions v WHERE v.name = m.name) FROM models m ORDER BY m.name"
            ).fetchall()
            aliases: dict[str, dict[str, int]] = {}
            for name, alias, version in conn.execute(
                "SELECT name, alias, version FROM aliases ORDER BY name, alias"
            ):
                aliases.setdefault(name, {})[alias] = version
        return [
            ModelSummary(
                name=r[0],
                latest_version=r[1],
                updated=parse_ts(r[2]),
                versions=r[3],
                aliases=aliases.get(r[0], {}),
            )
            for r in rows
        ]

    def resolve(self, name: str, alias: str) -> ModelVersion | None:
        with self.db.snapshot() as conn:
            row = conn.execute(
                "SELECT version FROM aliases WHERE name = ? AND alias = ?", (name, alias)
            ).fetchone()
            return None if row is None else self._versions(conn, name, row[0])[0]

    def aliases(self, name: str) -> dict[str, int]:
        with self.db.snapshot() as conn:
            self._model_exists(conn, name)
            return dict(
                conn.execute(
                    "SELECT alias, version FROM aliases WHERE name = ? ORDER BY alias", (name,)
                ).fetchall()
            )

    def history(self, name: str, *, alias: str | None = None) -> list[AliasChange]:
        sql = f"SELECT {_AUDIT_COLUMNS} FROM alias_audit WHERE name = ?"
        args: list[Any] = [name]
        if alias is not None:
            sql += " AND alias = ?"
            args.append(alias)
        with self.db.snapshot() as conn:
            self._model_exists(conn, name)
            return [_change(r) for r in conn.execute(sql + " ORDER BY id", args)]

    def changes_since(
        self, audit_id: int, *, model: str | None = None, limit: int = 1000
    ) -> list[AliasChange]:
        where, args = (
            ("name = ? AND id > ?", [model, audit_id])
            if model is not None
            else ("id > ?", [audit_id])
        )
        with self.db.locked() as conn:
            rows = conn.execute(
                f"SELECT {_AUDIT_COLUMNS} FROM alias_audit WHERE {where} ORDER BY id LIMIT ?",
                [*args, limit],
            ).fetchall()
        return [_change(r) for r in rows]

    def validations(self, name: str, version: int) -> list[ValidationVerdict]:
        with self.db.snapshot() as conn:
            self._archived(conn, name, version)
            return [
                _verdict(r)
                for r in conn.execute(
                    f"SELECT {_VERDICT_COLUMNS} FROM validations WHERE name = ? AND version = ? "
                    "ORDER BY id",
                    (name, version),
                )
            ]

    def audit_snapshot(self) -> AuditSnapshot:
        with self.db.snapshot() as conn:
            return AuditSnapshot(
                holders={
                    (n, a): (v, aid)
                    for n, a, v, aid in conn.execute(
                        "SELECT name, alias, version, audit_id FROM aliases"
                    )
                },
                archived=conn.execute(
                    "SELECT name, version FROM model_versions WHERE archived = 1"
                ).fetchall(),
                changes=[
                    _change(r)
                    for r in conn.execute(f"SELECT {_AUDIT_COLUMNS} FROM alias_audit ORDER BY id")
                ],
                artifacts=conn.execute(
                    "SELECT name, version, artifact_uri, sha256 FROM "
                    "model_versions ORDER BY name, version"
                ).fetchall(),
            )

    def check_storage(self) -> list[Finding]:
        findings: list[Finding] = []
        with self.db.snapshot() as conn:
            result = conn.execute("PRAGMA quick_check").fetchone()[0]
            if result != "ok":
                findings.append(
                    Finding(
                        check="registry.sqlite",
                        subject=str(self.db.path),
                        message=f"SQLite quick_check failed: {result}",
                    )
                )
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


_NO_GOVERNANCE = Governance()


def _audit(
    conn: sqlite3.Connection,
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
    """Append one audit record (inside the caller's transaction)."""
    at = now()
    last = conn.execute("SELECT at FROM alias_audit ORDER BY id DESC LIMIT 1").fetchone()
    if last is not None:
        # keep the log's times increasing even if clocks of two hosts disagree
        previous = parse_ts(last[0])
        if previous is not None and at <= previous:
            at = previous + timedelta(microseconds=1)
    text = dumps(dict(evidence or {}))
    cursor = conn.execute(
        "INSERT INTO alias_audit (name, alias, from_version, to_version, action, actor, at, "
        "reason, forced, evidence) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (name, alias, from_version, to_version, action, actor, ts(at), reason, int(forced), text),
    )
    conn.execute("UPDATE models SET updated = ? WHERE name = ?", (ts(at), name))
    assert cursor.lastrowid is not None  # set by the INSERT just above
    return AliasChange(
        id=cursor.lastrowid,
        model=name,
        alias=alias,
        from_version=from_version,
        to_version=to_version,
        action=action,
        actor=actor,
        at=at,
        reason=reason,
        forced=forced,
        evidence=loads(text),
    )


# -- row conversion ---------------------------------------------------------------------

_VERSION_COLUMNS = (
    "name, version, created, created_by, artifact_uri, sha256, model_format, "
    "archived, metrics, params, governance, signature, profile_uri, run_id"
)
_AUDIT_COLUMNS = (
    "id, name, alias, from_version, to_version, action, actor, at, reason, forced, evidence"
)
_VERDICT_COLUMNS = "id, name, version, passed, at, actor, run_id, summary, details"


def _version(
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
    signature = Signature.from_dict(loads(row[11]))
    return ModelVersion(
        id=f"{row[0]}:{row[1]}",
        name=row[0],
        version=row[1],
        created=parse_ts(row[2]),
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
        signature=signature,
        profile_uri=row[12],
        run_id=row[13],
        datasets=datasets,
    )


def _change(row: Sequence[Any]) -> AliasChange:
    return AliasChange(
        id=row[0],
        model=row[1],
        alias=row[2],
        from_version=row[3],
        to_version=row[4],
        action=row[5],
        actor=row[6],
        at=parse_ts(row[7]),
        reason=row[8],
        forced=bool(row[9]),
        evidence=loads(row[10]),
    )


def _verdict(row: Sequence[Any]) -> ValidationVerdict:
    return ValidationVerdict(
        id=row[0],
        model=row[1],
        version=row[2],
        passed=bool(row[3]),
        at=parse_ts(row[4]),
        actor=row[5],
        run_id=row[6],
        summary=row[7],
        details=loads(row[8]),
    )
