"""The ``redis`` online store: the latest row per entity key, one hash per key.

Layout (every key starts with the configured prefix ``P``):

* ``P{view}:{key}``: a hash with the features (a null is an absent field) and the
  order of the value, ``_e`` (event time), ``_c`` (created time), ``_f`` (file),
  ``_r`` (row), all as text; it expires ``ttl`` seconds after it was last written
  when the view has a TTL (by then its event is older than the TTL, so no lookup
  at the current time could return it);
* ``P_keys:{view}``: the set of those keys (for ``sample_keys`` and resets);
* ``P_views``: a hash of view name -> definition; ``P_state:{view}``: the
  materialization state.

A write is one ``MULTI``/``EXEC`` block of server-side upserts
(``upsert.lua``: replace a row only when the new order is strictly newer) and the
state, so it applies whole or not at all, and replays change nothing.  Lookups
are one pipelined round trip of ``HMGET``.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from typing import TYPE_CHECKING, Any

from conveyor.errors import ConveyorError, NotFoundError, ValidationError
from conveyor.features.definitions import FeatureView
from conveyor.features.pit import arrow_type
from conveyor.interfaces.features import ONLINE_EVENT_TS, MaterializationState, OnlineStore
from conveyor_redis.config import RedisOnlineStoreConfig

if TYPE_CHECKING:
    import pyarrow as pa

#: ``_c`` of a view without a created-timestamp column (sorts before any time).
NO_CREATED = -(2**63)
NULL = "\0"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DAY = date(1970, 1, 1)
_STATE_FIELDS = ("watermark", "last_file", "pending_end", "pending_last_file", "pending_done")


def _micros(value: datetime | None) -> int | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // timedelta(microseconds=1)


def _from_micros(value: bytes | None) -> datetime | None:
    return None if value is None else _EPOCH + timedelta(microseconds=int(value))


def storage_values(values: pa.ChunkedArray | pa.Array, dtype: str) -> list[Any]:
    """Arrow values as the Python values the hashes hold (times as integers)."""
    import pyarrow as pa

    if dtype == "datetime":
        return values.cast(pa.timestamp("us", "UTC")).cast(pa.int64()).to_pylist()
    if dtype == "date":
        return values.cast(pa.date32()).cast(pa.int32()).to_pylist()
    if dtype == "bool":
        return [None if v is None else int(v) for v in values.to_pylist()]
    if dtype in ("float32", "float64"):
        return [None if v is None else repr(float(v)) for v in values.to_pylist()]
    return values.to_pylist()


def _storage_value(value: Any, dtype: str) -> Any:
    """One Python key value as the hashes hold it (``storage_values`` for one value)."""
    if value is None:
        return None
    if dtype == "datetime":
        return _micros(value)
    if dtype == "date":
        return (value - _EPOCH_DAY).days
    if dtype == "bool":
        return int(value)
    if dtype in ("float32", "float64"):
        return repr(float(value))
    return value


def _python_decoder(dtype: str) -> Any:
    """Stored bytes as the Python value ``read(...).to_pylist()`` would give."""
    if dtype == "datetime":
        return lambda b: _EPOCH + timedelta(microseconds=int(b))
    if dtype == "date":
        return lambda b: _EPOCH_DAY + timedelta(days=int(b))
    if dtype == "float32":
        import numpy as np

        return lambda b: float(np.float32(float(b)))
    return _decoder(dtype)


def _decoder(dtype: str) -> Any:
    if dtype in ("float32", "float64"):
        return float
    if dtype == "string":
        return lambda b: b.decode()
    if dtype == "bool":
        return lambda b: b == b"1"
    return int


def _arrow(values: list[Any], dtype: str) -> pa.Array:
    import pyarrow as pa

    if dtype == "datetime":
        return pa.array(values, pa.int64()).cast(pa.timestamp("us", "UTC"))
    if dtype == "date":
        return pa.array(values, pa.int32()).cast(pa.date32())
    return pa.array(values, arrow_type(dtype))


def _storage_spec(spec: str) -> Any:
    """The parts of a view's spec that shape its rows (not TTL, descriptions, tags)."""
    data = json.loads(spec)
    return (
        [(e["join_keys"], e["dtype"]) for e in data["entities"]],
        [(f["name"], f["dtype"]) for f in data["features"]],
        data.get("created_timestamp_field") is not None,
    )


