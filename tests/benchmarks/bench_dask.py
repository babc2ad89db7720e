"""Distributed training and point-in-time retrieval on 2 Dask workers vs one machine.

Run: ``pytest -m benchmark tests/benchmarks/bench_dask.py -s`` (``BENCH_DASK_ROWS``
changes the 5M rows).  Needs ``contrib/conveyor-dask`` installed.

Same data, same hardware: one machine trains with ``conveyor.ml.train.train`` in a
single worker process with ``BENCH_DASK_SINGLE_THREADS`` LightGBM threads (default 1:
one worker's share of the cluster); the distributed side trains with
``conveyor_dask.train.train_distributed`` across 2 worker processes of 1 thread
each.  Both run as a task in fresh worker processes; each worker's peak RSS is
reset before the task and read after it (``VmHWM``), so it is that side's memory.
The PIT join: the feature store's ``get_historical_features`` in one worker vs
``historical_features`` in slices on 2 workers; the two answers must be equal row
for row.

The work on the workers is in ``dask_bench_tasks.py``, uploaded to each side's
workers (``Client.upload_file``): a worker cannot import this module (``tests`` is
no package it knows), and a task it cannot unpickle breaks the worker's connection
instead of failing the task, so each side first runs a probe task with a short
timeout and every wait is bounded.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import pytest

TASKS_FILE = Path(__file__).with_name("dask_bench_tasks.py")

ROWS = int(os.environ.get("BENCH_DASK_ROWS", 5_000_000))
SINGLE_THREADS = int(os.environ.get("BENCH_DASK_SINGLE_THREADS", 1))
#: A probe task answers in seconds; a side's task may take long at 5M rows, not forever.
PROBE_TIMEOUT_S = 60.0
TASK_TIMEOUT_S = float(os.environ.get("BENCH_DASK_TIMEOUT_S", 3600))
CONFIG = {
    "num_boost_round": 200,
    "learning_rate": 0.1,
    "early_stopping_rounds": 20,
    "key": ["entity_id", "event_timestamp"],
    "exclude": ["entity_id"],
}


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


def _tasks() -> Any:
    """``dask_bench_tasks`` imported under its own top-level name, as the workers have it."""
    if "dask_bench_tasks" not in sys.modules:
        spec = importlib.util.spec_from_file_location("dask_bench_tasks", TASKS_FILE)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["dask_bench_tasks"] = module
        spec.loader.exec_module(module)
    return sys.modules["dask_bench_tasks"]


def _side(workers: int, threads: int, fn: str, *args: Any) -> tuple[Any, list[int]]:
    tasks = _tasks()
    cluster, client = _cluster(workers, threads)
    try:
        client.upload_file(str(TASKS_FILE))
        try:
            client.submit(tasks.probe, pure=False).result(timeout=PROBE_TIMEOUT_S)
        except TimeoutError:
            pytest.fail(
                f"a Dask worker did not run the benchmark's probe task in {PROBE_TIMEOUT_S:g} s:"
                " it cannot load the task's function (see the worker's log above)"
            )
        client.run(tasks.reset_peak_rss)
        answer = client.submit(getattr(tasks, fn), *args, pure=False).result(timeout=TASK_TIMEOUT_S)
        peaks = sorted(client.run(tasks.peak_rss).values())
    finally:
        client.close()
        cluster.close(timeout=60)
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
    for label, workers, fn, extra in (
        (f"one machine ({SINGLE_THREADS} LightGBM thread)", 1, "single_train", (SINGLE_THREADS,)),
        ("2 Dask workers (1 thread each)", 2, "spread_train", ()),
    ):
        (text, signature, took), peaks = _side(workers, 1, fn, project, keys, CONFIG, *extra)
        model = TrainedModel.from_text(text, Signature.from_json(signature))
        models[label] = model
        auc = evaluate_model(model, parts.holdout).overall["auc"]
        rows.append((f"train {len(parts.train):,} rows", label, took, peaks, f"AUC {auc:.4f}"))
    aucs = [float(r[4].split()[1]) for r in rows]

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
        ("one machine", 1, 2, "single_join"),
        ("2 Dask workers", 2, 1, "spread_join"),
    ):
        out = f"bench/joined-{workers}.parquet"
        took, peaks = _side(workers, threads, fn, project, "bench/entities.parquet", out)
        answers[label] = app.artifacts.scan_table(out).collect()
        rows.append((f"PIT join {entities.height:,} rows", label, took, peaks, ""))
    equal = answers["one machine"].equals(answers["2 Dask workers"])
    rows[-1] = (*rows[-1][:4], "equal" if equal else "DIFFERENT")

    print()
    print("| work | where | time | peak RSS per worker | result |")
    print("|---|---|---|---|---|")
    for work, where, took, peaks, result in rows:
        memory = ", ".join(f"{p / 2**30:.2f} GiB" for p in peaks)
        print(f"| {work} | {where} | {took:.1f} s | {memory} | {result} |")
    assert abs(aucs[0] - aucs[1]) <= 0.005, aucs
    assert equal, "the distributed join differs from the single-machine join"
