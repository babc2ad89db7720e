"""The gate: thresholds, paired bootstrap vs production, child-process infra check."""

from __future__ import annotations

import json

import numpy as np
import pytest
from attrs import evolve

from conveyor.checks import Finding, Severity
from conveyor.errors import ConveyorError, ValidationError
from conveyor.ml.bootstrap import bootstrap_metric, paired_bootstrap
from conveyor.ml.evaluate import HIGHER_IS_BETTER, METRICS, roc_auc
from conveyor.ml.gate import GateConfig, GateVerdict, validate_model
from conveyor.ml.infra import infra_check, start_infra_check
from conveyor.ml.train import sha256_text

NO_INFRA = GateConfig(infra_check=False, n_bootstrap=300)


def _looped_bootstrap(y, predictions, metric, n_bootstrap, seed):
    """The bootstrap written plainly: one resample at a time, the metric from evaluate."""
    fn = {**METRICS["binary"], **METRICS["regression"]}[metric]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_bootstrap):
        idx = rng.integers(0, y.size, size=y.size)
        values.append(fn(y[idx], predictions[idx]))
    return np.array(values)


@pytest.mark.parametrize("metric", ["auc", "logloss", "accuracy", "rmse", "mae"])
@pytest.mark.parametrize("n", [9, 60, 50_000])  # 50k rows: drawn in several chunks of rows
def test_vectorised_bootstrap_equals_a_loop_over_resamples(metric, n):
    rng = np.random.default_rng(n)
    y = (rng.random(n) < 0.3).astype(float)
    candidate = np.round(rng.random(n), 1)  # ties
    incumbent = np.clip(candidate + rng.normal(0, 0.2, n), 0.01, 0.99)
    b = 30 if n > 1000 else 200
    looped_c = _looped_bootstrap(y, candidate, metric, b, seed=4)
    looped_i = _looped_bootstrap(y, incumbent, metric, b, seed=4)
    alone = bootstrap_metric(y, candidate, metric=metric, n_bootstrap=b, seed=4)
    assert np.array_equal(np.isnan(alone), np.isnan(looped_c))  # one-class AUC resamples
    assert alone[~np.isnan(alone)] == pytest.approx(looped_c[~np.isnan(looped_c)], abs=1e-12)
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
    want = sign * (looped_c - looped_i)
    got = paired_bootstrap(y, candidate, incumbent, metric=metric, n_bootstrap=b, seed=4)
    assert got.shape == (b,) and np.array_equal(np.isnan(got), np.isnan(want))
    assert got[~np.isnan(got)] == pytest.approx(want[~np.isnan(want)], abs=1e-12)
    if metric == "auc" and n == 9:
        assert np.isnan(got).any()  # the one-class case is exercised


def test_paired_bootstrap_is_seeded_oriented_and_paired():
    rng = np.random.default_rng(0)
    y = (rng.random(2000) < 0.4).astype(float)
    good = 1 / (1 + np.exp(-(3 * y - 1.5 + rng.normal(0, 1, 2000))))
    bad = 1 / (1 + np.exp(-(1 * y - 0.5 + rng.normal(0, 1, 2000))))
    a = paired_bootstrap(y, good, bad, metric="auc", n_bootstrap=200, seed=3)
    assert np.array_equal(a, paired_bootstrap(y, good, bad, metric="auc", n_bootstrap=200, seed=3))
    assert (a > 0).all()  # candidate clearly better
    assert (paired_bootstrap(y, good, bad, metric="logloss", n_bootstrap=50) > 0).all()
    same = paired_bootstrap(y, good, good, metric="auc", n_bootstrap=50)
    assert (same == 0).all()  # paired: identical models never differ
    point = roc_auc(y, good) - roc_auc(y, bad)
    assert np.quantile(a, 0.05) < point < np.quantile(a, 0.95)


def test_first_model_passes_on_thresholds_alone(model, split):
    verdict = validate_model(model, split.holdout, config=NO_INFRA)
    assert verdict.passed, verdict.report()
    assert verdict.evidence["comparison"] is None
    assert verdict.evidence["thresholds"][0]["passed"]


def test_refuses_a_worse_model_and_passes_a_better_one(model, weak_model, split):
    refused = validate_model(
        weak_model, split.holdout, incumbent=model, config=evolve(NO_INFRA, minimums={"auc": 0.5})
    )
    assert not refused.passed
    assert [f.check for f in refused.findings if f.blocking] == ["gate.worse_than_production"]
    cmp = refused.evidence["comparison"]
    assert cmp["lower_bound"] < -cmp["margin"] and cmp["difference"] < 0
    assert "worse_than_production" in refused.report() and "lower bound" in refused.report()
    with pytest.raises(ValidationError):
        refused.raise_if_refused()

    passed = validate_model(model, split.holdout, incumbent=weak_model, config=NO_INFRA)
    assert passed.passed, passed.report()
    assert passed.evidence["comparison"]["lower_bound"] > 0


