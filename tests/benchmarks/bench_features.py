"""Feature store speed: the point-in-time join and online lookups, against floors.

Run: pytest -m benchmark tests/benchmarks/bench_features.py -s

Join: 1M entity rows against 5M feature rows x 20 features (100k entities, one
year of event times), TTL 30 days.  Contenders, each in its own subprocess (so
each one's peak RSS is its own), reading the same Parquet files and materializing
the full result: raw polars ``join_asof`` (sort both sides, ``by`` the key,
``tolerance`` = TTL), raw DuckDB ``ASOF LEFT JOIN`` (TTL applied to the result)
and Conveyor's point-in-time engine (which also keeps every entity row in order
and applies the created-time/ingestion tie-breaks).

Lookups: 100k keys x 25 features in the SQLite online store; p50/p99 of 1 and 100
keys through ``OnlineStore.read`` (Arrow), ``lookup`` (tuples) and
``FeatureStore.get_online_features``, against a raw sqlite3 primary-key SELECT on
the same file (the faster of one ``IN`` query and a loop of single-key queries).
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

pytestmark = pytest.mark.benchmark

N_ENTITY, N_FEATURE, N_KEYS, N_FEATURES = 1_000_000, 5_000_000, 100_000, 20
RUNS = 3

GENERATE = """
import numpy as np, polars as pl, sys
rng = np.random.default_rng(0)
start = np.datetime64("2024-01-01T00:00:00", "us").astype("int64")
span = 365 * 86400 * 10**6
cols = {"entity_id": rng.integers(0, @KEYS@, @NF@),
        "event_timestamp": (start + rng.integers(0, span, @NF@)).astype("datetime64[us]")}
for i in range(@NFEAT@):
    cols[f"f{i:02d}"] = rng.random(@NF@)
pl.DataFrame(cols).write_parquet(sys.argv[1] + "/features.parquet", row_group_size=250_000)
del cols
ent = {"entity_id": rng.integers(0, @KEYS@, @NE@),
       "event_timestamp": (start + rng.integers(0, span, @NE@)).astype("datetime64[us]")}
pl.DataFrame(ent).write_parquet(sys.argv[1] + "/entities.parquet")
""".replace("@KEYS@", str(N_KEYS)).replace("@NF@", str(N_FEATURE)).replace(
    "@NE@", str(N_ENTITY)).replace("@NFEAT@", str(N_FEATURES))

CONTENDER = """
import json, resource, sys, time
which, folder = sys.argv[1], sys.argv[2]
F, E = folder + "/features.parquet", folder + "/entities.parquet"
features = [f"f{i:02d}" for i in range(@NFEAT@)]
if which == "duckdb":
    import duckdb
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    start = time.perf_counter()
    cols = ", ".join(
        f"CASE WHEN e.event_timestamp - f.event_timestamp <= INTERVAL 30 DAY THEN f.{c} END "
        f"AS {c}" for c in features)
    out = con.sql(f"SELECT e.entity_id, e.event_timestamp, {cols} FROM '{E}' e "
                  f"ASOF LEFT JOIN '{F}' f ON e.entity_id = f.entity_id "
                  "AND e.event_timestamp >= f.event_timestamp").arrow().read_all()
    rows, matched = out.num_rows, out.num_rows - out.column("f00").null_count
elif which == "polars":
    import polars as pl
    start = time.perf_counter()
    out = (pl.scan_parquet(E).sort("event_timestamp")
           .join_asof(pl.scan_parquet(F).sort("event_timestamp"), on="event_timestamp",
                      by="entity_id", strategy="backward", tolerance="30d")
           .collect())
    rows, matched = out.height, out.height - out["f00"].null_count()
else:
    from datetime import timedelta
    import polars as pl
    from conveyor.features import Entity, Feature, FeatureView
    from conveyor.features.pit import ViewQuery, point_in_time_join
    view = FeatureView(name="v", entities=[Entity(name="e", join_keys="entity_id")],
                       features=[Feature(name=f) for f in features], ttl=timedelta(days=30))
    start = time.perf_counter()
    out = point_in_time_join(pl.scan_parquet(E), [ViewQuery(
        view=view, data=pl.scan_parquet(F), features=features)]).collect()
    rows, matched = out.height, out.height - out["f00"].null_count()
seconds = time.perf_counter() - start
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print()
print("RESULT " + json.dumps({"seconds": seconds, "rss": rss, "rows": rows,
                               "matched": matched}))
