"""The LightGBM trainer, the model signature and the one ``predict`` function.

A :class:`TrainedModel` is the LightGBM text of the booster (cut at the best
iteration found by early stopping), its SHA-256, and a :class:`ModelSignature`:
feature names in model order, their kinds, dtypes and nullability, and for each
categorical feature its category map (category string -> integer code, codes
given in sorted order of the categories).  :func:`predict` matches columns by
name, maps categories through the stored map (unseen -> missing), checks types,
nulls and infinities, so predictions depend neither on column order nor on how a
categorical column happens to be encoded.  Nothing is ever pickled: a model is
saved as ``model.txt`` (LightGBM text) plus ``model.json`` (signature, hash).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attrs import evolve, field, frozen, validators

from conveyor.checks import Finding, Severity
from conveyor.errors import IntegrityError
from conveyor.ml.errors import DegenerateDataError, ModelLoadError, PredictionInputError

if TYPE_CHECKING:
    import lightgbm as lgb
    import numpy as np
    import polars as pl

SIGNATURE_VERSION = 1
OBJECTIVES = ("binary", "regression")
MODEL_FILE = "model.txt"
METADATA_FILE = "model.json"

NUMERIC, CATEGORICAL = "numeric", "categorical"


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
    exclude: tuple[str, ...] = field(default=(), converter=tuple)
    categorical: tuple[str, ...] | None = field(default=None, converter=_tuple_or_none)
    nullable: tuple[str, ...] = field(default=(), converter=tuple)
    key: tuple[str, ...] = field(default=(), converter=tuple)
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
    def from_mapping(cls, data: Mapping[str, Any], *, section: str = "train",
                     where: str = "parameters") -> TrainConfig:
        """Build from a config table, with ``$.path``-precise ConfigErrors."""
        from conveyor.config import structure

        return structure(cls, data, section=section, where=where)

    def lgb_params(self) -> dict[str, Any]:
        """The LightGBM parameter dict this config stands for."""
        metric = ["binary_logloss", "auc"] if self.objective == "binary" else ["l2", "l1"]
        params: dict[str, Any] = {
            "objective": self.objective, "metric": metric,
            "learning_rate": self.learning_rate, "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction, "bagging_freq": self.bagging_freq,
            "lambda_l2": self.lambda_l2, "max_bin": self.max_bin, "seed": self.seed,
            "deterministic": True, "verbosity": -1,
        }
        if self.num_threads:
            params["num_threads"] = self.num_threads
        params.update(self.params)
        return params


@frozen(kw_only=True)
class FeatureSpec:
    """One model input.

    Attributes:
        name: column name.
        kind: ``numeric`` or ``categorical``.
        dtype: the training column's polars dtype, as a string.
        nullable: whether the feature may be missing (null/NaN) at prediction time.
        categories: for a categorical feature, the known categories; a category's
            code is its index here (the category map).
    """

    name: str
    kind: str = field(validator=validators.in_((NUMERIC, CATEGORICAL)))
    dtype: str
    nullable: bool
    categories: tuple[str, ...] | None = field(default=None, converter=_tuple_or_none)

    def category_map(self) -> dict[str, int]:
        """Category string -> integer code (empty for numeric features)."""
        return {c: i for i, c in enumerate(self.categories or ())}


@frozen(kw_only=True)
class ModelSignature:
    """The model's input schema, stored with it; JSON-serializable.

    Attributes:
        features: the inputs, in the order the booster expects them.
        label: the label column it was trained on.
        objective: ``binary`` or ``regression``.
        version: format version.
    """

    features: tuple[FeatureSpec, ...] = field(converter=tuple)
    label: str
    objective: str
    version: int = SIGNATURE_VERSION

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @property
    def category_maps(self) -> dict[str, dict[str, int]]:
        """Feature -> category map, for the categorical features."""
        return {f.name: f.category_map() for f in self.features if f.kind == CATEGORICAL}

    def to_dict(self) -> dict[str, Any]:
        import attrs

        return attrs.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSignature:
        """Rebuild from :meth:`to_dict` output (ModelLoadError when malformed)."""
        try:
            if data.get("version") != SIGNATURE_VERSION:
                raise ValueError(f"unsupported signature version {data.get('version')!r}")
            features = [FeatureSpec(**f) for f in data["features"]]
            return cls(features=features, label=data["label"], objective=data["objective"],
                       version=data["version"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelLoadError(f"not a valid model signature: {exc}",
                                 hint="signatures are written by ModelSignature.to_dict()"
                                 ) from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelSignature:
        try:
            return cls.from_dict(json.loads(text))
        except ValueError as exc:
            raise ModelLoadError(f"model signature is not valid JSON: {exc}") from None


def sha256_text(text: str) -> str:
    """SHA-256 (hex) of a model text, UTF-8 encoded."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@frozen(kw_only=True)
