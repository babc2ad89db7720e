"""The PostgreSQL registry backend: :class:`conveyor.sqlstore.SQLRegistryBackend` in a schema.

Storage primitives only (:class:`~conveyor.interfaces.RegistryBackend`); every
rule is core's (:class:`conveyor.registry.ModelRegistry`).  What is PostgreSQL's
own, across any number of processes and hosts:

* an alias move locks the model's row (``SELECT ... FOR UPDATE``) and reads the
  holder, the alias's last record and the target's archive flag in one pipelined
  round trip; under READ COMMITTED the second statement's snapshot is taken after
  the lock was granted, so it sees the last writer's commit;
* every audit append first advances the one-row ``audit_clock``, whose lock is
  held to commit: audit ids and times increase in commit order, so a poller of
  ``changes_since`` never misses a record committed behind one it already saw;
* each append also ``pg_notify``-s channel :data:`CHANNEL` (delivered at commit),
  which :meth:`PostgresRegistryBackend.wait_for_changes` listens on;
* a version is read in one statement (aliases, approvals and datasets as arrays).
"""

from __future__ import annotations

import threading
import time
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from attrs import evolve

from conveyor.checks import Finding
from conveyor.interfaces.registry import (
    AliasChange,
    Approval,
    DatasetRef,
    ModelVersion,
)
from conveyor.sqlite import dumps
from conveyor.sqlstore.registry import SQLRegistryBackend, compare
from conveyor.sqlstore.registry_values import VERSION_COLUMNS_V, AliasMove, version_value
from conveyor_postgres.config import PostgresModelRegistryConfig
from conveyor_postgres.db import migrations, redact
from conveyor_postgres.dialect import PostgresSchema, QmarkConnection

if TYPE_CHECKING:
    import psycopg

#: The NOTIFY channel of alias moves; the payload is ``schema:audit_id:model``.
CHANNEL = "conveyor_registry"
_UPSERT_ALIAS = (
    "INSERT INTO aliases (name, alias, version, audit_id) VALUES (%(name)s, "
    "%(alias)s, %(to)s, %(id)s) ON CONFLICT (name, alias) DO UPDATE SET "
    "version = excluded.version, audit_id = excluded.audit_id"
)
_DELETE_ALIAS = "DELETE FROM aliases WHERE name = %(name)s AND alias = %(alias)s"
_UNARCHIVE = (
    "UPDATE model_versions SET archived = false WHERE name = %(name)s AND version = %(from)s"
)


