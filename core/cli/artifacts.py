"""``conveyor artifacts ls`` and ``conveyor artifacts gc``."""

from __future__ import annotations

import re
from datetime import timedelta

import click

from conveyor.cli._output import echo_json, echo_table

_DURATION = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(value: str) -> timedelta:
    """``"30m"``, ``"2h"``, ``"1d"``, ``"0s"`` as a timedelta."""
    match = _DURATION.fullmatch(value.strip())
    if match is None:
        raise click.BadParameter(f"{value!r} is not a duration like 30m, 2h, 1d or 0s")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def human_size(size: int) -> str:
    """``1536`` -> ``"1.5 KiB"``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


@click.group()
def artifacts() -> None:
    """List and garbage-collect what the artifact store holds."""


@artifacts.command("ls")
@click.argument("prefix", required=False, default="")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def ls(state, prefix: str, as_json: bool) -> None:
    """List stored artifacts whose keys start with PREFIX, sorted by key."""
    store = state.app.artifacts
    infos = list(store.list(prefix))
    if as_json:
        echo_json([info.to_dict() for info in infos])
        return
    if not infos:
        where = f" under {prefix!r}" if prefix else ""
        click.echo(f"No artifacts{where} in {store.uri}.")
        return
    echo_table(
        ["KEY", "SIZE", "SHA256", "MEDIA TYPE", "CREATED"],
        [
            [
                i.key,
                human_size(i.size),
                i.sha256[:12],
                i.media_type,
                i.created.strftime("%Y-%m-%d %H:%M:%S"),
            ]
            for i in infos
        ],
    )


@artifacts.command()
@click.option("--yes", is_flag=True, help="Remove them (without it, only show what would go).")
@click.option(
    "--older-than",
    "older_than",
    default="1h",
    show_default=True,
    help="Leave younger objects alone: a writer may still be using them (e.g. 30m, 2h, 1d, 0s).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def gc(state, yes: bool, older_than: str, as_json: bool) -> None:
    """Remove leftover temporary objects and content no key points at.

    A dry run unless --yes is given.
    """
    grace = parse_duration(older_than)
    store = state.app.artifacts
    report = store.gc(dry_run=not yes, grace=grace)
    if as_json:
        echo_json(
            {
                "store": store.uri,
                "dry_run": report.dry_run,
                "temporary": list(report.temporary),
                "unreferenced": list(report.unreferenced),
                "bytes_freed": report.bytes_freed,
            }
        )
        return
    verb = "would remove" if report.dry_run else "removed"
    for name in report.temporary:
        click.echo(f"{verb} temporary   {name}")
    for name in report.unreferenced:
        click.echo(f"{verb} unreferenced {name}")
    count = len(report.temporary) + len(report.unreferenced)
    if count == 0:
        click.echo(
            f"Nothing to remove in {store.uri} (objects younger than {older_than} are left alone)."
        )
        return
    click.echo(
        f"{len(report.temporary)} temporary and {len(report.unreferenced)} unreferenced "
        f"objects, {human_size(report.bytes_freed)}: {verb}."
    )
    if report.dry_run:
        click.echo("This was a dry run: run `conveyor artifacts gc --yes` to remove them.")


commands = [artifacts]
