"""The SQLite model registry: versions, aliases/stages, approvals, append-only audit log."""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from attrs import asdict, evolve

from conveyor.artifacts import _fully_decoded, validate_key
from conveyor.checks import Finding, Severity
from conveyor.errors import (
    ConfinementError,
    ConveyorError,
    IntegrityError,
    NotFoundError,
    ValidationError,
)
from conveyor.interfaces.registry import (
    MODEL_FORMATS,
    NAME_PATTERN,
    AliasChange,
    Approval,
    DatasetRef,
    FeatureSpec,
    Governance,
    ModelRegistry,
    ModelSummary,
    ModelVersion,
    Signature,
    ValidationVerdict,
)
from conveyor.plugins.sqlite.config import SQLiteModelRegistryConfig
from conveyor.plugins.sqlite.db import Database, dumps, loads, now, parse_ts, path_from_url, ts
from conveyor.plugins.sqlite.metadata import INSERT_ARTIFACT, artifact_values, insert_artifact

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
#: Names an alias may not take: stages that are not aliases, and reserved words.
RESERVED_ALIASES = ("development", "archived", "latest")
_NO_GOVERNANCE = Governance()
_NO_SIGNATURE = Signature()
#: Audit actions that move an alias (``archive``/``unarchive`` flag a version instead).
ALIAS_ACTIONS = ("set", "rollback", "remove")


def _check_name(value: str, what: str) -> str:
    if not isinstance(value, str) or not NAME_PATTERN.match(value):
        raise ConveyorError(
            f"{what} {value!r} is not a valid name",
            hint="use letters, digits, '_', '.' and '-' (starting with a letter or digit), "
            "at most 128 characters")
    return value


def _check_alias(alias: str) -> str:
    _check_name(alias, "alias")
    if alias in RESERVED_ALIASES:
        raise ConveyorError(
            f"{alias!r} cannot be used as an alias",
            hint="archive a version with `conveyor models promote NAME VERSION --to archived`"
            if alias == "archived" else "a version without aliases is in development; "
            "remove its aliases instead" if alias == "development" else
            "'latest' always means the newest version; choose another alias name")
    return alias


