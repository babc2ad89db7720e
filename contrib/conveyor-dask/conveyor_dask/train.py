"""LightGBM trained across a Dask cluster with ``lightgbm.dask``, from Parquet parts.

:func:`train_distributed` makes the same model :func:`conveyor.ml.train.train`
makes: the same checks and :class:`~conveyor.models.signature.Signature`, the
same encoding (:func:`~conveyor.models.inference.feature_matrix`, run on the
workers, part by part), LightGBM text cut at the best iteration, SHA-256.  The
training set goes to the artifact store as Parquet parts that the workers read;
``DaskLGBMClassifier``/``DaskLGBMRegressor`` train data-parallel on them.
``lightgbm.dask`` has no early stopping, so every round is trained and the best
iteration is then chosen on the validation part by the rule LightGBM's
``early_stopping`` applies (the first metric; stop after ``early_stopping_rounds``
rounds without improvement).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from attrs import evolve

from conveyor.runs.work import project_of
from conveyor_dask.parts import part_count, read_part, scratch, worker_app, write_parts

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

    from conveyor.ml.train import TrainConfig, TrainedModel


def encode_part(
    project: dict[str, Any], part: dict[str, Any], signature_json: str, label: str
) -> tuple[np.ndarray, np.ndarray]:
    """One part as the booster sees it: (feature matrix, label), on a worker."""
    import polars as pl

    from conveyor.models.inference import feature_matrix
    from conveyor.models.signature import Signature

    frame = read_part(worker_app(project), part)
    signature = Signature.from_json(signature_json)
    return (feature_matrix(frame, signature), frame.get_column(label).cast(pl.Float64).to_numpy())


def _dask_arrays(
    project: dict[str, Any], parts: list[dict[str, Any]], signature: Any, label: str
) -> tuple[Any, Any]:
    import dask
    import dask.array as da
    import numpy as np

    xs, ys = [], []
    width = len(signature.features)
    for part in parts:
        pair = dask.delayed(encode_part, pure=True)(project, part, signature.to_json(), label)
        xs.append(da.from_delayed(pair[0], shape=(part["rows"], width), dtype=np.float64))
        ys.append(da.from_delayed(pair[1], shape=(part["rows"],), dtype=np.float64))
    return da.concatenate(xs), da.concatenate(ys)


def _first_metric(objective: str, raw: np.ndarray, y: np.ndarray) -> float:
    import numpy as np

    if objective == "binary":
        p = np.clip(1.0 / (1.0 + np.exp(-raw)), 1e-15, 1 - 1e-15)
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    return float(np.mean((raw - y) ** 2))


def best_iteration(
    booster: Any, x: np.ndarray, y: np.ndarray, *, objective: str, patience: int
) -> tuple[int, list[float]]:
    """The iteration LightGBM's early stopping would keep, and the metric per iteration."""
    import numpy as np

    raw = np.zeros(len(y))
    history: list[float] = []
    best, best_value = 0, math.inf
    for i in range(booster.current_iteration()):
        raw += booster.predict(x, start_iteration=i, num_iteration=1, raw_score=True)
        value = _first_metric(objective, raw, y)
        history.append(value)
        if value < best_value:
            best, best_value = i + 1, value
        elif patience and i + 1 - best >= patience:
            break
    return max(best, 1), history


def train_distributed(
    client: Any,
    app: Any,
    train_frame: pl.DataFrame,
    validation_frame: pl.DataFrame | None = None,
    config: TrainConfig | None = None,
    *,
    partitions: int = 0,
) -> TrainedModel:
    """Train across the cluster ``client`` reaches; the model single-machine training makes.

    Args:
        client: a client of the cluster.
        app: the project (its artifact store must be reachable from every worker).
        train_frame, validation_frame, config: as for :func:`conveyor.ml.train.train`.
        partitions: Parquet parts of the training set (0: from the workers and the size).
    """
    import lightgbm as lgb

    from conveyor.ml.inputs import build_signature, check_training_data
    from conveyor.ml.train import TrainConfig, TrainedModel
    from conveyor.models.inference import Predictor, feature_matrix

    config = config or TrainConfig()
    check_training_data(train_frame, config, part="training")
    others = [validation_frame] if validation_frame is not None else []
    signature = build_signature(train_frame, config, others=others)
    if validation_frame is not None:
        check_training_data(validation_frame, config, part="validation", full=False)
        Predictor(signature).validate(validation_frame)
    params = config.lgb_params()
    fit_params = {k: v for k, v in params.items() if k not in ("metric",)}
    model_class = lgb.DaskLGBMClassifier if config.objective == "binary" else lgb.DaskLGBMRegressor
    categorical = [i for i, f in enumerate(signature.features) if f.categories is not None]
    with scratch(app) as prefix:
        parts = write_parts(
            app, train_frame, f"{prefix}/train", part_count(client, train_frame.height, partitions)
        )
        x, y = _dask_arrays(project_of(app), parts, signature, config.label)
        if config.objective == "binary":
            y = y.astype("int64")
        estimator = model_class(client=client, n_estimators=config.num_boost_round, **fit_params)
        with client.as_current():  # lightgbm.dask waits on the current client's futures
            estimator.fit(
                x, y, feature_name=list(signature.names), categorical_feature=categorical or "auto"
            )
    booster = estimator.booster_
    best, history = booster.current_iteration(), []
    if validation_frame is not None and config.early_stopping_rounds:
        best, history = best_iteration(
            booster,
            feature_matrix(validation_frame, signature),
            validation_frame.get_column(config.label).cast(float).to_numpy(),
            objective=config.objective,
            patience=config.early_stopping_rounds,
        )
    text = booster.model_to_string(num_iteration=best)
    model = TrainedModel.from_text(text, signature, best_iteration=best, params=params)
    metric = "binary_logloss" if config.objective == "binary" else "l2"
    return evolve(model, evals={metric: history} if history else {})
