"""The trainer, the signature, predict() and save/load."""

from __future__ import annotations

import json

import lightgbm as lgb
import numpy as np
import polars as pl
import pytest

from conveyor.errors import ConfigError, IntegrityError, NotFoundError
from conveyor.ml.data import KEY
from conveyor.ml.errors import DegenerateDataError, ModelLoadError, PredictionInputError
from conveyor.ml.train import (
    Signature,
    TrainConfig,
    TrainedModel,
    load_model,
    predict,
    save_model,
    train,
)


def test_signature_has_order_kinds_and_sorted_category_maps(model, split):
    sig = model.signature
    assert sig.names == (*[f"f{i:02d}" for i in range(20)], "region", "device", "plan")
    assert sig.category_maps["device"] == {"desktop": 0, "mobile": 1, "tablet": 2}
    nullable = {f.name for f in sig.features if f.nullable}
    assert nullable == {"f03", "f07", "f15"}
    assert Signature.from_json(sig.to_json()) == sig
    assert model.booster.feature_name() == list(sig.names)


def test_early_stopping_keeps_the_best_iteration(model, config):
    assert 0 < model.best_iteration < config.num_boost_round
    assert model.booster.current_iteration() == model.best_iteration
    assert len(model.evals["binary_logloss"]) > model.best_iteration


def test_predictions_do_not_depend_on_column_order(model, split):
    holdout = split.holdout
    expected = predict(model, holdout)
    rng = np.random.default_rng(0)
    for _ in range(3):
        permuted = holdout.select(list(rng.permutation(holdout.columns)))
        assert np.array_equal(predict(model, permuted), expected)  # bit-identical
    assert np.array_equal(predict(model, holdout.drop("label", "entity_id")), expected)


def test_predictions_do_not_depend_on_category_order(model, split):
    holdout = split.holdout
    expected = predict(model, holdout)
    variants = []
    for col in ("region", "device", "plan"):
        cats = sorted(holdout[col].unique().to_list())
        variants.append(holdout.with_columns(pl.col(col).cast(pl.Enum(cats[::-1]))))
        variants.append(holdout.with_columns(pl.col(col).cast(pl.Enum(cats))))
    # Categorical built from rows in reverse order: other physical codes, same values
    variants.append(holdout.reverse().with_columns(pl.col("region").cast(pl.Categorical)).reverse())
    for frame in variants:
        assert np.array_equal(predict(model, frame), expected)


def test_training_does_not_depend_on_category_order(split, config):
    def as_enum(frame, order):
        return frame.with_columns(pl.col("device").cast(pl.Enum(order)))

    a = train(
        as_enum(split.train, ["mobile", "desktop", "tablet"]),
        as_enum(split.validation, ["mobile", "desktop", "tablet"]),
        config,
    )
    b = train(
        as_enum(split.train, ["tablet", "desktop", "mobile"]),
        as_enum(split.validation, ["tablet", "desktop", "mobile"]),
        config,
    )
    assert a.model_text == b.model_text and a.sha256 == b.sha256


def test_unseen_categories_are_missing(model, split):
    rows = split.holdout.head(50)
    one = predict(model, rows.with_columns(pl.lit("atlantis").alias("region")))
    two = predict(model, rows.with_columns(pl.lit("lemuria").alias("region")))
    assert np.array_equal(one, two)
    assert not np.array_equal(one, predict(model, rows))


def test_bad_input_is_refused_by_name(model, split):
    rows = split.holdout.head(20)
    cases = {
        "'f01' is missing": rows.drop("f01"),
        "'f02' has type String": rows.with_columns(pl.col("f02").cast(pl.String)),
        "'f04' has 1 infinite": rows.with_columns(
            pl.when(pl.int_range(pl.len()) == 3)
            .then(float("-inf"))
            .otherwise(pl.col("f04"))
            .alias("f04")
        ),
        "'f05' has 1 missing": rows.with_columns(
            pl.when(pl.int_range(pl.len()) == 3)
            .then(float("nan"))
            .otherwise(pl.col("f05"))
            .alias("f05")
        ),
        "'region' has 20 missing": rows.with_columns(pl.lit(None, pl.String).alias("region")),
    }
    for message, frame in cases.items():
        with pytest.raises(PredictionInputError, match=message) as info:
            predict(model, frame)
        assert info.value.findings
    # nullable features accept missing values; integer columns are fine for floats
    ok = rows.with_columns(
        pl.lit(None, pl.Float64).alias("f03"), pl.col("f06").round().cast(pl.Int32)
    )
    assert predict(model, ok).shape == (20,)


def test_save_load_round_trip_is_bit_identical(model, split, tmp_path):
    save_model(model, tmp_path / "m")
    assert (tmp_path / "m" / "model.txt").read_text().startswith("tree\n")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["model.json", "model.txt"]
    loaded = load_model(tmp_path / "m")
    assert loaded.sha256 == model.sha256 and loaded.signature == model.signature
    assert np.array_equal(predict(loaded, split.holdout), predict(model, split.holdout))
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["format"] == "lightgbm-text" and meta["sha256"] == model.sha256


