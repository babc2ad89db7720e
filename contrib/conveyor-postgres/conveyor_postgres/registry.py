"""The PostgreSQL registry backend: versions, aliases, audit log, verdicts, approvals.

Storage primitives only (:class:`~conveyor.interfaces.RegistryBackend`); every
rule is core's (:class:`conveyor.registry.ModelRegistry`).

Concurrency, across any number of processes and hosts:

* a registration increments ``models.latest_version`` with ``INSERT ... ON
  CONFLICT DO UPDATE ... RETURNING``: the row lock it takes is held to commit, so
  concurrent registrations of one model queue on it and get 1..N with no gap;
* an alias move locks the model's row (``SELECT ... FOR UPDATE``) before it reads
  the holder, compares and sets it, so the compare-and-set is one critical section;
* every audit append first advances the one-row ``audit_clock``, whose lock is
  held to commit: audit ids and times increase in commit order, so a poller of
  ``changes_since`` never misses a record committed behind one it already saw;
* each append also ``pg_notify``-s channel :data:`CHANNEL` (delivered at commit),
  which :meth:`PostgresRegistryBackend.wait_for_changes` listens on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from attrs import asdict

from conveyor.checks import Finding
from conveyor.errors import NotFoundError
from conveyor.interfaces.registry import (
    AliasChange,
    Approval,
    AuditSnapshot,
    Governance,
    ModelSummary,
    ModelVersion,
    NewVersion,
    RegistryBackend,
    StaleAliasError,
    ValidationVerdict,
)
from conveyor.registry.audit import check_numbering
from conveyor.sqlite import dumps, loads, now
from conveyor.sqlstore.values import insert_artifact
from conveyor_postgres.config import PostgresModelRegistryConfig
from conveyor_postgres.db import Database, migrations, redact
from conveyor_postgres.dialect import QmarkConnection
from conveyor_postgres.registry_rows import (
    AUDIT_COLUMNS,
    VERDICT_COLUMNS,
    change_value,
    read_versions,
    verdict_value,
)

if TYPE_CHECKING:
    import psycopg

#: The NOTIFY channel of alias moves; the payload is ``schema:audit_id:model``.
CHANNEL = "conveyor_registry"
_NO_GOVERNANCE = Governance()
_UPSERT_ALIAS = (
    "INSERT INTO aliases (name, alias, version, audit_id) VALUES (%(name)s, "
    "%(alias)s, %(to)s, %(id)s) ON CONFLICT (name, alias) DO UPDATE SET "
    "version = excluded.version, audit_id = excluded.audit_id"
)
_DELETE_ALIAS = "DELETE FROM aliases WHERE name = %(name)s AND alias = %(alias)s"


class PostgresRegistryBackend(RegistryBackend):
    """The registry's state in a PostgreSQL schema.

    Attributes:
        db: the database, schema and connection pool.
        config: the backend's settings.
    """

    def __init__(
        self, *, app: Any = None, config: PostgresModelRegistryConfig | None = None
    ) -> None:
        if config is None:
            raise ValueError("PostgresRegistryBackend needs a config with a url")
        self.config = config
        self.db = Database(
            config.url,
            schema=config.schema,
            pool_size=config.pool_size,
            connect_timeout_s=config.connect_timeout_s,
            lock_timeout_s=config.lock_timeout_s,
        )
        self.db.pool  # noqa: B018 - connect and migrate now, so errors surface at construction
        self._listener: psycopg.Connection | None = None
        self._listen_lock = threading.Lock()

    def close(self) -> None:
        with self._listen_lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None
        self.db.close()

    def describe(self) -> dict[str, Any]:
        return {
            "url": redact(self.db.url),
            "schema": self.db.schema,
            "schema_version": self.db.schema_version(),
        }

    def _checkpoint(self, name: str) -> None:
        """A no-op seam inside write transactions; crash tests replace it to kill here."""

    # -- writes -----------------------------------------------------------------------

    def insert_version(self, new: NewVersion) -> ModelVersion:
        name, at = new.name, new.created
        # everything but the SQL is prepared before the row lock is taken
        gov = new.governance
        gov_json = (
            "{}"
            if gov == _NO_GOVERNANCE
            else dumps({k: v for k, v in asdict(gov).items() if k != "approvals"})
        )
        sig_json = dumps(new.signature.to_dict()) if new.signature.features else "[]"
        metrics_json = dumps(new.metrics) if new.metrics else "{}"
        params_json = dumps(new.params) if new.params else "{}"

        def write(conn: psycopg.Connection) -> int:
            version = conn.execute(
                "INSERT INTO models (name, latest_version, created, updated) "
                "VALUES (%s, 1, %s, %s) ON CONFLICT (name) DO UPDATE SET "
                "latest_version = models.latest_version + 1, updated = excluded.updated "
                "RETURNING latest_version",
                (name, at, at),
            ).fetchone()[0]
            aid = insert_artifact(
                QmarkConnection(conn),
                new.artifact_uri,
                new.sha256,
                kind="model",
                at=at,
                metadata={"model_format": new.model_format},
                table="registry_artifacts",
            )
            conn.execute(
                "INSERT INTO model_versions (name, version, created, created_by, artifact_uri, "
                "sha256, artifact_id, model_format, metrics, params, governance, signature, "
                "profile_uri, run_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
                "%s, %s)",
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
            for ref in new.datasets:
                daid = insert_artifact(
                    QmarkConnection(conn),
                    ref.uri,
                    ref.fingerprint,
                    kind="dataset",
                    at=at,
                    table="registry_artifacts",
                )
                conn.execute(
                    "INSERT INTO model_datasets (name, version, artifact_id, role, start, "
                    '"end") VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING',
                    (name, version, daid, ref.role, ref.start, ref.end),
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
        def write(conn: psycopg.Connection) -> list[AliasChange]:
            self._checkpoint(f"{action}.begin")
            # lock the model's row (held to commit), then read the holder, the alias's
            # last record and the target's archive flag in a second statement: under
            # READ COMMITTED it takes its snapshot after the lock was granted, so it sees
            # the last writer's commit.  Pipelined: one round trip for both.
            with conn.pipeline():
                locked = conn.execute("SELECT 1 FROM models WHERE name = %s FOR UPDATE", (name,))
                state = conn.execute(
                    "SELECT (SELECT version FROM aliases WHERE name = %(n)s AND "
                    "alias = %(a)s), (SELECT max(id) FROM alias_audit WHERE name = %(n)s AND "
                    "alias = %(a)s), (SELECT archived FROM model_versions WHERE "
                    "name = %(n)s AND version = %(t)s)",
                    {"n": name, "a": alias, "t": target},
                )
            if locked.fetchone() is None:
                raise self._no_model(name)
            row = state.fetchone()
            current, last, archived = row
            if current != expected:
                raise StaleAliasError(
                    f"alias {alias!r} of {name!r} is held by v{current}, not v{expected}"
                )
            if after is not None and last != after:
                raise StaleAliasError(f"alias {alias!r} of {name!r} moved after record {after}")
            if target is not None and archived is None:
                self._archived(conn, name, target)  # raises the NotFoundError
            changes: list[AliasChange] = []
            if archived:
                changes.append(
                    self._audit(
                        conn,
                        name,
                        "archived",
                        target,
                        None,
                        "unarchive",
                        actor,
                        f"{action} of {alias!r}",
                        then="UPDATE model_versions SET archived = false "
                        "WHERE name = %(name)s AND version = %(from)s",
                    )
                )
            self._checkpoint(f"{action}.before_audit")
            then = _DELETE_ALIAS if target is None else _UPSERT_ALIAS
            change = self._audit(
                conn,
                name,
                alias,
                current,
                target,
                action,
                actor,
                reason,
                forced,
                evidence,
                then=then,
            )
            self._checkpoint(f"{action}.after_audit")
            self._checkpoint(f"{action}.after_alias")
            changes.append(change)
            return changes

        return self.db.write(write)

    def set_archived(
        self, name: str, version: int, archived: bool, *, actor: str, reason: str = ""
    ) -> AliasChange:
        def write(conn: psycopg.Connection) -> AliasChange:
            self._lock_model(conn, name)
            self._archived(conn, name, version)
            if (
                archived
                and conn.execute(
                    "SELECT 1 FROM aliases WHERE name = %s AND version = %s", (name, version)
                ).fetchone()
            ):
                raise StaleAliasError(f"{name} v{version} holds an alias")
            return self._audit(
                conn,
                name,
                "archived",
                None if archived else version,
                version if archived else None,
                "archive" if archived else "unarchive",
                actor,
                reason,
                then=f"UPDATE model_versions SET archived = {archived} "
                f"WHERE name = %(name)s AND version = {int(version)}",
            )

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
        at = now()
        text = dumps(dict(details or {}))

        def write(conn: psycopg.Connection) -> ValidationVerdict:
            self._archived(conn, name, version)
            row = conn.execute(
                "INSERT INTO validations (name, version, passed, at, actor, run_id, summary, "
                f"details) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING {VERDICT_COLUMNS}",
                (name, version, bool(passed), at, actor, run_id, summary, text),
            ).fetchone()
            return verdict_value(row)

        return self.db.write(write)

    def add_approval(self, name: str, version: int, *, by: str, comment: str = "") -> Approval:
        at = now()

        def write(conn: psycopg.Connection) -> None:
            self._archived(conn, name, version)
            conn.execute(
                "INSERT INTO approvals (name, version, by, at, comment) "
                "VALUES (%s, %s, %s, %s, %s)",
                (name, version, by, at, comment),
            )

        self.db.write(write)
        return Approval(model=name, version=int(version), by=by, at=at, comment=comment)

    def _audit(
        self,
        conn: psycopg.Connection,
        name: str,
        alias: str,
        from_version: int | None,
        to_version: int | None,
        action: str,
        actor: str,
        reason: str = "",
        forced: bool = False,
        evidence: Mapping[str, Any] | None = None,
        *,
        then: str = "",
    ) -> AliasChange:
        """Append one audit record, notify it, and run ``then``: one statement.

        The clock row's lock, held to commit, orders appends: ids and times (kept
        increasing even when two hosts' clocks disagree) follow commit order.
        ``then`` is a statement run with the record (``%(id)s``, ``%(to)s``, ...).
        """
        text = dumps(dict(evidence or {}))
        values = {
            "name": name,
            "alias": alias,
            "from": from_version,
            "to": to_version,
            "action": action,
            "actor": actor,
            "now": now(),
            "reason": reason,
            "forced": forced,
            "evidence": text,
            "channel": CHANNEL,
            "prefix": f"{self.db.schema}:",
            "suffix": f":{name}",
        }
        follow = (
            f", follow AS ({then.replace('%(id)s', '(SELECT id FROM record)')})" if then else ""
        )
        audit_id, at = conn.execute(
            "WITH clock AS (UPDATE audit_clock SET last_id = last_id + 1, last_at = CASE "
            "WHEN last_at IS NULL OR %(now)s > last_at THEN %(now)s "
            "ELSE last_at + interval '1 microsecond' END RETURNING last_id, last_at), "
            "record AS (INSERT INTO alias_audit (id, name, alias, from_version, to_version, "
            "action, actor, at, reason, forced, evidence) SELECT last_id, %(name)s, %(alias)s, "
            "%(from)s, %(to)s, %(action)s, %(actor)s, last_at, %(reason)s, %(forced)s, "
            "%(evidence)s FROM clock RETURNING id, at), "
            "touched AS (UPDATE models SET updated = (SELECT at FROM record) "
            f"WHERE name = %(name)s){follow} "
            "SELECT id, at, pg_notify(%(channel)s, %(prefix)s || id || %(suffix)s) FROM record",
            values,
        ).fetchone()[:2]
        return AliasChange(
            id=audit_id,
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

    # -- reads --------------------------------------------------------------------------

    def _no_model(self, name: str) -> NotFoundError:
        return NotFoundError(
            f"no model named {name!r} is registered",
            hint="`conveyor models list` shows the registered models",
        )

    def _lock_model(self, conn: psycopg.Connection, name: str) -> None:
        if (
            conn.execute("SELECT 1 FROM models WHERE name = %s FOR UPDATE", (name,)).fetchone()
            is None
        ):
            raise self._no_model(name)

    def _model_exists(self, conn: psycopg.Connection, name: str) -> None:
        if conn.execute("SELECT 1 FROM models WHERE name = %s", (name,)).fetchone() is None:
            raise self._no_model(name)

    def _archived(self, conn: psycopg.Connection, name: str, version: int) -> bool:
        """Whether the version is archived; NotFoundError when it does not exist."""
        row = conn.execute(
            "SELECT archived FROM model_versions WHERE name = %s AND version = %s",
            (name, int(version)),
        ).fetchone()
        if row is None:
            self._model_exists(conn, name)
            raise NotFoundError(
                f"model {name!r} has no version {version}",
                hint=f"`conveyor models show {name}` lists its versions",
            )
        return bool(row[0])

    def get_version(self, name: str, version: int | None = None) -> ModelVersion:
        # single statements: each is one round trip and reads one consistent state
        with self.db.reading() as conn:
            if version is None:
                found = read_versions(
                    conn,
                    "v.name = %s AND v.version = (SELECT "
                    "latest_version FROM models WHERE name = %s)",
                    (name, name),
                )
                if not found:
                    raise self._no_model(name)
            else:
                found = read_versions(conn, "v.name = %s AND v.version = %s", (name, int(version)))
                if not found:
                    self._archived(conn, name, version)  # raises the right NotFoundError
            return found[0]

    def list_versions(self, name: str) -> list[ModelVersion]:
        with self.db.reading() as conn:
            found = read_versions(conn, "v.name = %s", (name,))
            if not found:
                self._model_exists(conn, name)
            return found

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
                updated=r[2],
                versions=r[3],
                aliases=aliases.get(r[0], {}),
            )
            for r in rows
        ]

    def resolve(self, name: str, alias: str) -> ModelVersion | None:
        with self.db.reading() as conn:
            found = read_versions(
                conn,
                "(v.name, v.version) = (SELECT name, version FROM "
                "aliases WHERE name = %s AND alias = %s)",
                (name, alias),
            )
        return found[0] if found else None

    def aliases(self, name: str) -> dict[str, int]:
        with self.db.reading() as conn:
            rows = conn.execute(
                "SELECT alias, version FROM aliases WHERE name = %s ORDER BY alias", (name,)
            ).fetchall()
            if not rows:
                self._model_exists(conn, name)
            return dict(rows)

    def history(self, name: str, *, alias: str | None = None) -> list[AliasChange]:
        sql = f"SELECT {AUDIT_COLUMNS} FROM alias_audit WHERE name = %s"
        args: list[Any] = [name]
        if alias is not None:
            sql += " AND alias = %s"
            args.append(alias)
        with self.db.reading() as conn:
            rows = conn.execute(sql + " ORDER BY id", args).fetchall()
            if not rows:
                self._model_exists(conn, name)
        return [change_value(r) for r in rows]

    def changes_since(
        self, audit_id: int, *, model: str | None = None, limit: int = 1000
    ) -> list[AliasChange]:
        where, args = (
            ("name = %s AND id > %s", [model, audit_id])
            if model is not None
            else ("id > %s", [audit_id])
        )
        rows = self.db.fetchall(
            f"SELECT {AUDIT_COLUMNS} FROM alias_audit WHERE {where} ORDER BY id LIMIT %s",
            [*args, limit],
        )
        return [change_value(r) for r in rows]

    def wait_for_changes(
        self, audit_id: int, *, model: str | None = None, timeout: float = 30.0, limit: int = 1000
    ) -> list[AliasChange]:
        """``changes_since``, but wait (up to ``timeout`` s) until there is something.

        Woken by the ``NOTIFY`` each audit append sends at commit, so a server learns
        of a promotion as soon as it committed instead of at its next poll.  Returns
        ``[]`` when nothing was committed in time.
        """
        deadline = time.monotonic() + timeout
        with self._listen_lock:
            if self._listener is None or self._listener.closed:
                self._listener = self.db.connect()
                self._listener.execute(f"LISTEN {CHANNEL}")
            listener = self._listener
            while True:
                # read after LISTEN took effect: nothing committed in between is missed
                changes = self.changes_since(audit_id, model=model, limit=limit)
                remaining = deadline - time.monotonic()
                if changes or remaining <= 0:
                    return changes
                prefix = f"{self.db.schema}:"
                for notice in listener.notifies(timeout=remaining):
                    schema_part, _, rest = notice.payload.partition(":")
                    if f"{schema_part}:" == prefix and (
                        model is None or rest.partition(":")[2] == model
                    ):
                        break

    def validations(self, name: str, version: int) -> list[ValidationVerdict]:
        with self.db.reading() as conn:
            rows = conn.execute(
                f"SELECT {VERDICT_COLUMNS} FROM validations WHERE name = %s "
                "AND version = %s ORDER BY id",
                (name, int(version)),
            ).fetchall()
            if not rows:
                self._archived(conn, name, version)  # NotFoundError for an unknown version
        return [verdict_value(r) for r in rows]

    def audit_snapshot(self) -> AuditSnapshot:
        with self.db.snapshot() as conn:
            return AuditSnapshot(
                holders={
                    (n, a): (v, aid)
                    for n, a, v, aid in conn.execute(
                        "SELECT name, alias, version, audit_id FROM aliases"
                    )
                },
                archived=[
                    tuple(r)
                    for r in conn.execute("SELECT name, version FROM model_versions WHERE archived")
                ],
                changes=[
                    change_value(r)
                    for r in conn.execute(f"SELECT {AUDIT_COLUMNS} FROM alias_audit ORDER BY id")
                ],
                artifacts=[
                    tuple(r)
                    for r in conn.execute(
                        "SELECT name, version, artifact_uri, sha256 FROM model_versions "
                        "ORDER BY name, version"
                    )
                ],
            )

    def check_storage(self) -> list[Finding]:
        findings: list[Finding] = []
        subject = f"{redact(self.db.url)} schema {self.db.schema}"
        with self.db.snapshot() as conn:
            version = conn.execute("SELECT version FROM conveyor_schema").fetchone()[0]
            if version != len(migrations()):
                findings.append(
                    Finding(
                        check="registry.postgresql",
                        subject=subject,
                        message=f"schema version {version}, expected {len(migrations())}",
                    )
                )
            last_id, top = conn.execute(
                "SELECT (SELECT last_id FROM audit_clock), (SELECT max(id) FROM alias_audit)"
            ).fetchone()
            if top is not None and top > last_id:
                findings.append(
                    Finding(
                        check="registry.postgresql",
                        subject=subject,
                        message=f"audit record {top} is past the audit clock ({last_id})",
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
