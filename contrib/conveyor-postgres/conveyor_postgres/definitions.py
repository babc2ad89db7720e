"""Versioned definitions in the PostgreSQL metadata store (feature views, entities, ...)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from conveyor.errors import ConveyorError, NotFoundError
from conveyor.interfaces.metadata import Definition
from conveyor.sqlite import dumps, now
from conveyor_postgres.db import Database
from conveyor_postgres.rows import DEFINITION_COLUMNS, definition_value

if TYPE_CHECKING:
    import psycopg


class PostgresDefinitions:
    """The metadata store's ``*_definition`` methods, over ``self.db``."""

    db: Database

    def put_definition(self, kind: str, name: str, spec: Mapping[str, Any]) -> Definition:
        if not kind or not name:
            raise ConveyorError("a definition needs a kind and a name")
        text = dumps(dict(spec))
        fingerprint = hashlib.sha256(text.encode()).hexdigest()
        at = now()

        def write(conn: psycopg.Connection) -> Definition:
            # writers of one definition queue on a lock named after it (held to commit),
            # so the next version is read and inserted without a race
            conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))",
                (f"conveyor-definition:{self.db.schema}:{kind}:{name}",),
            )
            row = conn.execute(
                "SELECT version, fingerprint FROM definitions WHERE kind = %s AND name = %s "
                "ORDER BY version DESC LIMIT 1",
                (kind, name),
            ).fetchone()
            if row is not None and row[1] == fingerprint:
                return self._definition(conn, kind, name, row[0])
            version = 1 if row is None else row[0] + 1
            conn.execute(
                "INSERT INTO definitions (kind, name, version, spec, fingerprint, "
                "created) VALUES (%s, %s, %s, %s, %s, %s)",
                (kind, name, version, text, fingerprint, at),
            )
            return self._definition(conn, kind, name, version)

        return self.db.write(write)

    def _definition(
        self, conn: psycopg.Connection, kind: str, name: str, version: int | None
    ) -> Definition:
        sql = f"SELECT {DEFINITION_COLUMNS} FROM definitions WHERE kind = %s AND name = %s"
        args: list[Any] = [kind, name]
        if version is None:
            sql += " ORDER BY version DESC LIMIT 1"
        else:
            sql += " AND version = %s"
            args.append(int(version))
        row = conn.execute(sql, args).fetchone()
        if row is None:
            which = f"{kind} {name!r}" + ("" if version is None else f" version {version}")
            raise NotFoundError(f"no {which} is defined", hint="apply the definition first")
        return definition_value(row)

    def get_definition(self, kind: str, name: str, version: int | None = None) -> Definition:
        with self.db.reading() as conn:
            return self._definition(conn, kind, name, version)

    def list_definitions(self, kind: str) -> list[Definition]:
        rows = self.db.fetchall(
            f"SELECT DISTINCT ON (name) {DEFINITION_COLUMNS} FROM definitions WHERE kind = %s "
            "ORDER BY name, version DESC",
            (kind,),
        )
        return [definition_value(r) for r in rows]

    def definition_history(self, kind: str, name: str) -> list[Definition]:
        rows = self.db.fetchall(
            f"SELECT {DEFINITION_COLUMNS} FROM definitions WHERE "
            "kind = %s AND name = %s ORDER BY version",
            (kind, name),
        )
        return [definition_value(r) for r in rows]
