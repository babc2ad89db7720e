"""Online lookups by ``"view:feature"``: memory stays flat, views resolve once, TTL is explicit."""

from __future__ import annotations

import gc
import logging
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from attrs import evolve

from conveyor.errors import NotFoundError, ValidationError
from conveyor.features import Entity, Feature, FeatureView
from conveyor.interfaces.features import FeatureStore
from conveyor.plugins.features.config import LocalFeatureStoreConfig
from conveyor.plugins.features.offline import LocalFeatureStore

T0 = datetime(2024, 5, 1, tzinfo=UTC)
CUSTOMER = Entity(name="customer", join_keys="customer_id")
STATS = FeatureView(
    name="stats",
    entities=[CUSTOMER],
    ttl=timedelta(days=7),
    features=[Feature(name=f"f{i}") for i in range(20)] + [Feature(name="n", dtype="int64")],
)
REFS = [f"stats:f{i}" for i in range(20)] + ["stats:n"]
#: far more than the slack below at the 14.5 KB per call the old cache grew by
LOOKUPS = 30_000


@pytest.fixture
def store(conveyor_app) -> LocalFeatureStore:
    store = conveyor_app.features
    store.apply([STATS])
    store.ingest(
        "stats",
        pl.DataFrame(
            {
                "customer_id": list(range(500)),
                "event_timestamp": [T0] * 500,
                **{f"f{i}": [float(k * i) for k in range(500)] for i in range(20)},
                "n": list(range(500)),
            }
        ),
    )
    store.materialize("stats", end=T0 + timedelta(hours=1))
    return store


def rss() -> int:
    import psutil

    gc.collect()
    return psutil.Process().memory_info().rss


def test_many_lookups_by_reference_keep_memory_flat(store: LocalFeatureStore) -> None:
    at = T0 + timedelta(days=1)
    keys = [[{"customer_id": k % 500}] for k in range(97)]
    for i in range(3000):  # warm-up: caches, SQLite page cache, Arrow pools
        store.get_online_features(REFS, keys[i % 97], at=at)
    before = rss()
    for i in range(LOOKUPS):
        got = store.get_online_features(REFS, keys[i % 97], at=at)
    grown = rss() - before
    assert got.column("n").to_pylist() == [(LOOKUPS - 1) % 97]
    # 14.5 KB per call would be 435 MB here; allow allocator noise only
    assert grown < 8 * 2**20, f"RSS grew by {grown / 2**20:.1f} MB over {LOOKUPS} lookups"


def test_a_view_is_rebuilt_only_when_its_definition_changes(
    conveyor_app, store: LocalFeatureStore
) -> None:
    fresh = LocalFeatureStore(app=conveyor_app, config=LocalFeatureStoreConfig(view_refresh_s=0))
    first = fresh.get_view("stats")
    assert fresh.get_view("stats") is first
    fresh.get_online_features(["stats:n"], [{"customer_id": 1}], at=T0)
    assert fresh.get_view("stats") is first
    # another writer (another process, say) changes the definition: the next lookup sees it
    store.apply([evolve(STATS, ttl=timedelta(days=1))])
    got = fresh.get_online_features(["stats:n"], [{"customer_id": 1}], at=T0)
    assert got.column("n").to_pylist() == [1]
    assert fresh.get_view("stats") is not first
    assert fresh.get_view("stats").ttl == timedelta(days=1)


def test_lookups_use_a_cached_view_for_at_most_view_refresh_s(
    conveyor_app, store: LocalFeatureStore
) -> None:
    slow = LocalFeatureStore(app=conveyor_app, config=LocalFeatureStoreConfig(view_refresh_s=3600))
    at = T0 + timedelta(days=3)
    assert slow.get_online_features(["stats:n"], [{"customer_id": 2}], at=at)["n"].to_pylist() == [
        2
    ]
    store.apply([evolve(STATS, ttl=timedelta(days=1))])
    # within the refresh interval the old definition (TTL 7 days) still answers ...
    assert slow.get_online_features(["stats:n"], [{"customer_id": 2}], at=at)["n"].to_pylist() == [
        2
    ]
    # ... and apply through the same store takes effect at once
    slow.apply([evolve(STATS, ttl=timedelta(days=2))])
    assert slow.get_online_features(["stats:n"], [{"customer_id": 2}], at=at)["n"].to_pylist() == [
        None
    ]


def test_lookup_caches_stay_bounded(store: LocalFeatureStore) -> None:
    online = store.online
    for i in range(600):  # a new (equal) view object per call, as from_spec would give
        view = FeatureView.from_spec(STATS.to_spec())
        got = store.get_online_features([view], [{"customer_id": i % 500}], at=T0)
        assert got.column("n").to_pylist() == [i % 500]
    assert len(online._plans) <= online._plans.maxsize
    assert len(store._requests) <= store._requests.maxsize


