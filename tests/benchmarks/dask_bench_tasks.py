"""The work ``bench_dask.py`` runs on its Dask workers, uploaded to them by name.

A worker cannot import the benchmark module (``tests`` is no package it knows), so
these functions live in a top-level module that the benchmark sends to every worker
with ``Client.upload_file`` and imports under the same name itself.
"""

from __future__ import annotations

import os
import resource
import time


def probe() -> int:
    return os.getpid()


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def single_train(project: dict, keys: dict, config: dict, threads: int) -> tuple[str, str, float]:
    from conveyor_dask.parts import worker_app

    from conveyor.ml.train import TrainConfig, train

    app = worker_app(project)
    parts = {k: app.artifacts.scan_table(v).collect() for k, v in keys.items()}
    begun = time.perf_counter()
    model = train(
        parts["train"],
        parts["validation"],
        TrainConfig.from_mapping({**config, "num_threads": threads}),
    )
    return model.model_text, model.signature.to_json(), time.perf_counter() - begun


def spread_train(project: dict, keys: dict, config: dict) -> tuple[str, str, float]:
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


def single_join(project: dict, key: str, out: str) -> float:
    from conveyor_dask.parts import worker_app

    app = worker_app(project)
    entities = app.artifacts.scan_table(key).collect()
    begun = time.perf_counter()
    frame = app.features.get_historical_features(entities, ["activity:*"]).collect()
    took = time.perf_counter() - begun
    app.artifacts.put_table(out, frame)
    return took


def spread_join(project: dict, key: str, out: str) -> float:
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
