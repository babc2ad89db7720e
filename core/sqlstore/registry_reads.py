"""Reads of a SQL registry backend: versions, models, aliases, audit log, verdicts."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from conveyor.errors import NotFoundError
from conveyor.interfaces.registry import (
    AliasChange,
    Approval,
    AuditSnapshot,
    DatasetRef,
    ModelSummary,
    ModelVersion,
    ValidationVerdict,
)
from conveyor.sqlstore.dialect import Connection, Dialect, Transactions
from conveyor.sqlstore.registry_values import (
    AUDIT_COLUMNS,
    VERDICT_COLUMNS,
    VERSION_COLUMNS_V,
    change_value,
    verdict_value,
    version_value,
)


class SQLRegistryReads:
    """The registry backend's reads, over ``self.sql``.

    Attributes:
        artifacts: the table of the artifact records versions point at.
    """

    sql: Transactions
    dialect: Dialect
    artifacts: str = "artifacts"

    @staticmethod
    def _no_model(name: str) -> NotFoundError:
        return NotFoundError(
            f"no model named {name!r} is registered",
            hint="`conveyor models list` shows the registered models",
        )

    def _model_exists(self, conn: Connection, name: str) -> None:
        if conn.execute("SELECT 1 FROM models WHERE name = ?", (name,)).fetchone() is None:
            raise self._no_model(name)

    def _lock_model(self, conn: Connection, name: str) -> None:
        """Lock the model's row until commit (NotFoundError when there is none)."""
        sql = f"SELECT 1 FROM models WHERE name = ?{self.dialect.for_update}"
        if conn.execute(sql, (name,)).fetchone() is None:
            raise self._no_model(name)

    def _archived(self, conn: Connection, name: str, version: int) -> bool:
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

    def _versions_reading(self) -> AbstractContextManager[Any]:
        """Where :meth:`_read_versions` runs: a snapshot, as it reads several tables."""
        return self.sql.snapshot()

    def _read_versions(self, conn: Connection, where: str, args: list[Any]) -> list[ModelVersion]:
        """Versions of one model matching ``where`` (on ``model_versions v``), oldest
        first, with their aliases, approvals and datasets."""
        rows = conn.execute(
            f"SELECT {VERSION_COLUMNS_V} FROM model_versions v WHERE {where} ORDER BY v.version",
            args,
        ).fetchall()
        if not rows:
            return []
        name = rows[0][0]
        # one version: read only its own rows; several: every row of the model
        only, only_args = (
            ("", [name]) if len(rows) > 1 else (" AND version = ?", [name, rows[0][1]])
        )
        read_time = self.dialect.read_time
        held: dict[int, list[str]] = {}
        for alias, v in conn.execute(
            f"SELECT alias, version FROM aliases WHERE name = ?{only} ORDER BY alias", only_args
        ):
            held.setdefault(v, []).append(alias)
        approvals: dict[int, list[Approval]] = {}
        for v, by, at, comment in conn.execute(
            f"SELECT version, by, at, comment FROM approvals WHERE name = ?{only} ORDER BY id",
            only_args,
        ):
            approvals.setdefault(v, []).append(
                Approval(model=name, version=v, by=by, at=read_time(at), comment=comment)
            )
        datasets: dict[int, list[DatasetRef]] = {}
        for v, uri, fingerprint, role, start, end in conn.execute(
            'SELECT d.version, a.uri, a.fingerprint, d.role, d.start, d."end" '
            f"FROM model_datasets d JOIN {self.artifacts} a ON a.id = d.artifact_id "
            f"WHERE d.name = ?{only.replace('version', 'd.version')} ORDER BY d.role, a.uri",
            only_args,
        ):
            datasets.setdefault(v, []).append(
                DatasetRef(
                    uri=uri,
                    fingerprint=fingerprint,
                    role=role,
                    start=read_time(start),
                    end=read_time(end),
                )
            )
        return [
            version_value(
                row,
                held.get(row[1], []),
                approvals.get(row[1], []),
                datasets.get(row[1], []),
                read_time,
            )
            for row in rows
        ]

    def get_version(self, name: str, version: int | None = None) -> ModelVersion:
        with self._versions_reading() as conn:
            if version is None:
                found = self._read_versions(
                    conn,
                    "v.name = ? AND v.version = (SELECT latest_version FROM models WHERE name = ?)",
                    [name, name],
                )
                if not found:
                    raise self._no_model(name)
            else:
                found = self._read_versions(
                    conn, "v.name = ? AND v.version = ?", [name, int(version)]
                )
                if not found:
                    self._archived(conn, name, version)  # raises the right NotFoundError
            return found[0]

    def list_versions(self, name: str) -> list[ModelVersion]:
        with self._versions_reading() as conn:
            found = self._read_versions(conn, "v.name = ?", [name])
            if not found:
                self._model_exists(conn, name)
            return found

    def resolve(self, name: str, alias: str) -> ModelVersion | None:
        with self._versions_reading() as conn:
            found = self._read_versions(
                conn,
                "(v.name, v.version) = (SELECT name, version FROM aliases "
                "WHERE name = ? AND alias = ?)",
                [name, alias],
            )
        return found[0] if found else None

    def list_models(self) -> list[ModelSummary]:
        with self.sql.snapshot() as conn:
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
                updated=self.dialect.read_time(r[2]),
                versions=r[3],
                aliases=aliases.get(r[0], {}),
            )
            for r in rows
        ]

    def aliases(self, name: str) -> dict[str, int]:
        with self.sql.reading() as conn:
            rows = conn.execute(
                "SELECT alias, version FROM aliases WHERE name = ? ORDER BY alias", (name,)
            ).fetchall()
            if not rows:
                self._model_exists(conn, name)
        return {alias: version for alias, version in rows}

    def history(self, name: str, *, alias: str | None = None) -> list[AliasChange]:
        sql = f"SELECT {AUDIT_COLUMNS} FROM alias_audit WHERE name = ?"
        args: list[Any] = [name]
        if alias is not None:
            sql += " AND alias = ?"
            args.append(alias)
        with self.sql.reading() as conn:
            rows = conn.execute(sql + " ORDER BY id", args).fetchall()
            if not rows:
                self._model_exists(conn, name)
        return [change_value(r, self.dialect.read_time) for r in rows]

    def changes_since(
        self, audit_id: int, *, model: str | None = None, limit: int = 1000
    ) -> list[AliasChange]:
        where, args = (
            ("name = ? AND id > ?", [model, audit_id])
            if model is not None
            else ("id > ?", [audit_id])
        )
        with self.sql.reading() as conn:
            rows = conn.execute(
                f"SELECT {AUDIT_COLUMNS} FROM alias_audit WHERE {where} ORDER BY id LIMIT ?",
                [*args, limit],
            ).fetchall()
        return [change_value(r, self.dialect.read_time) for r in rows]

    def validations(self, name: str, version: int) -> list[ValidationVerdict]:
        with self.sql.reading() as conn:
            rows = conn.execute(
                f"SELECT {VERDICT_COLUMNS} FROM validations WHERE name = ? AND version = ? "
                "ORDER BY id",
                (name, int(version)),
            ).fetchall()
            if not rows:
                self._archived(conn, name, version)  # NotFoundError for an unknown version
        return [verdict_value(r, self.dialect.read_time) for r in rows]

    def audit_snapshot(self) -> AuditSnapshot:
        with self.sql.snapshot() as conn:
            return AuditSnapshot(
                holders={
                    (n, a): (v, aid)
                    for n, a, v, aid in conn.execute(
                        "SELECT name, alias, version, audit_id FROM aliases"
                    )
                },
                archived=conn.execute(
                    "SELECT name, version FROM model_versions WHERE archived"
                ).fetchall(),
                changes=[
                    change_value(r, self.dialect.read_time)
                    for r in conn.execute(f"SELECT {AUDIT_COLUMNS} FROM alias_audit ORDER BY id")
                ],
                artifacts=[
                    (name, version, uri, sha256)
                    for name, version, uri, sha256 in conn.execute(
                        "SELECT name, version, artifact_uri, sha256 FROM model_versions "
                        "ORDER BY name, version"
                    )
                ],
            )