class TrainedModel:
    """A trained model: LightGBM booster, its text, hash and signature.

    The booster is always the one parsed from ``model_text``, so a model loaded
    back from its text predicts exactly what the freshly trained one did.

    Attributes:
        booster: the ``lightgbm.Booster``.
        signature: the input schema.
        model_text: LightGBM text format (what is stored).
        sha256: SHA-256 of ``model_text``.
        best_iteration: number of boosting rounds kept.
        params: the LightGBM parameters trained with.
        evals: validation metric history per round (metric -> values).
    """

    booster: lgb.Booster = field(eq=False, repr=False)
    signature: ModelSignature
    model_text: str = field(eq=False, repr=False)
    sha256: str
    best_iteration: int = 0
    params: dict[str, Any] = field(factory=dict)
    evals: dict[str, list[float]] = field(factory=dict, eq=False, repr=False)

    def metadata(self) -> dict[str, Any]:
        """What is stored beside the model text: signature, hash, iteration, params."""
        return {"signature": self.signature.to_dict(), "sha256": self.sha256,
                "best_iteration": self.best_iteration, "params": _json_safe(self.params),
                "format": "lightgbm-text"}

    def metadata_json(self) -> str:
        return json.dumps(self.metadata(), sort_keys=True, allow_nan=False)

    @classmethod
    def from_text(cls, model_text: str, signature: ModelSignature, *,
                  sha256: str | None = None, best_iteration: int = 0,
                  params: Mapping[str, Any] | None = None) -> TrainedModel:
        """Load a model from its LightGBM text; the hash is checked when given."""
        digest = sha256_text(model_text)
        if sha256 is not None and digest != sha256:
            raise IntegrityError(
                f"model text SHA-256 {digest} does not match the recorded {sha256}",
                hint="the stored model is corrupt or was modified: re-register it")
        booster = load_booster(model_text)
        if tuple(booster.feature_name()) != signature.feature_names:
            raise ModelLoadError(
                f"model features {booster.feature_name()} do not match the signature's "
                f"{list(signature.feature_names)}",
                hint="the model text and signature belong to different models")
        return cls(booster=booster, signature=signature, model_text=model_text, sha256=digest,
                   best_iteration=best_iteration or booster.current_iteration(),
                   params=dict(params or {}))

    @classmethod
    def from_parts(cls, model_text: str, metadata: str | Mapping[str, Any]) -> TrainedModel:
        """Load from the model text and :meth:`metadata_json` output, checking the hash."""
        if isinstance(metadata, str | bytes):
            try:
                metadata = json.loads(metadata)
            except ValueError as exc:
                raise ModelLoadError(f"model metadata is not valid JSON: {exc}") from None
        if metadata.get("format") != "lightgbm-text" or "sha256" not in metadata:
            raise ModelLoadError("model metadata is not a Conveyor LightGBM-text model",
                                 hint="models are written by save_model()")
        return cls.from_text(model_text, ModelSignature.from_dict(metadata["signature"]),
                             sha256=metadata["sha256"],
                             best_iteration=int(metadata.get("best_iteration") or 0),
                             params=metadata.get("params") or {})


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def load_booster(model_text: str) -> lgb.Booster:
    """Parse LightGBM model text (ModelLoadError when LightGBM refuses it)."""
    import lightgbm as lgb

    if not model_text.startswith("tree\n"):
        raise ModelLoadError("not a LightGBM text model (it must start with 'tree')",
                             hint="only LightGBM text models are loaded; nothing is unpickled")
    try:
        return lgb.Booster(model_str=model_text)
    except lgb.basic.LightGBMError as exc:
        raise ModelLoadError(f"LightGBM cannot load the model text: {exc}",
                             hint="the model text is corrupt: re-train or re-register") from None