class SQLiteModelRegistry(ModelRegistry):
    """The model registry on a SQLite file (see :mod:`conveyor.plugins.sqlite.db`).

    Attributes:
        db: the database file and its connection.
        config: the registry's settings.
    """

    def __init__(self, *, app: Any = None, config: SQLiteModelRegistryConfig | None = None,
                 path: str | Path | None = None, artifacts: Any = None) -> None:
        self.config = config or SQLiteModelRegistryConfig()
        if path is None:
            root = app.config.root if app is not None else Path.cwd()
            path = path_from_url(self.config.url, root)
        self.app = app
        self._artifacts = artifacts
        self.db = Database(Path(path), busy_timeout_s=self.config.busy_timeout_s,
                           synchronous=self.config.synchronous)
        self.db.conn  # noqa: B018 - open and migrate now, so errors surface at construction

    def close(self) -> None:
        self.db.close()

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.db.path), "schema_version": self.db.schema_version()}

    def _checkpoint(self, name: str) -> None:
        """A no-op seam inside write transactions; crash tests replace it to kill here."""

    # -- the artifact store -----------------------------------------------------------

    @property
    def artifacts(self) -> Any:
        """The artifact store registered URIs must lie in, or ``None`` when there is none."""
        if self._artifacts is None and self.app is not None and self.config.verify_artifacts:
            self._artifacts = self.app.artifacts
        return self._artifacts

    def _verify_artifact(self, artifact_uri: str, sha256: str) -> str:
        store = self.artifacts
        if store is None:
            return artifact_uri
        return verify_artifact(store, artifact_uri, sha256)

    # -- registration -----------------------------------------------------------------

    def register(self, name: str, *, artifact_uri: str, sha256: str,
                 model_format: str = "lightgbm-text", run_id: str | None = None,
                 datasets: Sequence[DatasetRef | Mapping[str, Any]] = (),
                 metrics: Mapping[str, float] | None = None,
                 params: Mapping[str, Any] | None = None,
                 governance: Governance | Mapping[str, Any] | None = None,
                 signature: Signature | Sequence[FeatureSpec] | None = None,
                 profile_uri: str | None = None, actor: str = "") -> ModelVersion:
        _check_name(name, "model name")
        sha256 = str(sha256).lower()
        if not _SHA256.match(sha256):
            raise ConveyorError(f"{sha256!r} is not a hex SHA-256",
                                hint="pass the sha256 the artifact store recorded")
        if model_format not in MODEL_FORMATS:
            raise ConveyorError(
                f"model format {model_format!r} is not accepted",
                hint=f"register LightGBM text or JSON models ({', '.join(MODEL_FORMATS)}); "
                "nothing is ever unpickled")
        artifact_uri = self._verify_artifact(artifact_uri, sha256)
        refs = tuple(d if isinstance(d, DatasetRef) else DatasetRef(**d) for d in datasets)
        gov = governance if isinstance(governance, Governance) else _NO_GOVERNANCE \
            if governance is None else Governance(**dict(governance))
        sig = signature if isinstance(signature, Signature) else _NO_SIGNATURE \
            if signature is None else Signature(features=signature)
        at = now()
        stamp = ts(at)
        # empty values are common (and registration is a hot path under contention)
        gov_json = "{}" if governance is None else dumps(
            {k: v for k, v in asdict(gov).items() if k != "approvals"})
        sig_json = dumps([asdict(f) for f in sig.features]) if sig.features else "[]"
        metrics_json = dumps({k: float(v) for k, v in metrics.items()}) if metrics else "{}"
        params_json = dumps(dict(params)) if params else "{}"
        # everything but the SQL is prepared before the write lock is taken: under
        # contention the time the lock is held is what every other writer waits for
        artifact_row = artifact_values(artifact_uri, sha256, kind="model", at=stamp,
                                       metadata={"model_format": model_format})
        aid = artifact_row[0]

        def write(conn: sqlite3.Connection) -> int:
            version = conn.execute(
                "INSERT INTO models (name, latest_version, created, updated) VALUES (?, 1, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET latest_version = latest_version + 1, "
                "updated = excluded.updated RETURNING latest_version",
                (name, stamp, stamp)).fetchone()[0]
            conn.execute(INSERT_ARTIFACT, artifact_row)
            conn.execute(
                "INSERT INTO model_versions (name, version, created, created_by, artifact_uri, "
                "sha256, artifact_id, model_format, metrics, params, governance, signature, "
                "profile_uri, run_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (name, version, stamp, actor, artifact_uri, sha256, aid, model_format,
                 metrics_json, params_json, gov_json, sig_json, profile_uri, run_id))
            for ref in refs:
                daid = insert_artifact(conn, ref.uri, ref.fingerprint, kind="dataset", at=stamp)
                conn.execute(
                    "INSERT OR IGNORE INTO model_datasets (name, version, artifact_id, role, "
                    "start, \"end\") VALUES (?, ?, ?, ?, ?, ?)",
                    (name, version, daid, ref.role, ref.start and ts(ref.start),
                     ref.end and ts(ref.end)))
            return version

        version = self.db.write(write, retry_conflicts=True)
        registered = ModelVersion(
            id=f"{name}:{version}", name=name, version=version, created=at,
            artifact_uri=artifact_uri, sha256=sha256, model_format=model_format,
            datasets=refs, metrics=loads(metrics_json) if metrics else {},
            params=loads(params_json) if params else {},
            governance=evolve(gov, approvals=()) if gov.approvals else gov, signature=sig,
            profile_uri=profile_uri, run_id=run_id, created_by=actor)
        if self.app is not None:
            from conveyor.events import ModelRegistered

            self.app.emit("on_model_registered", ModelRegistered(
                model=name, version=version, artifact_uri=artifact_uri, sha256=sha256,
                run_id=run_id, at=at))
        return registered

    # -- reading ----------------------------------------------------------------------

    def _no_model(self, name: str) -> NotFoundError:
        return NotFoundError(f"no model named {name!r} is registered",
                             hint="`conveyor models list` shows the registered models")

    def _model_exists(self, conn: sqlite3.Connection, name: str) -> None:
        if conn.execute("SELECT 1 FROM models WHERE name = ?", (name,)).fetchone() is None:
            raise self._no_model(name)

    def _versions(self, conn: sqlite3.Connection, name: str,
                  version: int | None = None) -> list[ModelVersion]:
        sql = f"SELECT {_VERSION_COLUMNS} FROM model_versions WHERE name = ?"
        args: list[Any] = [name]
        if version is not None:
            sql += " AND version = ?"
            args.append(int(version))
        rows = conn.execute(sql + " ORDER BY version", args).fetchall()
        if not rows:
            return []
        held: dict[int, list[str]] = {}
        for alias, v in conn.execute("SELECT alias, version FROM aliases WHERE name = ? "
                                     "ORDER BY alias", (name,)):
            held.setdefault(v, []).append(alias)
        extra = "" if version is None else " AND version = ?"
        approvals: dict[int, list[Approval]] = {}
        for v, by, at, comment in conn.execute(
                f"SELECT version, by, at, comment FROM approvals WHERE name = ?{extra} "
                "ORDER BY id", args):
            approvals.setdefault(v, []).append(
                Approval(model=name, version=v, by=by, at=parse_ts(at), comment=comment))
        datasets: dict[int, list[DatasetRef]] = {}
        for v, uri, fingerprint, role, start, end in conn.execute(
                "SELECT d.version, a.uri, a.fingerprint, d.role, d.start, d.\"end\" "
                f"FROM model_datasets d JOIN artifacts a ON a.id = d.artifact_id "
                f"WHERE d.name = ?{extra.replace('version', 'd.version')} "
                "ORDER BY d.role, a.uri", args):
            datasets.setdefault(v, []).append(DatasetRef(
                uri=uri, fingerprint=fingerprint, role=role, start=parse_ts(start),
                end=parse_ts(end)))
        return [_version(row, held.get(row[1], []), approvals.get(row[1], []),
                         datasets.get(row[1], [])) for row in rows]

    def get(self, name: str, version: int | None = None) -> ModelVersion:
        with self.db.snapshot() as conn:
            if version is None:
                row = conn.execute("SELECT latest_version FROM models WHERE name = ?",
                                   (name,)).fetchone()
                if row is None:
                    raise self._no_model(name)
                version = row[0]
            found = self._versions(conn, name, version)
            if not found:
                self._model_exists(conn, name)
                raise NotFoundError(f"model {name!r} has no version {version}",
                                    hint=f"`conveyor models show {name}` lists its versions")
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
                    "SELECT name, alias, version FROM aliases ORDER BY name, alias"):
                aliases.setdefault(name, {})[alias] = version
        return [ModelSummary(name=r[0], latest_version=r[1], updated=parse_ts(r[2]),
                             versions=r[3], aliases=aliases.get(r[0], {})) for r in rows]

    def resolve(self, name: str, alias: str) -> ModelVersion | None:
        if alias == "latest":
            try:
                return self.get(name)
            except NotFoundError:
                return None
        with self.db.snapshot() as conn:
            row = conn.execute("SELECT version FROM aliases WHERE name = ? AND alias = ?",
                               (name, alias)).fetchone()
            if row is None:
                return None
            return self._versions(conn, name, row[0])[0]

    def aliases(self, name: str) -> dict[str, int]:
        with self.db.snapshot() as conn:
            self._model_exists(conn, name)
            return dict(conn.execute("SELECT alias, version FROM aliases WHERE name = ? "
                                     "ORDER BY alias", (name,)).fetchall())

    # -- moving aliases ---------------------------------------------------------------

    def _require_version(self, conn: sqlite3.Connection, name: str, version: int) -> bool:
        """Whether the version is archived; NotFoundError when it does not exist."""
        row = conn.execute("SELECT archived FROM model_versions WHERE name = ? AND version = ?",
                           (name, int(version))).fetchone()
        if row is None:
            self._model_exists(conn, name)
            raise NotFoundError(f"model {name!r} has no version {version}",
                                hint=f"`conveyor models show {name}` lists its versions")
        return bool(row[0])

    def _audit(self, conn: sqlite3.Connection, name: str, alias: str,
               from_version: int | None, to_version: int | None, action: str, actor: str,
               reason: str = "", forced: bool = False,
               evidence: Mapping[str, Any] | None = None) -> AliasChange:
        """Append one audit record (inside the caller's transaction)."""
        at = now()
        last = conn.execute("SELECT at FROM alias_audit WHERE name = ? ORDER BY id DESC LIMIT 1",
                            (name,)).fetchone()
        if last is not None:
            # keep the log's times increasing even if clocks of two hosts disagree
            previous = parse_ts(last[0])
            if previous is not None and at <= previous:
                at = previous + timedelta(microseconds=1)
        evidence = dict(evidence or {})
        cursor = conn.execute(
            "INSERT INTO alias_audit (name, alias, from_version, to_version, action, actor, at, "
            "reason, forced, evidence) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (name, alias, from_version, to_version, action, actor, ts(at), reason, int(forced),
             dumps(evidence)))
        conn.execute("UPDATE models SET updated = ? WHERE name = ?", (ts(at), name))
        return AliasChange(id=cursor.lastrowid, model=name, alias=alias,
                           from_version=from_version, to_version=to_version, action=action,
                           actor=actor, at=at, reason=reason, forced=forced,
                           evidence=loads(dumps(evidence)))

    def _holder(self, conn: sqlite3.Connection, name: str, alias: str) -> int | None:
        row = conn.execute("SELECT version FROM aliases WHERE name = ? AND alias = ?",
                           (name, alias)).fetchone()
        return None if row is None else row[0]

    def _move(self, conn: sqlite3.Connection, name: str, alias: str, current: int | None,
              target: int | None, action: str, actor: str, reason: str, forced: bool = False,
              evidence: Mapping[str, Any] | None = None) -> list[AliasChange]:
        """Move ``alias`` from ``current`` to ``target`` with its audit record(s)."""
        changes: list[AliasChange] = []
        if target is not None and self._require_version(conn, name, target):
            changes.append(self._audit(conn, name, "archived", target, None, "unarchive",
                                       actor, f"{action} of {alias!r}"))
            conn.execute("UPDATE model_versions SET archived = 0 WHERE name = ? AND version = ?",
                         (name, target))
        self._checkpoint(f"{action}.before_audit")
        change = self._audit(conn, name, alias, current, target, action, actor, reason,
                             forced, evidence)
        self._checkpoint(f"{action}.after_audit")
        if target is None:
            conn.execute("DELETE FROM aliases WHERE name = ? AND alias = ?", (name, alias))
        else:
            conn.execute(
                "INSERT INTO aliases (name, alias, version, audit_id) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version, "
                "audit_id = excluded.audit_id", (name, alias, target, change.id))
        self._checkpoint(f"{action}.after_alias")
        changes.append(change)
        return changes

    def _evidence(self, conn: sqlite3.Connection, name: str, alias: str, version: int,
                  force: bool, reason: str) -> tuple[dict[str, Any], bool]:
        """What allows ``version`` to take ``alias``; ValidationError when nothing does."""
        evidence: dict[str, Any] = {}
        forced = False
        if alias == "production":
            verdict = self._latest_verdict(conn, name, version)
            if verdict is not None:
                evidence["validation"] = {"id": verdict.id, "passed": verdict.passed,
                                          "at": ts(verdict.at), "actor": verdict.actor,
                                          "run_id": verdict.run_id, "summary": verdict.summary}
            if verdict is None or not verdict.passed:
                if not force:
                    what = "no validation verdict" if verdict is None else \
                        f"a failing validation verdict ({verdict.summary or 'no summary'})"
                    raise ValidationError(
                        f"{name} version {version} has {what}: it cannot be promoted to "
                        "production",
                        hint="validate it first (a pipeline run records the verdict), or "
                        "force it with --force and a --reason (the force is audited)")
                forced = True
        if alias in self.config.require_approval:
            rows = conn.execute("SELECT by, at FROM approvals WHERE name = ? AND version = ? "
                                "ORDER BY id", (name, version)).fetchall()
            if rows:
                evidence["approvals"] = [{"by": by, "at": at} for by, at in rows]
            elif not force:
                raise ValidationError(
                    f"{name} version {version} needs an approval before it can take "
                    f"{alias!r}",
                    hint=f"conveyor models approve {name} {version} --by WHO")
            else:
                forced = True
        if forced:
            evidence["forced_reason"] = reason
        return evidence, forced

    def set_alias(self, name: str, alias: str, version: int, *, actor: str,
                  reason: str = "", force: bool = False) -> AliasChange:
        _check_alias(alias)
        if force and not reason.strip():
            raise ConveyorError("forcing a promotion needs a reason",
                                hint="add --reason 'why the checks may be skipped'")

        def write(conn: sqlite3.Connection) -> tuple[list[AliasChange], bool]:
            self._require_version(conn, name, version)
            current = self._holder(conn, name, alias)
            if current == version:
                last = self._history(conn, name, alias)
                return [last[-1]] if last else [], False
            self._checkpoint("set.begin")
            evidence, forced = self._evidence(conn, name, alias, version, force, reason)
            return self._move(conn, name, alias, current, version, "set", actor, reason,
                              forced, evidence), True

        changes, moved = self.db.write(write)
        if moved:
            self._checkpoint("set.committed")
            self._emit(changes)
        return changes[-1]

    def remove_alias(self, name: str, alias: str, *, actor: str, reason: str = ""
                     ) -> AliasChange:
        _check_name(alias, "alias")

        def write(conn: sqlite3.Connection) -> list[AliasChange]:
            self._model_exists(conn, name)
            current = self._holder(conn, name, alias)
            if current is None:
                raise NotFoundError(f"model {name!r} has no alias {alias!r}",
                                    hint=f"`conveyor models show {name}` lists its aliases")
            return self._move(conn, name, alias, current, None, "remove", actor, reason)

        changes = self.db.write(write)
        self._emit(changes)
        return changes[-1]

    def rollback(self, name: str, alias: str, *, actor: str, reason: str = ""
                 ) -> AliasChange:
        _check_name(alias, "alias")

        def write(conn: sqlite3.Connection) -> list[AliasChange]:
            self._model_exists(conn, name)
            stack, _problems = replay(self._history(conn, name, alias))
            if len(stack) < 2:
                raise ConveyorError(
                    f"alias {alias!r} of model {name!r} has no earlier holder to roll back to",
                    hint=f"`conveyor models history {name}` shows what happened to it")
            current, target = stack[-1], stack[-2]
            return self._move(conn, name, alias, current, target, "rollback", actor,
                              reason or f"rollback of {alias!r}")

        changes = self.db.write(write)
        self._emit(changes)
        return changes[-1]

    def archive(self, name: str, version: int, *, actor: str, reason: str = ""
                ) -> AliasChange:
        def write(conn: sqlite3.Connection) -> tuple[AliasChange, bool]:
            if self._require_version(conn, name, version):
                last = [c for c in self._history(conn, name, "archived")
                        if c.from_version == version or c.to_version == version]
                return last[-1], False
            held = [a for (a,) in conn.execute(
                "SELECT alias FROM aliases WHERE name = ? AND version = ?", (name, version))]
            if held:
                raise ConveyorError(
                    f"{name} version {version} still holds {', '.join(held)}: it cannot be "
                    "archived",
                    hint="move those aliases to another version first")
            change = self._audit(conn, name, "archived", None, version, "archive", actor,
                                 reason)
            conn.execute("UPDATE model_versions SET archived = 1 WHERE name = ? AND version = ?",
                         (name, version))
            return change, True

        change, changed = self.db.write(write)
        if changed:
            self._emit([change])
        return change

    def _emit(self, changes: Sequence[AliasChange]) -> None:
        if self.app is None:
            return
        from conveyor.events import AliasChanged

        for change in changes:
            self.app.emit("on_alias_changed", AliasChanged(
                model=change.model, alias=change.alias, from_version=change.from_version,
                to_version=change.to_version, actor=change.actor, reason=change.reason,
                at=change.at))

    # -- history ----------------------------------------------------------------------

    def _history(self, conn: sqlite3.Connection, name: str, alias: str | None = None
                 ) -> list[AliasChange]:
        sql = f"SELECT {_AUDIT_COLUMNS} FROM alias_audit WHERE name = ?"
        args: list[Any] = [name]
        if alias is not None:
            sql += " AND alias = ?"
            args.append(alias)
        return [_change(r) for r in conn.execute(sql + " ORDER BY id", args)]

    def history(self, name: str, *, alias: str | None = None) -> list[AliasChange]:
        with self.db.snapshot() as conn:
            self._model_exists(conn, name)
            return self._history(conn, name, alias)

    def alias_at(self, name: str, alias: str, at: datetime) -> int | None:
        with self.db.snapshot() as conn:
            self._model_exists(conn, name)
            row = conn.execute(
                "SELECT to_version FROM alias_audit WHERE name = ? AND alias = ? AND "
                "action IN ('set', 'rollback', 'remove') AND at <= ? ORDER BY id DESC LIMIT 1",
                (name, alias, ts(at))).fetchone()
        return None if row is None else row[0]

    # -- validation and approval ------------------------------------------------------

    def _latest_verdict(self, conn: sqlite3.Connection, name: str, version: int
                        ) -> ValidationVerdict | None:
        row = conn.execute(f"SELECT {_VERDICT_COLUMNS} FROM validations WHERE name = ? AND "
                           "version = ? ORDER BY id DESC LIMIT 1", (name, version)).fetchone()
        return None if row is None else _verdict(row)

    def record_validation(self, name: str, version: int, *, passed: bool, actor: str = "",
                          run_id: str | None = None, summary: str = "",
                          details: Mapping[str, Any] | None = None) -> ValidationVerdict:
        at = ts(now())

        def write(conn: sqlite3.Connection) -> ValidationVerdict:
            self._require_version(conn, name, version)
            cursor = conn.execute(
                "INSERT INTO validations (name, version, passed, at, actor, run_id, summary, "
                "details) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (name, version, int(bool(passed)), at, actor, run_id, summary,
                 dumps(dict(details or {}))))
            row = conn.execute(f"SELECT {_VERDICT_COLUMNS} FROM validations WHERE id = ?",
                               (cursor.lastrowid,)).fetchone()
            return _verdict(row)

        return self.db.write(write)

    def validations(self, name: str, version: int) -> list[ValidationVerdict]:
        with self.db.snapshot() as conn:
            self._require_version(conn, name, version)
            return [_verdict(r) for r in conn.execute(
                f"SELECT {_VERDICT_COLUMNS} FROM validations WHERE name = ? AND version = ? "
                "ORDER BY id", (name, version))]

    def approve(self, name: str, version: int, *, by: str, comment: str = "") -> Approval:
        if not by or not by.strip():
            raise ConveyorError("an approval needs the approver's name",
                                hint="pass --by WHO")
        at = now()

        def write(conn: sqlite3.Connection) -> None:
            self._require_version(conn, name, version)
            conn.execute("INSERT INTO approvals (name, version, by, at, comment) "
                         "VALUES (?, ?, ?, ?, ?)", (name, version, by, ts(at), comment))

        self.db.write(write)
        return Approval(model=name, version=int(version), by=by, at=at, comment=comment)

    # -- integrity --------------------------------------------------------------------

    def check(self, *, deep: bool = False) -> list[Finding]:
        findings: list[Finding] = []
        with self.db.snapshot() as conn:
            result = conn.execute("PRAGMA quick_check").fetchone()[0]
            if result != "ok":
                findings.append(Finding(check="registry.sqlite", subject=str(self.db.path),
                                        message=f"SQLite quick_check failed: {result}"))
            models = conn.execute("SELECT name, latest_version FROM models ORDER BY name"
                                  ).fetchall()
            holders: dict[tuple[str, str], tuple[int, int]] = {
                (n, a): (v, aid) for n, a, v, aid in conn.execute(
                    "SELECT name, alias, version, audit_id FROM aliases")}
            archived = {(n, v) for n, v in conn.execute(
                "SELECT name, version FROM model_versions WHERE archived = 1")}
            versions: dict[str, list[tuple[int, str, str]]] = {}
            for n, v, uri, sha in conn.execute(
                    "SELECT name, version, artifact_uri, sha256 FROM model_versions "
                    "ORDER BY name, version"):
                versions.setdefault(n, []).append((v, uri, sha))
            audit: dict[str, list[AliasChange]] = {}
            for row in conn.execute(f"SELECT {_AUDIT_COLUMNS} FROM alias_audit ORDER BY id"):
                change = _change(row)
                audit.setdefault(change.model, []).append(change)
        for name, latest in models:
            numbers = [v for v, _, _ in versions.get(name, [])]
            if numbers != list(range(1, latest + 1)):
                findings.append(Finding(
                    check="registry.versions", subject=name,
                    message=f"versions of {name!r} are not exactly 1..{latest}: "
                    f"{_ranges(numbers)}"))
            findings.extend(_check_audit(name, audit.get(name, []), holders, archived))
        for (name, alias), (version, _aid) in holders.items():
            if name not in audit:
                findings.append(Finding(check="registry.audit", subject=f"{name}/{alias}",
                                        message=f"alias {alias!r} -> v{version} has no audit "
                                        "record"))
        findings.extend(self._check_artifacts(versions, deep=deep))
        return findings

    def _check_artifacts(self, versions: dict[str, list[tuple[int, str, str]]], *,
                         deep: bool) -> list[Finding]:
        try:
            store = self.artifacts
        except ConveyorError as exc:
            return [Finding(check="registry.artifacts", severity=Severity.WARNING,
                            message=f"artifact hashes not checked: {exc.message}")]
        if store is None:
            return [Finding(check="registry.artifacts", severity=Severity.INFO,
                            message="artifact hashes not checked: no artifact store is "
                            "configured for the registry")]
        findings: list[Finding] = []
        for name, rows in versions.items():
            for version, uri, sha in rows:
                try:
                    verify_artifact(store, uri, sha, deep=deep)
                except ConveyorError as exc:
                    findings.append(Finding(
                        check="registry.artifacts", subject=f"{name}:{version}",
                        message=f"{name} v{version}: {exc.message}",
                        details={"artifact_uri": uri, "sha256": sha}))
        return findings


