"""Requests by entity key: the server reads the model's features from the online store.

A real server on 127.0.0.1, a real SQLite online store filled by ``materialize``, and a
model registered with the feature views it trained on; ``tenure`` is a request-time
feature the client sends beside the key.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from .conftest import HTTP_MODEL, register_rich_model, send

VIEW = "customers"


def customers_view(*, extra_feature: bool = False) -> Any:
    from conveyor.features import Entity, Feature, FeatureView

    features = [
        Feature(name="age", dtype="float64"),
        Feature(name="plan", dtype="string"),
        Feature(name="visits", dtype="int64"),
    ]
    if extra_feature:
        features.append(Feature(name="score", dtype="float64"))
    return FeatureView(
        name=VIEW,
        entities=[Entity(name="customer", join_keys="customer_id", dtype="int64")],
        features=features,
        timestamp_field="ts",
        ttl=timedelta(days=30),
    )


def fill_online_store(app: Any, *, rows: int = 40) -> None:
    """Ingest one recent row per customer 1..rows (and an older one, superseded), then
    materialize: the online store holds the latest values."""
    import polars as pl

    app.features.apply([customers_view()])
    now = datetime.now(UTC).replace(microsecond=0)
    ids = list(range(1, rows + 1))
    frame = pl.DataFrame(
        {
            "customer_id": ids * 2,
            "ts": [now - timedelta(days=5)] * rows + [now - timedelta(hours=1)] * rows,
            "age": [-50.0] * rows + [(i % 7) * 0.5 - 1.5 for i in ids],
            "plan": ["basic"] * rows + [("basic", "pro", None)[i % 3] for i in ids],
            "visits": [0] * rows + [i % 20 for i in ids],
        }
    )
    app.features.ingest(VIEW, frame)
    app.features.materialize(VIEW)


def register_with_features(app: Any) -> Any:
    """The rich model (age, plan, visits, tenure) with lineage to the view's features."""
    from conveyor.interfaces.lineage import FeatureViewUse

    version = app.metadata.get_definition("feature_view", VIEW).version
    use = FeatureViewUse(view=VIEW, version=version, features=("age", "plan", "visits"))
    return register_rich_model(app, extra=True, features=[use])


@pytest.fixture
def entity_server(start_http: Any, conveyor_app: Any) -> Any:
    fill_online_store(conveyor_app)
    register_with_features(conveyor_app)
    return start_http()


def test_an_entity_request_predicts_from_the_online_features(entity_server, conveyor_app):
    from conveyor.predictions import scan_predictions

    online = conveyor_app.features.get_online_rows(
        [f"{VIEW}:age", f"{VIEW}:plan", f"{VIEW}:visits"],
        [{"customer_id": i} for i in (3, 4, 5)],
    )
    records = [
        {"age": row["age"], "plan": row["plan"], "visits": row["visits"], "tenure": t}
        for row, t in zip(online, (1.0, 2.0, None), strict=True)
    ]
    by_entity = {
        "entities": [
            {"customer_id": 3, "tenure": 1.0},
            {"customer_id": 4, "tenure": 2.0},
            {"customer_id": 5},
        ]
    }
    url = f"{entity_server.address}/predict"
    status, headers, body = send(url, "POST", by_entity, headers={"X-Request-Id": "ent"})
    assert status == 200, body
    assert (body["model"], body["version"]) == (HTTP_MODEL, 1)
    assert headers["x-conveyor-model-version"] == "1"
    assert send(url, "POST", {"records": records})[2]["predictions"] == body["predictions"]
    # the newest materialized values were read, not the superseded ones (age -50)
    assert [r["age"] for r in online] == [0.0, 0.5, 1.0]

    entity_server.stop(timeout=5)
    logged = scan_predictions(conveyor_app.artifacts, model=HTTP_MODEL).collect()
    mine = logged.filter(logged["request_id"] == "ent").sort("entity_key")
    assert mine["entity_key"].to_list() == ["3", "4", "5"]
    assert [f["age"] for f in mine["features"].to_list()] == [0.0, 0.5, 1.0]


def test_model_info_names_the_keys_an_entity_request_sends(entity_server):
    status, _, body = send(f"{entity_server.address}/model")
    assert status == 200
    assert body["entities"] == {
        "available": True,
        "keys": ["customer_id"],
        "features": [f"{VIEW}:age", f"{VIEW}:plan", f"{VIEW}:visits"],
    }


