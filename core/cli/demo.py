"""``conveyor demo``."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option(
    "--dir",
    "directory",
    default="conveyor-demo",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to create the demo project in (a previous demo's folder is replaced).",
)
@click.option(
    "--size",
    type=click.Choice(["small", "full"]),
    default="full",
    show_default=True,
    help="small: well under a minute; full: more data and traffic, under 3 minutes.",
)
def demo(directory: Path, size: str) -> None:
    """Run the whole loop on synthetic data: train, serve, drift, retrain, hot-swap.

    Six weeks of data with a distribution shift from week 5: the first model is
    trained, gated, registered, promoted and served over HTTP; live traffic is
    replayed; monitoring detects the drift, the drift trigger retrains, and the new
    model is promoted and hot-swapped under load.  The project folder stays.
    """
    from conveyor.demo import SIZES, run_demo

    summary = run_demo(directory, SIZES[size], click.echo)
    model = summary["model"]
    drift_report, performance_report = summary["reports"]
    click.echo(f"\nDone in {summary['seconds']:.0f}s. Explore what happened:")
    click.echo(f"  cd {directory}")
    click.echo(f"  conveyor models history {model}")
    click.echo(f"  conveyor lineage {model}:{summary['production']}      # why it was trained")
    click.echo("  conveyor triggers history")
    click.echo(f"  conveyor runs show {summary['retrain_run']}")
    click.echo(f"  open {drift_report}")
    click.echo(f"  open {performance_report}")
    click.echo("Next, your own project: conveyor init my-project && cd my-project && conveyor run")


commands = [demo]
