"""``conveyor features``: apply definitions, list, ingest, materialize, check parity."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from conveyor.cli._output import echo_json, echo_table


@click.group()
def features() -> None:
    """Feature views: definitions, offline data, the online store and parity checks."""


def _load_module(state: Any, module: str | None) -> Any:
    """Import the definitions module: a dotted name or a ``.py`` path."""
    from conveyor.errors import ConfigError

    app = state.app
    name = module or app.config.section("feature_store").get("definitions") or "features"
    path = Path(name)
    try:
        if name.endswith(".py"):
            if not path.is_absolute():
                path = app.root / path
            spec = importlib.util.spec_from_file_location(f"_conveyor_defs_{path.stem}", path)
            if spec is None or spec.loader is None or not path.is_file():
                raise FileNotFoundError(path)
            loaded = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = loaded
            spec.loader.exec_module(loaded)
            return loaded
        sys.modules.pop(name, None)  # always read the project's current definitions
        importlib.invalidate_caches()
        return importlib.import_module(name)
    except (ImportError, FileNotFoundError) as exc:
        raise ConfigError(
            f"cannot import the feature definitions module {name!r}: {exc}",
            hint="pass the module (`conveyor features apply my_project.features` or a .py "
            'path), or set [feature_store] definitions = "module"',
        ) from None


@features.command("apply")
@click.argument("module", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def apply_(state: Any, module: str | None, as_json: bool) -> None:
    """Register the entities and feature views defined in MODULE (versioned).

    MODULE defaults to [feature_store] definitions, else `features` (features.py in
    the project).  A definition gets a new version only when it changed.
    """
    from conveyor.errors import ValidationError
    from conveyor.features import collect_definitions

    loaded = _load_module(state, module)
    found = collect_definitions(vars(loaded))
    if not found:
        raise ValidationError(
            f"{loaded.__name__} defines no Entity or FeatureView",
            hint="define them at module level (see docs/features.md)",
        )
    recorded = state.app.features.apply(found)
    rows = [
        {"kind": d.kind, "name": d.name, "version": d.version, "fingerprint": d.fingerprint[:12]}
        for d in recorded
    ]
    if as_json:
        echo_json(rows)
        return
    echo_table(
        ["KIND", "NAME", "VERSION", "FINGERPRINT"],
        [[r["kind"], r["name"], r["version"], r["fingerprint"]] for r in rows],
    )


@features.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def list_(state: Any, as_json: bool) -> None:
    """List registered feature views with their version, keys, features and watermark."""
    app = state.app
    definitions = {d.name: d for d in app.metadata.list_definitions("feature_view")}
    rows = []
    for view in app.features.list_views():
        online_state = app.online_store.get_state(view.name)
        rows.append(
            {
                "name": view.name,
                "version": definitions[view.name].version if view.name in definitions else None,
                "entities": [e.name for e in view.entities],
                "join_keys": list(view.join_keys),
                "features": [{"name": f.name, "dtype": f.dtype} for f in view.features],
                "ttl_seconds": None if view.ttl is None else view.ttl.total_seconds(),
                "watermark": (
                    online_state.watermark.isoformat()
                    if online_state and online_state.watermark
                    else None
                ),
                "description": view.description,
            }
        )
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("No feature views registered (run `conveyor features apply`).")
        return
    echo_table(
        ["VIEW", "VERSION", "KEYS", "FEATURES", "TTL", "WATERMARK"],
        [
            [
                r["name"],
                r["version"],
                ", ".join(r["join_keys"]),
                len(r["features"]),
                "-" if r["ttl_seconds"] is None else _duration(r["ttl_seconds"]),
                r["watermark"] or "-",
            ]
            for r in rows
        ],
    )


@features.command("ingest")
@click.argument("view")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def ingest(state: Any, view: str, file: Path, as_json: bool) -> None:
    """Append the rows of a Parquet or CSV FILE to VIEW's offline store.

    A file that cannot be read (not Parquet, empty, cut short, damaged, malformed CSV)
    is refused with one error line naming it; nothing is written.
    """
    report = state.app.features.ingest(view, file)
    if as_json:
        echo_json(
            {
                "view": report.view,
                "rows": report.rows,
                "files": list(report.files),
                "skipped": report.skipped,
                "ingested_at": report.ingested_at,
            }
        )
        return
    click.echo(
        f"{report.view}: {report.rows} rows in {len(report.files)} file(s)"
        + (f", {report.skipped} already stored" if report.skipped else "")
    )


_TIME = click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"])


@features.command("materialize")
@click.argument("views", nargs=-1, required=True)
@click.option(
    "--start",
    type=_TIME,
    help="Event-time start of a backfill window: older "
    "rows are left out (default: from the beginning).",
)
@click.option(
    "--end",
    type=_TIME,
    help="Event-time end of the window, UTC unless an offset is given "
    "(default: now); an end before the watermark is refused.",
)
@click.option("--batch-size", type=click.IntRange(min=1), help="Rows per transaction.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def materialize(
    state: Any,
    views: tuple[str, ...],
    start: datetime | None,
    end: datetime | None,
    batch_size: int | None,
    as_json: bool,
) -> None:
    """Copy the latest values of VIEWS into the online store (incremental, resumable).

    For historical data give the window: ``--start 2024-01-01 --end 2024-03-31``
    (materializing to now would put values older than their TTL out of reach).
    """
    reports = [
        state.app.features.materialize(v, start=start, end=end, batch_size=batch_size)
        for v in views
    ]
    if as_json:
        echo_json(
            [
                {
                    "view": r.view,
                    "start": r.start,
                    "end": r.end,
                    "rows": r.rows,
                    "batches": r.batches,
                    "resumed": r.resumed,
                }
                for r in reports
            ]
        )
        return
    for r in reports:
        since = r.start.isoformat() if r.start else "the beginning"
        note = " (resumed an interrupted run)" if r.resumed else ""
        click.echo(
            f"{r.view}: {r.rows} rows in {r.batches} batch(es), {since} -> "
            f"{r.end.isoformat()}{note}"
        )


@features.command("parity")
@click.argument("view")
@click.option(
    "--at",
    "at",
    type=_TIME,
    help="The instant compared, at or before the watermark (default: the watermark).",
)
@click.option(
    "--sample",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Entity keys to compare.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Sampling seed.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def parity(
    state: Any, view: str, at: datetime | None, sample: int, seed: int, as_json: bool
) -> None:
    """Compare online values with offline point-in-time values; exit 1 on skew.

    Values missing on both sides are not agreement: a check that compared nothing
    exits 1 too.
    """
    report = state.app.features.parity(view, sample=sample, seed=seed, at=at)
    if as_json:
        echo_json(report.to_dict())
    else:
        click.echo(
            f"{report.view}: compared {report.compared} values in {report.rows} of "
            f"{report.sampled} sampled keys at {report.at.isoformat()}: "
            f"{len(report.mismatches)} mismatch(es)"
        )
        if report.both_missing or report.newer_online:
            click.echo(
                f"  not compared: {report.both_missing} value(s) missing on both "
                f"sides, {report.newer_online} key(s) whose online value is newer"
            )
        if report.mismatches:
            echo_table(
                ["KEY", "FEATURE", "ONLINE", "OFFLINE"],
                [
                    [
                        ", ".join(f"{k}={v}" for k, v in m.key.items()),
                        m.feature,
                        m.online,
                        m.offline,
                    ]
                    for m in report.mismatches[:50]
                ],
            )
            if len(report.mismatches) > 50:
                click.echo(f"... and {len(report.mismatches) - 50} more (use --json)")
        elif not report.compared:
            click.echo(
                "Nothing was compared: every sampled value is missing on both sides "
                "or newer online. Hint: materialize up to the data's time "
                "(--end) and compare there (--at).",
                err=True,
            )
    if not report.ok:
        click.get_current_context().exit(1)


commands = [features]


def _duration(seconds: float) -> str:
    """``2592000`` -> ``30d``; ``5400`` -> ``1h30m``: TTLs as people write them."""
    whole = int(seconds)
    if whole != seconds or whole <= 0:
        return f"{seconds:g}s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, whole = divmod(whole, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
