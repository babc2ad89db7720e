"""``conveyor run``: run a pipeline now (a manual trigger)."""

from __future__ import annotations

import getpass
import tomllib
from typing import Any

import click

from conveyor.cli._output import echo_json, echo_table

_SYMBOL = {
    "succeeded": ("ok", "green"),
    "cached": ("cached", "cyan"),
    "failed": ("FAILED", "red"),
    "refused": ("REFUSED", "red"),
    "timed_out": ("TIMED OUT", "red"),
    "skipped": ("skipped", "white"),
}


def parse_parameters(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``-p key=value`` pairs; values are TOML when they parse (numbers, bools, lists)."""
    parameters: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{pair!r} is not key=value", param_hint="-p")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        parameters[key.strip()] = value
    return parameters


#: ``-p/--param KEY=VALUE``, shared by the commands that build a pipeline
param_option = click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a pipeline parameter (repeatable).",
)


@click.command()
@click.argument("pipeline", required=False)
@param_option
@click.option("--no-cache", is_flag=True, help="Run every step, reusing no cached output.")
@click.option(
    "--resume",
    "resume_from",
    metavar="RUN_ID",
    help="Resume a failed run: its succeeded steps are reused.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON.")
@click.pass_obj
def run(
    state: Any,
    pipeline: str | None,
    params: tuple[str, ...],
    no_cache: bool,
    resume_from: str | None,
    as_json: bool,
) -> None:
    """Run PIPELINE now (default: the configured one), recorded as a manual trigger."""
    from conveyor.events import TriggerFired
    from conveyor.pipeline import load_pipeline
    from conveyor.runs import run_pipeline
    from conveyor.runs.resolve import resolve_pipeline

    app = state.app
    name, target, parameters = resolve_pipeline(app.config, pipeline)
    parameters.update(parse_parameters(params))
    pipe = load_pipeline(target)
    graph = pipe.build(**parameters)
    user = _user()
    event = app.metadata.record_trigger_event(
        "manual",
        f"conveyor run by {user}",
        details={
            "pipeline": name,
            "parameters": parameters,
            "resume_from": resume_from,
            "conveyor": {"profile": app.config.profile},
        },
    )
    app.emit(
        "on_trigger_fired",
        TriggerFired(
            trigger="manual", reason=event.reason, event_id=event.id, details=event.details
        ),
    )

    def progress(node: str, status: str, outcome: Any) -> None:
        if as_json:
            return
        if status == "running":
            click.echo(f"  {node:<24} running...", err=True)
            return
        label, colour = _SYMBOL.get(status, (status, "white"))
        click.secho(f"  {node:<24} {label:<8} {outcome.duration_s:8.2f}s", fg=colour, err=True)

    if not as_json:
        click.echo(f"Running pipeline {name!r} ({target})", err=True)
    result = run_pipeline(
        app,
        graph,
        trigger_event=event.id,
        resume_from=resume_from,
        use_cache=not no_cache,
        progress=progress,
    )
    summary = {
        "run_id": result.run_id,
        "pipeline": name,
        "status": result.status,
        "duration_s": round(result.duration_s, 3),
        "error": result.error,
        "trigger_event": event.id,
        "steps": [
            {
                "step": o.node,
                "status": o.status,
                "duration_s": round(o.duration_s, 3),
                "attempts": o.attempts,
                "metrics": o.metrics,
                "error": o.error,
            }
            for o in result.steps.values()
        ],
        "findings": [
            {
                "check": f.check,
                "severity": f.severity.value,
                "subject": f.subject,
                "message": f.message,
            }
            for f in result.findings
        ],
    }
    from conveyor.candidates import run_candidate

    candidate = run_candidate(app, result.run_id)
    summary["candidate"] = None if candidate is None else candidate.to_dict()
    if as_json:
        echo_json(summary)
    else:
        click.echo()
        echo_table(
            ["STEP", "STATUS", "SECONDS"],
            [[o.node, o.status, f"{o.duration_s:.2f}"] for o in result.steps.values()],
        )
        colour = "green" if result.ok else "red"
        click.secho(
            f"\nRun {result.run_id}: {result.status} in {result.duration_s:.2f}s",
            fg=colour,
            bold=True,
        )
        if candidate is not None:
            _echo_candidate(candidate)
        if result.error:
            click.secho(f"Reason: {result.error}", fg="red")
        if result.hint:
            click.echo(f"Hint: {result.hint}")
    if not result.ok:
        raise SystemExit(1)


def _echo_candidate(candidate: Any) -> None:
    """The candidate's metrics, the gate's verdict, its version and the promotion."""
    metrics = ", ".join(f"{k}={v:.4g}" for k, v in sorted(candidate.metrics.items()))
    click.echo(
        f"Candidate{' for ' + candidate.model if candidate.model else ''}: "
        f"{metrics or 'no metrics'}"
    )
    if not candidate.passed:
        click.secho(
            "Gate: REFUSED (not registered; `conveyor models candidates` keeps it)", fg="red"
        )
        return
    registered = (
        "not registered" if candidate.version is None else f"registered as v{candidate.version}"
    )
    click.echo(f"Gate: passed, {registered}")
    if candidate.promotion:
        click.echo(
            "Promotion: "
            + ", ".join(f"{alias} {what}" for alias, what in sorted(candidate.promotion.items()))
        )


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


commands = [run]
