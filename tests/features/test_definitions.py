"""Definitions: validation with actionable errors, specs that round-trip."""

from __future__ import annotations

from datetime import timedelta

import pytest

from conveyor.errors import NotFoundError, ValidationError
from conveyor.features import Entity, Feature, FeatureRef, FeatureView, parse_refs

CUSTOMER = Entity(name="customer", join_keys="customer_id")


def test_spec_round_trip_and_equality() -> None:
    view = FeatureView(
        name="v",
        entities=[
            CUSTOMER,
            Entity(name="shop", join_keys=("country", "shop_id"), dtype=("string", "int32")),
        ],
        features=["a", ("b", "int8")],
        created_timestamp_field="created",
        ttl=3600,
        source="s3://x",
        tags={"team": "ds"},
    )
    assert FeatureView.from_spec(view.to_spec()) == view
    assert view.join_keys == ("customer_id", "country", "shop_id")
    assert view.ttl == timedelta(hours=1)
    assert view.schema()["shop_id"] == "int32"
    with pytest.raises(NotFoundError, match="its features: a, b"):
        view.feature("c")


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Feature(name="x", dtype="float"), "unknown type 'float'"),
        (lambda: Feature(name="bad name"), "not a valid name"),
        (lambda: Feature(name="__x"), "reserved"),
        (
            lambda: Entity(name="e", join_keys=("a", "b"), dtype=("int64", "int64", "int64")),
            "2 join keys but 3 types",
        ),
        (lambda: FeatureView(name="v", entities=[CUSTOMER], features=[]), "has no features"),
        (lambda: FeatureView(name="v", entities=[CUSTOMER], features=["x"], ttl=0), "TTL <= 0"),
        (
            lambda: FeatureView(name="v", entities=[CUSTOMER], features=["customer_id"]),
            "uses the column 'customer_id' twice",
        ),
    ],
)
def test_invalid_definitions_say_what_to_do(build, message) -> None:
    with pytest.raises(ValidationError, match=message) as info:
        build()
    assert info.value.hint


def test_feature_references() -> None:
    assert FeatureRef.parse("v:x") == FeatureRef("v", "x")
    assert parse_refs(["v:x", "w:*", "v:y", "v:x"]) == {"v": ["x", "y"], "w": None}
    for bad in ("v", ":x", "v:", 3):
        with pytest.raises(ValidationError, match="view:feature"):
            FeatureRef.parse(bad)