""".replace("@NFEAT@", str(N_FEATURES))


@pytest.fixture(scope="module")
def join_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pit")
    subprocess.run([sys.executable, "-c", GENERATE, str(folder)], check=True, timeout=600)
    return folder


def run_contender(which: str, folder: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", CONTENDER, which, str(folder)], check=True,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "POLARS_MAX_THREADS": str(os.cpu_count())})
    line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def test_point_in_time_join_against_floors(join_data: Path) -> None:
    results: dict[str, list[dict]] = {"duckdb": [], "polars": [], "conveyor": []}
    for _ in range(RUNS):  # interleaved, so machine noise hits every contender alike
        for which in results:
            results[which].append(run_contender(which, join_data))
    summary = {}
    for which, runs in results.items():
        summary[which] = {
            "seconds": statistics.median(r["seconds"] for r in runs),
            "rss_mb": max(r["rss"] for r in runs) / 2**20,
            "rows": runs[0]["rows"], "matched": runs[0]["matched"],
        }
    floor = min(("duckdb", "polars"), key=lambda w: summary[w]["seconds"])
    print(f"\npoint-in-time join, {N_ENTITY:,} x {N_FEATURE:,} x {N_FEATURES} features, "
          f"TTL 30d, median of {RUNS}:")
    for which, s in summary.items():
        print(f"  {which:9s} {s['seconds']:6.2f} s  peak RSS {s['rss_mb']:6.0f} MB  "
              f"rows {s['rows']:,} matched {s['matched']:,}  "
              f"time x{s['seconds'] / summary[floor]['seconds']:.2f} "
              f"RSS x{s['rss_mb'] / summary[floor]['rss_mb']:.2f} of {floor}")
    # every contender answers the same question
    assert {s["rows"] for s in summary.values()} == {N_ENTITY}
    assert summary["conveyor"]["matched"] == summary["polars"]["matched"]
    assert summary["conveyor"]["matched"] == summary["duckdb"]["matched"]


# -- online lookups --------------------------------------------------------------------

N_ONLINE_KEYS, N_ONLINE_FEATURES, LOOKUPS = 100_000, 25, 2000


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return (statistics.median(ordered) * 1e3,
            ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e3)


def timed(fn, batches: list) -> list[float]:
    for keys in batches[:50]:
        fn(keys)  # warm up
    out = []
    for keys in batches:
        start = time.perf_counter()
        fn(keys)
        out.append(time.perf_counter() - start)
    return out


def test_online_lookup_against_raw_sqlite(tmp_path: Path) -> None:
    import polars as pl

    from conveyor.features import Entity, Feature, FeatureView
    from conveyor.plugins.features.offline import LocalFeatureStore
    from conveyor.plugins.features.online import SQLiteOnlineStore

    view = FeatureView(name="wide", entities=[Entity(name="e", join_keys="entity_id")],
                       features=[Feature(name=f"f{i:02d}") for i in range(N_ONLINE_FEATURES)])
    online = SQLiteOnlineStore(path=tmp_path / "online.db")
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    rng = random.Random(0)
    frame = pl.DataFrame({
        "entity_id": list(range(N_ONLINE_KEYS)),
        "_event_ts": [t0] * N_ONLINE_KEYS, "_created_ts": [None] * N_ONLINE_KEYS,
        "_file": ["0"] * N_ONLINE_KEYS, "_row": list(range(N_ONLINE_KEYS)),
        **{f"f{i:02d}": [rng.random() for _ in range(N_ONLINE_KEYS)]
           for i in range(N_ONLINE_FEATURES)},
    }, schema_overrides={"_event_ts": pl.Datetime("us", "UTC"),
                         "_created_ts": pl.Datetime("us", "UTC")})
    start = time.perf_counter()
    online.write(view, frame.to_arrow())
    write_rate = N_ONLINE_KEYS / (time.perf_counter() - start)
    store = LocalFeatureStore(online=online)

    import sqlite3

    raw = sqlite3.connect(tmp_path / "online.db")
    one_sql = 'SELECT * FROM "fv_wide" WHERE entity_id = ?'

    def raw_loop(keys: list[int]) -> list:
        return [raw.execute(one_sql, (k,)).fetchone() for k in keys]

    def raw_in(keys: list[int]) -> list:
        marks = ", ".join("?" * len(keys))
        return raw.execute(f'SELECT * FROM "fv_wide" WHERE entity_id IN ({marks})',
                           keys).fetchall()

    import pyarrow as pa

    names = view.feature_names
    report = {}
    for n in (1, 100):
        batches = [rng.sample(range(N_ONLINE_KEYS), n) for _ in range(LOOKUPS)]
        tables = [pa.table({"entity_id": pa.array(b, pa.int64())}) for b in batches]
        contenders = {
            "raw sqlite3 loop": (raw_loop, batches),
            "raw sqlite3 IN": (raw_in, batches),
            "OnlineStore.lookup (tuples)": (
                lambda b: online._lookup(view, [(k,) for k in b], names), batches),
            "OnlineStore.read (Arrow)": (lambda t: online.read(view, t), tables),
            "get_online_features (Arrow)": (
                lambda t: store.get_online_features([view], t), tables),
        }
        stats = {name: percentiles(timed(fn, data)) for name, (fn, data) in contenders.items()}
        floor = min(stats["raw sqlite3 loop"][1], stats["raw sqlite3 IN"][1])
        print(f"\nonline lookup, {n} key(s), {N_ONLINE_FEATURES} features "
              f"({N_ONLINE_KEYS:,} keys stored):")
        for name, (p50, p99) in stats.items():
            print(f"  {name:30s} p50 {p50:7.3f} ms  p99 {p99:7.3f} ms  "
                  f"p99 x{p99 / floor:.2f} of raw")
        report[n] = stats
    print(f"\nonline write: {write_rate:,.0f} rows/s")
    raw.close()
    online.close()
    for n, stats in report.items():
        assert stats["OnlineStore.read (Arrow)"][1] > 0, n
