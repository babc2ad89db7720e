"""The demo's project folder and its data: a scaffolded project plus weeks of drifting data.

The folder is an ordinary ``conveyor init`` project (conveyor.toml, pipeline.py,
features.py) with three more tables in its config: the server on a free loopback
port, polling the registry's change feed often, and a ``drift`` trigger bound to
the training pipeline.  A marker file says the folder is a demo's, so a second
``conveyor demo`` may replace it and nothing else is ever deleted.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from attrs import frozen

from conveyor.errors import ConveyorError

if TYPE_CHECKING:
    import polars as pl

MARKER = ".conveyor-demo"
PROJECT = "churn-demo"
MODEL = PROJECT  # the scaffold names the model after the project
TRIGGER = "drift"
#: The day of the span the distribution shift starts on, and the data's weeks.
SHIFT_DAY = 28
DAYS = 42
#: What the shift does: three informative numeric features move (the model has
#: never seen their new range) and a category swaps frequencies and gains an unseen one.
SHIFTED = ("f00", "f01", "f02", "region")


@frozen
class Size:
    """How much the demo does: rows generated, rows replayed per phase, boosting rounds."""

    name: str
    rows: int
    phase_rows: int
    rounds: int
    clients: int


SIZES = {
    "small": Size("small", rows=12_000, phase_rows=1_000, rounds=80, clients=4),
    "full": Size("full", rows=120_000, phase_rows=4_000, rounds=300, clients=8),
}

_EXTRA_CONFIG = f"""
# -- added by `conveyor demo` ------------------------------------------------------
[server]
model = "{MODEL}"
port = 0                              # any free port on 127.0.0.1
poll_interval = 0.2                   # seconds between reads of the change feed

# Retrain when the newest drift or skew result of the production model breached.
[triggers.{TRIGGER}]
backend = "drift"
model = "{MODEL}"
pipeline = "training"
cooldown = "1h"
"""


def prepare(directory: Path) -> Path:
    """An empty folder for the demo: refuses a non-empty one that is not a previous demo's."""
    directory = directory.expanduser()
    if directory.exists() and not directory.is_dir():
        raise ConveyorError(
            f"{directory} is a file, not a folder", hint="pass --dir a folder to create"
        )
    if directory.exists() and any(directory.iterdir()):
        if not (directory / MARKER).is_file():
            raise ConveyorError(
                f"{directory} is not empty and is not a previous demo's folder; "
                "nothing was changed",
                hint="pass --dir a new or empty folder (the demo replaces only its own)",
            )
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MARKER).write_text("made by `conveyor demo`; removed by the next one\n")
    return directory.resolve()


def write_project(directory: Path, size: Size) -> None:
    """Scaffold the project and add the demo's server and trigger tables to its config."""
    from conveyor.scaffold import scaffold

    scaffold(directory, project_name=PROJECT)
    config = directory / "conveyor.toml"
    text = config.read_text(encoding="utf-8")
    rounds = "num_boost_round = 300"
    if rounds not in text:
        raise ConveyorError(
            "the project template no longer sets num_boost_round = 300",
            hint="update conveyor.demo.project to the template",
        )
    # the team has seen week 5's shift and accepts it as the new normal: these checks
    # warn rather than block the retraining on it (a new region opens, values move)
    checks = (
        '\nchecks = { severity = { "categories.unseen" = "warning", '
        '"range.out_of_range" = "warning", "label.distribution_shift" = "warning" } }\n'
    )
    text = text.replace(rounds, f"num_boost_round = {size.rounds}")
    text = text.replace("\n[promotion]", checks + "\n[promotion]", 1) + _EXTRA_CONFIG
    tmp = config.with_name(".conveyor.toml.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(config)


def generate_weeks(size: Size, seed: int = 7) -> pl.DataFrame:
    """Six weeks of rows with the shift from :data:`SHIFT_DAY` on, and their ``day``."""
    import polars as pl

    from conveyor.ml.data import TIMESTAMP, Shift, generate

    shift = Shift(features=SHIFTED, magnitude=2.0, unseen_rate=0.3, start_day=SHIFT_DAY)
    frame = generate(size.rows, days=DAYS, seed=seed, shift=shift)
    start = frame[TIMESTAMP].min()
    return frame.with_columns(
        ((pl.col(TIMESTAMP) - pl.lit(start)).dt.total_days()).cast(pl.Int32).alias("day")
    )


def write_parquet(frame: pl.DataFrame, path: Path) -> Path:
    """Write ``frame`` to ``path`` through a temporary name (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    frame.write_parquet(tmp)
    tmp.replace(path)
    return path
