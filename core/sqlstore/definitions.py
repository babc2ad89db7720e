"""Versioned definitions in a SQL metadata store (feature views, entities, ...)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from conveyor.errors import ConveyorError, NotFoundError
from conveyor.interfaces.metadata import Definition
from conveyor.sqlite import dumps, now
from conveyor.sqlstore.dialect import Connection, Dialect, Transactions
from conveyor.sqlstore.values import DEFINITION_COLUMNS, definition_value


class SQLDefinitions:
    """The metadata store's ``*_definition`` methods, over ``self.sql``."""

    sql: Transactions
    dialect: Dialect

    def put_definition(self, kind: str, name: str, spec: Mapping[str, Any]) -> Definition:
        if not kind or not name:
            raise ConveyorError("a definition needs a kind and a name")
        text = dumps(dict(spec))
        fingerprint = hashlib.sha256(text.encode()).hexdigest()
        at = self.dialect.write_time(now())

        def write(conn: Connection) -> Definition:
            # writers of one definition wait for each other, so the next version is
            # read and inserted without a race (the unique key backs this up)
            self.dialect.serialize(conn, f"definition:{kind}:{name}")
            row = conn.execute(
                "SELECT version, fingerprint FROM definitions WHERE kind = ? AND name = ? "
                "ORDER BY version DESC LIMIT 1",
                (kind, name),
            ).fetchone()
            if row is not None and row[1] == fingerprint:
                return self._definition(conn, kind, name, row[0])
            version = 1 if row is None else row[0] + 1
            conn.execute(
                "INSERT INTO definitions (kind, name, version, spec, fingerprint, "
                "created) VALUES (?, ?, ?, ?, ?, ?)",
                (kind, name, version, text, fingerprint, at),
            )
            return self._definition(conn, kind, name, version)

        return self.sql.write(write, retry_conflicts=True)

    def _definition(
        self, conn: Connection, kind: str, name: str, version: int | None
    ) -> Definition:
        sql = f"SELECT {DEFINITION_COLUMNS} FROM definitions WHERE kind = ? AND name = ?"
        args: list[Any] = [kind, name]
        if version is None:
            sql += " ORDER BY version DESC LIMIT 1"
        else:
            sql += " AND version = ?"
            args.append(int(version))
        row = conn.execute(sql, args).fetchone()
        if row is None:
            which = f"{kind} {name!r}" + ("" if version is None else f" version {version}")
            raise NotFoundError(f"no {which} is defined", hint="apply the definition first")
        return definition_value(row, self.dialect.read_time)

    def get_definition(self, kind: str, name: str, version: int | None = None) -> Definition:
        with self.sql.reading() as conn:
            return self._definition(conn, kind, name, version)

    def list_definitions(self, kind: str) -> list[Definition]:
        with self.sql.reading() as conn:
            rows = conn.execute(
                "SELECT d.kind, d.name, d.version, d.spec, d.fingerprint, d.created "
                "FROM definitions d WHERE d.kind = ? AND d.version = (SELECT max(version) "
                "FROM definitions x WHERE x.kind = d.kind AND x.name = d.name) "
                "ORDER BY d.name",
                (kind,),
            ).fetchall()
        return [definition_value(r, self.dialect.read_time) for r in rows]

    def definition_history(self, kind: str, name: str) -> list[Definition]:
        with self.sql.reading() as conn:
            rows = conn.execute(
                f"SELECT {DEFINITION_COLUMNS} FROM definitions WHERE kind = ? AND name = ? "
                "ORDER BY version",
                (kind, name),
            ).fetchall()
        return [definition_value(r, self.dialect.read_time) for r in rows]
