"""The LightGBM trainer: :class:`TrainConfig` and :func:`train`.

:func:`train` checks the data (:mod:`conveyor.ml.inputs`), builds the
:class:`~conveyor.models.signature.Signature`, encodes both parts with the same
:func:`~conveyor.models.inference.feature_matrix` prediction uses, trains with early
stopping and returns a :class:`~conveyor.models.model.TrainedModel` whose booster
is parsed back from its own text (cut at the best iteration).

The model value, ``predict`` and save/load live in :mod:`conveyor.models`; they are
re-exported here for the training code that imports them from this module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from attrs import evolve, field, frozen, validators

from conveyor.convert import to_tuple
from conveyor.ml.inputs import build_signature, check_training_data, resolve_features
from conveyor.models.inference import Predictor, feature_matrix, predict
from conveyor.models.model import (
    METADATA_FILE,
    MODEL_FILE,
    TrainedModel,
    load_booster,
    load_model,
    save_model,
    sha256_text,
)
from conveyor.models.signature import FeatureSpec, Signature

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

__all__ = [
    "METADATA_FILE",
    "MODEL_FILE",
    "OBJECTIVES",
    "FeatureSpec",
    "Signature",
    "TrainConfig",
    "TrainedModel",
    "build_signature",
    "check_training_data",
    "feature_matrix",
    "load_booster",
    "load_model",
    "predict",
    "resolve_features",
    "save_model",
    "sha256_text",
    "train",
]

OBJECTIVES = ("binary", "regression")


def _tuple_or_none(value: Sequence[str] | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(value)


@frozen(kw_only=True)
class TrainConfig:
    """What to train and how: columns, LightGBM parameters, early stopping.

    Attributes:
        label: label column.
        objective: ``binary`` (label 0/1) or ``regression``.
        features: feature columns in model order; None = every numeric, boolean
            and string/categorical column except label, ``key`` and ``exclude``.
        exclude: columns never used as features (ids, time stamps are skipped anyway).
        categorical: categorical features; None = the string/categorical/enum ones.
        nullable: features allowed to be missing at prediction time although the
            training data had no missing value (those with missing values always are).
        key: columns that identify a row; duplicate keys are an error.
        num_boost_round: maximum boosting rounds.
        early_stopping_rounds: stop after this many rounds without improvement of
            the first metric on the validation set (0 disables early stopping).
        learning_rate, num_leaves, min_data_in_leaf, feature_fraction,
        bagging_fraction, bagging_freq, lambda_l2, max_bin: LightGBM parameters.
        seed: LightGBM ``seed`` (training is deterministic for a seed).
        num_threads: LightGBM threads (0 = its default).
        params: further LightGBM parameters, passed through (they win).
    """

    label: str = "label"
    objective: str = field(default="binary", validator=validators.in_(OBJECTIVES))
    features: tuple[str, ...] | None = field(default=None, converter=_tuple_or_none)
    exclude: tuple[str, ...] = field(default=(), converter=to_tuple)
    categorical: tuple[str, ...] | None = field(default=None, converter=_tuple_or_none)
    nullable: tuple[str, ...] = field(default=(), converter=to_tuple)
    key: tuple[str, ...] = field(default=(), converter=to_tuple)
    num_boost_round: int = field(default=1000, validator=validators.ge(1))
    early_stopping_rounds: int = field(default=50, validator=validators.ge(0))
    learning_rate: float = field(default=0.05, validator=validators.gt(0.0))
    num_leaves: int = field(default=31, validator=validators.ge(2))
    min_data_in_leaf: int = field(default=20, validator=validators.ge(1))
    feature_fraction: float = 1.0
    bagging_fraction: float = 1.0
    bagging_freq: int = 0
    lambda_l2: float = 0.0
    max_bin: int = 255
    seed: int = 0
    num_threads: int = 0
    params: dict[str, Any] = field(factory=dict)

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], *, section: str = "train", where: str = "parameters"
    ) -> TrainConfig:
        """Build from a config table, with ``$.path``-precise ConfigErrors."""
        from conveyor.config import structure

        return structure(cls, data, section=section, where=where)

    def lgb_params(self) -> dict[str, Any]:
        """The LightGBM parameter dict this config stands for."""
        metric = ["binary_logloss", "auc"] if self.objective == "binary" else ["l2", "l1"]
        params: dict[str, Any] = {
            "objective": self.objective,
            "metric": metric,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction,
            "bagging_freq": self.bagging_freq,
            "lambda_l2": self.lambda_l2,
            "max_bin": self.max_bin,
            "seed": self.seed,
            "deterministic": True,
            "verbosity": -1,
        }
        if self.num_threads:
            params["num_threads"] = self.num_threads
        params.update(self.params)
        return params


# --------------------------------------------------------------------------- training


def _label(frame: pl.DataFrame, label: str) -> np.ndarray:
    import polars as pl

    return frame.get_column(label).cast(pl.Float64).to_numpy()


def train(
    train_frame: pl.DataFrame,
    validation_frame: pl.DataFrame | None = None,
    config: TrainConfig | None = None,
) -> TrainedModel:
    """Train a LightGBM model, early-stopping on ``validation_frame``.

    Degenerate data raises :class:`DegenerateDataError` before LightGBM runs.
    """
    import lightgbm as lgb

    config = config or TrainConfig()
    check_training_data(train_frame, config, part="training")
    signature = build_signature(
        train_frame, config, others=[validation_frame] if validation_frame is not None else []
    )
    if validation_frame is not None:
        check_training_data(validation_frame, config, part="validation", full=False)
        Predictor(signature).validate(validation_frame)
    params = config.lgb_params()
    categorical = [f.name for f in signature.features if f.categories is not None]
    train_set = lgb.Dataset(
        feature_matrix(train_frame, signature),
        label=_label(train_frame, config.label),
        feature_name=list(signature.names),
        categorical_feature=categorical,
        params=params,
        free_raw_data=True,
    )
    evals: dict[str, dict[str, list[float]]] = {}
    callbacks: list[Any] = [lgb.record_evaluation(evals)]
    valid_sets = []
    if validation_frame is not None:
        valid_sets.append(
            lgb.Dataset(
                feature_matrix(validation_frame, signature),
                label=_label(validation_frame, config.label),
                reference=train_set,
            )
        )
        if config.early_stopping_rounds:
            callbacks.append(
                lgb.early_stopping(
                    config.early_stopping_rounds, first_metric_only=True, verbose=False
                )
            )
    booster = lgb.train(
        params,
        train_set,
        num_boost_round=config.num_boost_round,
        valid_sets=valid_sets,
        valid_names=["validation"][: len(valid_sets)],
        callbacks=callbacks,
    )
    best = booster.best_iteration if booster.best_iteration > 0 else booster.current_iteration()
    text = booster.model_to_string(num_iteration=best)
    model = TrainedModel.from_text(text, signature, best_iteration=best, params=params)
    return evolve(model, evals=evals.get("validation", {}))