# -- the artifact-store check -------------------------------------------------------------

_BLOB = re.compile(r"^blobs/([0-9a-f]{64})$")


def _inside_store(store: Any, uri: str) -> str:
    """The part of ``uri`` below the store root; ConfinementError when outside.

    Allow-list: the URI as given and its fully percent-decoded form must both
    start with the store's root URI, and the rest must be a valid key.
    """
    root = store.uri.rstrip("/") + "/"
    try:
        decoded = _fully_decoded(uri)
    except UnicodeDecodeError:
        decoded = "\x00"
    for form in dict.fromkeys((uri, decoded)):
        if not form.startswith(root):
            raise ConfinementError(
                f"artifact URI {uri!r} lies outside the configured artifact store {store.uri}",
                hint="store the model with the artifact store first and register the URI or "
                "key it returns; the registry never points outside its store")
    return validate_key(uri[len(root):], what=f"artifact URI {uri!r}")


def verify_artifact(store: Any, uri: str, sha256: str, *, deep: bool = False) -> str:
    """Check that ``uri`` is a committed artifact of ``store`` whose SHA-256 is ``sha256``.

    ``uri`` is a URI the store handed out (``ArtifactInfo.uri``) or a key of the
    store.  Returns the URI to record: for a key, the store's own immutable URI
    of its content.  ``deep`` re-reads the bytes and hashes them.
    """
    if not isinstance(uri, str) or not uri:
        raise ConfinementError("an artifact URI must be a non-empty string")
    locate = getattr(store, "info_for_uri", None)
    if callable(locate):  # a store that maps its URIs itself
        info = locate(uri)
        return _compare(store, info.key, info.uri, info.sha256, sha256, deep)
    if "://" not in uri and not uri.startswith("/"):
        info = _info(store, validate_key(uri), uri)
        return _compare(store, info.key, info.uri, info.sha256, sha256, deep)
    rest = _inside_store(store, uri)
    blob = _BLOB.match(rest)
    if blob is None:
        info = _info(store, rest, uri)
        return _compare(store, info.key, uri, info.sha256, sha256, deep)
    # a content-addressed blob: its name is its digest
    if blob.group(1) != sha256:
        raise IntegrityError(f"artifact {uri!r} is the blob of SHA-256 {blob.group(1)}, "
                             f"not {sha256}",
                             hint="register the sha256 the artifact store recorded")
    if not store.has_content(uri):
        raise NotFoundError(f"artifact {uri!r} is not in the artifact store {store.uri}",
                            hint="write the model with the artifact store before registering "
                            "it")
    if deep:
        store.read_uri(uri, sha256=sha256)  # re-reads and hashes: IntegrityError if changed
    return uri


