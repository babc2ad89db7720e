"""A synthetic project shaped like an airline one: flights (the label events), hourly
weather per origin airport, daily statistics per carrier and static aircraft
attributes per tail number, one file per source and month."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

FEATURES = """
from datetime import timedelta

from conveyor.features import Entity, Feature, FeatureView

airport = Entity(name="airport", join_keys="origin", dtype="string")
carrier = Entity(name="carrier", join_keys="carrier", dtype="string")
aircraft = Entity(name="aircraft", join_keys="tail", dtype="string")

weather = FeatureView(name="weather", entities=[airport], timestamp_field="obs_time",
                      features=[Feature(name="temp"), Feature(name="precip")],
                      ttl=timedelta(hours=3))
carrier_stats = FeatureView(name="carrier_stats", entities=[carrier],
                            timestamp_field="day",
                            features=[Feature(name="delay_rate"),
                                      Feature(name="flights", dtype="int64")],
                            ttl=timedelta(days=2))
aircraft_info = FeatureView(name="aircraft_info", entities=[aircraft], timestamp_field=None,
                            features=[Feature(name="seats", dtype="int64"),
                                      Feature(name="model", dtype="string")])
"""

PIPELINE = """
from conveyor.pipeline import files, pipeline
from conveyor.training import (build_training_set, ingest_features, load_data,
                               materialize_features, split_data, train_model)

FEATURES = ["weather:*", "carrier_stats:*", "aircraft_info:*"]


@pipeline
def flights(end: str = "2024-04-01"):
    events = load_data(files("data/flights-*.parquet"))
    ingested = None
    for source, view in (("weather", "weather"), ("carriers", "carrier_stats"),
                         ("aircraft", "aircraft_info")):
        ingested = ingest_features(load_data(files(f"data/{source}-*.parquet")), ingested,
                                   view=view)
        materialize_features(ingested, end=end)
    dataset = build_training_set(events, ingested, features=FEATURES, label="late",
                                 timestamp="sched_dep", keep=["flight_id"])
    train_part, validation_part, holdout = split_data(
        dataset, timestamp="sched_dep", fractions=[0.6, 0.2, 0.2])
    train_model(train_part, validation_part, features=FEATURES, params={
        "label": "late", "key": ["flight_id"], "num_boost_round": 10,
        "early_stopping_rounds": 0})
"""

# the same training set, judged, registered and promoted (the scaffold's tail)
REGISTERED = """
from conveyor.pipeline import files, model_alias, model_state, pipeline
from conveyor.training import (build_training_set, evaluate_candidate, gate,
                               ingest_features, load_data, promote, register_model,
                               split_data, train_model, validate_data)

FEATURES = ["weather:*", "carrier_stats:delay_rate", "aircraft_info:*"]


@pipeline
def registered(model: str = "late", rule: dict | None = None):
    events = load_data(files("data/flights-*.parquet"))
    current = model_alias(model, "production")
    profile = validate_data(events, current, label="late",
                            checks={"ignore": ["flight_id", "sched_dep"]})
    ingested = None
    for source, view in (("weather", "weather"), ("carriers", "carrier_stats"),
                         ("aircraft", "aircraft_info")):
        ingested = ingest_features(load_data(files(f"data/{source}-*.parquet")), ingested,
                                   view=view)
    dataset = build_training_set(events, ingested, features=FEATURES, label="late",
                                 timestamp="sched_dep", keep=["flight_id"])
    train_part, validation_part, holdout = split_data(
        dataset, timestamp="sched_dep", fractions=[0.6, 0.2, 0.2])
    candidate = train_model(train_part, validation_part, features=FEATURES, params={
        "label": "late", "key": ["flight_id"], "num_boost_round": 10,
        "early_stopping_rounds": 0})
    evaluation = evaluate_candidate(candidate, holdout)
    verdict = gate(candidate, holdout, current, model_name=model, rule=rule or {})
    version = register_model(candidate, verdict, evaluation, profile, train_part,
                             validation_part, holdout, model_name=model,
                             timestamp="sched_dep", features=FEATURES)
    promote(version, model_state(model))
