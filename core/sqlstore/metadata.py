"""The metadata store written once for SQL databases: a backend supplies the rest.

A backend subclasses :class:`SQLMetadataStore`, opens its database and sets
``self.sql`` (:class:`~conveyor.sqlstore.dialect.Transactions`) and
``self.dialect`` (:class:`~conveyor.sqlstore.dialect.Dialect`) before use; its
migrations create the tables these statements name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attrs import evolve

from conveyor.errors import NotFoundError
from conveyor.interfaces.metadata import MetadataStore, TriggerEvent
from conveyor.sqlite import dumps, now
from conveyor.sqlstore.definitions import SQLDefinitions
from conveyor.sqlstore.dialect import Connection
from conveyor.sqlstore.leases import SQLLeases
from conveyor.sqlstore.lineage import SQLLineage
from conveyor.sqlstore.monitoring import SQLMonitoringResults
from conveyor.sqlstore.runs import SQLRuns
from conveyor.sqlstore.values import EVENT_COLUMNS, event_value, new_id


class SQLMetadataStore(
    SQLRuns, SQLLineage, SQLDefinitions, SQLLeases, SQLMonitoringResults, MetadataStore
):
    """Runs, steps, artifacts, metrics, trigger events, lineage, definitions, leases
    and monitoring results in SQL tables (see the module docstring)."""

    # -- trigger events ---------------------------------------------------------------

    def record_trigger_event(
        self,
        trigger: str,
        reason: str,
        *,
        details: Mapping[str, Any] | None = None,
        key: str | None = None,
        fired: bool = True,
    ) -> TriggerEvent:
        event_id = new_id()
        at = self.dialect.write_time(now())
        text = dumps(dict(details or {}))

        def write(conn: Connection) -> TriggerEvent:
            row = conn.execute(
                "INSERT INTO trigger_events (id, trigger, reason, details, key, fired, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (trigger, key) DO NOTHING "
                f"RETURNING {EVENT_COLUMNS}",
                (event_id, trigger, reason, text, key, bool(fired), at),
            ).fetchone()
            if row is not None:
                return event_value(row, self.dialect.read_time)
            existing = conn.execute(
                f"SELECT {EVENT_COLUMNS} FROM trigger_events WHERE trigger = ? AND key = ?",
                (trigger, key),
            ).fetchone()
            return evolve(event_value(existing, self.dialect.read_time), is_new=False)

        return self.sql.write(write)

    def get_trigger_event(self, event_id: str) -> TriggerEvent:
        with self.sql.reading() as conn:
            row = conn.execute(
                f"SELECT {EVENT_COLUMNS} FROM trigger_events WHERE id = ?", (event_id,)
            ).fetchone()
        if row is None:
            raise NotFoundError(f"no trigger event {event_id!r}")
        return event_value(row, self.dialect.read_time)

    def list_trigger_events(
        self, *, trigger: str | None = None, limit: int = 50
    ) -> list[TriggerEvent]:
        sql = f"SELECT {EVENT_COLUMNS} FROM trigger_events"
        args: list[Any] = []
        if trigger is not None:
            sql += " WHERE trigger = ?"
            args.append(trigger)
        sql += f" ORDER BY created DESC, {self.dialect.seq} DESC LIMIT ?"
        with self.sql.reading() as conn:
            rows = conn.execute(sql, [*args, int(limit)]).fetchall()
        return [event_value(r, self.dialect.read_time) for r in rows]
