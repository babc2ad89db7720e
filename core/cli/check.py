"""``conveyor check``: the project's CI gate (see :mod:`conveyor.ci`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from conveyor.cli._output import echo_json
from conveyor.cli.run import param_option


@click.command()
@param_option
@click.option("--report", "report_path", metavar="FILE.md", help="Write a Markdown summary.")
@click.option(
    "--max-latency",
    "latency",
    multiple=True,
    default=("p99=50",),
    show_default=True,
    metavar="pNN=MS",
    help="Latency budget of the candidate under the load test (repeatable: p50, p95, p99).",
)
@click.option(
    "--duration",
    type=click.FloatRange(0.1, 600),
    default=2.0,
    show_default=True,
    help="Seconds of the load test.",
)
@click.option("--concurrency", type=click.IntRange(1, 256), default=4, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def check(
    state: Any,
    params: tuple[str, ...],
    report_path: str | None,
    latency: tuple[str, ...],
    duration: float,
    concurrency: int,
    as_json: bool,
) -> None:
    """One CI gate: config and plugins load, pipelines build, a dry run on a scratch copy
    passes its data contracts, and the latest candidate serves within its latency budget.

    Exit status 1 when any stage fails.
    """
    from conveyor.ci import run_check
    from conveyor.cli._loadtest import Budget
    from conveyor.cli.run import parse_parameters

    report = run_check(
        state,
        parameters=parse_parameters(params),
        budget=Budget.parse(latency),
        duration=duration,
        concurrency=concurrency,
    )
    if report_path:
        Path(report_path).write_text(report.markdown())
    if as_json:
        echo_json(
            {
                "ok": report.ok,
                "stages": [
                    {"name": s.name, "ok": s.ok, "message": s.message, "hint": s.hint}
                    for s in report.stages
                ],
            }
        )
    else:
        for s in report.stages:
            label, colour = (
                ("skip", "yellow") if s.ok is None else ("ok", "green") if s.ok else ("FAIL", "red")
            )
            click.secho(f"{label:<5} {s.name:<10} {s.message}", fg=colour)
            if s.hint and s.ok is False:
                click.echo(f"      hint: {s.hint}")
        click.secho(
            f"check {'passed' if report.ok else 'FAILED'}",
            fg="green" if report.ok else "red",
            bold=True,
        )
    if not report.ok:
        raise SystemExit(1)


commands = [check]