def _info(store: Any, key: str, uri: str) -> Any:
    try:
        return store.info(key)
    except NotFoundError:
        raise NotFoundError(
            f"artifact {uri!r} is not in the artifact store {store.uri}",
            hint="write the model with the artifact store before registering it") from None


def _compare(store: Any, key: str, uri: str, recorded: str, sha256: str, deep: bool) -> str:
    if recorded != sha256:
        raise IntegrityError(
            f"artifact {uri!r} has SHA-256 {recorded} in the store, not {sha256}",
            hint="register the sha256 the artifact store recorded for the file")
    if deep:
        digest = hashlib.sha256(store.get_bytes(key)).hexdigest()
        if digest != sha256:
            raise IntegrityError(f"artifact {uri!r} hashes to {digest}, not {sha256}",
                                 hint="the stored bytes changed: restore them from a backup")
    return uri


# -- audit replay ---------------------------------------------------------------------


def replay(records: Sequence[AliasChange]) -> tuple[list[int | None], list[str]]:
    """Replay one alias's audit records: the stack of holders, and any inconsistency.

    ``set`` and ``remove`` push the new holder; ``rollback`` pops back to the one
    before.  Each record's ``from_version`` must equal the holder before it.
    """
    stack: list[int | None] = []
    problems: list[str] = []
    holder: int | None = None
    for record in records:
        if record.action not in ALIAS_ACTIONS:
            continue
        if record.from_version != holder:
            problems.append(f"record {record.id} moves {record.alias!r} from "
                            f"v{record.from_version} but the holder was v{holder}")
        if record.action == "rollback":
            if len(stack) >= 2 and stack[-2] == record.to_version:
                stack.pop()
            else:
                problems.append(f"record {record.id} rolls back to v{record.to_version}, "
                                "which was not the previous holder")
                stack.append(record.to_version)
        else:
            stack.append(record.to_version)
        holder = record.to_version
    return stack, problems


