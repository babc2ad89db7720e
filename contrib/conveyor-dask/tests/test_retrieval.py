"""The point-in-time training set built slice by slice on the workers equals the single join."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from conveyor.features import Entity, Feature, FeatureView
from conveyor.ml.data import generate


@pytest.fixture
def client(scheduler):
    from distributed import Client

    with Client(scheduler, timeout="20s", set_as_default=False) as client:
        yield client


@pytest.fixture
def store(conveyor_app):
    customer = Entity(name="customer", join_keys="entity_id", dtype="int64")
    view = FeatureView(
        name="activity",
        entities=[customer],
        timestamp_field="event_timestamp",
        features=[Feature(name=f"f{i:02d}", dtype="float64") for i in range(5)]
        + [Feature(name="region", dtype="string")],
        ttl=timedelta(days=5),
    )
    store = conveyor_app.features
    store.apply([customer, view])
    columns = ["entity_id", "event_timestamp", *[f"f{i:02d}" for i in range(5)], "region"]
    for seed in (0, 1):  # two batches: later rows of the same keys and times win
        store.ingest("activity", generate(3000, days=20, entities=400, seed=seed).select(columns))
    return store


def entity_frame(rows: int) -> pl.DataFrame:
    """Label events at times the view rows do not hit exactly, some keys unknown."""
    events = generate(rows, days=24, entities=450, seed=9, start=datetime(2024, 1, 2))
    return events.select(
        "entity_id",
        (pl.col("event_timestamp") + pl.duration(minutes=7)).alias("event_timestamp"),
        "label",
    )


@pytest.mark.parametrize("partitions", [1, 3])
def test_the_sliced_join_equals_the_single_join_row_for_row(
    client, conveyor_app, store, partitions
):
    from conveyor_dask.retrieval import historical_features

    entities = entity_frame(2500)
    single = store.get_historical_features(entities, ["activity:*"]).collect()
    sliced = historical_features(
        client, conveyor_app, entities, ["activity:*"], partitions=partitions
    )
    assert single.height == entities.height
    assert single["f00"].null_count() not in (0, single.height), "the data tests nothing"
    assert_frame_equal(sliced, single)
    assert not list(conveyor_app.artifacts.list("scratch/")), "the parts were left behind"


def test_as_of_and_full_names_reach_the_workers(client, conveyor_app, store):
    from conveyor_dask.retrieval import historical_features

    entities = entity_frame(800)
    as_of = datetime.now() + timedelta(days=1)
    single = store.get_historical_features(
        entities, ["activity:f01", "activity:region"], as_of=as_of, full_names=True
    ).collect()
    sliced = historical_features(
        client,
        conveyor_app,
        entities,
        ["activity:f01", "activity:region"],
        as_of=as_of,
        full_names=True,
        partitions=2,
    )
    assert "activity__f01" in sliced.columns
    assert_frame_equal(sliced, single)
