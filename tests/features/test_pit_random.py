"""The point-in-time join against a brute-force reference, over thousands of random cases.

Each case is a tiny world (a few keys, a few feature rows with clashing event and
created times, entity rows before, on and after them, unknown and null keys, TTL
edges).  Thousands of cases are packed into one query by making the case number a
second join key, one view per TTL value (so one call also exercises several views).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from conveyor.features import Entity, Feature, FeatureView
from conveyor.features.pit import ViewQuery, point_in_time_join

T0 = datetime(2024, 1, 1, tzinfo=UTC)
TTLS = (None, 1, 2, 3, 5)  # minutes


def minute(n: int | None) -> datetime | None:
    return None if n is None else T0 + timedelta(minutes=n)


def make_world(rng: random.Random, cases: int, *, with_created: bool):
    """Feature rows per TTL view, entity rows, all keyed by (case, key)."""
    views: dict[int | None, list[dict]] = {ttl: [] for ttl in TTLS}
    entities: list[dict] = []
    for case in range(cases):
        ttl = rng.choice(TTLS)
        keys = rng.randint(1, 3)
        rows = views[ttl]
        for _ in range(rng.randint(0, 12)):
            rows.append(
                {
                    "case": case,
                    "k": rng.randrange(keys),
                    "event_timestamp": rng.randint(0, 10),
                    "created": rng.randint(0, 4) if with_created else None,
                    "_ingested_at": rng.randint(0, 20),
                    "x": rng.randint(-50, 50),
                    "y": rng.random() if rng.random() < 0.9 else None,
                }
            )
        for _ in range(rng.randint(0, 8)):
            entities.append(
                {
                    "case": case,
                    "ttl": ttl,
                    "k": None if rng.random() < 0.05 else rng.randrange(keys + 1),
                    "event_timestamp": None if rng.random() < 0.03 else rng.randint(-1, 12),
                }
            )
    rng.shuffle(entities)
    return views, entities


def reference(rows: dict, ent: dict, ttl: int | None, as_of: int | None):
    """The rule, written as plainly as possible (``rows``: (case, key) -> [(order, row)])."""
    if ent["k"] is None or ent["event_timestamp"] is None:
        return None
    t = ent["event_timestamp"]
    best = None
    for order, r in rows.get((ent["case"], ent["k"]), ()):
        e = r["event_timestamp"]
        if e > t or (ttl is not None and t - e > ttl):
            continue
        if as_of is not None and (
            r["_ingested_at"] > as_of or (r["created"] is not None and r["created"] > as_of)
        ):
            continue
        rank = (e, -1 if r["created"] is None else r["created"], order)
        if best is None or rank > best[0]:
            best = (rank, r)
    return None if best is None else best[1]


def frame(rows: list[dict], with_created: bool) -> pl.DataFrame:
    df = pl.DataFrame(
        rows,
        schema={
            "case": pl.Int64,
            "k": pl.Int64,
            "event_timestamp": pl.Int64,
            "created": pl.Int64,
            "_ingested_at": pl.Int64,
            "x": pl.Int64,
            "y": pl.Float64,
        },
    )
    df = df.with_columns(
        [
            (pl.lit(T0) + pl.duration(minutes=pl.col(c))).alias(c)
            for c in ("event_timestamp", "created", "_ingested_at")
        ]
    )
    return df if with_created else df.drop("created")


@pytest.mark.parametrize("with_created", [False, True])
@pytest.mark.parametrize("as_of", [None, 3, 9])
def test_random_cases_match_reference(with_created: bool, as_of: int | None) -> None:
    rng = random.Random(f"{with_created}-{as_of}")
    cases = 1500
    views_rows, entities = make_world(rng, cases, with_created=with_created)
    entity = Entity(name="thing", join_keys=("case", "k"))
    queries = []
    for n, ttl in enumerate(TTLS):
        view = FeatureView(
            name=f"v{n}",
            entities=[entity],
            features=[Feature(name="x", dtype="int64"), Feature(name="y")],
            created_timestamp_field="created" if with_created else None,
            ttl=None if ttl is None else timedelta(minutes=ttl),
        )
        queries.append(
            ViewQuery(
                view=view,
                data=frame(views_rows[ttl], with_created).lazy(),
                features=("x", "y"),
                names=(f"x{n}", f"y{n}"),
            )
        )
    ent_df = pl.DataFrame(
        [{k: v for k, v in e.items() if k != "ttl"} for e in entities],
        schema={"case": pl.Int64, "k": pl.Int64, "event_timestamp": pl.Int64},
    ).with_columns(
        (
            pl.lit(T0).dt.replace_time_zone(None) + pl.duration(minutes=pl.col("event_timestamp"))
        ).alias("event_timestamp")
    )
    out = point_in_time_join(ent_df, queries, as_of=minute(as_of)).collect()

    assert out.height == len(entities)  # every entity row kept
    assert out.select("case", "k").rows() == [(e["case"], e["k"]) for e in entities]
    by_key: dict[int | None, dict] = {}
    for ttl, rows in views_rows.items():
        index: dict = by_key.setdefault(ttl, {})
        for order, r in enumerate(rows):
            index.setdefault((r["case"], r["k"]), []).append((order, r))
    mismatches = []
    checked = 0
    for i, ent in enumerate(entities):
        for n, ttl in enumerate(TTLS):
            expected = reference(by_key[ttl], ent, ttl, as_of)
            got = (out[f"x{n}"][i], out[f"y{n}"][i])
            want = (None, None) if expected is None else (expected["x"], expected["y"])
            checked += 1
            if got != want:
                mismatches.append((ent, ttl, got, want))
    assert checked > 20_000
    assert mismatches == []


def test_single_key_and_input_types() -> None:
    """One integer key, naive entity times vs aware feature times, a Date entity column."""
    entity = Entity(name="c", join_keys="cid")
    view = FeatureView(
        name="v", entities=[entity], features=[Feature(name="x")], ttl=timedelta(days=1)
    )
    data = pl.DataFrame(
        {
            "cid": [1, 1, 2],
            "event_timestamp": [
                datetime(2024, 1, 1, 12),
                datetime(2024, 1, 2),
                datetime(2024, 1, 2),
            ],
            "x": [1.0, 2.0, 3.0],
        }
    ).with_columns(pl.col("event_timestamp").dt.replace_time_zone("Europe/Paris"))
    ents = pl.DataFrame(
        {
            "cid": [1, 1, 2, 9],
            "day": [
                datetime(2024, 1, 2).date(),
                datetime(2024, 1, 1).date(),
                datetime(2024, 1, 2).date(),
                datetime(2024, 1, 3).date(),
            ],
        }
    )
    out = point_in_time_join(
        ents, [ViewQuery(view=view, data=data.lazy(), features=["x"])], timestamp="day"
    ).collect()
    # 2024-01-02 00:00 Paris == 2024-01-01 23:00 UTC <= 2024-01-02 00:00 UTC
    assert out["x"].to_list() == [2.0, None, 3.0, None]
    assert out.columns == ["cid", "day", "x"]


@pytest.mark.parametrize("key_dtype", [pl.Int64, pl.UInt32, pl.Int16])
@pytest.mark.parametrize("as_of", [None, 9])
def test_random_cases_with_one_integer_key_match_reference(key_dtype, as_of) -> None:
    """The engine packs a single integer key and the time stamp into one sort key:
    the same random cases, keyed by one column, must give the same answers."""
    rng = random.Random(f"single-{key_dtype}-{as_of}")
    views_rows, entities = make_world(rng, 1500, with_created=False)
    entity = Entity(name="thing", join_keys="ck", dtype=str(key_dtype).lower())

    def packed(df: pl.DataFrame) -> pl.DataFrame:
        return df.with_columns((pl.col("case") * 4 + pl.col("k")).cast(key_dtype).alias("ck")).drop(
            "case", "k"
        )

    queries = []
    for n, ttl in enumerate(TTLS):
        view = FeatureView(
            name=f"v{n}",
            entities=[entity],
            features=[Feature(name="x", dtype="int64"), Feature(name="y")],
            ttl=None if ttl is None else timedelta(minutes=ttl),
        )
        queries.append(
            ViewQuery(
                view=view,
                data=packed(frame(views_rows[ttl], False)).lazy(),
                features=("x", "y"),
                names=(f"x{n}", f"y{n}"),
            )
        )
    ent_df = packed(
        pl.DataFrame(
            [{k: v for k, v in e.items() if k != "ttl"} for e in entities],
            schema={"case": pl.Int64, "k": pl.Int64, "event_timestamp": pl.Int64},
        ).with_columns(
            (
                pl.lit(T0).dt.replace_time_zone(None)
                + pl.duration(minutes=pl.col("event_timestamp"))
            ).alias("event_timestamp")
        )
    )
    out = point_in_time_join(ent_df, queries, as_of=minute(as_of)).collect()

    assert out.height == len(entities)
    by_key: dict[int | None, dict] = {}
    for ttl, rows in views_rows.items():
        index: dict = by_key.setdefault(ttl, {})
        for order, r in enumerate(rows):
            index.setdefault((r["case"], r["k"]), []).append((order, r))
    mismatches = []
    for i, ent in enumerate(entities):
        for n, ttl in enumerate(TTLS):
            expected = reference(by_key[ttl], ent, ttl, as_of)
            got = (out[f"x{n}"][i], out[f"y{n}"][i])
            want = (None, None) if expected is None else (expected["x"], expected["y"])
            if got != want:
                mismatches.append((ent, ttl, got, want))
    assert mismatches == []
