"""Ready-made steps of the LightGBM continuous-training pipeline.

Each step wraps one component of :mod:`conveyor.ml` and adds what a pipeline
needs around it: stores, the registry, plugin checks, metrics and lineage.
A project's ``pipeline.py`` wires them (``conveyor init`` writes one)::

    @pipeline
    def training(data="data/*.parquet", model="churn"):
        raw = load_data(files(data))
        production = model_alias(model)
        profile = validate_data(raw, production)
        train, valid, holdout = split_data(raw)
        candidate = train_model(train, valid)
        evaluation = evaluate_candidate(candidate, holdout)
        verdict = gate(candidate, holdout, production, evaluation)
        version = register_model(candidate, verdict, evaluation, profile, model=model)
        promote(version)

Their values (``TrainedModel``, ``DataProfile``, ``Evaluation``, ``GateVerdict``)
are stored by the bundled plugin ``materializers``.  ``gate`` is a
``@step(gate=True)``: a verdict that did not pass ends the run ``refused``.

The steps live in three modules: :mod:`conveyor.training.data` (loading, features,
validation, the split), :mod:`conveyor.training.model` (training, evaluation, the
gate) and :mod:`conveyor.training.registration` (registering, lineage, promotion).
"""

from conveyor.training.data import (
    build_training_set,
    ingest_features,
    load_data,
    materialize_features,
    split_data,
    validate_data,
)
from conveyor.training.model import evaluate_candidate, gate, train_model
from conveyor.training.registration import promote, register_model, trained_features

__all__ = [
    "build_training_set",
    "evaluate_candidate",
    "gate",
    "ingest_features",
    "load_data",
    "materialize_features",
    "promote",
    "register_model",
    "split_data",
    "train_model",
    "trained_features",
    "validate_data",
]
