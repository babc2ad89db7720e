"""Distributed training and point-in-time retrieval on 2 Dask workers vs one machine.

Run: ``pytest -m benchmark tests/benchmarks/bench_dask.py -s`` (``BENCH_DASK_ROWS``
changes the 5M rows).  Needs ``contrib/conveyor-dask`` installed.

Same data, same hardware: one machine trains with ``conveyor.ml.train.train`` in a
single worker process with 2 threads; the distributed side trains with
``conveyor_dask.train.train_distributed`` across 2 worker processes of 1 thread
each.  Both run as a task in fresh worker processes, so each worker's peak RSS
(``ru_maxrss``) is that side's memory.  The PIT join: the feature store's
``get_historical_features`` in one worker vs ``historical_features`` in slices
on 2 workers; the two answers must be equal row for row.
"""

from __future__ import annotations

import os
import resource
import time
from typing import Any

import pytest

ROWS = int(os.environ.get("BENCH_DASK_ROWS", 5_000_000))
CONFIG = {
    "num_boost_round": 200,
    "learning_rate": 0.1,
    "early_stopping_rounds": 20,
    "key": ["entity_id", "event_timestamp"],
    "exclude": ["entity_id"],
}


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _cluster(workers: int, threads: int) -> Any:
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=threads,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        memory_limit="10GiB",
    )
    return cluster, Client(cluster, set_as_default=False)


def _single_train(project: dict, keys: dict, config: dict) -> tuple[str, str, float]:
    from conveyor_dask.parts import worker_app

    from conveyor.ml.train import TrainConfig, train

    app = worker_app(project)
    parts = {k: app.artifacts.scan_table(v).collect() for k, v in keys.items()}
    begun = time.perf_counter()
    model = train(
        parts["train"], parts["validation"], TrainConfig.from_mapping({**config, "num_threads": 2})
    )
    return model.model_text, model.signature.to_json(), time.perf_counter() - begun


def _spread_train(project: dict, keys: dict, config: dict) -> tuple[str, str, float]:
    from conveyor_dask.parts import worker_app
    from conveyor_dask.train import train_distributed
    from distributed import worker_client

    from conveyor.ml.train import TrainConfig

    app = worker_app(project)
    parts = {k: app.artifacts.scan_table(v).collect() for k, v in keys.items()}
    begun = time.perf_counter()
    with worker_client() as client:
        model = train_distributed(
            client,
            app,
            parts["train"],
            parts["validation"],
            TrainConfig.from_mapping({**config, "num_threads": 1}),
        )
    return model.model_text, model.signature.to_json(), time.perf_counter() - begun


def _single_join(project: dict, key: str, out: str) -> float:
    from conveyor_dask.parts import worker_app

    app = worker_app(project)
    entities = app.artifacts.scan_table(key).collect()
    begun = time.perf_counter()
    frame = app.features.get_historical_features(entities, ["activity:*"]).collect()
    took = time.perf_counter() - begun
    app.artifacts.put_table(out, frame)
    return took


def _spread_join(project: dict, key: str, out: str) -> float:
    from conveyor_dask.parts import worker_app
    from conveyor_dask.retrieval import historical_features
    from distributed import worker_client

    app = worker_app(project)
    entities = app.artifacts.scan_table(key).collect()
    begun = time.perf_counter()
    with worker_client() as client:
        frame = historical_features(client, app, entities, ["activity:*"])
    took = time.perf_counter() - begun
    app.artifacts.put_table(out, frame)
    return took


def _side(workers: int, threads: int, fn: Any, *args: Any) -> tuple[Any, list[int]]:
    cluster, client = _cluster(workers, threads)
    try:
        answer = client.submit(fn, *args, pure=False).result()
        peaks = sorted(client.run(_peak_rss).values())
    finally:
        client.close()
        cluster.close()
    return answer, peaks


@pytest.mark.benchmark
def test_distributed_training_and_retrieval_vs_one_machine(conveyor_app):
    from datetime import timedelta

    from conveyor.features import Entity, Feature, FeatureView
    from conveyor.ml.data import generate
    from conveyor.ml.evaluate import evaluate_model
    from conveyor.ml.split import split_by_time
    from conveyor.ml.train import TrainedModel
    from conveyor.models.signature import Signature
    from conveyor.runs.work import project_of

    app = conveyor_app
    project = project_of(app)
    frame = generate(ROWS, days=28, seed=0)
    parts = split_by_time(frame, timestamp="event_timestamp", fractions=(0.7, 0.15, 0.15))
    keys = {}
    for name in ("train", "validation"):
        keys[name] = f"bench/{name}.parquet"
        app.artifacts.put_table(keys[name], getattr(parts, name))

    rows = []
    models = {}
    for label, workers, threads, fn in (
        ("one machine", 1, 2, _single_train),
        ("2 Dask workers", 2, 1, _spread_train),
    ):
        (text, signature, took), peaks = _side(workers, threads, fn, project, keys, CONFIG)
        model = TrainedModel.from_text(text, Signature.from_json(signature))
        models[label] = model
        auc = evaluate_model(model, parts.holdout).overall["auc"]
        rows.append((f"train {len(parts.train):,} rows", label, took, peaks, f"AUC {auc:.4f}"))
    aucs = [float(r[4].split()[1]) for r in rows]
    assert abs(aucs[0] - aucs[1]) <= 0.005, aucs

    customer = Entity(name="customer", join_keys="entity_id", dtype="int64")
    view = FeatureView(
        name="activity",
        entities=[customer],
        timestamp_field="event_timestamp",
        features=[Feature(name=f"f{i:02d}", dtype="float64") for i in range(20)]
        + [Feature(name=n, dtype="string") for n in ("region", "device", "plan")],
        ttl=timedelta(days=30),
    )
    app.features.apply([customer, view])
    app.features.ingest("activity", frame.drop("label"))
    entities = frame.select("entity_id", "event_timestamp", "label").with_columns(
        frame["event_timestamp"] + timedelta(minutes=3)
    )
    app.artifacts.put_table("bench/entities.parquet", entities)
    del frame, parts
    answers = {}
    for label, workers, threads, fn in (
        ("one machine", 1, 2, _single_join),
        ("2 Dask workers", 2, 1, _spread_join),
    ):
        out = f"bench/joined-{workers}.parquet"
        took, peaks = _side(workers, threads, fn, project, "bench/entities.parquet", out)
        answers[label] = app.artifacts.scan_table(out).collect()
        rows.append((f"PIT join {entities.height:,} rows", label, took, peaks, ""))
    assert answers["one machine"].equals(answers["2 Dask workers"]), "the joins differ"

    print()
    print("| work | where | time | peak RSS per worker | result |")
    print("|---|---|---|---|---|")
    for work, where, took, peaks, result in rows:
        memory = ", ".join(f"{p / 2**30:.2f} GiB" for p in peaks)
        print(f"| {work} | {where} | {took:.1f} s | {memory} | {result} |")