def _check_audit(name: str, records: list[AliasChange],
                 holders: dict[tuple[str, str], tuple[int, int]],
                 archived: set[tuple[str, int]]) -> list[Finding]:
    findings: list[Finding] = []
    by_alias: dict[str, list[AliasChange]] = {}
    flags: dict[int, bool] = {}
    for record in records:
        if record.action in ALIAS_ACTIONS:
            by_alias.setdefault(record.alias, []).append(record)
        elif record.action == "archive":
            flags[record.to_version] = True
        elif record.action == "unarchive":
            flags[record.from_version] = False
    aliases = {a for (n, a) in holders if n == name} | set(by_alias)
    for alias in sorted(aliases):
        chain = by_alias.get(alias, [])
        stack, problems = replay(chain)
        for problem in problems:
            findings.append(Finding(check="registry.audit_replay", subject=f"{name}/{alias}",
                                    message=problem))
        replayed = stack[-1] if stack else None
        current, audit_id = holders.get((name, alias), (None, None))
        if replayed != current:
            findings.append(Finding(
                check="registry.audit_replay", subject=f"{name}/{alias}",
                message=f"the audit log says {alias!r} of {name!r} is held by v{replayed}, "
                f"but the alias points at v{current}"))
        elif current is not None and chain and audit_id != chain[-1].id:
            findings.append(Finding(
                check="registry.audit_replay", subject=f"{name}/{alias}",
                message=f"alias {alias!r} of {name!r} was set by audit record {audit_id}, "
                f"but the last record for it is {chain[-1].id}"))
    replayed_archived = {(name, v) for v, flag in flags.items() if flag}
    stored = {(n, v) for n, v in archived if n == name}
    for n, v in sorted(replayed_archived ^ stored):
        findings.append(Finding(
            check="registry.audit_replay", subject=f"{n}:{v}",
            message=f"{n} v{v} is {'not ' if (n, v) in replayed_archived else ''}archived, "
            "but the audit log says otherwise"))
    return findings