class RedisOnlineStore(OnlineStore):
    """The online store on a Redis server.

    Attributes:
        client: the redis-py client (a connection pool per process).
        prefix: the prefix of every key this store writes.
    """

    def __init__(self, *, app: Any = None, config: RedisOnlineStoreConfig | None = None) -> None:
        import redis

        if config is None:
            raise ValueError("RedisOnlineStore needs a config with a url")
        self.config = config
        self.prefix = config.prefix
        self.client = redis.Redis.from_url(
            config.url,
            socket_timeout=config.socket_timeout_s,
            socket_connect_timeout=config.socket_timeout_s,
        )
        script = resources.files("conveyor_redis").joinpath("upsert.lua").read_text("utf-8")
        self._upsert = self.client.register_script(script)
        self._specs: dict[str, str] = {}
        try:
            self.client.ping()
        except redis.RedisError as exc:
            raise ConveyorError(
                f"cannot reach Redis at {config.url}: {exc}",
                hint="check the server is running and [online_store] url",
            ) from None

    def close(self) -> None:
        self.client.close()

    # -- keys --------------------------------------------------------------------------

    def _row_key(self, view: str, key: tuple[Any, ...]) -> str:
        part = str(key[0]) if len(key) == 1 else json.dumps(list(key), ensure_ascii=False)
        return f"{self.prefix}{view}:{part}"

    def _keys_set(self, view: str) -> str:
        return f"{self.prefix}_keys:{view}"

    def _state_key(self, view: str) -> str:
        return f"{self.prefix}_state:{view}"

    # -- schema ------------------------------------------------------------------------

    def prepare(self, view: FeatureView) -> bool:
        spec = json.dumps(view.to_spec(), sort_keys=True)
        if self._specs.get(view.name) == spec:
            return False
        stored = self.client.hget(f"{self.prefix}_views", view.name)
        if stored is not None and _storage_spec(stored) == _storage_spec(spec):
            if stored.decode() != spec:  # only TTL/description changed: keep the rows
                self.client.hset(f"{self.prefix}_views", view.name, spec)
            self._specs[view.name] = spec
            return False
        self._drop_rows(view.name)
        with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(self._state_key(view.name), self._keys_set(view.name))
            pipe.hset(f"{self.prefix}_views", view.name, spec)
            pipe.execute()
        self._specs[view.name] = spec
        return True

    def _drop_rows(self, view: str) -> None:
        batch: list[bytes] = []
        for member in self.client.sscan_iter(self._keys_set(view), count=1000):
            batch.append(member)
            if len(batch) >= 1000:
                self.client.unlink(*batch)
                batch = []
        if batch:
            self.client.unlink(*batch)

    def _check_prepared(self, view: FeatureView) -> None:
        if view.name in self._specs:
            return
        stored = self.client.hget(f"{self.prefix}_views", view.name)
        if stored is None:
            raise NotFoundError(
                f"the online store has no data for feature view {view.name!r}",
                hint=f"run: conveyor features materialize {view.name}",
            )
        if _storage_spec(stored) != _storage_spec(json.dumps(view.to_spec(), sort_keys=True)):
            raise ValidationError(
                f"the online store holds feature view {view.name!r} under an older definition",
                hint=f"run: conveyor features materialize {view.name}",
            )
        self._specs[view.name] = stored.decode()

    # -- state -------------------------------------------------------------------------

    def get_state(self, view: str) -> MaterializationState | None:
        got = self.client.hgetall(self._state_key(view))
        if not got:
            return None
        text = {k.decode(): v.decode() for k, v in got.items()}
        return MaterializationState(
            view=view,
            watermark=_from_micros(got.get(b"watermark")),
            last_file=text.get("last_file"),
            pending_end=_from_micros(got.get(b"pending_end")),
            pending_last_file=text.get("pending_last_file"),
            pending_done=int(text.get("pending_done", 0)),
        )

    def _put_state(self, pipe: Any, state: MaterializationState) -> None:
        values = {
            "watermark": _micros(state.watermark),
            "last_file": state.last_file,
            "pending_end": _micros(state.pending_end),
            "pending_last_file": state.pending_last_file,
            "pending_done": state.pending_done,
        }
        key = self._state_key(state.view)
        pipe.delete(key)
        pipe.hset(key, mapping={k: v for k, v in values.items() if v is not None})

    def set_state(self, state: MaterializationState) -> None:
        with self.client.pipeline(transaction=True) as pipe:
            self._put_state(pipe, state)
            pipe.execute()

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
        key_lists = [storage_values(table[k], t) for k, t in view.key_types.items()]
        keys = [self._row_key(view.name, k) for k in zip(*key_lists, strict=True)]
        event = storage_values(table["_event_ts"], "datetime")
        created = (
            storage_values(table["_created_ts"], "datetime")
            if "_created_ts" in table.column_names
            else [None] * table.num_rows
        )
        columns = [
            event,
            [NO_CREATED if c is None else c for c in created],
            table["_file"].to_pylist(),
            table["_row"].to_pylist(),
        ]
        columns += [
            [NULL if v is None else v for v in storage_values(table[f.name], f.dtype)]
            for f in view.features
        ]
        rows = list(zip(*columns, strict=True))
        ttl = 0 if not view.ttl else max(1, math.ceil(view.ttl.total_seconds()))
        head = [ttl, len(view.features), *view.feature_names]
        step = self.config.rows_per_call
        with self.client.pipeline(transaction=True) as pipe:
            for start in range(0, len(rows), step):
                chunk = rows[start : start + step]
                args = head + [v for row in chunk for v in row]
                self._upsert(
                    keys=[self._keys_set(view.name), *keys[start : start + step]],
                    args=args,
                    client=pipe,
                )
            if state is not None:
                self._put_state(pipe, state)
            results = pipe.execute()
        calls = -(-len(rows) // step)
        return int(sum(results[:calls]))

    def read(
        self, view: FeatureView, keys: pa.Table, features: Sequence[str] | None = None
    ) -> pa.Table:
        import pyarrow as pa

        self._check_prepared(view)
        wanted = tuple(view.feature_names if features is None else features)
        types = {f.name: f.dtype for f in view.features}
        for name in wanted:
            view.feature(name)  # NotFoundError names the view's features
        key_types = view.key_types
        absent = [k for k in key_types if k not in keys.column_names]
        if absent:
            raise ValidationError(
                f"the keys lack the join key(s) {', '.join(absent)} of feature view {view.name!r}",
                hint="pass every join key",
            )
        key_lists = [storage_values(keys[k], t) for k, t in key_types.items()]
        names = ["_e", *wanted]
        if len(keys) == 1:
            one = tuple(values[0] for values in key_lists)
            found = [self.client.hmget(self._row_key(view.name, one), names)]
        else:
            with self.client.pipeline(transaction=False) as pipe:
                for key in zip(*key_lists, strict=True):
                    pipe.hmget(self._row_key(view.name, key), names)
                found = pipe.execute()
        columns: dict[str, pa.Array] = {
            k: _arrow(key_lists[i], t) for i, (k, t) in enumerate(key_types.items())
        }
        columns[ONLINE_EVENT_TS] = _arrow(
            [None if r[0] is None else int(r[0]) for r in found], "datetime"
        )
        for i, name in enumerate(wanted, start=1):
            decode = _decoder(types[name])
            columns[name] = _arrow(
                [None if r[i] is None else decode(r[i]) for r in found], types[name]
            )
        return pa.table(columns)

    def read_rows(
        self,
        view: FeatureView,
        keys: Sequence[tuple[Any, ...]],
        features: Sequence[str] | None = None,
    ) -> list[tuple[Any, ...]]:
        """``read`` without Arrow: one pipelined ``HMGET`` per key, decoded in Python."""
        from conveyor.interfaces.features import check_key_tuples

        self._check_prepared(view)
        wanted = tuple(view.feature_names if features is None else features)
        for name in wanted:
            view.feature(name)  # NotFoundError names the view's features
        key_types = view.key_types
        check_key_tuples(view.name, tuple(key_types), keys)
        names = ["_e", *wanted]
        stored = [
            tuple(_storage_value(v, t) for v, t in zip(key, key_types.values(), strict=True))
            for key in keys
        ]
        if len(stored) == 1:
            found = [self.client.hmget(self._row_key(view.name, stored[0]), names)]
        else:
            with self.client.pipeline(transaction=False) as pipe:
                for key in stored:
                    pipe.hmget(self._row_key(view.name, key), names)
                found = pipe.execute()
        decoders = [_python_decoder("datetime")]
        decoders += [_python_decoder(view.feature(name).dtype) for name in wanted]
        times = [t == "datetime" for t in key_types.values()]
        return [
            (
                *(  # a datetime key comes back in UTC, as read's does
                    _EPOCH + timedelta(microseconds=v) if is_time and v is not None else k
                    for k, v, is_time in zip(key, stored_key, times, strict=True)
                ),
                *(None if b is None else d(b) for d, b in zip(decoders, row, strict=True)),
            )
            for key, stored_key, row in zip(keys, stored, found, strict=True)
        ]

    def sample_keys(self, view: FeatureView, n: int, *, seed: int = 0) -> pa.Table:
        import pyarrow as pa

        self._check_prepared(view)
        members = sorted(self.client.smembers(self._keys_set(view.name)))
        with self.client.pipeline(transaction=False) as pipe:
            for member in members:
                pipe.hget(member, "_e")
            alive = [m for m, e in zip(members, pipe.execute(), strict=True) if e is not None]
        key_types = view.key_types
        start = len(f"{self.prefix}{view.name}:")
        parsed = []
        for member in alive:
            part = member.decode()[start:]
            values = json.loads(part) if len(key_types) > 1 else [part]
            parsed.append(
                tuple(
                    _decoder(t)(str(v).encode()) if t != "string" else v
                    for v, t in zip(values, key_types.values(), strict=True)
                )
            )
        parsed.sort()
        picked = random.Random(seed).sample(parsed, min(n, len(parsed)))
        cols = list(zip(*picked, strict=True)) if picked else [()] * len(key_types)
        return pa.table({k: _arrow(list(cols[i]), t) for i, (k, t) in enumerate(key_types.items())})
