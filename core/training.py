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
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, cast

from conveyor.errors import ConveyorError
from conveyor.models.registered import load_registered_profile
from conveyor.pipeline import StepContext, is_transient, step

if TYPE_CHECKING:
    from datetime import datetime

    import polars as pl

    from conveyor.interfaces.lineage import FeatureViewUse
    from conveyor.ml.evaluate import Evaluation
    from conveyor.ml.gate import GateVerdict
    from conveyor.ml.profile import DataProfile
    from conveyor.ml.train import TrainedModel

# -- steps -------------------------------------------------------------------------------------


# load_data and split_data keep their tables in memory (persist=False): both are cheap
# to recompute from inputs that are fingerprinted by content, and storing a copy of
# every batch and its three parts cost more than the rest of the pipeline's overhead.
# register_model stores the three parts a registered model was trained and judged on.


@step(persist=False)
def load_data(paths: list) -> pl.DataFrame:
    """Read the matching Parquet (or ``*.csv``) files into one table (in file-name order).

    A file that is not Parquet, empty, cut short or damaged is a ValidationError naming it.
    """
    import polars as pl

    from conveyor.datafiles import read_table_file

    frames = [read_table_file(path) for path in paths]
    try:
        return pl.concat(frames, how="vertical")
    except pl.exceptions.SchemaError as exc:
        raise ConveyorError(
            f"the data files do not share one schema: {exc}",
            hint="every file must have the same columns and types",
        ) from None


@step
def ingest_features(
    ctx: StepContext,
    data: pl.DataFrame,
    after: Any = None,
    *,
    view: str,
    definitions: str = "features",
) -> dict:
    """Register the project's feature definitions and add the batch's new rows to ``view``.

    ``definitions`` is the module holding the ``Entity``/``FeatureView`` values
    (``features.py`` in the project).  Only the view's own columns are ingested, and
    only rows the offline store does not hold yet are written (a rerun on the same
    data writes nothing).  ``after``: another view's ``ingest_features`` output, to
    chain the ingestions of several views; the last one's output lists them all
    (``views``), so a training set built after it sees every view.
    """
    import importlib

    from conveyor.features import collect_definitions

    try:
        module = importlib.import_module(definitions)
    except ImportError as exc:
        raise ConveyorError(
            f"cannot import the feature definitions {definitions!r}: {exc}",
            hint="put them in features.py in the project folder",
        ) from None
    store = ctx.app.features
    applied = store.apply(collect_definitions(vars(module)))
    feature_view = store.get_view(view)
    columns = list(feature_view.schema())
    missing = [c for c in columns if c not in data.columns]
    if missing:
        raise ConveyorError(
            f"the batch lacks the columns {missing} of feature view {view!r}",
            hint="align features.py with the data",
        )
    report = store.ingest(view, data.select(columns))
    ctx.log_metrics({"ingested_rows": report.rows, "skipped_rows": report.skipped})
    version = next(
        (d.version for d in applied if d.name == view and d.kind == "feature_view"), None
    )
    views = [*(after or {}).get("views", []), {"view": view, "version": version}]
    return {
        "view": view,
        "version": version,
        "views": views,
        "rows": report.rows,
        "skipped": report.skipped,
        "files": list(report.files),
        "ingested_at": report.ingested_at.isoformat(),
    }


@step
def build_training_set(
    ctx: StepContext,
    data: pl.DataFrame,
    ingested: Any = None,
    *,
    features: list,
    label: str = "label",
    timestamp: str = "event_timestamp",
    keep: list | None = None,
) -> pl.DataFrame:
    """Labels joined point-in-time correct with any number of feature views.

    The label events come from ``data``: ``timestamp``, ``label``, every join key
    of every view named in ``features`` (each view is joined on its own keys) and
    the columns in ``keep``.  Each feature is its latest value at or before the
    event, within TTL (a static view's latest value, whatever the time); every
    event row is kept, with nulls where a view has no value.  ``ingested`` (the
    last of the chained ``ingest_features`` outputs) orders this step after ingestion.
    """
    from conveyor.features.definitions import parse_refs

    store = ctx.app.features
    views = [store.get_view(name) for name in parse_refs(features)]
    keys = list(dict.fromkeys(k for v in views for k in v.join_keys))
    wanted = [*keys, timestamp, label, *(keep or [])]
    absent = [c for c in wanted if c not in data.columns]
    if absent:
        owners = {k: [v.name for v in views if k in v.join_keys] for k in absent}
        named = ", ".join(
            f"{c!r}" + (f" (join key of {', '.join(owners[c])})" if owners[c] else "")
            for c in absent
        )
        raise ConveyorError(
            f"the label data lacks {named}; its columns: {', '.join(data.columns)}",
            hint="add the column(s) to the label data, or name the view's entity join key "
            "after the column that holds it",
        )
    events = data.select(list(dict.fromkeys(wanted)))
    frame = store.get_historical_features(events, features, timestamp=timestamp).collect()
    ctx.log_metrics({"training_rows": frame.height, "feature_views": float(len(views))})
    return frame