def test_same_model_as_production_passes_with_zero_margin(model, split):
    verdict = validate_model(
        model, split.holdout, incumbent=model, config=evolve(NO_INFRA, margin=0.0)
    )
    assert verdict.passed and verdict.evidence["comparison"]["lower_bound"] == 0.0


def test_lower_is_better_metric_and_m_out_of_n(model, weak_model, split):
    cfg = evolve(
        NO_INFRA, metric="logloss", minimums={}, maximums={"logloss": 0.9}, bootstrap_rows=300
    )
    verdict = validate_model(weak_model, split.holdout, incumbent=model, config=cfg)
    assert not verdict.passed
    assert verdict.evidence["comparison"]["bootstrap_rows"] == 300
    assert validate_model(model, split.holdout, incumbent=weak_model, config=cfg).passed


def test_absolute_thresholds(model, split):
    verdict = validate_model(
        model,
        split.holdout,
        config=evolve(NO_INFRA, minimums={"auc": 0.999}, maximums={"logloss": 0.01}),
    )
    assert not verdict.passed
    assert {f.subject for f in verdict.findings if f.check == "gate.threshold"} == {
        "auc",
        "logloss",
    }


def test_incomparable_production_blocks_unless_configured(model, split):
    holdout = split.holdout.drop("f19")  # production needs f19, candidate does not
    from conveyor.ml.train import TrainConfig, train

    cfg = TrainConfig(exclude=("entity_id", "f19"), num_boost_round=30, num_threads=2)
    candidate = train(split.train, split.validation, cfg)
    verdict = validate_model(candidate, holdout, incumbent=model, config=NO_INFRA)
    assert not verdict.passed and verdict.findings[0].check == "gate.incomparable"
    lenient = validate_model(
        candidate, holdout, incumbent=model, config=evolve(NO_INFRA, incomparable="warning")
    )
    assert lenient.passed


def test_plugin_findings_join_the_verdict(model, split):
    extra = [Finding(check="plugin.fairness", message="slice gap too large")]
    verdict = validate_model(model, split.holdout, config=NO_INFRA, extra_findings=extra)
    assert not verdict.passed and verdict.reasons == ["slice gap too large"]
    warn = [Finding(check="plugin.note", message="fyi", severity=Severity.WARNING)]
    assert validate_model(model, split.holdout, config=NO_INFRA, extra_findings=warn).passed


def test_unknown_metric_is_a_config_error():
    with pytest.raises(ConveyorError, match="does not know metric"):
        GateConfig(metric="f1")


def test_verdict_is_strict_json_and_round_trips(model, weak_model, split):
    verdict = validate_model(
        weak_model, split.holdout, incumbent=model, config=evolve(NO_INFRA, minimums={"auc": 0.5})
    )
    text = verdict.to_json()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert GateVerdict.from_json(text) == verdict


def test_infra_check_in_a_child_process(model, split):
    verdict = validate_model(
        model, split.holdout, config=GateConfig(n_bootstrap=100, infra_sample_rows=64)
    )
    assert verdict.passed, verdict.report()
    infra = verdict.evidence["infra"]
    assert infra["passed"] and infra["rows"] == 64 and infra["max_abs_diff"] == 0.0
    assert infra["sha256"] == model.sha256


def _corrupt(model, text):
    return evolve(model, model_text=text, sha256=sha256_text(text))


