"""The registration steps of the training pipeline: registering with lineage, promotion."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, cast

from conveyor.errors import ConveyorError
from conveyor.pipeline import StepContext, is_transient, step
from conveyor.training.data import feature_uses

if TYPE_CHECKING:
    from datetime import datetime

    import polars as pl

    from conveyor.interfaces.lineage import FeatureViewUse
    from conveyor.ml.evaluate import Evaluation
    from conveyor.ml.gate import GateVerdict
    from conveyor.ml.profile import DataProfile
    from conveyor.ml.train import TrainedModel


@step
def register_model(
    ctx: StepContext,
    model: TrainedModel,
    verdict: GateVerdict,
    evaluation: Evaluation,
    profile: DataProfile,
    train: pl.DataFrame,
    validation: pl.DataFrame,
    holdout: pl.DataFrame,
    *,
    model_name: str,
    timestamp: str = "event_timestamp",
    description: str = "",
    owner: str = "",
    intended_use: str = "",
    limitations: str = "",
    features: list | None = None,
) -> dict:
    """Register the blessed candidate with its lineage and record the gate's verdict.

    The training, validation and holdout tables are recorded as the version's
    datasets (stored URI, content fingerprint, time range); a table the pipeline
    kept in memory is stored here, beside the model.  ``features``: the feature
    references the training set was built from (``build_training_set``'s); lineage
    records each view with its definition version (:func:`trained_features` reads
    them back).  Registering a model whose bytes are already registered returns
    that version.
    """
    from conveyor.interfaces.registry import DatasetRef, Governance

    app = ctx.app
    # a version is the same model only with the same text AND signature (category maps
    # included): one text trained with another signature predicts differently
    existing = (
        [
            v
            for v in app.registry.list_versions(model_name)
            if v.sha256 == model.sha256 and v.signature == model.signature
        ]
        if model_name in {m.name for m in app.registry.list_models()}
        else []
    )
    if existing:
        version = existing[0]
    else:
        base = f"models/{model_name}/{model.sha256}"
        model_info = _put_once(
            app.artifacts, f"{base}/model.txt", model.model_text.encode(), "text/plain"
        )
        profile_json = profile.to_json().encode()
        # content-named: a key shared by two runs always holds the same bytes
        profile_info = _put_once(
            app.artifacts,
            f"models/{model_name}/profiles/{_sha256(profile_json)}.json",
            profile_json,
            "application/json",
        )
        label = model.signature.label
        if model.signature.objective == "binary" and label in holdout.columns:
            # monitoring estimates performance before labels arrive from this calibration
            from conveyor.ml.evaluate import predictions_for
            from conveyor.monitoring.estimate import store_calibration

            store_calibration(
                app.artifacts,
                model_name,
                model.sha256,
                holdout.get_column(label),
                predictions_for(model, holdout, evaluation),  # the evaluation's scores
            )
        datasets = []
        for role, frame in (("train", train), ("validation", validation), ("holdout", holdout)):
            record = ctx.inputs.get(role)
            if record is None:
                continue
            uri, fingerprint = record.uri, record.fingerprint
            if is_transient(record):
                # named by the record's fingerprint (its producing step's cache key)
                stored = _put_once(
                    app.artifacts, f"models/{model_name}/data/{fingerprint}/{role}.parquet", frame
                )
                uri, fingerprint = stored.uri, stored.sha256
            times = frame.get_column(timestamp) if timestamp in frame.columns else None
            datasets.append(
                DatasetRef(
                    uri=uri,
                    fingerprint=fingerprint,
                    role=role,
                    start=None if times is None else cast("datetime", times.min()),
                    end=None if times is None else cast("datetime", times.max()),
                )
            )
        version = app.registry.register(
            model_name,
            artifact_uri=model_info.uri,
            sha256=model_info.sha256,
            model_format="lightgbm-text",
            run_id=ctx.run_id,
            datasets=datasets,
            metrics={k: v for k, v in evaluation.overall.items() if v is not None},
            params={
                "lightgbm": json.loads(json.dumps(model.params, default=str)),
                "best_iteration": model.best_iteration,
            },
            governance=Governance(
                description=description,
                owner=owner,
                intended_use=intended_use,
                limitations=limitations,
            ),
            signature=model.signature,
            profile_uri=profile_info.uri,
            actor=f"run {ctx.run_id}",
            features=feature_uses(ctx, features or []),
        )
    app.registry.record_validation(
        model_name,
        version.version,
        passed=verdict.passed,
        actor=f"run {ctx.run_id}",
        run_id=ctx.run_id,
        summary=verdict.report(),
        details=verdict.to_dict(),
    )
    ctx.log_metrics({"registered_version": version.version})
    return {"model": model_name, "version": version.version, "sha256": version.sha256}


def trained_features(
    app: Any, model: str, version: int | str | None = None
) -> tuple[FeatureViewUse, ...]:
    """The feature views, definition versions and features model ``model`` trained on.

    ``version``: a version number, an alias (``"production"``) or ``None`` for the
    latest.  Each :class:`~conveyor.interfaces.lineage.FeatureViewUse` gives the
    view, the definition version (``app.metadata.get_definition("feature_view",
    use.view, use.version)`` is its spec) and the features, whose ``refs`` the
    feature store reads (``app.features.get_online_features(entities, use.refs)``).
    Empty for a model registered without ``register_model(features=...)``.
    """
    registry = app.registry
    if version is None or (isinstance(version, str) and not version.isdigit()):
        found = registry.resolve(model, version or "latest")
        if found is None:
            raise ConveyorError(
                f"no version of model {model!r} holds alias {version!r}",
                hint=f"conveyor models show {model} lists its versions",
            )
        number = found.version
    else:
        number = int(version)
    return app.metadata.model_features(model, number)


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _put_once(store: Any, key: str, data: Any, media_type: str | None = None) -> Any:
    """Write an immutable, content-named artifact (or return the one already there).

    ``data`` is bytes or a table (stored as Parquet).
    """
    from conveyor.errors import NotFoundError

    try:
        return store.info(key)
    except NotFoundError:
        if isinstance(data, bytes):
            return store.put_bytes(key, data, media_type=media_type)
        return store.put_table(key, data)


@step
def promote(ctx: StepContext, registered: dict, state: str) -> dict:
    """Move aliases by the project's one promotion policy, ``[promotion]`` in config.

    Each alias's rule is ``auto`` (moved now, when the evidence allows),
    ``approval`` (moved only once someone approved the version) or ``never``;
    ``production`` also needs the passing verdict ``register_model`` recorded.
    ``state`` is ``model_state(model)``: the step reruns when an alias moves, an
    approval is recorded or the rules change, and is reused from cache otherwise.
    """
    name, number = registered["model"], registered["version"]
    if state != name:
        raise ConveyorError(
            f"promote got the state of model {state!r} for model {name!r}",
            hint="pass model_state(model) of the registered model",
        )
    moved = ctx.app.registry.promote_by_policy(name, number, actor=f"run {ctx.run_id}")
    ctx.log_metrics({"promoted_aliases": float(sum(v == "promoted" for v in moved.values()))})
    return {"model": name, "version": number, "aliases": moved}