# --------------------------------------------------------------------------- training


def resolve_features(frame: pl.DataFrame, config: TrainConfig) -> tuple[list[str], set[str]]:
    """Feature names (model order) and the categorical subset, per ``config``."""
    from conveyor.ml.profile import BOOLEAN, column_kind
    from conveyor.ml.profile import CATEGORICAL as CAT_KIND
    from conveyor.ml.profile import NUMERIC as NUM_KIND

    skip = {config.label, *config.exclude, *config.key}
    if config.features is None:
        features = [c for c, t in frame.schema.items() if c not in skip
                    and column_kind(t) in (NUM_KIND, BOOLEAN, CAT_KIND)]
    else:
        features = list(config.features)
        missing = [f for f in features if f not in frame.columns]
        if missing:
            raise DegenerateDataError(f"feature column(s) {missing} are not in the table",
                                      hint=f"columns are: {', '.join(frame.columns)}")
        if config.label in features:
            raise DegenerateDataError(f"the label {config.label!r} is listed as a feature",
                                      hint="remove it from features")
    if len(set(features)) != len(features):
        raise DegenerateDataError("a feature is listed twice", hint="list each feature once")
    if not features:
        raise DegenerateDataError("no feature columns to train on",
                                  hint="list features in the train config")
    if config.categorical is None:
        categorical = {f for f in features if column_kind(frame.schema[f]) == CAT_KIND}
    else:
        unknown = set(config.categorical) - set(features)
        if unknown:
            raise DegenerateDataError(f"categorical feature(s) {sorted(unknown)} are not "
                                      "features", hint="list them in features too")
        categorical = set(config.categorical)
    for f in features:
        kind = column_kind(frame.schema[f])
        if f not in categorical and kind not in (NUM_KIND, BOOLEAN):
            raise DegenerateDataError(
                f"feature {f!r} has type {frame.schema[f]}, which is neither numeric nor "
                "categorical", hint="exclude it, or list it as categorical")
    return features, categorical


