"""Findings: what data and model checks report, and whether it blocks."""

from __future__ import annotations

import enum
from typing import Any

from attrs import Factory, frozen


class Severity(enum.StrEnum):
    """How much a finding matters: ``error`` blocks the run or promotion."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@frozen(kw_only=True)
class Finding:
    """One result of a check.

    Attributes:
        check: name of the check that produced it, e.g. ``schema.missing_column``.
        message: what was found, in words a person can act on.
        severity: ``error`` findings block; ``warning``/``info`` are reported.
        subject: the column, feature, slice or metric concerned, if any.
        details: small JSON-able facts (observed and expected values).
    """

    check: str
    message: str
    severity: Severity = Severity.ERROR
    subject: str | None = None
    details: dict[str, Any] = Factory(dict)

    @property
    def blocking(self) -> bool:
        return self.severity is Severity.ERROR


@frozen(kw_only=True)
class DataCheckContext:
    """What a ``check_data`` hook sees.

    Attributes:
        dataset: logical name of the batch (e.g. ``training``, ``serving``).
        table: the batch, a ``polars.DataFrame``.
        reference: the profile it is compared with (``None`` for a first batch).
        run_id: the run that checks it, if any.
    """

    dataset: str
    table: Any
    reference: Any = None
    run_id: str | None = None


@frozen(kw_only=True)
class ModelCheckContext:
    """What a ``check_model`` hook sees.

    Attributes:
        model: registered model name.
        candidate: the candidate model (a ``lightgbm.Booster``).
        metrics: the candidate's evaluation metrics on the holdout (``None`` where a metric
            is undefined on it, e.g. AUC with one class).
        incumbent: the model currently in production, or ``None``.
        incumbent_metrics: its metrics on the same holdout, or ``None``.
        holdout: the holdout table, a ``polars.DataFrame``.
        run_id: the run that proposes the candidate.
    """

    model: str
    candidate: Any
    metrics: dict[str, float | None] = Factory(dict)
    incumbent: Any = None
    incumbent_metrics: dict[str, float | None] | None = None
    holdout: Any = None
    run_id: str | None = None