"""

AIRPORTS = ["ATL", "ORD", "DFW", "DEN", "LAX", "SEA"]
CARRIERS = ["AA", "DL", "UA", "WN"]


def month_start(month: int) -> datetime:
    return datetime(2024, month, 1)


def write_month(root: Path, month: int, *, flights_per_month: int = 1500, seed: int = 0) -> None:
    """The four sources' files of one month (2024-``month``)."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed + month)
    start, end = month_start(month), month_start(month + 1)
    hours = int((end - start).total_seconds() // 3600)
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    # weather: hourly per airport, with gaps (hours missing: past TTL -> nulls)
    obs = [
        (a, start + timedelta(hours=h))
        for a in AIRPORTS
        for h in range(hours)
        if rng.random() > 0.15
    ]
    pl.DataFrame(
        {
            "origin": [o[0] for o in obs],
            "obs_time": [o[1] for o in obs],
            "temp": rng.normal(15, 8, len(obs)),
            "precip": [
                None if rng.random() < 0.05 else float(v) for v in rng.gamma(0.5, 1.0, len(obs))
            ],
        }
    ).write_parquet(data / f"weather-{month:02d}.parquet")
    days = (end - start).days
    pl.DataFrame(
        {
            "carrier": [c for c in CARRIERS for _ in range(days)],
            "day": [start + timedelta(days=d) for _ in CARRIERS for d in range(days)],
            "delay_rate": rng.random(len(CARRIERS) * days),
            "flights": rng.integers(100, 900, len(CARRIERS) * days),
        }
    ).write_parquet(data / f"carriers-{month:02d}.parquet")
    # aircraft: the first month lists most tails; later months add a few new ones
    tails = (
        [f"N{i:03d}" for i in range(60)]
        if month == 1
        else [f"N{100 + month * 10 + i:03d}" for i in range(5)]
    )
    pl.DataFrame(
        {
            "tail": tails,
            "seats": rng.integers(50, 300, len(tails)),
            "model": rng.choice(["A320", "B737", "E175"], len(tails)),
        }
    ).write_parquet(data / f"aircraft-{month:02d}.parquet")
    n = flights_per_month
    # scheduled on the hour, some before the weather starts or at unknown airports,
    # some tails without aircraft data: those rows must stay, with nulls
    sched = [start + timedelta(hours=int(h)) for h in rng.integers(0, hours, n)]
    flights = pl.DataFrame(
        {
            "flight_id": np.arange(n) + month * 100_000,
            "carrier": rng.choice([*CARRIERS, "ZZ"], n),
            "origin": rng.choice([*AIRPORTS, "XXX"], n),
            "tail": [f"N{i:03d}" for i in rng.integers(0, 80, n)],
            "sched_dep": sched,
        }
    )
    late = (rng.random(n) < 0.25).astype(np.int64)
    flights.with_columns(pl.Series("late", late)).write_parquet(
        data / f"flights-{month:02d}.parquet"
    )


def write_project(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "features.py").write_text(FEATURES)
    (root / "pipeline.py").write_text(PIPELINE)
    (root / "registered.py").write_text(REGISTERED)
    (root / "conveyor.toml").write_text(
        '[project]\nname = "flights"\n\n[pipelines.flights]\ntarget = "pipeline:flights"\n'
        '\n[pipelines.registered]\ntarget = "registered:registered"\n'
    )


DUCKDB_REFERENCE = """
SELECT f.flight_id, f.carrier, f.origin, f.tail, f.sched_dep, f.late,
       w.temp, w.precip, c.delay_rate, c.flights, a.seats, a.model
FROM flights f
ASOF LEFT JOIN weather w ON f.origin = w.origin AND f.sched_dep >= w.obs_time
ASOF LEFT JOIN carriers c ON f.carrier = c.carrier AND f.sched_dep >= c.day
LEFT JOIN aircraft a ON f.tail = a.tail
"""


def duckdb_reference(root: Path):
    """The training set by DuckDB ``ASOF JOIN`` (the TTLs applied after the join)."""
    import duckdb
    import polars as pl

    con = duckdb.connect()
    for name in ("flights", "weather", "carriers", "aircraft"):
        con.execute(
            f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{root / 'data'}/{name}-*.parquet')"
        )
    frame = con.sql(
        DUCKDB_REFERENCE.replace("w.temp, w.precip", "w.obs_time, w.temp, w.precip").replace(
            "c.delay_rate", "c.day, c.delay_rate"
        )
    ).to_arrow_table()
    frame = pl.from_arrow(frame)
    con.close()
    weather_ok = (pl.col("sched_dep") - pl.col("obs_time")) <= pl.duration(hours=3)
    carrier_ok = (pl.col("sched_dep") - pl.col("day")) <= pl.duration(days=2)
    return frame.with_columns(
        *[pl.when(weather_ok).then(pl.col(c)).alias(c) for c in ("temp", "precip")],
        *[pl.when(carrier_ok).then(pl.col(c)).alias(c) for c in ("delay_rate", "flights")],
    ).drop("obs_time", "day")
