"""Distributed LightGBM on 2 workers: the same kind of model, as good as one machine's."""

from __future__ import annotations

import hashlib

import pytest

from conveyor.ml.data import generate
from conveyor.ml.evaluate import evaluate_model
from conveyor.ml.split import split_by_time
from conveyor.ml.train import TrainConfig, train
from conveyor.runs import run_pipeline

CONFIG = {
    "num_boost_round": 120,
    "learning_rate": 0.1,
    "early_stopping_rounds": 20,
    "key": ["entity_id", "event_timestamp"],
}


@pytest.fixture(scope="module")
def parts():
    return split_by_time(
        generate(20_000, seed=3), timestamp="event_timestamp", fractions=(0.7, 0.15, 0.15)
    )


@pytest.fixture
def client(scheduler):
    from distributed import Client

    with Client(scheduler, timeout="20s", set_as_default=False) as client:
        yield client


def test_distributed_training_matches_one_machine(client, conveyor_app, parts):
    from conveyor_dask.train import train_distributed

    config = TrainConfig.from_mapping(CONFIG)
    single = train(parts.train, parts.validation, config)
    spread = train_distributed(
        client, conveyor_app, parts.train, parts.validation, config, partitions=3
    )
    assert spread.signature == single.signature
    assert spread.model_text.startswith("tree\n")
    assert spread.sha256 == hashlib.sha256(spread.model_text.encode()).hexdigest()
    assert 1 <= spread.best_iteration <= CONFIG["num_boost_round"]
    assert spread.model_text.count("\nTree=") == spread.best_iteration
    auc_single = evaluate_model(single, parts.holdout).overall["auc"]
    auc_spread = evaluate_model(spread, parts.holdout).overall["auc"]
    assert auc_single > 0.7
    assert abs(auc_spread - auc_single) <= 0.005, (auc_spread, auc_single)
    assert not list(conveyor_app.artifacts.list("scratch/")), "the parts were left behind"


def test_the_step_on_a_worker_trains_across_the_cluster_above_the_threshold(
    dask_app, project_steps
):
    result = run_pipeline(dask_app, project_steps.big_training)
    assert result.ok, result.error
    run = dask_app.metadata.get_run(result.run_id)
    (execution,) = [s for s in run.steps if s.name == "train_model"]
    assert execution.metrics["distributed"] == 1.0
    model = result.output("train_model")
    assert model.signature.label == "label"

    below = run_pipeline(
        dask_app, project_steps.big_training, parameters={"distributed_rows": 10**9}
    )
    assert below.ok, below.error
    (execution,) = [
        s for s in dask_app.metadata.get_run(below.run_id).steps if s.name == "train_model"
    ]
    assert "distributed" not in execution.metrics
    assert below.output("train_model").signature == model.signature


@pytest.mark.parametrize(("objective", "patience"), [("binary", 5), ("regression", 5)])
def test_best_iteration_is_the_one_lightgbm_early_stopping_keeps(parts, objective, patience):
    """``lightgbm.dask`` cannot stop early; the iteration chosen afterwards is LightGBM's."""
    import lightgbm as lgb
    from conveyor_dask.train import best_iteration

    from conveyor.models.inference import feature_matrix

    config = TrainConfig.from_mapping({**CONFIG, "objective": objective, "learning_rate": 0.4})
    signature = train(parts.train, parts.validation, config).signature
    params = config.lgb_params()
    x, y = (
        feature_matrix(parts.train, signature),
        parts.train.get_column("label").cast(float).to_numpy(),
    )
    vx = feature_matrix(parts.validation, signature)
    vy = parts.validation.get_column("label").cast(float).to_numpy()
    every = lgb.train(params, lgb.Dataset(x, y), num_boost_round=150)
    callbacks = [lgb.early_stopping(patience, first_metric_only=True, verbose=False)]
    stopped = lgb.train(
        params,
        lgb.Dataset(x, y),
        num_boost_round=150,
        valid_sets=[lgb.Dataset(vx, vy)],
        callbacks=callbacks,
    )
    best, _history = best_iteration(every, vx, vy, objective=objective, patience=patience)
    assert stopped.best_iteration < 150, "the case must stop early to test anything"
    assert best == stopped.best_iteration
