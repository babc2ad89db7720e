"""A cached output is exactly what its step produced: the model's identity covers its
signature, so one model text trained with two signatures never shares a cache entry."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor.pipeline import files, model_alias, pipeline
from conveyor.runs import run_pipeline
from conveyor.training import evaluate_candidate, gate, load_data, split_data, train_model


@pipeline
def cached_training(
    data: str = "data/*.parquet",
    nullable: list | None = None,
    rounds: int = 8,
    gate_rule: dict | None = None,
):
    raw = load_data(files(data))
    production = model_alias("m", "production")
    train_part, validation_part, holdout = split_data(raw, cutoffs=["2024-01-15", "2024-01-22"])
    candidate = train_model(
        train_part,
        validation_part,
        params={
            "num_boost_round": rounds,
            "early_stopping_rounds": 0,
            "learning_rate": 0.3,
            "nullable": nullable or [],
            "key": ["entity_id", "event_timestamp"],
        },
    )
    evaluate_candidate(candidate, holdout)
    gate(
        candidate,
        holdout,
        production,
        model_name="m",
        rule={"infra_check": False, "n_bootstrap": 50, **(gate_rule or {})},
    )


def write_data(root) -> None:
    """Weather-like data: ``precip`` is never missing before the holdout, often after."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(3)
    n = 1200
    start = datetime(2024, 1, 1)
    ts = [start + timedelta(minutes=30 * i) for i in range(n)]
    x = rng.normal(size=n)
    precip = rng.gamma(1.0, size=n)
    late = np.array([t >= datetime(2024, 1, 22) for t in ts])
    label = (x + precip + rng.normal(scale=0.5, size=n) > 1.0).astype(np.int64)
    frame = pl.DataFrame(
        {
            "entity_id": np.arange(n),
            "event_timestamp": ts,
            "x": x,
            "precip": pl.Series(
                [
                    None if gone else float(v)
                    for gone, v in zip(late & (rng.random(n) < 0.3), precip, strict=True)
                ],
                dtype=pl.Float64,
            ),
            "carrier": rng.choice(["AA", "DL", "UA"], size=n),
            "label": label,
        }
    )
    (root / "data").mkdir(exist_ok=True)
    frame.write_parquet(root / "data" / "batch.parquet")


def outcome_values(app, result) -> dict:
    """What each step produced, comparable across runs (None for a failed step)."""
    out = {}
    for node in ("train_model", "evaluate_candidate", "gate"):
        step = result.steps[node]
        if step.status not in ("succeeded", "cached", "refused"):
            out[node] = (step.status, None)
            continue
        value = result.output(node)
        if node == "train_model":
            out[node] = (value.sha256, value.signature.to_dict())
        else:
            out[node] = value.to_dict()
    return out


@pytest.fixture
def project(conveyor_app, tmp_path):
    write_data(tmp_path)
    return conveyor_app


def test_a_signature_change_alone_is_a_new_model_for_every_step_after_training(project):
    # with precip listed nullable the model scores the holdout's missing values
    first = run_pipeline(project, cached_training, parameters={"nullable": ["precip"]})
    assert first.steps["gate"].status in ("succeeded", "refused"), first.error
    # the same model text, trained without the option: a fresh gate cannot score the
    # holdout, and the first run's verdict must not come back from the cache
    second = run_pipeline(project, cached_training, parameters={"nullable": []})
    first_model, second_model = first.output("train_model"), second.output("train_model")
    assert first_model.sha256 == second_model.sha256
    assert first_model.signature != second_model.signature
    assert second.status == "failed"
    judged = second.steps["evaluate_candidate"]  # scoring the holdout is what fails
    assert judged.status == "failed"
    assert "trained without missing values" in judged.error
    assert "train.nullable" in (judged.hint or "")
    # only the gate's parameter changes: the model comes back with its own signature
    third = run_pipeline(
        project,
        cached_training,
        parameters={"nullable": ["precip"], "gate_rule": {"minimums": {"auc": 0.51}}},
    )
    assert third.steps["train_model"].status == "cached"
    assert third.output("train_model").signature == first_model.signature
    assert third.steps["gate"].status in ("succeeded", "refused")
    assert "trained without missing values" not in (third.steps["gate"].error or "")


CHANGES = st.lists(
    st.fixed_dictionaries(
        {
            "nullable": st.sampled_from([[], ["precip"], ["precip", "x"]]),
            "rounds": st.sampled_from([4, 8]),
            "gate_rule": st.sampled_from(
                [{}, {"minimums": {"auc": 0.51}}, {"minimums": {"auc": 0.99}}]
            ),
        }
    ),
    min_size=2,
    max_size=4,
)


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sequence=CHANGES)
def test_every_cached_result_equals_a_fresh_run(project, sequence):
    for parameters in sequence:
        cached = run_pipeline(project, cached_training, parameters=parameters)
        fresh = run_pipeline(project, cached_training, parameters=parameters, use_cache=False)
        assert outcome_values(project, cached) == outcome_values(project, fresh), parameters