def check_training_data(frame: pl.DataFrame, config: TrainConfig, *,
                        part: str = "training", full: bool = True) -> None:
    """Raise :class:`DegenerateDataError` listing everything that makes ``frame`` unusable.

    Checks (all before LightGBM is called): rows, the label (present, no
    null/NaN/inf, 0/1 with both classes for ``binary``, not constant for
    ``regression``), and with ``full``: all-null or constant features, infinite
    feature values and duplicate keys.
    """
    import polars as pl

    problems: list[Finding] = []

    def problem(check: str, message: str, subject: str | None = None, **details: Any) -> None:
        problems.append(Finding(check=check, message=message, severity=Severity.ERROR,
                                subject=subject, details=details))

    label = config.label
    if frame.height == 0:
        problem("data.empty", f"the {part} data has 0 rows")
    if label not in frame.columns:
        problem("label.absent", f"label column {label!r} is not in the {part} data", label)
    elif frame.height:
        y = frame.get_column(label)
        if not (y.dtype.is_numeric() or y.dtype == pl.Boolean):
            problem("label.type", f"label {label!r} has type {y.dtype}; it must be numeric "
                    "or boolean", label)
        else:
            yf = y.cast(pl.Float64)
            bad = int(yf.is_null().sum()) + int(yf.is_nan().sum() or 0) + int(
                yf.is_infinite().sum() or 0)
            if bad:
                problem("label.missing", f"label {label!r} has {bad} null, NaN or infinite "
                        "value(s)", label, count=bad)
            finite = yf.filter(yf.is_finite())
            values = sorted(finite.unique().to_list())
            if config.objective == "binary":
                if not set(values) <= {0.0, 1.0}:
                    shown = values[:5]
                    problem("label.not_binary", f"label {label!r} must be 0/1 for a binary "
                            f"objective; it has values {shown}", label)
                elif len(values) < 2 and full:
                    problem("label.one_class", f"label {label!r} has a single class "
                            f"({values[0]:g}) in the {part} data" if values else
                            f"label {label!r} has no valid value", label)
            elif len(values) < 2 and full:
                problem("label.constant", f"label {label!r} is constant in the {part} data",
                        label)

    if full and frame.height:
        features, _categorical = resolve_features(frame, config)
        schema = frame.schema
        floats = [f for f in features if schema[f].is_float()]
        # a numeric feature is constant when its smallest and largest values (NaN left
        # out) are equal: two reductions instead of hashing every value (n_unique)
        ordered = [f for f in features if schema[f].is_numeric() or schema[f] == pl.Boolean]
        hashed = [f for f in features if f not in ordered]

        def valued(f: str) -> pl.Expr:
            return pl.col(f).fill_nan(None) if f in floats else pl.col(f)

        stats = frame.select(
            *[pl.col(f).null_count().alias(f"{f}:nulls") for f in features],
            *[valued(f).min().alias(f"{f}:min") for f in ordered],
            *[valued(f).max().alias(f"{f}:max") for f in ordered],
            *[pl.col(f).drop_nulls().n_unique().alias(f"{f}:unique") for f in hashed],
            *[pl.col(f).is_nan().sum().alias(f"{f}:nan") for f in floats],
            *[pl.col(f).is_infinite().sum().alias(f"{f}:inf") for f in floats],
        ).row(0, named=True)

        def constant(f: str) -> bool:
            if f in hashed:
                return stats[f"{f}:unique"] <= 1
            return stats[f"{f}:min"] == stats[f"{f}:max"]

        for f in features:
            nulls = stats[f"{f}:nulls"] + (stats.get(f"{f}:nan") or 0)
            if nulls == frame.height:
                problem("feature.all_null", f"feature {f!r} is null for every row", f)
            elif constant(f):
                problem("feature.constant", f"feature {f!r} is constant", f)
            if stats.get(f"{f}:inf"):
                problem("feature.infinite", f"feature {f!r} has {stats[f'{f}:inf']} infinite "
                        "value(s)", f, count=stats[f"{f}:inf"])
        if config.key:
            absent = [k for k in config.key if k not in frame.columns]
            if absent:
                problem("key.absent", f"key column(s) {absent} are not in the {part} data")
            else:
                dupes = frame.height - frame.select(config.key).n_unique()
                if dupes:
                    problem("key.duplicate", f"{dupes} row(s) repeat a key "
                            f"({', '.join(config.key)}) in the {part} data",
                            ",".join(config.key), count=dupes)
    if problems:
        listing = "; ".join(p.message for p in problems)
        raise DegenerateDataError(
            f"the {part} data cannot train a model: {listing}",
            hint="fix the data (or drop/exclude the offending columns) before training",
            findings=problems)


def build_signature(frame: pl.DataFrame, config: TrainConfig,
                    others: Sequence[pl.DataFrame] = ()) -> ModelSignature:
    """The signature of a model trained on ``frame`` with ``config`` (sorted category maps).

    A feature is nullable when it has missing values in ``frame`` or in any of
    ``others`` (e.g. the validation set), or is listed in ``config.nullable``.
    """
    import polars as pl

    features, categorical = resolve_features(frame, config)

    def missing_counts(table: pl.DataFrame) -> dict[str, int]:
        present = [f for f in features if f in table.columns]
        return table.select(
            *[(pl.col(f).null_count() + (pl.col(f).is_nan().sum()
                                         if table.schema[f].is_float() else 0)).alias(f)
              for f in present]).row(0, named=True) if present else {}

    counts = [missing_counts(t) for t in (frame, *others)]
    specs = []
    for f in features:
        nullable = any(c.get(f) for c in counts) or f in config.nullable
        if f in categorical:
            cats = frame.get_column(f).drop_nulls().cast(pl.String).unique().sort().to_list()
            specs.append(FeatureSpec(name=f, kind=CATEGORICAL, dtype=str(frame.schema[f]),
                                     nullable=nullable, categories=cats))
        else:
            specs.append(FeatureSpec(name=f, kind=NUMERIC, dtype=str(frame.schema[f]),
                                     nullable=nullable))
    return ModelSignature(features=specs, label=config.label, objective=config.objective)


