"""``conveyor init``."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", help="Project name (default: the folder's name).")
@click.option("--force", is_flag=True, help="Overwrite files the template would write.")
@click.option(
    "--rows",
    default=20_000,
    show_default=True,
    help="Rows of synthetic example data to write into data/ (0: none).",
)
@click.option("--seed", default=0, show_default=True, help="Seed of the example data.")
def init(directory: Path, name: str | None, force: bool, rows: int, seed: int) -> None:
    """Create a runnable Conveyor project in DIRECTORY (default: here).

    It holds conveyor.toml, a training pipeline (pipeline.py) and four weeks of
    synthetic example data, so `conveyor run` trains, gates and promotes a model.
    """
    from conveyor.scaffold import scaffold, write_example_data

    written = scaffold(directory, project_name=name, force=force)
    if rows:
        written.append(write_example_data(directory / "data", rows=rows, seed=seed, force=force))
    for path in written:
        click.echo(f"created {path}")
    click.echo(f"\nNext: cd {directory} && conveyor run")


commands = [init]
