"""The parity check: do online values equal the offline point-in-time values?

For a sample of entity keys (half drawn from the offline data, half from the
online store, reproducibly from ``seed``), the offline store is asked for the
point-in-time value at an instant ``at`` (default: the online store's watermark)
and the online store for its stored value, with the view's TTL applied at ``at``
on both sides.  Any difference (a value, a null on one side only, a key missing
online) is training-serving skew and is reported per key and feature.

It cannot pass vacuously: a value missing on both sides is not agreement (it is
counted apart, as ``both_missing``), and a check that compared no value at all
is not ``ok``.  At an ``at`` before the watermark, keys whose online value is
newer than ``at`` cannot be compared (the online store keeps only the latest
value) and are counted as ``newer_online``; ``at`` after the watermark is refused.
"""

from __future__ import annotations

import math
import random
from datetime import datetime
from typing import TYPE_CHECKING, Any

from attrs import field, frozen

from conveyor.convert import to_tuple
from conveyor.errors import NotFoundError

if TYPE_CHECKING:
    from conveyor.features.definitions import FeatureView
    from conveyor.interfaces.features import FeatureStore


@frozen(kw_only=True)
class Mismatch:
    """One feature of one key whose online and offline values differ."""

    key: dict[str, Any]
    feature: str
    online: Any
    offline: Any


@frozen(kw_only=True)
class ParityReport:
    """The outcome of a parity check.

    Attributes:
        view: the feature view.
        at: the instant compared.
        sampled: keys sampled.
        rows: keys actually compared (at least one side has a value).
        compared: values compared (a value on at least one side).
        both_missing: values missing on both sides (not counted as agreement).
        newer_online: sampled keys whose online value is newer than ``at``.
        mismatches: every difference found.
    """

    view: str
    at: datetime
    sampled: int
    compared: int
    mismatches: tuple[Mismatch, ...] = field(converter=to_tuple)
    rows: int = 0
    both_missing: int = 0
    newer_online: int = 0

    @property
    def ok(self) -> bool:
        """Something was compared and nothing differed."""
        return self.compared > 0 and not self.mismatches

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (values as strings where JSON has no type for them)."""

        def plain(value: Any) -> Any:
            if isinstance(value, float) and not math.isfinite(value):
                return str(value)
            return value if isinstance(value, int | float | str | bool | None) else str(value)

        return {
            "view": self.view,
            "at": self.at.isoformat(),
            "sampled": self.sampled,
            "rows": self.rows,
            "compared": self.compared,
            "both_missing": self.both_missing,
            "newer_online": self.newer_online,
            "ok": self.ok,
            "mismatches": [
                {
                    "key": {k: plain(v) for k, v in m.key.items()},
                    "feature": m.feature,
                    "online": plain(m.online),
                    "offline": plain(m.offline),
                }
                for m in self.mismatches
            ],
        }


def same(a: Any, b: Any) -> bool:
    """Equality where null == null and NaN == NaN."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def check_parity(
    store: FeatureStore,
    view: str | FeatureView,
    *,
    sample: int = 100,
    seed: int = 0,
    at: datetime | None = None,
) -> ParityReport:
    """Compare online with offline point-in-time values at ``at`` for ``sample`` keys."""
    import polars as pl

    from conveyor.errors import ValidationError
    from conveyor.features.definitions import INGESTED_AT
    from conveyor.features.pit import polars_dtype, to_utc, utc_timestamp
    from conveyor.interfaces.features import ONLINE_EVENT_TS

    v = store.get_view(view) if isinstance(view, str) else view
    state = store.online.get_state(v.name)
    if state is None or state.watermark is None:
        raise NotFoundError(
            f"feature view {v.name!r} has not been materialized",
            hint=f"run: conveyor features materialize {v.name}",
        )
    at = state.watermark if at is None else to_utc(at)
    if at > state.watermark:
        raise ValidationError(
            f"parity at {at} is after the online store's watermark ({state.watermark}) "
            f"of feature view {v.name!r}: the online store cannot hold those values yet",
            hint=f"materialize to that time first (conveyor features materialize {v.name} "
            "--end TIME), or compare at or before the watermark",
        )
    keys = list(v.join_keys)
    offline_rows = store.read_view(v)
    schema = offline_rows.collect_schema()
    event = v.timestamp_field or INGESTED_AT
    offline_keys = (
        offline_rows.filter(utc_timestamp(pl.col(event), schema[event]) <= pl.lit(at))
        .select(keys)
        .unique()
        .sort(keys)
        .collect()
        .rows()
    )
    rng = random.Random(seed)
    picked = rng.sample(offline_keys, min(len(offline_keys), sample - sample // 2))
    online_keys = pl.DataFrame(store.online.sample_keys(v, sample, seed=seed)).rows()
    for key in online_keys:
        if len(picked) >= sample:
            break
        if key not in picked:
            picked.append(key)
    if not picked:
        return ParityReport(view=v.name, at=at, sampled=0, compared=0, mismatches=())
    frame = pl.DataFrame(
        picked, schema={k: polars_dtype(t) for k, t in v.key_types.items()}, orient="row"
    )
    offline = store.get_historical_features(
        frame.with_columns(pl.lit(at).alias("__at")), [v], timestamp="__at"
    ).collect()
    online = pl.DataFrame(store.get_online_features([v], frame, at=at))
    stamps = pl.DataFrame(store.online.read(v, frame.to_arrow(), []))[ONLINE_EVENT_TS]
    mismatches = []
    compared = both_missing = rows = newer = 0
    for i, key in enumerate(picked):
        stamp = stamps[i]
        if stamp is not None and to_utc(stamp) > at:
            newer += 1  # the value online came later than ``at``: nothing to compare
            continue
        seen = False
        for feature in v.feature_names:
            a, b = online[feature][i], offline[feature][i]
            if _missing(a) and _missing(b):
                both_missing += 1
                continue
            seen = True
            compared += 1
            if not same(a, b):
                mismatches.append(
                    Mismatch(
                        key=dict(zip(keys, key, strict=True)), feature=feature, online=a, offline=b
                    )
                )
        rows += seen
    return ParityReport(
        view=v.name,
        at=at,
        sampled=len(picked),
        compared=compared,
        mismatches=mismatches,
        rows=rows,
        both_missing=both_missing,
        newer_online=newer,
    )


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
