"""The Redis online store against the online-store contract, and beside the SQLite one."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conveyor_redis.config import RedisOnlineStoreConfig
from conveyor_redis.store import RedisOnlineStore

from conveyor.features import Entity, Feature, FeatureView
from conveyor.interfaces.features import MaterializationState
from conveyor.testing.features import (
    FeatureStoreContract,
    OnlineStoreContract,
    keys_table,
    online_rows,
    typed_view,
)


def _store(url: str, prefix: str, **settings: Any) -> RedisOnlineStore:
    return RedisOnlineStore(config=RedisOnlineStoreConfig(url=url, prefix=prefix, **settings))


class TestRedisOnlineStore(OnlineStoreContract):
    @pytest.fixture
    def online(self, redis_url: str, redis_prefix: str) -> Iterator[RedisOnlineStore]:
        store = _store(redis_url, redis_prefix)
        yield store
        store.close()


class TestLocalFeatureStoreOnRedis(FeatureStoreContract):
    @pytest.fixture
    def store(
        self,
        request: pytest.FixtureRequest,
        tmp_path: Path,
        plugin_manager: Any,
        register_plugin: Any,
        monkeypatch: pytest.MonkeyPatch,
        redis_url: str,
        redis_prefix: str,
    ) -> Iterator[Any]:
        import conveyor_redis

        from conveyor.app import Conveyor
        from conveyor.config import Config
        from conveyor.testing import isolate_project_imports

        isolate_project_imports(request, monkeypatch, tmp_path)
        monkeypatch.chdir(tmp_path)
        (tmp_path / "conveyor.toml").write_text(
            f'[project]\nname = "r"\n\n[online_store]\nurl = "{redis_url}"\n'
            f'prefix = "{redis_prefix}"\n'
        )
        register_plugin(conveyor_redis, "redis")
        app = Conveyor(config=Config.load(cwd=tmp_path), pm=plugin_manager)
        assert isinstance(app.features.online, RedisOnlineStore)
        yield app.features
        app.close()


def test_lookups_return_what_the_sqlite_store_returns(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    from conveyor.plugins.features.online import SQLiteOnlineStore

    view = typed_view()
    t0 = datetime(2024, 3, 1, tzinfo=UTC)
    rows = [
        {
            "customer_id": i,
            "f64": i / 7,
            "f32": float(i),
            "i64": i * 10**12,
            "u8": i % 256,
            "flag": i % 2 == 0,
            "label": f"c{i}" if i % 3 else None,
            "seen": t0 + timedelta(seconds=i),
            "day": (t0 + timedelta(days=i)).date(),
            "_event_ts": t0 + timedelta(hours=i % 5),
            "_row": i,
        }
        for i in range(300)
    ]
    redis_store, sqlite_store = (
        _store(redis_url, redis_prefix, rows_per_call=64),
        SQLiteOnlineStore(path=tmp_path / "online.db"),
    )
    try:
        table = online_rows(view, rows)
        assert redis_store.write(view, table) == sqlite_store.write(view, table) == 300
        for ids in ([5], [299, 0, 1000, 5, 5], list(range(-3, 310, 3))):
            keys = keys_table(customer_id=ids)
            assert redis_store.read(view, keys).equals(sqlite_store.read(view, keys))
            part = redis_store.read(view, keys, ["label", "seen"])
            assert part.equals(sqlite_store.read(view, keys, ["label", "seen"]))
    finally:
        redis_store.close()
        sqlite_store.close()


def test_a_write_with_its_state_is_one_transaction(redis_url: str, redis_prefix: str) -> None:
    import redis

    store = _store(redis_url, redis_prefix, rows_per_call=2)
    view = typed_view()
    good = online_rows(
        view, [{"customer_id": i, "_event_ts": datetime(2024, 1, 1, tzinfo=UTC)} for i in range(5)]
    )
    store.prepare(view)
    # a bad table is refused before anything is sent: neither rows nor state land
    bad = good.drop_columns(["_row"])
    with pytest.raises(Exception, match="_row"):
        store.write(view, bad, state=MaterializationState(view=view.name, pending_done=5))
    assert store.get_state(view.name) is None
    assert store.read(view, keys_table(customer_id=[0]))["_event_ts"].to_pylist() == [None]
    assert store.write(view, good, state=MaterializationState(view=view.name, pending_done=5)) == 5
    assert store.get_state(view.name).pending_done == 5
    client = redis.Redis.from_url(redis_url)
    assert client.scard(f"{redis_prefix}_keys:{view.name}") == 5
    store.close()


def test_rows_expire_after_the_views_ttl(redis_url: str, redis_prefix: str) -> None:
    import redis

    customer = Entity(name="customer", join_keys="customer_id")
    view = FeatureView(
        name="short", entities=[customer], ttl=timedelta(hours=2), features=[Feature(name="x")]
    )
    forever = FeatureView(name="forever", entities=[customer], features=[Feature(name="x")])
    store = _store(redis_url, redis_prefix)
    at = datetime.now(UTC)
    for v in (view, forever):
        store.write(v, online_rows(v, [{"customer_id": 1, "x": 1.0, "_event_ts": at}]))
    client = redis.Redis.from_url(redis_url)
    assert 7000 < client.ttl(f"{redis_prefix}short:1") <= 7200
    assert client.ttl(f"{redis_prefix}forever:1") == -1  # no TTL: kept until replaced
    store.close()
