"""``conveyor watch``: evaluate the configured triggers on an interval and run what fires."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

import click


@click.command()
@click.option("--once", is_flag=True, help="Evaluate every trigger once, start what fired, exit.")
@click.option(
    "--interval",
    default="60s",
    show_default=True,
    metavar="DURATION",
    help="Time between two evaluations (seconds or 30s, 5m, 1h).",
)
@click.option(
    "--until",
    "until",
    default=None,
    metavar="TIME",
    help="Stop once the clock reaches this ISO-8601 time (with its offset).",
)
@click.option(
    "--lease-ttl",
    default="2m",
    show_default=True,
    metavar="DURATION",
    help="How long a pipeline's lease lasts unless its running run renews it.",
)
@click.option(
    "-t",
    "--trigger",
    "names",
    multiple=True,
    metavar="NAME",
    help="Watch only this trigger (repeatable; default: every configured one).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log every decision, 'not due' included.")
@click.pass_obj
def watch(
    state: Any,
    once: bool,
    interval: str,
    until: str | None,
    lease_ttl: str,
    names: tuple[str, ...],
    verbose: bool,
) -> None:
    """Evaluate the configured triggers every INTERVAL and start the runs they fire.

    Each decision is logged with its reason.  SIGTERM stops the watcher after the
    run in progress finishes (a second SIGTERM records that run interrupted).
    """
    import logging

    from conveyor.config import parse_duration
    from conveyor.errors import ConfigError
    from conveyor.triggers import binding, trigger_names
    from conveyor.watch import CLOCK_ENV, Watcher, clock_from_env

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    for name in ("conveyor.watch", "conveyor.triggers"):
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.INFO)
    app = state.app
    for name in names:
        binding(app, name)  # unknown names fail before the loop starts
    _require_deployed(app, names or trigger_names(app))
    stop_at = None
    if until is not None:
        stop_at = datetime.fromisoformat(until)
        if stop_at.tzinfo is None:
            raise ConfigError(
                f"--until {until!r} has no UTC offset",
                hint="e.g. --until 2024-01-01T12:00:00+00:00",
            )
    watcher = Watcher(
        app=app,
        clock=clock_from_env(os.environ.get(CLOCK_ENV)),
        interval=parse_duration(interval),
        lease_ttl=parse_duration(lease_ttl),
        names=names,
    )
    click.echo(
        f"Watching {', '.join(watcher.triggers()) or 'no triggers'} as {watcher.holder}", err=True
    )
    watcher.run(once=once, until=stop_at)


def _require_deployed(app: Any, triggers: Any) -> None:
    """In an environment with deployment rules, refuse before the loop starts when the
    code on disk of a watched pipeline is not the deployed version."""
    from conveyor.deploy import DeployRule, require_deployed
    from conveyor.pipeline import load_pipeline
    from conveyor.runs.resolve import resolve_pipeline
    from conveyor.triggers import binding

    if DeployRule.from_config(app.config) is None:
        return
    for trigger in triggers:
        name, target, parameters = resolve_pipeline(app.config, binding(app, trigger).pipeline)
        require_deployed(app, name, load_pipeline(target).build(**parameters).fingerprint)


commands = [watch]
