"""``conveyor pipelines deploy|history``: which pipeline version each environment runs."""

from __future__ import annotations

from typing import Any

import click

from conveyor.cli._output import echo_json, echo_table


@click.group()
def pipelines() -> None:
    """Pipeline versions deployed to environments (config profiles), and their audit log."""


@pipelines.command()
@click.argument("pipeline")
@click.option("--profile", "profile", help="The environment to deploy to (a config profile).")
@click.option("--reviewed-by", metavar="NAME", help="Who reviewed it (review mode).")
@click.option("--approved-by", metavar="NAME", help="Who approves it (approval mode).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def deploy(
    state: Any,
    pipeline: str,
    profile: str | None,
    reviewed_by: str | None,
    approved_by: str | None,
    as_json: bool,
) -> None:
    """Deploy the code on disk of PIPELINE to an environment, under its [deploy] rules.

    Allowed or refused, the attempt is recorded in `conveyor pipelines history`.
    """
    from conveyor.deploy import deploy as do_deploy

    app = state.app_for(profile)
    entry = do_deploy(
        app,
        pipeline,
        open_environment=lambda name: state.app_for(name),
        reviewed_by=reviewed_by,
        approved_by=approved_by,
    )
    if as_json:
        echo_json(entry.to_dict())
        return
    click.secho(
        f"Deployed {pipeline} {entry.version.short} to {entry.environment} "
        f"({entry.reason}, by {entry.by})",
        fg="green",
    )


@pipelines.command()
@click.argument("pipeline", required=False)
@click.option("--profile", "profile", help="The environment (a config profile).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def history(state: Any, pipeline: str | None, profile: str | None, as_json: bool) -> None:
    """The deployment audit log of an environment: every attempt, allowed or refused."""
    from conveyor.deploy import history as read_history

    entries = read_history(state.app_for(profile), pipeline)
    if as_json:
        echo_json([e.to_dict() for e in entries])
        return
    if not entries:
        click.echo("No deployments recorded in this environment.")
        return
    echo_table(
        ["AT", "PIPELINE", "ENV", "ACTION", "VERSION", "BY", "REVIEWED", "APPROVED", "REASON"],
        [
            [
                e.at.strftime("%Y-%m-%d %H:%M:%S"),
                e.pipeline,
                e.environment,
                e.action,
                e.version.short,
                e.by,
                e.reviewed_by or "-",
                e.approved_by or "-",
                e.reason,
            ]
            for e in entries
        ],
    )


commands = [pipelines]