def _ranges(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:20])
    return shown + (", ..." if len(numbers) > 20 else "") if numbers else "none"


# -- row conversion ---------------------------------------------------------------------

_VERSION_COLUMNS = ("name, version, created, created_by, artifact_uri, sha256, model_format, "
                    "archived, metrics, params, governance, signature, profile_uri, run_id")
_AUDIT_COLUMNS = ("id, name, alias, from_version, to_version, action, actor, at, reason, "
                  "forced, evidence")
_VERDICT_COLUMNS = "id, name, version, passed, at, actor, run_id, summary, details"


def _version(row: Sequence[Any], aliases: list[str], approvals: list[Approval],
             datasets: list[DatasetRef]) -> ModelVersion:
    archived = bool(row[7])
    stage = ("production" if "production" in aliases else "staging" if "staging" in aliases
             else "archived" if archived else "development")
    governance = Governance(**loads(row[10]), approvals=approvals)
    signature = Signature(features=[FeatureSpec(**f) for f in loads(row[11])])
    return ModelVersion(
        id=f"{row[0]}:{row[1]}", name=row[0], version=row[1], created=parse_ts(row[2]),
        created_by=row[3], artifact_uri=row[4], sha256=row[5], model_format=row[6],
        archived=archived, stage=stage, aliases=aliases, metrics=loads(row[8]),
        params=loads(row[9]), governance=governance, signature=signature,
        profile_uri=row[12], run_id=row[13], datasets=datasets)


def _change(row: Sequence[Any]) -> AliasChange:
    return AliasChange(id=row[0], model=row[1], alias=row[2], from_version=row[3],
                       to_version=row[4], action=row[5], actor=row[6], at=parse_ts(row[7]),
                       reason=row[8], forced=bool(row[9]), evidence=loads(row[10]))


def _verdict(row: Sequence[Any]) -> ValidationVerdict:
    return ValidationVerdict(id=row[0], model=row[1], version=row[2], passed=bool(row[3]),
                             at=parse_ts(row[4]), actor=row[5], run_id=row[6], summary=row[7],
                             details=loads(row[8]))
