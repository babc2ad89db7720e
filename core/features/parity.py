"""The parity check: do online values equal the offline point-in-time values?

For a sample of entity keys (half drawn from the offline data, half from the
online store, reproducibly from ``seed``), the offline store is asked for the
point-in-time value at the online store's watermark and the online store for
its stored value, with the view's TTL applied at the same instant on both sides.
Any difference (a value, a null on one side only, a key missing online) is
training-serving skew and is reported per key and feature.
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
        at: the instant compared (the online store's watermark).
        sampled: keys compared.
        compared: values compared (keys x features).
        mismatches: every difference found.
    """

    view: str
    at: datetime
    sampled: int
    compared: int
    mismatches: tuple[Mismatch, ...] = field(converter=to_tuple)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (values as strings where JSON has no type for them)."""
        def plain(value: Any) -> Any:
            if isinstance(value, float) and not math.isfinite(value):
                return str(value)
            return value if isinstance(value, int | float | str | bool | None) else str(value)

        return {
            "view": self.view, "at": self.at.isoformat(), "sampled": self.sampled,
            "compared": self.compared, "ok": self.ok,
            "mismatches": [{"key": {k: plain(v) for k, v in m.key.items()},
                            "feature": m.feature, "online": plain(m.online),
                            "offline": plain(m.offline)} for m in self.mismatches],
        }


def same(a: Any, b: Any) -> bool:
    """Equality where null == null and NaN == NaN."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def check_parity(store: FeatureStore, view: str | FeatureView, *, sample: int = 100,
                 seed: int = 0) -> ParityReport:
    """Compare online with offline point-in-time values for ``sample`` keys."""
    import polars as pl

    v = store.get_view(view) if isinstance(view, str) else view
    state = store.online.get_state(v.name)
    if state is None or state.watermark is None:
        raise NotFoundError(f"feature view {v.name!r} has not been materialized",
                            hint=f"run: conveyor features materialize {v.name}")
    at = state.watermark
    keys = list(v.join_keys)
    from conveyor.features.pit import utc_timestamp

    offline_rows = store.read_view(v)
    schema = offline_rows.collect_schema()
    offline_keys = (offline_rows
                    .filter(utc_timestamp(pl.col(v.timestamp_field),
                                          schema[v.timestamp_field]) <= pl.lit(at))
                    .select(keys).unique().sort(keys).collect().rows())
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
    from conveyor.features.pit import polars_dtype

    frame = pl.DataFrame(picked, schema={k: polars_dtype(t) for k, t in v.key_types.items()},
                         orient="row")
    offline = store.get_historical_features(
        frame.with_columns(pl.lit(at).alias("__at")), [v], timestamp="__at").collect()
    online = pl.DataFrame(store.get_online_features([v], frame, at=at))
    mismatches = []
    for i, key in enumerate(picked):
        for feature in v.feature_names:
            a, b = online[feature][i], offline[feature][i]
            if not same(a, b):
                mismatches.append(Mismatch(key=dict(zip(keys, key, strict=True)),
                                           feature=feature, online=a, offline=b))
    return ParityReport(view=v.name, at=at, sampled=len(picked),
                        compared=len(picked) * len(v.feature_names), mismatches=mismatches)