def test_infra_check_catches_a_corrupt_model_text(model, split):
    sample = split.holdout.head(32)
    # garbled structure: LightGBM's parser aborts the child (SIGABRT) -- loaded
    # in-process, this text would have killed the caller
    lines = model.model_text.splitlines(keepends=True)
    garbled = "".join(line.replace("split_feature=", "split_feature=x9 ") for line in lines)
    result = infra_check(_corrupt(model, garbled), sample)
    assert not result.passed
    assert result.findings[0].check == "infra.load_failed"
    assert result.evidence["returncode"] != 0
    assert "Model format error" in result.evidence["stderr"]

    # truncated text: refused cleanly by the loader
    result = infra_check(_corrupt(model, model.model_text[: len(model.model_text) // 2]), sample)
    assert not result.passed and result.findings[0].check in (
        "infra.load_failed",
        "infra.prediction_mismatch",
    )

    # a changed leaf value: loads fine, but is not the model that was evaluated
    lines = model.model_text.split("\n")
    at = next(i for i, line in enumerate(lines) if line.startswith("leaf_value="))
    values = lines[at].removeprefix("leaf_value=").split(" ")
    # every leaf of the first tree, same text length (the header's tree_sizes must hold)
    changed = [v.replace(".", ".9", 1)[: len(v)] for v in values]
    assert all(len(a) == len(b) and a != b for a, b in zip(changed, values, strict=True))
    lines[at] = "leaf_value=" + " ".join(changed)
    tweaked = "\n".join(lines)
    result = infra_check(_corrupt(model, tweaked), sample)
    assert not result.passed and result.findings[0].check == "infra.prediction_mismatch"

    # text that does not match its recorded hash
    result = infra_check(evolve(model, model_text=tweaked), sample)
    assert not result.passed and "SHA-256" in result.findings[0].message

    verdict = validate_model(
        _corrupt(model, garbled),
        split.holdout,
        config=GateConfig(n_bootstrap=100, infra_sample_rows=32),
    )
    assert not verdict.passed
    assert [f.check for f in verdict.findings if f.blocking] == ["infra.load_failed"]


def test_a_started_infra_check_runs_alongside_and_judges_like_the_blocking_one(model, split):
    sample = split.holdout.head(16)
    pending = start_infra_check(model, sample)
    assert pending._run._proc.poll() is None  # returned before the child finished
    started = infra_check(model, sample)
    got = pending.result()
    assert got.passed and started.passed
    assert got.evidence["rows"] == started.evidence["rows"] == 16
    verdict = validate_model(
        model,
        split.holdout,
        config=GateConfig(n_bootstrap=100, infra_sample_rows=16),
        infra=start_infra_check(model, sample),
    )
    assert verdict.passed and verdict.evidence["infra"]["rows"] == 16

    stopped = start_infra_check(model, sample)
    stopped.discard()
    assert stopped._run._proc.returncode is not None  # no child left running


def _register(app, model, name="churn"):
    info = app.artifacts.put_bytes(f"models/{name}/model.txt", model.model_text.encode())
    return app.registry.register(
        name,
        artifact_uri=info.uri,
        sha256=info.sha256,
        model_format="lightgbm-text",
        signature=model.signature,
        actor="test",
    )


def test_a_pending_incumbent_is_judged_like_a_loaded_one(conveyor_app, model, weak_model, split):
    from conveyor.models import registered

    registered._TRUSTED.discard(weak_model.sha256)
    pending = registered.start_registered_load(conveyor_app, _register(conveyor_app, weak_model))
    assert pending._canary is not None  # production's canary child runs meanwhile
    verdict = validate_model(model, split.holdout, incumbent=pending, config=NO_INFRA)
    loaded = validate_model(model, split.holdout, incumbent=weak_model, config=NO_INFRA)
    got, want = verdict.evidence["comparison"], loaded.evidence["comparison"]
    assert verdict.passed and {**got, "seconds": 0} == {**want, "seconds": 0}
    assert pending._canary is None and weak_model.sha256 in registered._TRUSTED


def test_the_gate_step_reuses_the_evaluation_scores_and_refuses_another_models(
    conveyor_app, model, weak_model, split
):
    from conveyor.ml.errors import DegenerateDataError
    from conveyor.ml.evaluate import evaluate_model
    from conveyor.pipeline import StepContext
    from conveyor.training import gate

    def ctx():
        return StepContext(app=conveyor_app, run_id="r", step="gate")

    rule = {"infra_check": False, "n_bootstrap": 100}
    evaluation = evaluate_model(model, split.holdout)
    scored = gate.fn(ctx(), model, split.holdout, None, rule=rule)
    reused = gate.fn(ctx(), model, split.holdout, None, evaluation, rule=rule)
    assert reused == scored
    # the stored scores are what the gate judges: inverted, the candidate's AUC flips
    inverted = evolve(evaluation, predictions=1.0 - evaluation.predictions)
    flipped = gate.fn(ctx(), model, split.holdout, None, inverted, rule=rule)
    auc = flipped.evidence["candidate"]["metrics"]["auc"]
    assert auc == pytest.approx(1 - scored.evidence["candidate"]["metrics"]["auc"])
    with pytest.raises(DegenerateDataError, match="is of model"):
        gate.fn(ctx(), model, split.holdout, None, evaluate_model(weak_model, split.holdout))