@pytest.mark.parametrize(
    ("entities", "status", "kind", "field", "says"),
    [
        ([{"customer_id": 999, "tenure": 1.0}], 404, "unknown_entity", "entities[0]", "999"),
        ([{"tenure": 1.0}], 422, "invalid_payload", "entities[0].customer_id", "join key"),
        ([{"customer_id": 1, "age": 3.0}], 422, "invalid_payload", "entities[0].age", "online"),
        ({"customer_id": 1}, 422, "invalid_payload", "entities", "list"),
        ([], 422, "invalid_payload", "entities", "list"),
        ([7], 422, "invalid_payload", "entities[0]", "object"),
        ([{"customer_id": "1"}], 422, "invalid_payload", "entities[0].customer_id", "int64"),
        ([{"customer_id": True}], 422, "invalid_payload", "entities[0].customer_id", "int64"),
    ],
)
def test_bad_entity_requests_are_refused_naming_the_field(
    entity_server, entities, status, kind, field, says
):
    got, _, body = send(f"{entity_server.address}/predict", "POST", {"entities": entities})
    assert (got, body["kind"]) == (status, kind), body
    assert field in body["fields"]
    assert says in body["error"] and body["hint"]


def test_a_missing_request_time_feature_is_refused_only_where_the_signature_says(
    entity_server,
):
    """``age`` is not nullable in the signature: a customer whose online age is missing
    is refused by the same check a records request gets; ``tenure`` may be absent."""
    import polars as pl

    app = entity_server.app
    now = datetime.now(UTC)
    app.features.ingest(
        VIEW,
        pl.DataFrame(
            {"customer_id": [100], "ts": [now], "age": [None], "plan": ["pro"], "visits": [1]},
            schema_overrides={"age": pl.Float64},
        ),
    )
    app.features.materialize(VIEW)
    got, _, body = send(
        f"{entity_server.address}/predict", "POST", {"entities": [{"customer_id": 100}]}
    )
    assert (got, body["kind"]) == (422, "signature_mismatch"), body
    assert "age" in body["fields"]


def test_a_model_without_feature_lineage_is_refused_by_entity(start_http):
    server = start_http()  # the rich model, registered without features
    got, _, body = send(f"{server.address}/predict", "POST", {"entities": [{"customer_id": 1}]})
    assert (got, body["kind"]) == (422, "invalid_payload")
    assert "without feature references" in body["error"]
    assert "records" in body["hint"]
    assert send(f"{server.address}/model")[2]["entities"]["available"] is False


def test_a_view_changed_since_training_is_not_read(start_http, conveyor_app):
    """Serving new definitions to a model trained on old ones is skew: refused."""
    fill_online_store(conveyor_app)
    register_with_features(conveyor_app)
    conveyor_app.features.apply([customers_view(extra_feature=True)])
    server = start_http()
    got, _, body = send(f"{server.address}/predict", "POST", {"entities": [{"customer_id": 1}]})
    assert (got, body["kind"]) == (422, "invalid_payload")
    assert "changed since v1 was trained" in body["error"]
    info = send(f"{server.address}/model")[2]["entities"]
    assert info["available"] is False and "definition v1 then, v2 now" in info["reason"]


def test_expired_online_values_are_an_unknown_entity(start_http, conveyor_app):
    """A value older than the view's TTL is not served (it is null online)."""
    import polars as pl

    fill_online_store(conveyor_app, rows=2)
    old = datetime.now(UTC) - timedelta(days=60)
    conveyor_app.features.ingest(
        VIEW,
        pl.DataFrame(
            {"customer_id": [500], "ts": [old], "age": [1.0], "plan": ["pro"], "visits": [2]}
        ),
    )
    conveyor_app.features.materialize(VIEW)
    register_with_features(conveyor_app)
    server = start_http()
    got, _, body = send(f"{server.address}/predict", "POST", {"entities": [{"customer_id": 500}]})
    assert (got, body["kind"]) == (404, "unknown_entity"), body
    assert "TTL" in body["error"]


def test_a_shadow_challenger_reads_its_own_features_by_the_same_key(start_http, conveyor_app):
    """The champion takes ``tenure`` from the request, the challenger has no such
    feature: each reads the view online by the same key, both rows logged under it."""
    from conveyor.interfaces.lineage import FeatureViewUse
    from conveyor.predictions import scan_predictions

    fill_online_store(conveyor_app)
    champion = register_with_features(conveyor_app)
    definition = conveyor_app.metadata.get_definition("feature_view", VIEW).version
    challenger = register_rich_model(
        conveyor_app,
        seed=1,
        alias="challenger",
        features=[
            FeatureViewUse(view=VIEW, version=definition, features=("age", "plan", "visits"))
        ],
    )
    server = start_http(challenger_alias="challenger", challenger_mode="shadow")
    body = {"entities": [{"customer_id": 8, "tenure": 2.0}]}
    status, _, answer = send(
        f"{server.address}/predict", "POST", body, headers={"X-Request-Id": "s"}
    )
    assert status == 200 and answer["version"] == champion.version
    server.stop(timeout=5)
    logged = scan_predictions(conveyor_app.artifacts, model=HTTP_MODEL).collect()
    mine = logged.filter(logged["request_id"] == "s").sort("version")
    assert mine["version"].to_list() == [champion.version, challenger.version]
    assert mine["entity_key"].to_list() == ["8", "8"]
    champion_row, challenger_row = mine["features"].to_list()
    assert champion_row["tenure"] == 2.0 and challenger_row.get("tenure") is None
    assert challenger_row["visits"] == champion_row["visits"] == 8
