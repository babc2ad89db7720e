"""A seeded synthetic, time-stamped tabular data set for examples, demos and tests.

Every seed samples from the same fixed "world" (feature scales, label weights,
category effects), so a model trained on one seed's data scores another seed's
data as well as its own.  :class:`Shift` injects what breaks models in
production: covariate shift in chosen features (the population moves), changed
category frequencies and unseen categories, and concept drift (the relation
between features and label changes), from a chosen day on.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from attrs import field, frozen, validators

from conveyor.convert import to_tuple
from conveyor.errors import ConveyorError

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

#: Column names of the generated table.
ENTITY = "entity_id"
TIMESTAMP = "event_timestamp"
LABEL = "label"
KEY = (ENTITY, TIMESTAMP)
NUMERIC_FEATURES = tuple(f"f{i:02d}" for i in range(20))
CATEGORIES: dict[str, tuple[str, ...]] = {
    "region": ("north", "south", "east", "west", "central"),
    "device": ("mobile", "desktop", "tablet"),
    "plan": ("free", "basic", "pro", "enterprise"),
}
CATEGORICAL_FEATURES = tuple(CATEGORIES)
FEATURES = NUMERIC_FEATURES + CATEGORICAL_FEATURES
#: The value a shifted categorical feature takes for its "unseen" share.
UNSEEN_CATEGORIES = {"region": "arctic", "device": "watch", "plan": "trial"}
#: Numeric features with missing values (at ``null_rate``).
NULLABLE_FEATURES = ("f03", "f07", "f15")

_WORLD_SEED = 20240101
_CATEGORY_FREQUENCIES = {
    "region": (0.30, 0.25, 0.20, 0.15, 0.10),
    "device": (0.55, 0.35, 0.10),
    "plan": (0.50, 0.25, 0.18, 0.07),
}


@frozen(kw_only=True)
class Shift:
    """A distribution shift and/or concept drift to inject into generated data.

    Attributes:
        features: features to shift.  A numeric feature's population mean moves
            by ``magnitude`` standard deviations (the label follows the moved
            values); a categorical feature's frequencies are reversed and an
            ``unseen_rate`` share of its rows takes a category never seen before.
        magnitude: size of the numeric mean shift, in standard deviations.
        unseen_rate: share of rows of each shifted categorical feature that gets
            the unseen category (see ``UNSEEN_CATEGORIES``).
        concept: concept drift, 0 to 1: 0 keeps the label function; 0.5 makes
            the label pure noise; 1 reverses every learned relation.
        start_day: the shift applies to rows on or after this day of the span.
    """

    features: tuple[str, ...] = field(default=(), converter=to_tuple)
    magnitude: float = 2.0
    unseen_rate: float = field(default=0.0, validator=[validators.ge(0.0), validators.le(1.0)])
    concept: float = field(default=0.0, validator=[validators.ge(0.0), validators.le(1.0)])
    start_day: int = field(default=0, validator=validators.ge(0))

    def __attrs_post_init__(self) -> None:
        unknown = [f for f in self.features if f not in FEATURES]
        if unknown:
            raise ConveyorError(
                f"cannot shift unknown feature(s) {', '.join(map(repr, unknown))}",
                hint=f"choose from {', '.join(FEATURES)}",
            )


@frozen
class _World:
    """The fixed parameters every seed samples from."""

    loc: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    effects: dict[str, np.ndarray]
    intercept: float


def _world() -> _World:
    import numpy as np

    rng = np.random.default_rng(_WORLD_SEED)
    n = len(NUMERIC_FEATURES)
    loc = np.round(rng.uniform(-50, 200, n), 1)
    scale = np.round(rng.uniform(0.5, 40, n), 2)
    weights = np.zeros(n)
    informative = rng.choice(n, 10, replace=False)
    weights[informative] = rng.choice([-1.0, 1.0], 10) * rng.uniform(0.3, 1.0, 10)
    effects = {col: np.round(rng.normal(0, 0.6, len(vals)), 2) for col, vals in CATEGORIES.items()}
    return _World(loc=loc, scale=scale, weights=weights, effects=effects, intercept=-1.0)


def generate(
    rows: int = 10_000,
    *,
    days: int = 28,
    entities: int | None = None,
    seed: int = 0,
    start: datetime = datetime(2024, 1, 1),
    shift: Shift | None = None,
    null_rate: float = 0.02,
) -> pl.DataFrame:
    """Generate ``rows`` time-stamped rows spanning ``days`` days, deterministic for ``seed``.

    Columns: ``entity_id`` (Int64), ``event_timestamp`` (Datetime[us], strictly
    increasing, so ``(entity_id, event_timestamp)`` is a unique key), 20 numeric
    features ``f00``..``f19`` (Float64; ``f03``, ``f07``, ``f15`` have nulls),
    categorical ``region``, ``device``, ``plan`` (String) and a binary ``label``
    (Int64) drawn from a logistic model of the features.
    """
    import numpy as np
    import polars as pl

    if rows < 0 or days < 1:
        raise ConveyorError(
            f"cannot generate {rows} rows over {days} days", hint="use rows >= 0 and days >= 1"
        )
    world = _world()
    rng = np.random.default_rng(seed)
    n_num = len(NUMERIC_FEATURES)
    entities = entities if entities is not None else max(1, rows // 10)

    # Strictly increasing microsecond time stamps: sorted draws plus their rank.
    span_us = days * 86_400_000_000
    offsets = np.sort(rng.integers(0, max(span_us - rows, 1), rows)) + np.arange(rows)
    day = offsets // 86_400_000_000
    shifted = (day >= shift.start_day) if shift is not None else np.zeros(rows, dtype=bool)

    latent = rng.standard_normal((rows, n_num))
    latent[:, 12:] = 0.6 * latent[:, :8] + 0.8 * latent[:, 12:]  # some correlated features
    if shift is not None:
        for name in shift.features:
            if name in NUMERIC_FEATURES:
                latent[shifted, NUMERIC_FEATURES.index(name)] += shift.magnitude

    codes: dict[str, np.ndarray] = {}
    for col, values in CATEGORIES.items():
        freq = np.asarray(_CATEGORY_FREQUENCIES[col])
        drawn = rng.choice(len(values), rows, p=freq)
        if shift is not None and col in shift.features:
            reversed_draw = rng.choice(len(values), rows, p=freq[::-1])
            drawn = np.where(shifted, reversed_draw, drawn)
            unseen = shifted & (rng.random(rows) < shift.unseen_rate)
            drawn = np.where(unseen, len(values), drawn)  # code len(values) = the unseen one
        codes[col] = drawn

    signal = latent @ world.weights
    signal += 0.8 * latent[:, 0] * latent[:, 1] + 1.0 * (latent[:, 2] > 0.5)
    for col, effect in world.effects.items():
        signal += np.append(effect, 0.0)[codes[col]]
    if shift is not None and shift.concept:
        signal = np.where(shifted, (1.0 - 2.0 * shift.concept) * signal, signal)
    probability = 1.0 / (1.0 + np.exp(-(world.intercept + signal)))
    label = (rng.random(rows) < probability).astype(np.int64)

    observed = latent * world.scale + world.loc
    missing = {name: rng.random(rows) < null_rate for name in NULLABLE_FEATURES}

    columns: dict[str, pl.Series] = {
        ENTITY: pl.Series(ENTITY, rng.integers(0, entities, rows), dtype=pl.Int64),
        TIMESTAMP: (
            pl.Series(TIMESTAMP, offsets, dtype=pl.Int64).cast(pl.Duration("us")) + start
        ).alias(TIMESTAMP),
    }
    for i, name in enumerate(NUMERIC_FEATURES):
        series = pl.Series(name, observed[:, i], dtype=pl.Float64)
        if name in missing:
            series = series.scatter(np.flatnonzero(missing[name]), None)
        columns[name] = series
    for col, values in CATEGORIES.items():
        mapping = {**dict(enumerate(values)), len(values): UNSEEN_CATEGORIES[col]}
        columns[col] = pl.Series(col, codes[col], dtype=pl.Int64).replace_strict(
            mapping, return_dtype=pl.String
        )
    columns[LABEL] = pl.Series(LABEL, label, dtype=pl.Int64)
    return pl.DataFrame(list(columns.values()))
