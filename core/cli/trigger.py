"""``conveyor trigger fire`` and ``conveyor triggers list|status|history``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from conveyor.cli._output import echo_json, echo_table
from conveyor.errors import ConfigError


def _manual_binding(app: Any, pipeline: str) -> str:
    """The ``[triggers.<name>]`` with ``backend = "manual"`` bound to ``pipeline``."""
    from conveyor.runs.resolve import resolve_pipeline
    from conveyor.triggers import binding, trigger_names

    wanted = resolve_pipeline(app.config, pipeline)[0]
    names = [
        n
        for n in trigger_names(app)
        if app.config.section(f"triggers.{n}").get("backend") == "manual"
        and resolve_pipeline(app.config, binding(app, n).pipeline)[0] == wanted
    ]
    if len(names) != 1:
        raise ConfigError(
            f"{'no' if not names else 'more than one'} manual trigger is bound to pipeline "
            f"{wanted!r}" + (f" ({', '.join(names)})" if names else ""),
            hint=f'add [triggers.manual] backend = "manual" pipeline = "{wanted}" '
            f"to {app.config.where}"
            if not names
            else "keep one manual binding per pipeline",
        )
    return names[0]


@click.group()
def trigger() -> None:
    """Fire a trigger by hand."""


@trigger.command("fire")
@click.argument("pipeline")
@click.option("--reason", required=True, help="Why it should run (recorded with the run).")
@click.option("--key", default=None, help="Idempotency key: a repeated key fires once.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@click.pass_obj
def fire(state: Any, pipeline: str, reason: str, key: str | None, as_json: bool) -> None:
    """Run PIPELINE now through its manual trigger, with its binding's rules applied."""
    from conveyor.cli.run import _user
    from conveyor.triggers import DEFAULT_LEASE_TTL, evaluate
    from conveyor.watch import SystemClock, launch, new_holder

    app = state.app
    name = _manual_binding(app, pipeline)
    holder, clock = new_holder(), SystemClock()
    requested = app.trigger(name).request(reason, by=_user(), key=key)
    outcome = evaluate(
        app, name, clock.now(), holder=holder, trigger=requested, lease_ttl=DEFAULT_LEASE_TTL
    )
    started = (
        launch(app, outcome, holder=holder, clock=clock, lease_ttl=DEFAULT_LEASE_TTL)
        if outcome.fired
        else None
    )
    summary = {
        "trigger": name,
        "status": outcome.status,
        "reason": outcome.reason,
        "event": outcome.event.id if outcome.event else None,
        "run_id": started.run_id if started else None,
        "run_status": started.status if started else None,
    }
    if as_json:
        echo_json(summary)
    else:
        click.echo(f"{name}: {outcome.status}: {outcome.reason}")
        if started is not None:
            click.echo(f"Run {started.run_id}: {started.status}")
    if started is None or started.status != "succeeded":
        raise SystemExit(1)


@click.group()
def triggers() -> None:
    """The configured triggers, what they decided and why."""


@triggers.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def list_triggers(state: Any, as_json: bool) -> None:
    """Each configured trigger with its backend, pipeline and binding rules."""
    from conveyor.runs.resolve import resolve_pipeline
    from conveyor.triggers import binding, trigger_names

    app = state.app
    rows = []
    for name in trigger_names(app):
        config = binding(app, name)
        rows.append(
            {
                "name": name,
                "backend": app.config.section(f"triggers.{name}").get("backend"),
                "pipeline": resolve_pipeline(app.config, config.pipeline)[0],
                "cooldown_s": config.cooldown.total_seconds(),
                "single_flight": config.single_flight,
                "enabled": config.enabled,
            }
        )
    if as_json:
        echo_json(rows)
        return
    echo_table(
        ["TRIGGER", "BACKEND", "PIPELINE", "COOLDOWN", "SINGLE FLIGHT", "ENABLED"],
        [
            [
                r["name"],
                r["backend"],
                r["pipeline"],
                f"{r['cooldown_s']:g}s",
                r["single_flight"],
                r["enabled"],
            ]
            for r in rows
        ],
    )


@triggers.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def status(state: Any, as_json: bool) -> None:
    """What each trigger last decided, its last firing and that firing's run."""
    from conveyor.triggers import decided_at, last_fired, trigger_names

    app = state.app
    rows: list[dict[str, Any]] = []
    for name in trigger_names(app):
        watched = app.metadata.get_watch_state(name)
        fired = last_fired(app.metadata, name)
        runs = app.metadata.search_runs(trigger_event=fired.id, limit=1) if fired else []
        rows.append(
            {
                "name": name,
                "watch": watched.state if watched else None,
                "last_fired": decided_at(fired).isoformat() if fired else None,
                "last_reason": fired.reason if fired else None,
                "run_id": runs[0].id if runs else None,
                "run_status": runs[0].status if runs else None,
            }
        )
    if as_json:
        echo_json(rows)
        return
    echo_table(
        ["TRIGGER", "LAST TICK", "DECIDED", "LAST FIRED", "RUN", "RUN STATUS"],
        [
            [
                r["name"],
                (r["watch"] or {}).get("last_tick"),
                (r["watch"] or {}).get("status"),
                r["last_fired"],
                r["run_id"],
                r["run_status"],
            ]
            for r in rows
        ],
    )
    for r in rows:
        if r["watch"]:
            click.echo(f"{r['name']}: {r['watch'].get('reason')}")


@triggers.command("history")
@click.argument("name", required=False)
@click.option("--limit", default=20, show_default=True, help="How many events.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def history(state: Any, name: str | None, limit: int, as_json: bool) -> None:
    """Recorded trigger events (firings and refusals), newest first, with their runs."""
    app = state.app
    rows = []
    for event in app.metadata.list_trigger_events(trigger=name, limit=limit):
        runs = app.metadata.search_runs(trigger_event=event.id, limit=1)
        rows.append(
            {
                "id": event.id,
                "trigger": event.trigger,
                "fired": event.fired,
                "key": event.key,
                "reason": event.reason,
                "created": event.created.astimezone(UTC).isoformat(),
                "run_id": runs[0].id if runs else None,
                "run_status": runs[0].status if runs else None,
            }
        )
    if as_json:
        echo_json(rows)
        return
    echo_table(
        ["WHEN", "TRIGGER", "FIRED", "RUN", "STATUS", "REASON"],
        [
            [
                _short(r["created"]),
                r["trigger"],
                "yes" if r["fired"] else "no",
                r["run_id"],
                r["run_status"],
                r["reason"],
            ]
            for r in rows
        ],
    )


def _short(stamp: str) -> str:
    return datetime.fromisoformat(stamp).strftime("%Y-%m-%d %H:%M:%S")


commands = [trigger, triggers]
