"""Redis online-store lookups against raw redis-py ``HMGET`` of the same keys and fields.

Run: ``pytest -m benchmark tests/benchmarks/bench_redis.py -s`` (a Redis server at
``CONVEYOR_TEST_REDIS_URL``, default ``redis://127.0.0.1:6379/0``).

Both sides read the same hashes on the same server in the same run: Conveyor's
``OnlineStore.read`` (keys in, an Arrow table of typed features out) against one
``HMGET`` (1 key) or one pipelined round trip of ``HMGET`` (100 keys) returning raw
bytes.  p50 and p99 over many lookups; goal: p99 within 2x of the floor.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

pytestmark = pytest.mark.benchmark

SERVER = os.environ.get("CONVEYOR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
KEYS = 10_000


def _latencies(fn: Callable[[int], Any], n: int) -> tuple[float, float]:
    samples = []
    for i in range(n):
        started = time.perf_counter()
        fn(i)
        samples.append(time.perf_counter() - started)
    samples.sort()
    return samples[n // 2], samples[int(n * 0.99)]


@pytest.fixture
def prefix() -> Iterator[str]:
    import redis

    client = redis.Redis.from_url(SERVER)
    try:
        client.ping()
    except redis.RedisError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"no Redis server at {SERVER}: {exc}")
        pytest.skip(f"no Redis server at {SERVER}: {exc}")
    name = f"conveyor-bench:{uuid.uuid4().hex[:10]}:"
    yield name
    keys = list(client.scan_iter(match=f"{name}*", count=1000))
    for start in range(0, len(keys), 1000):
        client.unlink(*keys[start : start + 1000])


def test_online_lookup_p99_against_raw_hmget(prefix: str) -> None:
    import pyarrow as pa
    import redis
    from conveyor_redis.config import RedisOnlineStoreConfig
    from conveyor_redis.store import RedisOnlineStore

    from conveyor.features import Entity, Feature, FeatureView
    from conveyor.testing.features import online_rows

    customer = Entity(name="customer", join_keys="customer_id")
    view = FeatureView(
        name="stats",
        entities=[customer],
        ttl=timedelta(days=1),
        features=[Feature(name=f"f{i}") for i in range(6)]
        + [Feature(name="n", dtype="int64"), Feature(name="tier", dtype="string")],
    )
    store = RedisOnlineStore(config=RedisOnlineStoreConfig(url=SERVER, prefix=prefix))
    at = datetime.now(UTC)
    rows = [
        {
            "customer_id": i,
            **{f"f{j}": i / (j + 1) for j in range(6)},
            "n": i,
            "tier": "gold" if i % 3 else "free",
            "_event_ts": at,
        }
        for i in range(KEYS)
    ]
    started = time.perf_counter()
    store.write(view, online_rows(view, rows))
    write_s = time.perf_counter() - started
    raw = redis.Redis.from_url(SERVER)
    fields = ["_e", *view.feature_names]
    one = [
        pa.table({"customer_id": pa.array([(i * 7919) % KEYS], pa.int64())}) for i in range(2000)
    ]
    hundred = [
        pa.table(
            {"customer_id": pa.array([(i * 7919 + j * 31) % KEYS for j in range(100)], pa.int64())}
        )
        for i in range(400)
    ]

    def raw_one(i: int) -> None:
        raw.hmget(f"{prefix}stats:{one[i]['customer_id'][0].as_py()}", fields)

    def raw_many(i: int) -> None:
        with raw.pipeline(transaction=False) as pipe:
            for key in hundred[i]["customer_id"].to_pylist():
                pipe.hmget(f"{prefix}stats:{key}", fields)
            pipe.execute()

    one_rows = [[(k,) for k in t["customer_id"].to_pylist()] for t in one]
    hundred_rows = [[(k,) for k in t["customer_id"].to_pylist()] for t in hundred]
    cases = [
        ("1 key", lambda i: store.read(view, one[i]), raw_one, len(one)),
        ("100 keys", lambda i: store.read(view, hundred[i]), raw_many, len(hundred)),
        # the same lookups as Python tuples (OnlineStore.read_rows), no Arrow table
        ("1 key rows", lambda i: store.read_rows(view, one_rows[i]), raw_one, len(one)),
        ("100 rows", lambda i: store.read_rows(view, hundred_rows[i]), raw_many, len(hundred)),
    ]
    print(
        f"\nRedis online store: {KEYS} keys written in {write_s:.2f} s "
        f"({KEYS / write_s:,.0f} rows/s); loaded shared machine: read ratios"
    )
    print(f"{'lookup':<12}{'conveyor p50/p99 ms':>22}{'raw HMGET p50/p99 ms':>24}{'p99 ratio':>11}")
    for name, ours, floor, n in cases:
        ours(0)
        floor(0)
        floor_p50, floor_p99 = _latencies(floor, n)
        p50, p99 = _latencies(ours, n)
        ratio = p99 / floor_p99
        print(
            f"{name:<12}{p50 * 1000:>11.3f} / {p99 * 1000:<8.3f}"
            f"{floor_p50 * 1000:>12.3f} / {floor_p99 * 1000:<9.3f}{ratio:>9.2f}  "
            f"{'met' if ratio <= 2 else 'NOT MET'}"
        )
    got = store.read(view, hundred[0])
    assert got["n"].to_pylist() == hundred[0]["customer_id"].to_pylist()
    assert store.read_rows(view, hundred_rows[0]) == list(
        zip(*(c.to_pylist() for c in got.columns), strict=True)
    )
    store.close()
    raw.close()
