"""Pipeline steps that use the cluster for big data, and core's steps for the rest.

Drop-in replacements for :func:`conveyor.training.build_training_set` and
:func:`conveyor.training.train_model` (same parameters, plus ``distributed_rows``
and ``partitions``).  At ``distributed_rows`` rows or more, and with a Dask
cluster to use (the ``dask`` orchestrator runs the step, or ``[orchestrator]``
names a scheduler), they build the point-in-time training set slice by slice on
the workers and train with ``lightgbm.dask``; otherwise they are exactly core's
steps.  Either way the values are the same kind: a table, and a
:class:`~conveyor.models.model.TrainedModel` (LightGBM text, signature, SHA-256).

In ``pipeline.py``, import these two instead of core's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor.pipeline import StepContext, step
from conveyor.training import build_training_set as _core_training_set
from conveyor.training import train_model as _core_train_model
from conveyor_dask.cluster import cluster_client

if TYPE_CHECKING:
    import polars as pl

    from conveyor.ml.train import TrainedModel

#: Below this many rows one machine is faster than shipping the data around.
DISTRIBUTED_ROWS = 1_000_000


@step
def build_training_set(
    ctx: StepContext,
    data: pl.DataFrame,
    ingested: dict,
    *,
    features: list,
    label: str = "label",
    timestamp: str = "event_timestamp",
    distributed_rows: int = DISTRIBUTED_ROWS,
    partitions: int = 0,
) -> pl.DataFrame:
    """Labels joined point-in-time correct with the feature views, on the cluster if big."""
    if data.height >= distributed_rows:
        from conveyor_dask.retrieval import historical_features

        with cluster_client(ctx.app) as client:
            if client is not None:
                store = ctx.app.features
                keys = list(store.get_view(ingested["view"]).join_keys)
                frame = historical_features(
                    client,
                    ctx.app,
                    data.select([*keys, timestamp, label]),
                    features,
                    timestamp=timestamp,
                    partitions=partitions,
                )
                ctx.log_metrics({"training_rows": frame.height, "distributed": 1.0})
                return frame
    return _core_training_set.fn(
        ctx, data, ingested, features=features, label=label, timestamp=timestamp
    )


@step
def train_model(
    ctx: StepContext,
    train: pl.DataFrame,
    validation: pl.DataFrame,
    *,
    params: dict | None = None,
    distributed_rows: int = DISTRIBUTED_ROWS,
    partitions: int = 0,
) -> TrainedModel:
    """LightGBM with early stopping on the validation part; across the cluster if big."""
    if train.height >= distributed_rows:
        from conveyor.ml.train import TrainConfig
        from conveyor_dask.train import train_distributed

        with cluster_client(ctx.app) as client:
            if client is not None:
                config = TrainConfig.from_mapping(
                    params or {}, section="train", where="pipeline parameters"
                )
                model = train_distributed(
                    client, ctx.app, train, validation, config, partitions=partitions
                )
                ctx.log_metrics({"best_iteration": model.best_iteration, "distributed": 1.0})
                return model
    return _core_train_model.fn(ctx, train, validation, params=params)
