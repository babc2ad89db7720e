"""``conveyor init``."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", help="Project name (default: the folder's name).")
@click.option("--force", is_flag=True, help="Overwrite files the template would write.")
def init(directory: Path, name: str | None, force: bool) -> None:
    """Create a runnable Conveyor project in DIRECTORY (default: here)."""
    from conveyor.scaffold import scaffold

    written = scaffold(directory, project_name=name, force=force)
    for path in written:
        click.echo(f"created {path}")
    click.echo(f"\nNext: cd {directory} && conveyor config check")


commands = [init]
