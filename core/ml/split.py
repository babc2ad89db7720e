"""Time-based split into train / validation / holdout, with no leakage.

Every training time stamp is strictly earlier than every validation time stamp,
which are strictly earlier than every holdout time stamp: rows are assigned by
``timestamp < validation_start`` / ``< holdout_start`` / ``>= holdout_start``, so
rows sharing a time stamp always land in the same part.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from attrs import field, frozen

from conveyor.ml.errors import DegenerateDataError

if TYPE_CHECKING:
    import polars as pl


@frozen(kw_only=True)
class TimeSplit:
    """The three parts of a time-based split and the cutoffs that made them.

    Attributes:
        train, validation, holdout: the parts, each sorted by time stamp.
        validation_start: first instant of the validation part.
        holdout_start: first instant of the holdout part.
    """

    train: pl.DataFrame = field(eq=False, repr=False)
    validation: pl.DataFrame = field(eq=False, repr=False)
    holdout: pl.DataFrame = field(eq=False, repr=False)
    validation_start: Any
    holdout_start: Any

    def summary(self) -> dict[str, Any]:
        """Row counts and cutoffs, JSON-able (cutoffs as ISO strings)."""

        def iso(v: Any) -> Any:
            return v.isoformat() if isinstance(v, datetime) else v

        return {
            "train_rows": self.train.height,
            "validation_rows": self.validation.height,
            "holdout_rows": self.holdout.height,
            "validation_start": iso(self.validation_start),
            "holdout_start": iso(self.holdout_start),
        }


def split_by_time(
    frame: pl.DataFrame,
    *,
    timestamp: str,
    validation_start: Any = None,
    holdout_start: Any = None,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
) -> TimeSplit:
    """Split ``frame`` by its ``timestamp`` column.

    Cutoffs given explicitly win; a missing cutoff is placed at the time stamp
    found at the cumulative share of ``fractions`` (train, validation, holdout)
    of the rows in time order.  Empty parts and null time stamps are errors.
    """
    import polars as pl

    if timestamp not in frame.columns:
        raise DegenerateDataError(
            f"time stamp column {timestamp!r} is not in the table",
            hint=f"columns are: {', '.join(frame.columns)}",
        )
    if len(fractions) != 3 or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise DegenerateDataError(
            f"invalid split fractions {fractions!r}",
            hint="give three non-negative shares, e.g. (0.7, 0.15, 0.15)",
        )
    ts = frame.get_column(timestamp)
    if ts.null_count():
        raise DegenerateDataError(
            f"time stamp column {timestamp!r} has {ts.null_count()} null value(s)",
            hint="drop or fix rows without a time stamp before splitting",
        )
    if frame.height == 0:
        raise DegenerateDataError(
            "cannot split an empty table (0 rows)",
            hint="check the data source: the batch has no rows",
        )
    ordered = frame.sort(timestamp, maintain_order=True)
    times = ordered.get_column(timestamp)
    total = sum(fractions)
    n = ordered.height
    if validation_start is None:
        validation_start = times[min(int(n * fractions[0] / total), n - 1)]
    if holdout_start is None:
        holdout_start = times[min(int(n * (fractions[0] + fractions[1]) / total), n - 1)]
    if holdout_start < validation_start:
        raise DegenerateDataError(
            f"holdout starts ({holdout_start}) before validation ({validation_start})",
            hint="holdout_start must not be earlier than validation_start",
        )
    col = pl.col(timestamp)
    train = ordered.filter(col < validation_start)
    validation = ordered.filter((col >= validation_start) & (col < holdout_start))
    holdout = ordered.filter(col >= holdout_start)
    for name, part in (("train", train), ("validation", validation), ("holdout", holdout)):
        if part.height == 0:
            raise DegenerateDataError(
                f"the {name} part of the time split is empty (validation starts "
                f"{validation_start}, holdout starts {holdout_start}; data spans "
                f"{times[0]} .. {times[-1]})",
                hint="move the cutoffs inside the data's time span or supply more data",
            )
    return TimeSplit(
        train=train,
        validation=validation,
        holdout=holdout,
        validation_start=validation_start,
        holdout_start=holdout_start,
    )