def test_tampered_or_foreign_model_text_is_refused(model, tmp_path):
    save_model(model, tmp_path / "m")
    text = (tmp_path / "m" / "model.txt").read_text()
    (tmp_path / "m" / "model.txt").write_text(text.replace("leaf_value=", "leaf_value=1", 1))
    with pytest.raises(IntegrityError, match="SHA-256"):
        load_model(tmp_path / "m")
    with pytest.raises(ModelLoadError, match="not a LightGBM text model"):
        TrainedModel.from_text("\x80\x04pickle", model.signature)
    with pytest.raises(NotFoundError):
        load_model(tmp_path / "nowhere")
    other = Signature(features=model.signature.features[:3], label="label", objective="binary")
    with pytest.raises(ModelLoadError, match="do not match"):
        TrainedModel.from_text(model.model_text, other)


def test_config_from_mapping_reports_paths():
    cfg = TrainConfig.from_mapping({"learning_rate": 0.1, "categorical": ["region"]})
    assert cfg.learning_rate == 0.1 and cfg.categorical == ("region",)
    assert cfg.lgb_params()["learning_rate"] == 0.1
    with pytest.raises(ConfigError, match=r"\$\.train"):
        TrainConfig.from_mapping({"learning_rte": 0.1})


@pytest.fixture
def lightgbm_must_not_run(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("LightGBM was called on degenerate data")

    monkeypatch.setattr(lgb, "train", boom)
    monkeypatch.setattr(lgb, "Dataset", boom)


def _nth(expr_col: str, value, n: int = 0) -> pl.Expr:
    return (
        pl.when(pl.int_range(pl.len()) == n).then(value).otherwise(pl.col(expr_col)).alias(expr_col)
    )


@pytest.mark.usefixtures("lightgbm_must_not_run")
@pytest.mark.parametrize(
    ("mutate", "check"),
    [
        (lambda f: f.clear(), "data.empty"),
        (lambda f: f.with_columns(pl.lit(1, pl.Int64).alias("label")), "label.one_class"),
        (lambda f: f.with_columns(pl.lit(3.5).alias("f02")), "feature.constant"),
        # constant but for NaN, a constant integer, boolean and category: each is constant
        (
            lambda f: f.with_columns(
                pl.when(pl.int_range(pl.len()) % 2 == 0)
                .then(3.5)
                .otherwise(float("nan"))
                .alias("f02")
            ),
            "feature.constant",
        ),
        (lambda f: f.with_columns(pl.lit(7, pl.Int32).alias("f02")), "feature.constant"),
        (lambda f: f.with_columns(pl.lit(True).alias("f02")), "feature.constant"),
        (lambda f: f.with_columns(pl.lit("north").alias("region")), "feature.constant"),
        (lambda f: f.with_columns(pl.lit(None, pl.Float64).alias("f02")), "feature.all_null"),
        (lambda f: f.with_columns(_nth("f02", float("inf"))), "feature.infinite"),
        (lambda f: pl.concat([f, f.head(3)]), "key.duplicate"),
        (lambda f: f.with_columns(_nth("label", None)), "label.missing"),
        (
            lambda f: f.with_columns(pl.col("label").cast(pl.Float64)).with_columns(
                _nth("label", float("nan"))
            ),
            "label.missing",
        ),
        (
            lambda f: f.with_columns(pl.col("label").cast(pl.Float64)).with_columns(
                _nth("label", float("inf"))
            ),
            "label.missing",
        ),
        (lambda f: f.with_columns(_nth("label", 2)), "label.not_binary"),
        (lambda f: f.drop("label"), "label.absent"),
    ],
)
def test_degenerate_data_fails_before_lightgbm(split, config, mutate, check):
    with pytest.raises(DegenerateDataError) as info:
        train(mutate(split.train), split.validation, config)
    assert check in {f.check for f in info.value.findings}
    assert info.value.hint


@pytest.mark.usefixtures("lightgbm_must_not_run")
def test_empty_validation_set_fails_before_lightgbm(split, config):
    with pytest.raises(DegenerateDataError, match="validation data has 0 rows"):
        train(split.train, split.validation.clear(), config)


def test_regression_objective(split):
    cfg = TrainConfig(
        label="f00",
        objective="regression",
        exclude=("entity_id", "label"),
        key=KEY,
        num_boost_round=30,
        num_threads=2,
    )
    m = train(split.train, split.validation, cfg)
    assert "f00" not in m.signature.names
    p = predict(m, split.holdout)
    baseline = np.abs(split.holdout["f00"] - split.train["f00"].mean()).mean()
    assert np.mean(np.abs(p - split.holdout["f00"].to_numpy())) < baseline


def test_missing_values_in_validation_make_a_feature_nullable(split, config):
    validation = split.validation.with_columns(_nth("f05", None))
    m = train(split.train, validation, config)
    spec = {f.name: f for f in m.signature.features}
    assert spec["f05"].nullable and not spec["f06"].nullable
    assert predict(m, validation).shape == (validation.height,)
