"""Online lookups of the ``local`` feature store: views resolved once, requests planned once.

Serving asks for the same ``"view:feature"`` references on every request, so the
work that depends only on the references (parsing them, resolving each view from
the metadata store, checking the output names) is done once and kept in bounded
caches; a request then costs the online store's read plus assembling the columns.

A view is rebuilt from its definition only when the definition's fingerprint
changes; on the lookup path the metadata store is asked again at most every
``view_refresh_s`` seconds (``apply`` in the same process takes effect at once).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from attrs import frozen

from conveyor.errors import ValidationError
from conveyor.features.definitions import FeatureView, parse_refs
from conveyor.interfaces.features import ONLINE_EVENT_TS

if TYPE_CHECKING:
    import pyarrow as pa

    from conveyor.interfaces.features import OnlineStore
    from conveyor.interfaces.metadata import Definition

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
log = logging.getLogger("conveyor.features")


class LRU(Generic[K, V]):
    """A dict that keeps at most ``maxsize`` entries, dropping the least recently used."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._data: dict[K, V] = {}

    def get(self, key: K) -> V | None:
        value = self._data.pop(key, None)
        if value is not None:
            self._data[key] = value  # most recent last
        return value

    def put(self, key: K, value: V) -> V:
        self._data.pop(key, None)
        self._data[key] = value
        while len(self._data) > self.maxsize:
            del self._data[next(iter(self._data))]
        return value

    def clear(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


class ViewCache:
    """Feature views by name, rebuilt from their definition only when it changed.

    Args:
        load: the current definition of a view by name (raises NotFoundError).
        maxsize: how many views to keep.
    """

    def __init__(self, load: Callable[[str], Definition], maxsize: int = 1024) -> None:
        self._load = load
        self._views: LRU[str, tuple[FeatureView, str, float]] = LRU(maxsize)

    def get(self, name: str, *, max_age: float = 0.0) -> FeatureView:
        """The view; the definition is re-read when the cached one is older than ``max_age``."""
        now = time.monotonic()
        cached = self._views.get(name)
        if cached is not None and max_age > 0 and now - cached[2] < max_age:
            return cached[0]
        definition = self._load(name)
        if cached is not None and cached[1] == definition.fingerprint:
            view = cached[0]
        else:
            view = FeatureView.from_spec(definition.spec)
        self._views.put(name, (view, definition.fingerprint, now))
        return view

    def clear(self) -> None:
        self._views.clear()


@frozen
class Part:
    """One view's share of a lookup.

    Attributes:
        view: the view.
        wanted: the features to read (``None``: all of them).
        join_keys: the view's join keys.
        keys: the join keys this view adds to the result (not added by an earlier view).
        take: the feature columns taken from the online store's result.
        outputs: their names in the lookup's result.
    """

    view: FeatureView
    wanted: tuple[str, ...] | None
    join_keys: tuple[str, ...]
    keys: tuple[str, ...]
    take: tuple[str, ...]
    outputs: tuple[str, ...]


def plan(
    features: Sequence[str | FeatureView],
    resolve: Callable[[str], FeatureView],
    *,
    full_names: bool,
) -> tuple[Part, ...]:
    """The parts of a lookup of ``features``; refuses unknown features and clashing names.

    ``resolve`` gives the view of a name (including views passed as objects).
    """
    parts = []
    names: set[str] = set()
    for name, wanted in parse_refs(features).items():
        view = resolve(name)
        keys = tuple(k for k in view.join_keys if k not in names)
        names.update(keys)
        take = view.feature_names if wanted is None else tuple(wanted)
        for feature in take:
            view.feature(feature)  # NotFoundError names the view's features
        outputs = tuple(f"{view.name}__{f}" if full_names else f for f in take)
        for out in outputs:
            if out in names:
                raise ValidationError(
                    f"the feature column {out!r} appears twice in the result",
                    hint="pass full_names=True",
                )
            names.add(out)
        parts.append(
            Part(
                view=view,
                wanted=None if wanted is None else take,
                join_keys=view.join_keys,
                keys=keys,
                take=take,
                outputs=outputs,
            )
        )
    return tuple(parts)


def run(
    parts: Sequence[Part], online: OnlineStore, keys: pa.Table, *, at: datetime | None
) -> pa.Table:
    """Read every part from ``online`` and assemble one table, in key order.

    A value older than its view's TTL at ``at`` is null; when ``at`` was not given
    (now) and some are, a warning on the ``conveyor.features`` logger says how many.
    """
    import pyarrow as pa

    tables = []
    when = None
    for part in parts:
        absent = [k for k in part.join_keys if k not in keys.column_names]
        if absent:
            raise _lacks(absent[0], part)
        got = online.read(part.view, keys, part.wanted)
        table = got.select([*part.keys, *part.take])  # one call: the common, fast path
        if part.view.ttl is not None:
            if when is None:
                from conveyor.features.pit import to_utc

                when = to_utc(at) if at is not None else datetime.now(UTC)
            table = _expire(part, got.column(ONLINE_EVENT_TS), table, when, defaulted=at is None)
        if part.outputs != part.take:
            table = table.rename_columns([*part.keys, *part.outputs])
        tables.append(table)
    if len(tables) == 1:
        return tables[0]
    return pa.Table.from_arrays(
        [c for t in tables for c in t.columns], names=[n for t in tables for n in t.column_names]
    )


def run_rows(
    parts: Sequence[Part],
    online: OnlineStore,
    keys: Sequence[Mapping[str, Any]],
    *,
    at: datetime | None,
) -> list[dict[str, Any]]:
    """What ``run`` returns, as one dict per key: no Arrow, for serving's few keys."""
    if not keys:
        raise ValidationError("no entity keys were given", hint="pass at least one key")
    out: list[dict[str, Any]] = [{} for _ in keys]
    when = None
    for part in parts:
        try:
            tuples = [tuple([key[k] for k in part.join_keys]) for key in keys]
        except KeyError as e:
            raise _lacks(e.args[0], part) from None
        except TypeError:
            raise ValidationError(
                "an entity key is not a mapping of join key -> value",
                hint='pass keys as dicts, e.g. [{"customer_id": 7}]',
            ) from None
        got = online.read_rows(part.view, tuples, part.wanted)
        oldest = None
        if part.view.ttl is not None:
            if when is None:
                from conveyor.features.pit import to_utc

                when = to_utc(at) if at is not None else datetime.now(UTC)
            oldest = when - part.view.ttl
        at_ts, empty, expired = len(part.join_keys), (None,) * len(part.take), 0
        for key, row, dest in zip(keys, got, out, strict=True):
            for k in part.keys:
                dest[k] = key[k]
            event = row[at_ts]
            if oldest is not None and event is not None and event < oldest:
                expired += 1
                dest.update(zip(part.outputs, empty, strict=True))
            else:
                dest.update(zip(part.outputs, row[at_ts + 1 :], strict=True))
        if expired and at is None:
            _warn_expired(part.view, expired, len(keys))
    return out


def _lacks(key: str, part: Part) -> ValidationError:
    return ValidationError(
        f"the entity keys lack {key!r}, a join key of feature view {part.view.name!r}",
        hint="pass every join key of every view",
    )


def _warn_expired(view: FeatureView, expired: int, rows: int) -> None:
    log.warning(
        "%d of %d row(s) of feature view %r are older than its TTL (%s) now; "
        "their features are null. Materialize newer data, or pass at= to look "
        "them up as of an earlier time",
        expired,
        rows,
        view.name,
        view.ttl,
    )


def _expire(
    part: Part, event_ts: Any, table: pa.Table, at: datetime, *, defaulted: bool
) -> pa.Table:
    """``table`` with the features of rows older than the view's TTL at ``at`` nulled."""
    import pyarrow as pa
    import pyarrow.compute as pc

    view = part.view
    assert view.ttl is not None
    oldest = at - view.ttl
    first = pc.min(event_ts).as_py()
    if first is None or first >= oldest:
        return table  # the common case: nothing expired, nothing to mask
    fresh = pc.fill_null(pc.greater_equal(event_ts, pa.scalar(oldest, event_ts.type)), False)
    if defaulted:
        expired = len(event_ts) - event_ts.null_count - pc.sum(fresh).as_py()
        _warn_expired(view, expired, len(event_ts))
    for name in part.take:
        i = table.column_names.index(name)
        column = table.column(i)
        table = table.set_column(
            i, name, pc.if_else(fresh, column, pa.nulls(len(column), column.type))
        )
    return table