class PostgresRegistryBackend(PostgresSchema, SQLRegistryBackend):
    """The registry's state in a PostgreSQL schema.

    Attributes:
        db: the database, schema and connection pool.
        config: the backend's settings.
    """

    artifacts = "registry_artifacts"

    def __init__(
        self, *, app: Any = None, config: PostgresModelRegistryConfig | None = None
    ) -> None:
        if config is None:
            raise ValueError("PostgresRegistryBackend needs a config with a url")
        self.config = config
        self._open(config)
        self._listener: psycopg.Connection | None = None
        self._listen_lock = threading.Lock()

    def close(self) -> None:
        with self._listen_lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None
        super().close()

    # -- writes -----------------------------------------------------------------------

    def _move_alias(self, conn: QmarkConnection, move: AliasMove) -> list[AliasChange]:
        name, alias, target = move.name, move.alias, move.target
        self._checkpoint(f"{move.action}.begin")
        # lock the model's row (held to commit), then read the holder, the alias's
        # last record and the target's archive flag: one round trip for both
        with conn.raw.pipeline():
            locked = conn.raw.execute("SELECT 1 FROM models WHERE name = %s FOR UPDATE", (name,))
            state = conn.raw.execute(
                "SELECT (SELECT version FROM aliases WHERE name = %(n)s AND "
                "alias = %(a)s), (SELECT max(id) FROM alias_audit WHERE name = %(n)s AND "
                "alias = %(a)s), (SELECT archived FROM model_versions WHERE "
                "name = %(n)s AND version = %(t)s)",
                {"n": name, "a": alias, "t": target},
            )
        if locked.fetchone() is None:
            raise self._no_model(name)
        current, last, archived = state.fetchone()
        compare(move, current, last)
        if target is not None and archived is None:
            self._archived(conn, name, target)  # raises the NotFoundError
        changes: list[AliasChange] = []
        if archived:
            unarchive = self._unarchive_draft(move)
            changes.append(self._append_audit(conn, unarchive, then=_UNARCHIVE))
        self._checkpoint(f"{move.action}.before_audit")
        change = self._append_audit(
            conn,
            self._move_draft(move, current),
            then=_DELETE_ALIAS if target is None else _UPSERT_ALIAS,
        )
        self._checkpoint(f"{move.action}.after_audit")
        self._checkpoint(f"{move.action}.after_alias")
        changes.append(change)
        return changes

    def _append_audit(
        self, conn: QmarkConnection, draft: AliasChange, *, then: str = ""
    ) -> AliasChange:
        """Append ``draft``, notify it, and run ``then``: one statement.

        The clock row's lock, held to commit, orders appends: ids and times (kept
        increasing even when two hosts' clocks disagree) follow commit order.
        ``then`` is a statement run with the record (``%(id)s``, ``%(to)s``, ...).
        """
        values = {
            "name": draft.model,
            "alias": draft.alias,
            "from": draft.from_version,
            "to": draft.to_version,
            "action": draft.action,
            "actor": draft.actor,
            "now": draft.at,
            "reason": draft.reason,
            "forced": draft.forced,
            "evidence": dumps(draft.evidence),
            "channel": CHANNEL,
            "prefix": f"{self.db.schema}:",
            "suffix": f":{draft.model}",
        }
        follow = (
            f", follow AS ({then.replace('%(id)s', '(SELECT id FROM record)')})" if then else ""
        )
        audit_id, at = conn.raw.execute(
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
        return evolve(draft, id=audit_id, at=at)

    # -- reads --------------------------------------------------------------------------

    def _versions_reading(self) -> AbstractContextManager[Any]:
        # _read_versions is one statement: one round trip, one consistent state
        return self.sql.reading()

    def _read_versions(
        self, conn: QmarkConnection, where: str, args: list[Any]
    ) -> list[ModelVersion]:
        rows = conn.execute(
            f"SELECT {VERSION_COLUMNS_V}, "
            "array(SELECT a.alias FROM aliases a WHERE a.name = v.name AND "
            "a.version = v.version ORDER BY a.alias), "
            "array(SELECT ARRAY[p.by, p.comment] FROM approvals p WHERE p.name = v.name AND "
            "p.version = v.version ORDER BY p.id), "
            "array(SELECT p.at FROM approvals p WHERE p.name = v.name AND "
            "p.version = v.version ORDER BY p.id), "
            "array(SELECT ARRAY[r.uri, r.fingerprint, d.role] FROM model_datasets d JOIN "
            "registry_artifacts r ON r.id = d.artifact_id WHERE d.name = v.name AND "
            "d.version = v.version ORDER BY d.role, r.uri), "
            'array(SELECT ARRAY[d.start, d."end"] FROM model_datasets d JOIN '
            "registry_artifacts r ON r.id = d.artifact_id WHERE d.name = v.name AND "
            "d.version = v.version ORDER BY d.role, r.uri) "
            f"FROM model_versions v WHERE {where} ORDER BY v.version",
            args,
        ).fetchall()
        result = []
        for row in rows:
            name, version = row[0], row[1]
            aliases, approvals, approved_at, datasets, spans = row[14:19]
            approved = zip(approvals, approved_at, strict=True)
            spanned = zip(datasets, spans, strict=True)
            result.append(
                version_value(
                    row,
                    list(aliases),
                    [
                        Approval(model=name, version=version, by=by, at=at, comment=comment)
                        for (by, comment), at in approved
                    ],
                    [
                        DatasetRef(uri=uri, fingerprint=fp, role=role, start=start, end=end)
                        for (uri, fp, role), (start, end) in spanned
                    ],
                    self.dialect.read_time,
                )
            )
        return result

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

    def _storage_findings(self, conn: QmarkConnection) -> list[Finding]:
        findings: list[Finding] = []
        subject = f"{redact(self.db.url)} schema {self.db.schema}"
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
        return findings