def _feature_exprs(signature: ModelSignature) -> list[pl.Expr]:
    import polars as pl

    exprs = []
    for f in signature.features:
        col = pl.col(f.name)
        if f.kind == CATEGORICAL:
            expr = col.cast(pl.String).replace_strict(
                f.category_map(), default=None, return_dtype=pl.Float64)
        else:
            expr = col.cast(pl.Float64)
        exprs.append(expr.alias(f.name))
    return exprs


def feature_matrix(frame: pl.DataFrame, signature: ModelSignature) -> np.ndarray:
    """The float64 matrix the booster sees: columns by name in signature order,
    categories mapped to codes (unseen and null -> NaN, LightGBM's missing)."""
    return frame.select(_feature_exprs(signature)).to_numpy()


def _label(frame: pl.DataFrame, label: str) -> np.ndarray:
    import polars as pl

    return frame.get_column(label).cast(pl.Float64).to_numpy()


def train(train_frame: pl.DataFrame, validation_frame: pl.DataFrame | None = None,
          config: TrainConfig | None = None) -> TrainedModel:
    """Train a LightGBM model, early-stopping on ``validation_frame``.

    Degenerate data raises :class:`DegenerateDataError` before LightGBM runs.
    """
    import lightgbm as lgb

    config = config or TrainConfig()
    check_training_data(train_frame, config, part="training")
    signature = build_signature(train_frame, config, others=[
        validation_frame] if validation_frame is not None else [])
    if validation_frame is not None:
        check_training_data(validation_frame, config, part="validation", full=False)
        _validate_input(validation_frame, signature)
    params = config.lgb_params()
    categorical = [f.name for f in signature.features if f.kind == CATEGORICAL]
    train_set = lgb.Dataset(
        feature_matrix(train_frame, signature), label=_label(train_frame, config.label),
        feature_name=list(signature.feature_names), categorical_feature=categorical,
        params=params, free_raw_data=True)
    evals: dict[str, dict[str, list[float]]] = {}
    callbacks: list[Any] = [lgb.record_evaluation(evals)]
    valid_sets = []
    if validation_frame is not None:
        valid_sets.append(lgb.Dataset(
            feature_matrix(validation_frame, signature),
            label=_label(validation_frame, config.label), reference=train_set))
        if config.early_stopping_rounds:
            callbacks.append(lgb.early_stopping(config.early_stopping_rounds,
                                                first_metric_only=True, verbose=False))
    booster = lgb.train(params, train_set, num_boost_round=config.num_boost_round,
                        valid_sets=valid_sets, valid_names=["validation"][:len(valid_sets)],
                        callbacks=callbacks)
    best = booster.best_iteration if booster.best_iteration > 0 else booster.current_iteration()
    text = booster.model_to_string(num_iteration=best)
    model = TrainedModel.from_text(text, signature, best_iteration=best, params=params)
    return evolve(model, evals=evals.get("validation", {}))


# --------------------------------------------------------------------------- predicting