@step
def materialize_features(ctx: StepContext, ingested: dict, *, end: str | None = None) -> dict:
    """Bring the online store up to date with the ingested view (for serving).

    ``end`` (ISO time) materializes historical data up to that event time instead of
    now; a refused gate does not stop it: serving keeps fresh features either way.
    """
    report = ctx.app.features.materialize(
        ingested["view"], end=None if end is None else _instant(end, "end")
    )
    return {"view": report.view, "rows": report.rows, "end": report.end.isoformat()}


@step
def validate_data(
    ctx: StepContext,
    data: pl.DataFrame,
    production: Any,
    *,
    label: str = "label",
    checks: dict | None = None,
) -> DataProfile:
    """Check the batch against production's training profile; return this batch's profile.

    Blocking findings (schema changes, null-rate jumps, unseen categories, label
    shift, ...) and plugins' ``check_data`` findings stop the run with a report.
    """
    from conveyor.checks import DataCheckContext
    from conveyor.config import structure
    from conveyor.ml.profile import infer_profile
    from conveyor.ml.validation import CheckConfig, check_batch, ensure_valid

    config = structure(CheckConfig, checks or {}, section="checks", where="pipeline parameters")
    reference = None if production is None else load_registered_profile(ctx.app, production)
    findings = [] if reference is None else check_batch(reference, data, config)
    findings += ctx.app.run_checks(
        "check_data",
        DataCheckContext(dataset="training", table=data, reference=reference, run_id=ctx.run_id),
    )
    ensure_valid(findings)
    ctx.log_metrics({"rows": data.height, "data_warnings": len(findings)})
    return infer_profile(data, label=label)


@step(outputs=("train", "validation", "holdout"), persist=False)
def split_data(
    data: pl.DataFrame,
    *,
    timestamp: str = "event_timestamp",
    fractions: list | None = None,
    cutoffs: list | None = None,
) -> tuple:
    """Split by time: every training row precedes every validation and holdout row.

    ``cutoffs`` ``[T1, T2]`` (ISO dates or datetimes) split explicitly: training
    before ``T1``, validation from ``T1`` to before ``T2``, holdout from ``T2`` on.
    Without them the cutoffs fall at the cumulative ``fractions`` of the rows.
    """
    from conveyor.ml.split import split_by_time

    bounds: list[Any] = [None, None]
    if cutoffs is not None:
        bounds = [_instant(c, "cutoffs") for c in cutoffs]
        if len(bounds) != 2 or bounds[0] >= bounds[1]:
            raise ConveyorError(
                f"split_data cutoffs {cutoffs!r} are not two increasing instants",
                hint='give cutoffs=["2024-02-01", "2024-03-01"]: '
                "validation starts at the first, holdout at the second",
            )
        zone = getattr(data.schema.get(timestamp), "time_zone", None)
        if zone:  # naive cutoffs are in the column's zone
            from zoneinfo import ZoneInfo

            bounds = [b if b.tzinfo else b.replace(tzinfo=ZoneInfo(zone)) for b in bounds]
    parts = split_by_time(
        data,
        timestamp=timestamp,
        validation_start=bounds[0],
        holdout_start=bounds[1],
        fractions=tuple(fractions or (0.7, 0.15, 0.15)),
    )
    return parts.train, parts.validation, parts.holdout


def _instant(value: Any, what: str) -> Any:
    """A datetime from an ISO string (or a date/datetime as it is)."""
    from datetime import date, datetime

    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        raise ConveyorError(
            f"{what}: {value!r} is not a date or time",
            hint='write ISO dates such as "2024-02-01" or "2024-02-01T00:00:00"',
        ) from None


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
        joined = _feature_columns(ctx, features)
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
            features=_feature_uses(ctx, features or []),
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


def _feature_columns(ctx: StepContext, features: list) -> list[str]:
    """The columns the feature references add to a training set."""
    return [name for _view, names in _resolve_refs(ctx, features) for name in names]


def _resolve_refs(ctx: StepContext, features: list) -> list[tuple[str, list[str]]]:
    """``(view, feature names)`` of each view the references name (``*`` resolved)."""
    from conveyor.features.definitions import parse_refs

    store = ctx.app.features
    return [
        (view, list(store.get_view(view).feature_names if wanted is None else wanted))
        for view, wanted in parse_refs(features).items()
    ]


def _feature_uses(ctx: StepContext, features: list) -> list[FeatureViewUse]:
    """The views the references name, each with its current definition version."""
    from conveyor.interfaces.lineage import FeatureViewUse

    return [
        FeatureViewUse(
            view=view,
            features=names,
            version=ctx.app.metadata.get_definition("feature_view", view).version,
        )
        for view, names in _resolve_refs(ctx, features)
    ]


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
