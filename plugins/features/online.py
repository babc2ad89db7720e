"""The ``sqlite`` online store: the latest row per entity key, one table per view.

Layout: a ``WITHOUT ROWID`` table ``fv_<view>`` whose primary key is the view's
join keys (so a lookup is one B-tree descent), holding the features plus the
order of the value: ``_event_ts``, ``_created_ts``, ``_file``, ``_row``.  An
upsert only replaces a row whose order is strictly older, so an older event never
overwrites a newer one and replaying a batch changes nothing.  Materialization
state lives in ``_conveyor_state`` and is written in the same transaction as the
rows it describes.  The file is a :class:`conveyor.sqlite.Database` (WAL,
``BEGIN IMMEDIATE`` writes, busy retries) without migrations: the tables are made
per view at run time.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from conveyor.errors import NotFoundError, ValidationError
from conveyor.features.definitions import FeatureView
from conveyor.features.pit import arrow_type
from conveyor.interfaces.features import (
    ONLINE_EVENT_TS,
    MaterializationState,
    OnlineStore,
    check_key_tuples,
)
from conveyor.plugins.features.codec import (
    RowPlan,
    arrow_column,
    from_micros,
    micros,
    sql_type,
    storage_column,
)
from conveyor.plugins.features.config import SQLiteOnlineStoreConfig
from conveyor.plugins.features.lookup import LRU
from conveyor.sqlite import Database, path_from_url

if TYPE_CHECKING:
    import pyarrow as pa

    from conveyor.app import Conveyor

T = TypeVar("T")
#: ``_created_ts`` of a view without a created-timestamp column (sorts before any time).
NO_CREATED = -(2**63)
#: Keys per lookup statement (well under SQLite's variable limit).
CHUNK = 500
_META = (
    "CREATE TABLE IF NOT EXISTS _conveyor_views (name TEXT PRIMARY KEY, spec TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS _conveyor_state (view TEXT PRIMARY KEY, watermark INTEGER, "
    "last_file TEXT, pending_end INTEGER, pending_last_file TEXT, "
    "pending_done INTEGER NOT NULL DEFAULT 0)",
)


def q(name: str) -> str:
    """A quoted SQL identifier (names are validated by the definitions too)."""
    return '"' + name.replace('"', '""') + '"'


def table_name(view: str) -> str:
    return f"fv_{view}"


class SQLiteOnlineStore(OnlineStore):
    """The online store in one SQLite file (default ``.conveyor/online.db``).

    Attributes:
        path: the database file.
    """

    def __init__(
        self,
        *,
        app: Conveyor | None = None,
        config: SQLiteOnlineStoreConfig | None = None,
        path: str | os.PathLike[str] | None = None,
    ) -> None:
        config = config or SQLiteOnlineStoreConfig()
        if path is None:
            path = path_from_url(config.url, app.root if app is not None else Path.cwd())
        self.path = Path(path)
        self.busy_timeout_s = config.busy_timeout_s
        # normal: a derived copy that `materialize` rebuilds, so no fsync per batch
        self.db = Database(
            self.path,
            package=None,
            busy_timeout_s=config.busy_timeout_s,
            synchronous="normal",
            fresh_writes=True,
        )
        self._schema_ready = False
        self._specs: dict[str, str] = {}
        # bounded: views are rebuilt (new objects) when their definition changes
        self._plans: LRU[tuple[int, tuple[str, ...]], tuple[Any, ...]] = LRU(256)
        self._sql: LRU[tuple[Any, ...], str] = LRU(512)
        self._row_plans: LRU[tuple[int, tuple[str, ...] | None], RowPlan] = LRU(256)

    # -- connection --------------------------------------------------------------------

    @property
    def conn(self) -> sqlite3.Connection:
        """The long-lived read connection (the bookkeeping tables exist once it is open)."""
        if not self._schema_ready:
            self.db.write(lambda c: [c.execute(sql) for sql in _META])
            self._schema_ready = True
        return self.db.conn

    def write_transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` in one ``BEGIN IMMEDIATE`` transaction, on a fresh connection
        (so the file depends only on the committed writes: see ``Database.fresh_writes``)."""
        self.conn  # noqa: B018 - the bookkeeping tables exist before any write
        return self.db.write(fn)

    def close(self) -> None:
        self.db.close()

    # -- schema ------------------------------------------------------------------------

    def prepare(self, view: FeatureView) -> bool:
        spec = json.dumps(view.to_spec(), sort_keys=True)
        if self._specs.get(view.name) == spec:
            return False

        def run(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT spec FROM _conveyor_views WHERE name = ?", (view.name,)
            ).fetchone()
            if row is not None and _storage_spec(row[0]) == _storage_spec(spec):
                if row[0] != spec:  # only TTL/description changed: keep the rows
                    conn.execute(
                        "UPDATE _conveyor_views SET spec = ? WHERE name = ?", (spec, view.name)
                    )
                return False
            table = q(table_name(view.name))
            conn.execute(f"DROP TABLE IF EXISTS {table}")
            conn.execute("DELETE FROM _conveyor_state WHERE view = ?", (view.name,))
            types = view.key_types
            columns = [f"{q(k)} {sql_type(t)} NOT NULL" for k, t in types.items()]
            columns += [
                "_event_ts INTEGER NOT NULL",
                "_created_ts INTEGER NOT NULL",
                "_file TEXT NOT NULL",
                "_row INTEGER NOT NULL",
            ]
            columns += [f"{q(f.name)} {sql_type(f.dtype)}" for f in view.features]
            keys = ", ".join(q(k) for k in types)
            conn.execute(
                f"CREATE TABLE {table} ({', '.join(columns)}, PRIMARY KEY ({keys})) WITHOUT ROWID"
            )
            conn.execute(
                "INSERT INTO _conveyor_views (name, spec) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET spec = excluded.spec",
                (view.name, spec),
            )
            return True

        created = self.write_transaction(run)
        self._specs[view.name] = spec
        return created

    def _check_prepared(self, view: FeatureView) -> None:
        if view.name not in self._specs:
            row = self.conn.execute(
                "SELECT spec FROM _conveyor_views WHERE name = ?", (view.name,)
            ).fetchone()
            if row is None:
                raise NotFoundError(
                    f"the online store has no data for feature view {view.name!r}",
                    hint=f"run: conveyor features materialize {view.name}",
                )
            if _storage_spec(row[0]) != _storage_spec(json.dumps(view.to_spec(), sort_keys=True)):
                raise ValidationError(
                    f"the online store holds feature view {view.name!r} under an older definition",
                    hint=f"run: conveyor features materialize {view.name}",
                )
            self._specs[view.name] = row[0]

    # -- state -------------------------------------------------------------------------

    def get_state(self, view: str) -> MaterializationState | None:
        row = self.conn.execute(
            "SELECT watermark, last_file, pending_end, pending_last_file, pending_done "
            "FROM _conveyor_state WHERE view = ?",
            (view,),
        ).fetchone()
        if row is None:
            return None
        return MaterializationState(
            view=view,
            watermark=from_micros(row[0]),
            last_file=row[1],
            pending_end=from_micros(row[2]),
            pending_last_file=row[3],
            pending_done=row[4],
        )

    def set_state(self, state: MaterializationState) -> None:
        self.write_transaction(lambda conn: self._put_state(conn, state))

    @staticmethod
    def _put_state(conn: sqlite3.Connection, state: MaterializationState) -> None:
        values = (
            micros(state.watermark),
            state.last_file,
            micros(state.pending_end),
            state.pending_last_file,
            state.pending_done,
        )
        row = conn.execute(
            "SELECT watermark, last_file, pending_end, pending_last_file, pending_done "
            "FROM _conveyor_state WHERE view = ?",
            (state.view,),
        ).fetchone()
        if row == values:
            return  # an identical rewrite would still dirty the page
        conn.execute(
            "INSERT INTO _conveyor_state (view, watermark, last_file, pending_end, "
            "pending_last_file, pending_done) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (view) DO UPDATE SET watermark = excluded.watermark, "
            "last_file = excluded.last_file, pending_end = excluded.pending_end, "
            "pending_last_file = excluded.pending_last_file, "
            "pending_done = excluded.pending_done",
            (state.view, *values),
        )

    # -- rows --------------------------------------------------------------------------

    def write(
        self, view: FeatureView, table: pa.Table, *, state: MaterializationState | None = None
    ) -> int:
        self.prepare(view)
        missing = [
            c
            for c in (*view.join_keys, "_event_ts", "_file", "_row", *view.feature_names)
            if c not in table.column_names
        ]
        if missing:
            raise ValidationError(
                f"rows for feature view {view.name!r} lack the column(s) {', '.join(missing)}",
                hint="pass the view's full rows",
            )
        key_types = view.key_types
        columns = [*key_types, "_event_ts", "_created_ts", "_file", "_row", *view.feature_names]
        data = [storage_column(table[k], t) for k, t in key_types.items()]
        data.append(storage_column(table["_event_ts"], "datetime"))
        if "_created_ts" in table.column_names:
            created = storage_column(table["_created_ts"], "datetime")
            data.append([NO_CREATED if v is None else v for v in created])
        else:
            data.append([NO_CREATED] * table.num_rows)
        data.append(table["_file"].to_pylist())
        data.append(table["_row"].to_pylist())
        data += [storage_column(table[f.name], f.dtype) for f in view.features]
        rows = list(zip(*data, strict=True))
        name = q(table_name(view.name))
        order = "(_event_ts, _created_ts, _file, _row)"
        sql = (
            f"INSERT INTO {name} ({', '.join(q(c) for c in columns)}) "
            f"VALUES ({', '.join('?' * len(columns))}) "
            f"ON CONFLICT ({', '.join(q(k) for k in key_types)}) DO UPDATE SET "
            + ", ".join(f"{q(c)} = excluded.{q(c)}" for c in columns[len(key_types) :])
            + f" WHERE (excluded._event_ts, excluded._created_ts, excluded._file, "
            f"excluded._row) > {order}"
        )

        def run(conn: sqlite3.Connection) -> int:
            before = conn.total_changes
            conn.executemany(sql, rows)
            changed = conn.total_changes - before
            if state is not None:
                self._put_state(conn, state)
            return changed

        return self.write_transaction(run)

    def read(
        self, view: FeatureView, keys: pa.Table, features: Sequence[str] | None = None
    ) -> pa.Table:
        import pyarrow as pa

        wanted = tuple(view.feature_names if features is None else features)
        plan = self._plans.get((id(view), wanted))
        if plan is None or plan[0] is not view:
            plan = self._plans.put((id(view), wanted), self._plan(view, wanted))
        _, key_types, names, dtypes, struct = plan
        absent = [k for k in key_types if k not in keys.column_names]
        if absent:
            raise ValidationError(
                f"the keys lack the join key(s) {', '.join(absent)} of feature view {view.name!r}",
                hint="pass every join key",
            )
        key_lists = [storage_column(keys[k], t) for k, t in key_types.items()]
        requested = list(zip(*key_lists, strict=True))
        found = self._lookup(view, requested, wanted)
        empty = (None,) * (len(wanted) + 1)
        rows = [(*key, *found.get(key, empty)) for key in requested]
        try:  # one conversion for the whole result: the fast path for small lookups
            return pa.Table.from_batches([pa.RecordBatch.from_struct_array(pa.array(rows, struct))])
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
            pass  # booleans stored as 0/1, NaN stored as text: convert column by column
        cols = list(zip(*rows, strict=True)) if rows else [()] * len(names)
        return pa.table(
            {n: arrow_column(list(c), t) for n, c, t in zip(names, cols, dtypes, strict=True)}
        )

    @staticmethod
    def _plan(view: FeatureView, wanted: tuple[str, ...]) -> tuple[Any, ...]:
        """What ``read`` needs to know about a view, computed once per (view, features)."""
        import pyarrow as pa

        types = {f.name: f.dtype for f in view.features}
        for name in wanted:
            view.feature(name)  # NotFoundError names the view's features
        key_types = view.key_types
        dtypes = [*key_types.values(), "datetime", *(types[n] for n in wanted)]
        names = [*key_types, ONLINE_EVENT_TS, *wanted]
        struct = pa.struct([pa.field(n, arrow_type(t)) for n, t in zip(names, dtypes, strict=True)])
        return view, key_types, names, dtypes, struct

    def read_rows(
        self,
        view: FeatureView,
        keys: Sequence[tuple[Any, ...]],
        features: Sequence[str] | None = None,
    ) -> list[tuple[Any, ...]]:
        wanted = None if features is None else tuple(features)
        plan = self._row_plans.get((id(view), wanted))
        if plan is None or plan.view is not view:
            plan = self._row_plans.put((id(view), wanted), RowPlan.of(view, wanted))
        check_key_tuples(view.name, plan.join_keys, keys)
        stored = keys if plan.stored_key is None else [plan.stored_key(k) for k in keys]
        nkeys = len(plan.join_keys)
        if len(keys) == 1:  # serving's case: one statement, no dict of results
            if view.name not in self._specs:
                self._check_prepared(view)
            sql = self._select_sql(view.name, plan.join_keys, plan.features, 1)
            with self.db.locked() as conn:
                row = conn.execute(sql, stored[0]).fetchone()
            return [plan.row(keys[0], None if row is None else row[nkeys:])]
        found = self._lookup(view, stored, plan.features)
        return [plan.row(k, found.get(s)) for k, s in zip(keys, stored, strict=True)]

    def _lookup(
        self, view: FeatureView, keys: Sequence[tuple[Any, ...]], features: Sequence[str]
    ) -> dict[tuple[Any, ...], tuple[Any, ...]]:
        """Stored ``(_event_ts, *features)`` per key tuple (SQLite values)."""
        if view.name not in self._specs:
            self._check_prepared(view)
        key_names = view.join_keys
        nkeys = len(key_names)
        found: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        features = tuple(features)
        with self.db.locked() as conn:
            for start in range(0, len(keys), CHUNK):
                chunk = keys[start : start + CHUNK]
                sql = self._select_sql(view.name, key_names, features, len(chunk))
                params = [k[0] for k in chunk] if nkeys == 1 else [v for k in chunk for v in k]
                for row in conn.execute(sql, params):
                    found[row[:nkeys]] = row[nkeys:]
        return found

    def _select_sql(
        self, view: str, key_names: tuple[str, ...], features: tuple[str, ...], n: int
    ) -> str:
        cached = self._sql.get((view, key_names, features, n))
        if cached is None:
            cached = self._sql.put(
                (view, key_names, features, n), _select_sql(view, key_names, features, n)
            )
        return cached

    def sample_keys(self, view: FeatureView, n: int, *, seed: int = 0) -> pa.Table:
        import pyarrow as pa

        self._check_prepared(view)
        key_types = view.key_types
        cols = ", ".join(q(k) for k in key_types)
        with self.db.locked() as conn:
            rows = conn.execute(
                f"SELECT {cols} FROM {q(table_name(view.name))} ORDER BY {cols}"
            ).fetchall()
        picked = random.Random(seed).sample(rows, min(n, len(rows)))
        columns = list(zip(*picked, strict=True)) if picked else [()] * len(key_types)
        return pa.table(
            {k: arrow_column(list(columns[i]), t) for i, (k, t) in enumerate(key_types.items())}
        )


def _storage_spec(spec: str) -> Any:
    """The parts of a view's spec that shape its table (not TTL, descriptions, tags)."""
    data = json.loads(spec)
    return (
        [(e["join_keys"], e["dtype"]) for e in data["entities"]],
        [(f["name"], f["dtype"]) for f in data["features"]],
        data.get("created_timestamp_field") is not None,
    )


def _select_sql(view: str, key_names: tuple[str, ...], features: tuple[str, ...], n: int) -> str:
    """The lookup statement for ``n`` keys."""
    select = ", ".join([*(q(k) for k in key_names), "_event_ts", *(q(f) for f in features)])
    name = q(table_name(view))
    if len(key_names) == 1:
        return f"SELECT {select} FROM {name} WHERE {q(key_names[0])} IN ({', '.join('?' * n)})"
    one = "(" + ", ".join("?" * len(key_names)) + ")"
    return (
        f"SELECT {select} FROM {name} WHERE ({', '.join(q(k) for k in key_names)}) "
        f"IN (VALUES {', '.join([one] * n)})"
    )
