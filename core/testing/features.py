"""Conformance suites for feature-store and online-store plugins.

Subclass a contract in a test module and provide its fixture::

    from conveyor.testing.features import OnlineStoreContract

    class TestRedisOnlineStore(OnlineStoreContract):
        @pytest.fixture
        def online(self, tmp_path):
            return RedisOnlineStore(...)      # an empty store for each test

:class:`FeatureStoreContract` needs a ``store`` fixture: a feature store with
working definitions (metadata store), offline storage and an online store.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from conveyor.errors import NotFoundError, ValidationError
from conveyor.features import Entity, Feature, FeatureView
from conveyor.interfaces.features import (
    ONLINE_EVENT_TS,
    FeatureStore,
    MaterializationState,
    OnlineStore,
)

T0 = datetime(2024, 3, 1, tzinfo=UTC)
CUSTOMER = Entity(name="customer", join_keys="customer_id")
STORE = Entity(name="shop", join_keys=("country", "shop_id"), dtype=("string", "int32"))


def hours(n: float) -> datetime:
    return T0 + timedelta(hours=n)


def typed_view(name: str = "typed") -> FeatureView:
    """A view with one feature of every kind of type."""
    return FeatureView(
        name=name,
        entities=[CUSTOMER],
        ttl=timedelta(days=7),
        features=[
            Feature(name="f64"),
            Feature(name="f32", dtype="float32"),
            Feature(name="i64", dtype="int64"),
            Feature(name="u8", dtype="uint8"),
            Feature(name="flag", dtype="bool"),
            Feature(name="label", dtype="string"),
            Feature(name="seen", dtype="datetime"),
            Feature(name="day", dtype="date"),
        ],
    )


def online_rows(view: FeatureView, rows: list[dict[str, Any]]) -> Any:
    """An Arrow table in the shape ``OnlineStore.write`` takes."""
    import pyarrow as pa

    from conveyor.features.pit import arrow_type

    types = {**view.key_types, **{f.name: f.dtype for f in view.features}}
    columns: dict[str, Any] = {}
    for name, dtype in types.items():
        columns[name] = pa.array([r.get(name) for r in rows], arrow_type(dtype))
    columns["_event_ts"] = pa.array([r["_event_ts"] for r in rows], pa.timestamp("us", "UTC"))
    columns["_created_ts"] = pa.array(
        [r.get("_created_ts") for r in rows], pa.timestamp("us", "UTC")
    )
    columns["_file"] = pa.array([r.get("_file", "0001") for r in rows], pa.string())
    columns["_row"] = pa.array([r.get("_row", i) for i, r in enumerate(rows)], pa.int64())
    return pa.table(columns)


def same_values(a: list[tuple[Any, ...]], b: list[tuple[Any, ...]]) -> bool:
    """Equal rows, NaN equal to NaN (and not to null)."""

    def nan_free(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        return [tuple("<NaN>" if v != v else v for v in row) for row in rows]

    return nan_free(a) == nan_free(b)


def keys_table(**columns: list[Any]) -> Any:
    import pyarrow as pa

    return pa.table(columns)


class OnlineStoreContract:
    """What every online store must do (fixture ``online``: an empty store)."""

    @pytest.fixture
    def online(self) -> OnlineStore:
        raise NotImplementedError("provide an `online` fixture returning an empty store")

    def test_read_before_any_write_is_not_found(self, online: OnlineStore) -> None:
        with pytest.raises(NotFoundError):
            online.read(typed_view(), keys_table(customer_id=[1]))
        assert online.get_state("typed") is None

    def test_values_round_trip_in_key_order_with_nulls(self, online: OnlineStore) -> None:
        view = typed_view()
        row = {
            "customer_id": 7,
            "f64": 0.1,
            "f32": 1.5,
            "i64": -(2**62),
            "u8": 255,
            "flag": True,
            "label": "é☃",
            "seen": hours(1),
            "day": date(2024, 2, 29),
            "_event_ts": hours(2),
        }
        other = {"customer_id": 8, "f64": math.nan, "_event_ts": hours(3)}
        assert online.write(view, online_rows(view, [row, other])) == 2
        got = online.read(view, keys_table(customer_id=[9, 8, 7, 7])).to_pylist()
        assert [g["customer_id"] for g in got] == [9, 8, 7, 7]
        assert got[0][ONLINE_EVENT_TS] is None
        assert got[0]["f64"] is None
        assert math.isnan(got[1]["f64"])
        assert got[1]["label"] is None
        assert got[1][ONLINE_EVENT_TS] == hours(3)
        for name in ("f64", "f32", "i64", "u8", "flag", "label", "seen", "day"):
            assert got[2][name] == row[name], name
        assert got[2] == got[3]
        part = online.read(view, keys_table(customer_id=[7]), ["label"]).column_names
        assert part == ["customer_id", ONLINE_EVENT_TS, "label"]

    def test_read_rows_gives_what_read_gives(self, online: OnlineStore) -> None:
        view = typed_view()
        rows = [
            {
                "customer_id": 7,
                "f64": 0.1,
                "f32": 1.5,
                "i64": -(2**62),
                "u8": 255,
                "flag": False,
                "label": "NaN",
                "seen": hours(1),
                "day": date(1969, 12, 31),
                "_event_ts": hours(2),
            },
            {
                "customer_id": 8,
                "f64": math.nan,
                "f32": math.nan,
                "flag": True,
                "_event_ts": hours(3),
            },
        ]
        online.write(view, online_rows(view, rows))
        for ids, features in [
            ([7], None),
            ([8], None),
            ([9], None),
            ([9, 8, 7, 7], None),
            ([8, 7], ["label", "f32", "day"]),
            ([7], []),
        ]:
            table = online.read(view, keys_table(customer_id=ids), features)
            expected = [tuple(r.values()) for r in table.to_pylist()]
            got = online.read_rows(view, [(i,) for i in ids], features)
            assert same_values(got, expected), (ids, features)
        assert online.read_rows(view, []) == []
        with pytest.raises(ValidationError, match="join key"):
            online.read_rows(view, [7])  # type: ignore[list-item]
        with pytest.raises(ValidationError, match="join key"):
            online.read_rows(view, [(7, "extra")])

    def test_read_rows_with_composite_and_time_keys(self, online: OnlineStore) -> None:
        when = Entity(name="when", join_keys=("day", "at"), dtype=("date", "datetime"))
        views = [
            FeatureView(name="shops", entities=[STORE], features=[Feature(name="sales")]),
            FeatureView(name="slots", entities=[when], features=[Feature(name="load")]),
        ]
        keys: list[list[tuple[Any, ...]]] = [
            [("fr", 1), ("de", 1), ("xx", 1), ("fr", 2)],
            [
                (date(2024, 3, 1), hours(1)),
                (date(2024, 3, 2), hours(1)),
                (date(2024, 3, 1), hours(2)),
            ],
        ]
        for view, wanted in zip(views, keys, strict=True):
            names = view.join_keys
            stored = [dict(zip(names, k, strict=True)) for k in wanted[:2]]
            rows = [
                {**k, view.feature_names[0]: float(i), "_event_ts": hours(1)}
                for i, k in enumerate(stored)
            ]
            online.write(view, online_rows(view, rows))
            columns = {n: [k[i] for k in wanted] for i, n in enumerate(names)}
            table = online.read(view, keys_table(**columns))
            expected = [tuple(r.values()) for r in table.to_pylist()]
            assert online.read_rows(view, wanted) == expected
            assert [r[-1] for r in expected][:3] == [0.0, 1.0, None]  # two stored, one not

    def test_an_older_event_never_overwrites_a_newer_one(self, online: OnlineStore) -> None:
        view = typed_view()
        online.write(view, online_rows(view, [{"customer_id": 1, "i64": 2, "_event_ts": hours(5)}]))
        assert (
            online.write(
                view, online_rows(view, [{"customer_id": 1, "i64": 1, "_event_ts": hours(4)}])
            )
            == 0
        )
        # the very same row again changes nothing either
        assert (
            online.write(
                view, online_rows(view, [{"customer_id": 1, "i64": 2, "_event_ts": hours(5)}])
            )
            == 0
        )
        assert online.read(view, keys_table(customer_id=[1]))["i64"].to_pylist() == [2]
        online.write(view, online_rows(view, [{"customer_id": 1, "i64": 3, "_event_ts": hours(6)}]))
        assert online.read(view, keys_table(customer_id=[1]))["i64"].to_pylist() == [3]

    def test_ties_go_to_created_time_then_ingestion_order(self, online: OnlineStore) -> None:
        view = typed_view()
        base = {"customer_id": 1, "_event_ts": hours(5)}
        online.write(
            view,
            online_rows(
                view, [{**base, "i64": 1, "_created_ts": hours(9), "_file": "0002", "_row": 0}]
            ),
        )
        online.write(
            view,
            online_rows(
                view, [{**base, "i64": 2, "_created_ts": hours(8), "_file": "0009", "_row": 0}]
            ),
        )
        assert online.read(view, keys_table(customer_id=[1]))["i64"].to_pylist() == [1]
        online.write(
            view,
            online_rows(
                view, [{**base, "i64": 3, "_created_ts": hours(9), "_file": "0002", "_row": 1}]
            ),
        )
        assert online.read(view, keys_table(customer_id=[1]))["i64"].to_pylist() == [3]

    def test_composite_keys(self, online: OnlineStore) -> None:
        view = FeatureView(name="shops", entities=[STORE], features=[Feature(name="sales")])
        rows = [
            {"country": c, "shop_id": s, "sales": float(i), "_event_ts": hours(1)}
            for i, (c, s) in enumerate([("fr", 1), ("fr", 2), ("de", 1)])
        ]
        online.write(view, online_rows(view, rows))
        got = online.read(view, keys_table(country=["de", "fr", "fr", "xx"], shop_id=[1, 2, 1, 1]))
        assert got["sales"].to_pylist() == [2.0, 1.0, 0.0, None]

    def test_state_is_written_with_the_rows(self, online: OnlineStore) -> None:
        view = typed_view()
        state = MaterializationState(
            view=view.name, pending_end=hours(10), pending_last_file="0003", pending_done=1
        )
        online.write(
            view, online_rows(view, [{"customer_id": 1, "_event_ts": hours(1)}]), state=state
        )
        assert online.get_state(view.name) == state
        done = MaterializationState(view=view.name, watermark=hours(10), last_file="0003")
        online.set_state(done)
        assert online.get_state(view.name) == done

    def test_a_changed_definition_resets_the_view(self, online: OnlineStore) -> None:
        view = typed_view()
        online.write(
            view,
            online_rows(view, [{"customer_id": 1, "_event_ts": hours(1)}]),
            state=MaterializationState(view=view.name, watermark=hours(1)),
        )
        assert online.prepare(view) is False
        changed = FeatureView(name=view.name, entities=[CUSTOMER], features=[Feature(name="other")])
        assert online.prepare(changed) is True
        assert online.get_state(view.name) is None
        got = online.read(changed, keys_table(customer_id=[1]))
        assert got["other"].to_pylist() == [None]

    def test_sample_keys_is_reproducible(self, online: OnlineStore) -> None:
        view = typed_view()
        online.write(
            view, online_rows(view, [{"customer_id": i, "_event_ts": hours(1)} for i in range(50)])
        )
        a = online.sample_keys(view, 10, seed=3)["customer_id"].to_pylist()
        assert a == online.sample_keys(view, 10, seed=3)["customer_id"].to_pylist()
        assert len(set(a)) == 10
        assert set(a) <= set(range(50))
        assert online.sample_keys(view, 500)["customer_id"].num_chunks >= 0
        assert len(online.sample_keys(view, 500)) == 50


class FeatureStoreContract:
    """What every feature store must do (fixture ``store``: an empty store)."""

    @pytest.fixture
    def store(self) -> FeatureStore:
        raise NotImplementedError("provide a `store` fixture returning an empty feature store")

    @pytest.fixture
    def view(self, store: FeatureStore) -> FeatureView:
        view = FeatureView(
            name="stats",
            entities=[CUSTOMER],
            ttl=timedelta(hours=10),
            created_timestamp_field="created",
            features=[Feature(name="spend"), Feature(name="n", dtype="int64")],
        )
        store.apply([view])
        return view

    @staticmethod
    def rows(*rows: tuple[int, float, float, float, int]) -> Any:
        """``(customer, event hour, created hour, spend, n)`` rows as a frame."""
        import polars as pl

        return pl.DataFrame(
            [
                {
                    "customer_id": c,
                    "event_timestamp": hours(e),
                    "created": hours(cr),
                    "spend": s,
                    "n": n,
                }
                for c, e, cr, s, n in rows
            ],
            schema={
                "customer_id": pl.Int64,
                "event_timestamp": pl.Datetime("us", "UTC"),
                "created": pl.Datetime("us", "UTC"),
                "spend": pl.Float64,
                "n": pl.Int64,
            },
        )

    @staticmethod
    def entities(*rows: tuple[int | None, float]) -> Any:
        import polars as pl

        return pl.DataFrame(
            {"customer_id": [r[0] for r in rows], "event_timestamp": [hours(r[1]) for r in rows]},
            schema={"customer_id": pl.Int64, "event_timestamp": pl.Datetime("us", "UTC")},
        )

    def test_apply_versions_definitions(self, store: FeatureStore, view: FeatureView) -> None:
        again = {d.name: d.version for d in store.apply([view])}
        assert again == {"customer": 1, "stats": 1}
        changed = FeatureView(
            name="stats",
            entities=[CUSTOMER],
            ttl=timedelta(hours=11),
            created_timestamp_field="created",
            features=[Feature(name="spend"), Feature(name="n", dtype="int64")],
        )
        assert {d.name: d.version for d in store.apply([changed])}["stats"] == 2
        assert store.get_view("stats") == changed
        assert [v.name for v in store.list_views()] == ["stats"]
        with pytest.raises(NotFoundError):
            store.get_view("nope")

    def test_ingestion_is_schema_checked(self, store: FeatureStore, view: FeatureView) -> None:
        import polars as pl

        good = self.rows((1, 0, 0, 1.0, 1))
        for bad in (
            good.drop("n"),
            good.with_columns(pl.lit(1).alias("extra")),
            good.with_columns(pl.col("spend").cast(pl.String)),
            good.with_columns(pl.lit(None, pl.Int64).alias("customer_id")),
        ):
            with pytest.raises(ValidationError):
                store.ingest("stats", bad)
        assert store.read_view("stats").collect().height == 0
        store.ingest("stats", good.with_columns(pl.col("n").cast(pl.Int32)))
        assert store.read_view("stats").collect()["n"].dtype == pl.Int64

    def test_point_in_time_rule(self, store: FeatureStore, view: FeatureView) -> None:
        store.ingest(
            "stats",
            self.rows(
                (1, 0, 0, 10.0, 1),
                (1, 5, 5, 50.0, 2),
                (1, 5, 6, 51.0, 3),
                (1, 5, 6, 52.0, 4),
                (2, 0, 0, 20.0, 5),
            ),
        )
        ents = self.entities(
            (1, 4.99), (1, 5), (1, 15), (1, 15.01), (2, 10), (2, 10.5), (3, 5), (None, 5), (1, -1)
        )
        got = store.get_historical_features(ents, ["stats:n"]).collect()
        # inclusive event time, latest created wins, then the later row; TTL inclusive
        assert got["n"].to_list() == [1, 4, 4, None, 5, None, None, None, None]
        assert got["customer_id"].to_list() == ents["customer_id"].to_list()

    def test_as_of_replays_identically_after_late_data(
        self, store: FeatureStore, view: FeatureView
    ) -> None:
        store.ingest("stats", self.rows((1, 0, 0, 1.0, 1)))
        ents = self.entities((1, 3))
        cutoff = datetime.now(UTC)
        before = store.get_historical_features(ents, ["stats:*"], as_of=cutoff).collect()
        store.ingest("stats", self.rows((1, 2, 0, 2.0, 2)))  # late: old times, new batch
        after = store.get_historical_features(ents, ["stats:*"], as_of=cutoff).collect()
        assert before.equals(after)
        assert before["n"].to_list() == [1]
        assert store.get_historical_features(ents, ["stats:n"]).collect()["n"].to_list() == [2]

    def test_several_views_and_entities(self, store: FeatureStore, view: FeatureView) -> None:
        import polars as pl

        shops = FeatureView(name="shops", entities=[STORE], features=[Feature(name="sales")])
        both = FeatureView(
            name="visits",
            entities=[CUSTOMER, STORE],
            features=[Feature(name="visits", dtype="int64")],
        )
        store.apply([shops, both])
        store.ingest("stats", self.rows((1, 0, 0, 1.0, 1)))
        store.ingest(
            "shops",
            pl.DataFrame(
                {"country": ["fr"], "shop_id": [3], "event_timestamp": [hours(0)], "sales": [9.5]}
            ),
        )
        store.ingest(
            "visits",
            pl.DataFrame(
                {
                    "customer_id": [1],
                    "country": ["fr"],
                    "shop_id": [3],
                    "event_timestamp": [hours(1)],
                    "visits": [4],
                }
            ),
        )
        ents = pl.DataFrame(
            {
                "customer_id": [1, 1],
                "country": ["fr", "de"],
                "shop_id": [3, 3],
                "event_timestamp": [hours(2), hours(2)],
            }
        )
        got = store.get_historical_features(
            ents, ["stats:spend", "shops:sales", "visits:visits"]
        ).collect()
        assert got.columns == [*ents.columns, "spend", "sales", "visits"]
        assert got.select("spend", "sales", "visits").rows() == [(1.0, 9.5, 4), (1.0, None, None)]
        full = store.get_historical_features(ents, ["shops:sales"], full_names=True)
        assert "shops__sales" in full.collect_schema().names()

    def test_materialize_is_incremental_and_sees_late_data(
        self, store: FeatureStore, view: FeatureView
    ) -> None:
        store.ingest("stats", self.rows((1, 0, 0, 1.0, 1), (2, 0, 0, 2.0, 2)))
        first = store.materialize("stats", end=hours(1))
        assert (first.rows, first.start, first.end) == (2, None, hours(1))
        assert store.materialize("stats", end=hours(1)).rows == 0
        store.ingest("stats", self.rows((1, 3, 3, 3.0, 3), (2, 0.5, 9, 4.0, 4)))
        second = store.materialize("stats", end=hours(4))
        assert second.rows == 2
        assert second.start == hours(1)
        got = store.get_online_features(
            ["stats:n"], [{"customer_id": 1}, {"customer_id": 2}, {"customer_id": 5}], at=hours(4)
        )
        assert got["n"].to_pylist() == [3, 4, None]
        # a row older than the online one never replaces it
        store.ingest("stats", self.rows((1, 2, 9, 9.0, 9)))
        store.materialize("stats", end=hours(5))
        got = store.get_online_features(["stats:n"], [{"customer_id": 1}], at=hours(5))
        assert got["n"].to_pylist() == [3]
        # past the TTL the online value is null
        stale = store.get_online_features(["stats:n"], [{"customer_id": 1}], at=hours(13.5))
        assert stale["n"].to_pylist() == [None]
        assert store.parity("stats", sample=10).ok

    def test_parity_reports_skew(self, store: FeatureStore, view: FeatureView) -> None:
        store.ingest("stats", self.rows(*[(i, 0, 0, float(i), i) for i in range(20)]))
        store.materialize("stats", end=hours(1))
        assert store.parity("stats", sample=20).ok
        # data that lands after materialization makes the online store stale: skew
        store.ingest("stats", self.rows((3, 0.5, 0.5, -1.0, -1)))
        report = store.parity("stats", sample=20)
        assert not report.ok
        assert {(m.key["customer_id"], m.feature) for m in report.mismatches} == {
            (3, "spend"),
            (3, "n"),
        }