def _validate_input(frame: pl.DataFrame, signature: ModelSignature) -> None:
    """Raise :class:`PredictionInputError` naming every column that does not fit."""
    import polars as pl

    from conveyor.ml.profile import BOOLEAN, column_kind
    from conveyor.ml.profile import CATEGORICAL as CAT_KIND
    from conveyor.ml.profile import NUMERIC as NUM_KIND

    problems: list[Finding] = []

    def problem(check: str, message: str, subject: str, **details: Any) -> None:
        problems.append(Finding(check=check, message=message, subject=subject,
                                details=details))

    missing = [f for f in signature.feature_names if f not in frame.columns]
    for name in missing:
        problem("input.missing_column", f"feature column {name!r} is missing", name)
    present = [f for f in signature.features if f.name in frame.columns]
    checkable = []
    for spec in present:
        dtype = frame.schema[spec.name]
        kind = column_kind(dtype)
        if spec.kind == NUMERIC:
            ok = kind in (NUM_KIND, BOOLEAN)
        elif _is_string_dtype(spec.dtype):
            ok = kind == CAT_KIND
        else:  # e.g. integer codes trained as categories: same kind, or their strings
            ok = kind in (NUM_KIND, BOOLEAN, CAT_KIND)
        if not ok:
            problem("input.type", f"feature {spec.name!r} has type {dtype}; the model expects "
                    f"{spec.dtype}", spec.name, expected=spec.dtype, observed=str(dtype))
        else:
            checkable.append(spec)
    if checkable and frame.height:
        exprs = []
        for spec in checkable:
            col = pl.col(spec.name)
            is_float = frame.schema[spec.name].is_float()
            if not spec.nullable:
                missing_expr = col.null_count()
                if is_float:
                    missing_expr = missing_expr + col.is_nan().sum()
                exprs.append(missing_expr.alias(f"{spec.name}:missing"))
            if is_float:
                exprs.append(col.is_infinite().sum().alias(f"{spec.name}:inf"))
        counts = frame.select(exprs).row(0, named=True) if exprs else {}
        for spec in checkable:
            if counts.get(f"{spec.name}:missing"):
                problem("input.null", f"feature {spec.name!r} has "
                        f"{counts[f'{spec.name}:missing']} missing value(s) but the model was "
                        "trained without missing values for it", spec.name)
            if counts.get(f"{spec.name}:inf"):
                problem("input.infinite", f"feature {spec.name!r} has "
                        f"{counts[f'{spec.name}:inf']} infinite value(s)", spec.name)
    if problems:
        raise PredictionInputError(
            "input does not match the model signature: "
            + "; ".join(p.message for p in problems),
            hint="send every feature by name with the trained types; no +-inf, and missing "
                 "values only for nullable features", findings=problems)


def _is_string_dtype(dtype: str) -> bool:
    """Whether a signature dtype string is String, Categorical or Enum."""
    return dtype in ("String", "Utf8") or dtype.startswith(("Categorical", "Enum"))


def predict(model: TrainedModel, frame: pl.DataFrame, *, raw_score: bool = False) -> np.ndarray:
    """Predict ``frame`` (probabilities for binary, values for regression).

    Columns are matched by name (extra columns ignored), categories mapped through
    the stored category maps (unseen -> missing); types, nulls and +-inf are
    checked first (:class:`PredictionInputError` names every offending column).
    """
    import numpy as np

    _validate_input(frame, model.signature)
    if frame.height == 0:
        return np.empty(0, dtype=np.float64)
    return model.booster.predict(feature_matrix(frame, model.signature), raw_score=raw_score)


# --------------------------------------------------------------------------- save / load


def _write_atomic(path: Path, data: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_model(model: TrainedModel, directory: str | os.PathLike[str]) -> Path:
    """Write ``model.txt`` and ``model.json`` into ``directory`` (each write-then-rename;
    the text first, so ``model.json`` never points at a text that is not there)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _write_atomic(directory / MODEL_FILE, model.model_text)
    _write_atomic(directory / METADATA_FILE, model.metadata_json())
    return directory


def load_model(directory: str | os.PathLike[str]) -> TrainedModel:
    """Load a model saved by :func:`save_model`, checking its SHA-256."""
    from conveyor.errors import NotFoundError

    directory = Path(directory)
    try:
        metadata = (directory / METADATA_FILE).read_text(encoding="utf-8")
        text = (directory / MODEL_FILE).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise NotFoundError(f"no saved model in {directory}: {exc.filename} is missing",
                            hint="save it with conveyor.ml.train.save_model()") from None
    return TrainedModel.from_parts(text, metadata)
