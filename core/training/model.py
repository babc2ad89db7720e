"""The model steps of the training pipeline: training, evaluation and the gate."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from conveyor.errors import ConveyorError
from conveyor.pipeline import StepContext, step
from conveyor.training.data import feature_columns

if TYPE_CHECKING:
    import polars as pl

    from conveyor.ml.evaluate import Evaluation
    from conveyor.ml.gate import GateVerdict
    from conveyor.ml.train import TrainedModel


@step
def train_model(
    ctx: StepContext,
    train: pl.DataFrame,
    validation: pl.DataFrame,
    *,
    params: dict | None = None,
    features: list | None = None,
) -> TrainedModel:
    """Train LightGBM with early stopping on the validation part.

    ``features``: the feature references the training set was built from
    (``build_training_set``'s); those columns are nullable in the signature, since a
    feature joined point-in-time can always be missing, besides ``params.nullable``.
    """
    from attrs import evolve

    from conveyor.ml.train import TrainConfig
    from conveyor.ml.train import train as fit

    config = TrainConfig.from_mapping(params or {}, section="train", where="pipeline parameters")
    if features:
        joined = feature_columns(ctx, features)
        config = evolve(
            config, nullable=(*config.nullable, *[c for c in joined if c not in config.nullable])
        )
    model = fit(train, validation, config)
    ctx.log_metrics({"best_iteration": model.best_iteration})
    return model


@step
def evaluate_candidate(
    ctx: StepContext, model: TrainedModel, holdout: pl.DataFrame, *, slice_by: list | None = None
) -> Evaluation:
    """Overall and per-slice metrics of the candidate on the holdout."""
    from conveyor.ml.evaluate import evaluate_model

    evaluation = evaluate_model(model, holdout, slice_by=tuple(slice_by or ()))
    ctx.log_metrics({k: v for k, v in evaluation.overall.items() if v is not None})
    return evaluation


@step(gate=True)
def gate(
    ctx: StepContext,
    model: TrainedModel,
    holdout: pl.DataFrame,
    production: Any,
    evaluation: Evaluation | None = None,
    *,
    model_name: str = "",
    rule: dict | None = None,
) -> GateVerdict:
    """The model gate: thresholds AND not worse than production on the same holdout.

    ``evaluation``: ``evaluate_candidate``'s output for this model and holdout; its
    predictions are reused (checked to be this model's, of these rows) rather than
    scored again.  Plugins' ``check_model`` findings join the verdict.  The verdict is
    stored (so a rerun on the same inputs reuses it); one that did not pass ends the
    step and the run ``refused`` (core decides that: this is a gate step).
    """
    from conveyor.ml.gate import GateConfig
    from conveyor.ml.infra import start_infra_check
    from conveyor.models.registered import start_registered_load

    config = GateConfig.from_mapping(rule or {}, section="gate", where="pipeline parameters")
    # both child processes start first: production's canary and the candidate's infra
    # check run while the candidate is scored and bootstrapped
    incumbent = None if production is None else start_registered_load(ctx.app, production)
    infra = None
    try:
        if config.infra_check:
            infra = start_infra_check(
                model,
                holdout.head(config.infra_sample_rows),
                timeout=config.infra_timeout,
                tolerance=config.infra_tolerance,
            )
        verdict = _judge_candidate(
            ctx, model, holdout, incumbent, evaluation, model_name, config, infra
        )
    except BaseException:
        for pending in (infra, incumbent):
            if pending is not None:
                pending.discard()  # never leave a child running
        raise
    if production is not None:
        verdict.evidence["incumbent_version"] = production.version
    if model_name:  # names the candidate's model in `conveyor models candidates`
        verdict.evidence["model"] = model_name
    ctx.log_metrics({"gate_passed": float(verdict.passed)})
    return verdict


def _judge_candidate(
    ctx: StepContext,
    model: TrainedModel,
    holdout: pl.DataFrame,
    incumbent: Any,
    evaluation: Evaluation | None,
    model_name: str,
    config: Any,
    infra: Any,
) -> GateVerdict:
    """The gate step's work once its child processes run."""
    from conveyor.checks import ModelCheckContext
    from conveyor.ml.evaluate import evaluate, predictions_for
    from conveyor.ml.gate import validate_model
    from conveyor.ml.train import predict

    predictions = predictions_for(model, holdout, evaluation)  # scored once per run
    incumbent_predictions = None
    extra = []
    if ctx.app.pm.hook.check_model.get_hookimpls():
        # the plugins' context needs both models' metrics; scoring production costs as
        # much as scoring the candidate, so it is done only when a plugin will look
        # (and the gate reuses those scores)
        signature = model.signature
        metrics = evaluate(
            holdout, predictions, label=signature.label, objective=signature.objective
        ).overall
        loaded = None if incumbent is None else incumbent.result()
        incumbent_metrics = None
        if loaded is not None:
            try:
                incumbent_predictions = predict(loaded, holdout)
            except ConveyorError:  # the gate reports production as incomparable
                incumbent_predictions = None
        if loaded is not None and incumbent_predictions is not None:
            incumbent_metrics = evaluate(
                holdout,
                incumbent_predictions,
                label=loaded.signature.label,
                objective=loaded.signature.objective,
            ).overall
        extra = ctx.app.run_checks(
            "check_model",
            ModelCheckContext(
                model=model_name,
                candidate=model,
                metrics=metrics,
                incumbent=loaded,
                incumbent_metrics=incumbent_metrics,
                holdout=holdout,
                run_id=ctx.run_id,
            ),
        )
    return validate_model(
        model,
        holdout,
        incumbent=incumbent,
        config=config,
        extra_findings=extra,
        candidate_predictions=predictions,
        incumbent_predictions=incumbent_predictions,
        infra=infra,
    )
