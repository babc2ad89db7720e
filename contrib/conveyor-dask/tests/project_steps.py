"""Steps the Dask tests run on workers, copied into each test's project folder.

A worker imports a step by its module name, so a step must live where a project's
own modules do (the project root, which every worker puts on its ``sys.path``),
not in a test module that only pytest knows how to import.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from conveyor.ml.data import generate
from conveyor.ml.split import split_by_time
from conveyor.pipeline import pipeline, step

TRAINING = {
    "num_boost_round": 120,
    "learning_rate": 0.1,
    "early_stopping_rounds": 20,
    "key": ["entity_id", "event_timestamp"],
}


@step(cache=False, retries=1, backoff_s=0.1)
def dies_once(ctx) -> dict:
    """The first attempt waits to be killed with its worker; the second one finishes."""
    marker = Path(ctx.app.root) / "worker.pid"
    if not marker.exists():
        marker.write_text(str(os.getpid()))
        time.sleep(60)
    return {"pid": os.getpid()}


@pipeline
def killed_worker():
    dies_once()


@step(outputs=("train", "validation", "holdout"))
def three_parts(seed: int) -> tuple:
    parts = split_by_time(
        generate(12_000, seed=seed), timestamp="event_timestamp", fractions=(0.7, 0.15, 0.15)
    )
    return parts.train, parts.validation, parts.holdout


@pipeline
def big_training(distributed_rows: int = 1):
    from conveyor_dask.training import train_model

    train_part, validation_part, _ = three_parts(seed=5)
    train_model(train_part, validation_part, params=TRAINING, distributed_rows=distributed_rows)