def test_expired_values_are_null_with_a_warning_when_at_defaults_to_now(
    store: LocalFeatureStore, caplog: pytest.LogCaptureFixture
) -> None:
    keys = [{"customer_id": 1}, {"customer_id": 2}, {"customer_id": 9999}]
    with caplog.at_level(logging.WARNING, logger="conveyor.features"):
        got = store.get_online_features(["stats:n", "stats:f1"], keys)
    assert got.column("n").to_pylist() == [None, None, None]
    (record,) = caplog.records
    assert (
        "2 of 3 row(s) of feature view 'stats' are older than its TTL (7 days, 0:00:00)"
        in record.getMessage()
    )
    assert "pass at=" in record.getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="conveyor.features"):
        explicit = store.get_online_features(["stats:n"], keys, at=T0 + timedelta(days=30))
        fresh = store.get_online_features(["stats:n"], keys, at=T0 + timedelta(days=2))
    assert explicit.column("n").to_pylist() == [None, None, None]
    assert fresh.column("n").to_pylist() == [1, 2, None]
    assert caplog.records == []  # an explicit `at` is the caller's choice: no warning


def test_full_names_and_key_columns(store: LocalFeatureStore) -> None:
    got = store.get_online_features(
        ["stats:n", "stats:f2"], [{"customer_id": 3}], at=T0, full_names=True
    )
    assert got.to_pylist() == [{"customer_id": 3, "stats__n": 3, "stats__f2": 6.0}]


SHOPS = FeatureView(
    name="shops",
    entities=[CUSTOMER, Entity(name="shop", join_keys="shop", dtype="string")],
    ttl=timedelta(days=1),
    features=[Feature(name="visits", dtype="int64"), Feature(name="vip", dtype="bool")],
)


@pytest.fixture
def two_views(store: LocalFeatureStore) -> LocalFeatureStore:
    store.apply([SHOPS])
    store.ingest(
        "shops",
        pl.DataFrame(
            {
                "customer_id": [1, 2, 3],
                "shop": ["a", "b", "a"],
                "event_timestamp": [T0, T0 - timedelta(days=3), T0],
                "visits": [10, 20, None],
                "vip": [True, False, None],
            }
        ),
    )
    store.materialize("shops", end=T0 + timedelta(hours=1))
    return store


@pytest.mark.parametrize("full_names", [False, True])
@pytest.mark.parametrize("days", [0, 2, 8])
def test_get_online_rows_gives_what_get_online_features_gives(
    two_views: LocalFeatureStore, full_names: bool, days: int
) -> None:
    refs = ["stats:n", "stats:f3", "shops:*"]
    keys = [
        {"customer_id": 1, "shop": "a"},
        {"customer_id": 2, "shop": "b"},
        {"customer_id": 3, "shop": "zz"},
        {"customer_id": 9999, "shop": "a"},
        {"customer_id": 1, "shop": "a"},
    ]
    at = T0 + timedelta(days=days)
    expected = two_views.get_online_features(refs, keys, at=at, full_names=full_names)
    got = two_views.get_online_rows(refs, keys, at=at, full_names=full_names)
    assert got == expected.to_pylist()
    assert [list(r) for r in got] == [expected.column_names] * len(keys)
    # the interface's own default (through get_online_features) agrees
    base = FeatureStore.get_online_rows(two_views, refs, keys, at=at, full_names=full_names)
    assert base == got
    for key in keys[:1]:  # one key: serving's case
        one = two_views.get_online_rows(refs, [key], at=at, full_names=full_names)
        assert (
            one
            == two_views.get_online_features(refs, [key], at=at, full_names=full_names).to_pylist()
        )
    if days == 0:
        assert got[0]["vip" if not full_names else "shops__vip"] is True
        assert got[1]["visits" if not full_names else "shops__visits"] is None  # 3 days old


def test_get_online_rows_warns_of_expired_values_like_get_online_features(
    store: LocalFeatureStore, caplog: pytest.LogCaptureFixture
) -> None:
    keys = [{"customer_id": 1}, {"customer_id": 2}, {"customer_id": 9999}]
    with caplog.at_level(logging.WARNING, logger="conveyor.features"):
        got = store.get_online_rows(["stats:n", "stats:f1"], keys)
        store.get_online_features(["stats:n", "stats:f1"], keys)
    assert [r["n"] for r in got] == [None, None, None]
    rows, table = (r.getMessage() for r in caplog.records)
    assert rows == table
    assert "2 of 3 row(s) of feature view 'stats' are older than its TTL" in rows
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="conveyor.features"):
        store.get_online_rows(["stats:n"], keys, at=T0 + timedelta(days=30))
    assert caplog.records == []


def test_get_online_rows_refuses_bad_keys_clearly(store: LocalFeatureStore) -> None:
    with pytest.raises(ValidationError, match="no entity keys"):
        store.get_online_rows(["stats:n"], [])
    with pytest.raises(ValidationError, match="lack 'customer_id', a join key of feature view"):
        store.get_online_rows(["stats:n"], [{"customer": 1}])
    with pytest.raises(ValidationError, match="not a mapping"):
        store.get_online_rows(["stats:n"], [7])  # type: ignore[list-item]
    with pytest.raises(NotFoundError, match="no feature 'nope'"):
        store.get_online_rows(["stats:nope"], [{"customer_id": 1}])
