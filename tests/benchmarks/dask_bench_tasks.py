"""The work ``bench_dask.py`` runs on its Dask workers, uploaded to them by name.

A worker cannot import the benchmark module (``tests`` is no package it knows), so
these functions live in a top-level module that the benchmark sends to every worker
with ``Client.upload_file`` and imports under the same name itself.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def probe() -> int:
    return os.getpid()


def reset_peak_rss() -> None:
    """Start this worker's peak RSS afresh (Linux: writing 5 to ``clear_refs``).

    ``ru_maxrss`` cannot be used: a worker process is forked from the benchmark's
    process and exec'd, and Linux carries ``ru_maxrss`` across exec, so every worker
    would report the benchmark process's own peak.
    """
    Path("/proc/self/clear_refs").write_text("5")


def peak_rss() -> int:
    """This worker's peak RSS since :func:`reset_peak_rss`, in bytes (``VmHWM``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status: peak RSS needs Linux")


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
