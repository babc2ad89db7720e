"""``conveyor monitor``: drift, skew and performance from the prediction log; exit 1 on alert."""

from __future__ import annotations

import sys
from typing import Any

import click

from conveyor.cli._output import echo_json, echo_table
from conveyor.errors import ConveyorError


def _model(state: Any, name: str | None) -> str:
    if name:
        return name
    names = [m.name for m in state.app.registry.list_models()]
    if len(names) == 1:
        return names[0]
    raise ConveyorError(
        "which model? " + ("none is registered" if not names else f"{len(names)} are registered"),
        hint="pass --model NAME" + (f" (one of: {', '.join(names)})" if names else ""),
    )


def _window(since: str | None, until: str | None) -> tuple[Any, Any]:
    from datetime import UTC, datetime

    from conveyor.monitoring.service import parse_since

    now = datetime.now(UTC)
    end = parse_since(until, now) if until else None
    return (parse_since(since, end or now) if since else None), end


def _progress() -> Any:
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        click.echo(f"\rcompared {done}/{total} features", err=True, nl=done == total)

    return show


def _finish(
    monitored: Any, as_json: bool, html: str | None, rows: list[dict[str, Any]], headers: list[str]
) -> None:
    from attrs import asdict

    from conveyor.monitoring.report import render_html

    result = monitored.result
    if html:
        from pathlib import Path

        target = Path(html)
        partial = target.with_name(f".{target.name}.partial")
        partial.write_text(render_html(result, monitored.report), encoding="utf-8")
        partial.replace(target)  # a report is whole or absent, never half-written
    if as_json:
        data = asdict(result)
        for key in ("window_start", "window_end", "created"):
            data[key] = data[key].isoformat()
        echo_json({"result": data, "alert": bool(result.breached), "rows": rows})
    else:
        click.echo(
            f"{result.kind} of {result.model} v{result.version}, "
            f"{result.window_start:%Y-%m-%d %H:%M} to {result.window_end:%Y-%m-%d %H:%M}"
            f" UTC, {result.rows} rows"
        )
        echo_table(headers, [[r[h.lower()] for h in headers] for r in rows])
        click.echo(("ALERT: " + ", ".join(result.breached)) if result.breached else "OK")
        if html:
            click.echo(f"report: {html}")
    if result.breached:
        raise SystemExit(1)


def _fmt(value: float | None) -> str:
    import math

    return "-" if value is None or not math.isfinite(value) else f"{value:.4f}"


_COMMON = [
    click.option(
        "--model", "model", metavar="NAME", help="Registered model (default: the only one)."
    ),
    click.option(
        "--version",
        "version",
        type=int,
        metavar="N",
        help="Model version (default: production, else the latest).",
    ),
    click.option(
        "--since",
        metavar="WHEN",
        help="Window start: a duration back (7d, 12h) or an ISO date (default 7d).",
    ),
    click.option("--until", metavar="WHEN", help="Window end (default: now)."),
    click.option("--json", "as_json", is_flag=True, help="Machine-readable output."),
    click.option("--html", metavar="FILE", help="Also write a self-contained HTML report."),
]


def _common(fn: Any) -> Any:
    for option in reversed(_COMMON):
        fn = option(fn)
    return fn


@click.group()
def monitor() -> None:
    """Drift, training-serving skew and performance of a served model (exit 1 on alert)."""


def _drift(
    state: Any,
    kind: str,
    model: str | None,
    version: int | None,
    since: str | None,
    until: str | None,
    as_json: bool,
    html: str | None,
    wasserstein: bool = False,
) -> None:
    from conveyor.monitoring.service import monitor_drift

    start, end = _window(since, until)
    monitored = monitor_drift(
        state.app,
        _model(state, model),
        version=version,
        kind=kind,
        since=start,
        until=end,
        wasserstein=wasserstein,
        progress=_progress(),
    )
    rows = [
        {
            "feature": f.name,
            "kind": f.kind,
            "effect": f"{f.effect} {_fmt(f.effect_size)}",
            "psi": _fmt(f.psi),
            "p": _fmt(f.p_value),
            "missing": _fmt(f.missing_current),
            "breached": ",".join(f.breached) or "-",
        }
        for f in monitored.report.features
    ]
    _finish(
        monitored,
        as_json,
        html,
        rows,
        ["FEATURE", "KIND", "EFFECT", "PSI", "P", "MISSING", "BREACHED"],
    )


@monitor.command("drift")
@_common
@click.option("--wasserstein", is_flag=True, help="Also compute the Wasserstein distance.")
@click.pass_obj
def drift(state: Any, **options: Any) -> None:
    """Compare the window of the log with the window of the same length before it."""
    _drift(state, "drift", **options)


@monitor.command("skew")
@_common
@click.pass_obj
def skew(state: Any, **options: Any) -> None:
    """Compare the window of the log with the version's training-data profile."""
    _drift(state, "skew", **options)


@monitor.command("performance")
@_common
@click.option("--labels", metavar="PATH", help="Parquet file or glob with the labels.")
@click.option(
    "--label-view",
    metavar="VIEW",
    help="Feature view holding the labels, joined by its entity key and event time.",
)
@click.option(
    "--horizon",
    metavar="SPAN",
    help="Entity joins: a label counts only if it came at most this long after (7d).",
)
@click.option("--label", metavar="COLUMN", help="Label column (default: the model's label).")
@click.option(
    "--join",
    "join",
    type=click.Choice(["request_id", "entity"]),
    default="request_id",
    show_default=True,
    help="Join labels by request id, or by entity and time.",
)
@click.option("--entity", metavar="COLUMN", help="Entity column of the labels (--join entity).")
@click.option("--label-time", metavar="COLUMN", help="Time column of the labels (--join entity).")
@click.option(
    "--window",
    "every",
    default="1d",
    show_default=True,
    metavar="SPAN",
    help="Length of each window (1d, 12h, 1w).",
)
@click.option("--metric", metavar="NAME", help="auc or accuracy (binary), rmse or mae.")
@click.pass_obj
def performance(
    state: Any,
    model: str | None,
    version: int | None,
    since: str | None,
    until: str | None,
    as_json: bool,
    html: str | None,
    labels: str | None,
    label_view: str | None,
    horizon: str | None,
    label: str | None,
    join: str,
    entity: str | None,
    label_time: str | None,
    every: str,
    metric: str | None,
) -> None:
    """Realized metric per window from delayed labels, and the estimate (CBPE) without."""
    from conveyor.monitoring.service import monitor_performance, parse_span

    start, end = _window(since, until)
    monitored = monitor_performance(
        state.app,
        _model(state, model),
        version=version,
        labels=labels,
        label_view=label_view,
        horizon=None if horizon is None else parse_span(horizon),
        label=label,
        on=join,
        entity=entity,
        label_time=label_time,
        since=start,
        until=end,
        every=parse_span(every),
        metric=metric,
    )
    report = monitored.report
    rows = [
        {
            "window": f"{w.start:%Y-%m-%d %H:%M}",
            "rows": w.rows,
            "labelled": w.labelled,
            "realized": f"{_fmt(w.value)} [{_fmt(w.low)}, {_fmt(w.high)}]",
            "estimated": f"{_fmt(w.estimated)} [{_fmt(w.estimated_low)}, {_fmt(w.estimated_high)}]",
            "decayed": "yes" if w.decayed or w.estimated_decayed else "-",
        }
        for w in report.windows
    ]
    _finish(
        monitored,
        as_json,
        html,
        rows,
        ["WINDOW", "ROWS", "LABELLED", "REALIZED", "ESTIMATED", "DECAYED"],
    )


commands = [monitor]
