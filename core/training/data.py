"""The data steps of the training pipeline: loading, features, validation, the split.

Also the feature references' helpers the model and registration steps share.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from conveyor.errors import ConveyorError
from conveyor.models.registered import load_registered_profile
from conveyor.pipeline import StepContext, step

if TYPE_CHECKING:
    import polars as pl

    from conveyor.interfaces.lineage import FeatureViewUse
    from conveyor.ml.profile import DataProfile


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


def feature_columns(ctx: StepContext, features: list) -> list[str]:
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


def feature_uses(ctx: StepContext, features: list) -> list[FeatureViewUse]:
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
