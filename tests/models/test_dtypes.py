"""The one dtype vocabulary: polars and Arrow mappings, legacy spellings, and the same
name for a column in a feature view and in the signature of a model trained on it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pyarrow as pa
import pytest

from conveyor.errors import ValidationError
from conveyor.features import DTYPES as FEATURE_DTYPES
from conveyor.features import Entity, Feature, FeatureView
from conveyor.ml.train import TrainConfig, train
from conveyor.models.dtypes import (
    DTYPES,
    from_arrow,
    from_polars,
    normalize,
    to_arrow,
    to_polars,
)


@pytest.mark.parametrize("name", DTYPES)
def test_every_name_round_trips_through_polars_and_arrow(name):
    assert from_polars(to_polars(name)) == name
    assert from_arrow(to_arrow(name)) == name
    # a real column of that type maps back to the same name
    series = pl.Series("x", [], dtype=to_polars(name))
    assert from_polars(series.dtype) == name
    assert from_arrow(series.to_arrow().type) == name


def test_other_library_types_map_to_the_vocabulary_or_to_none():
    assert from_polars(pl.Enum(["b", "a"])) == "category"
    assert from_polars(pl.Datetime("ns")) == "datetime"
    assert from_polars(pl.Utf8) == "string"
    assert from_polars(pl.Decimal(10, 2)) is None
    assert from_polars(pl.List(pl.Int64)) is None
    assert from_arrow(pa.string()) == "string"
    assert from_arrow(pa.dictionary(pa.int8(), pa.string())) == "category"
    assert from_arrow(pa.timestamp("ns")) == "datetime"
    assert from_arrow(pa.date64()) == "date"
    assert from_arrow(pa.float16()) is None
    assert from_arrow(pa.list_(pa.int64())) is None


@pytest.mark.parametrize(
    ("stored", "name"),
    [
        ("Float64", "float64"),
        ("Float32", "float32"),
        ("Int64", "int64"),
        ("UInt8", "uint8"),
        ("String", "string"),
        ("Utf8", "string"),
        ("Categorical", "category"),
        ("Categorical(ordering='physical')", "category"),
        ("Enum(categories=['a'])", "category"),
        ("Boolean", "bool"),
        ("Date", "date"),
        ("Datetime(time_unit='us', time_zone='UTC')", "datetime"),
        ("float64", "float64"),
        ("category", "category"),
    ],
)
def test_legacy_spellings_normalize(stored, name):
    assert normalize(stored) == name
    assert normalize(str(to_polars(name))) == name  # today's polars repr too


def test_an_unknown_type_is_refused_with_the_vocabulary():
    with pytest.raises(ValidationError, match="unknown type 'Decimal'") as info:
        normalize("Decimal", what="feature 'x'")
    assert "float64" in info.value.hint
    with pytest.raises(ValidationError):
        to_polars("Float64")  # conversions take vocabulary names only


def test_feature_definitions_use_the_same_vocabulary():
    assert set(FEATURE_DTYPES) == set(DTYPES) - {"category"}
    with pytest.raises(ValidationError, match="unknown type 'Float64'"):
        Feature(name="x", dtype="Float64")


def test_a_feature_views_dtype_is_the_trained_signatures_dtype(conveyor_app):
    customer = Entity(name="customer", join_keys="customer_id")
    features = [
        Feature(name="spend", dtype="float64"),
        Feature(name="visits", dtype="int32"),
        Feature(name="small", dtype="float32"),
        Feature(name="member", dtype="bool"),
        Feature(name="plan", dtype="string"),
    ]
    view = FeatureView(name="stats", entities=[customer], features=features, ttl=timedelta(days=30))
    store = conveyor_app.features
    store.apply([customer, view])
    n = 600
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    times = [t0 + timedelta(minutes=i) for i in range(n)]
    rows = pl.DataFrame(
        {
            "customer_id": list(range(n)),
            "event_timestamp": times,
            "spend": [float(i % 37) for i in range(n)],
            "visits": [i % 11 for i in range(n)],
            "small": [float(i % 5) / 2 for i in range(n)],
            "member": [i % 3 == 0 for i in range(n)],
            "plan": [("basic", "pro", "team")[i % 3] for i in range(n)],
        }
    )
    store.ingest("stats", rows)
    events = pl.DataFrame(
        {
            "customer_id": list(range(n)),
            "event_timestamp": [t + timedelta(seconds=1) for t in times],
            "label": [int((i % 37) > 18) for i in range(n)],
        }
    )
    frame = store.get_historical_features(
        events, [f"stats:{f.name}" for f in features], timestamp="event_timestamp"
    ).collect()
    model = train(
        frame.head(450),
        frame.tail(150),
        TrainConfig(
            exclude=("customer_id",),
            num_boost_round=5,
            early_stopping_rounds=0,
            num_threads=2,
            min_data_in_leaf=5,
        ),
    )
    trained = {f.name: f.dtype for f in model.signature.features}
    assert trained == {f.name: f.dtype for f in view.features}
    assert model.signature.feature("plan").categories == ("basic", "pro", "team")
