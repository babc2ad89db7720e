"""The monitoring result: what one computation over one window stores.

The decision (``docs/architecture.md``, "Monitoring"): drift and performance are
computed by core, polars-native, from the prediction log
(:func:`conveyor.predictions.scan_predictions`) and the training profile stored
with each model version; each computation is stored in the metadata store as a
:class:`MonitoringResult` keyed by model, version, kind and window.  The drift and
performance triggers read the newest stored result through the metadata API and
never recompute: a trigger stays a cheap, pure decision, and the evidence it
fires on is the stored result (its ``id`` makes the trigger's idempotency key).

``skew`` is drift against the training profile (training-serving skew), ``drift``
compares two windows of the log, ``performance`` compares the model's metric on
labelled (or estimated) windows with its validation metric.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from attrs import Factory, field, frozen

from conveyor.convert import to_tuple

KINDS = ("drift", "performance", "skew")


@frozen(kw_only=True)
class MonitoringResult:
    """One monitoring computation over one window of the prediction log.

    Attributes:
        id: stable id: the same model, version, kind and window give the same id,
            so recomputing a window replaces nothing and a trigger keyed on it
            fires once per result.
        model: registered model name.
        version: registered model version.
        kind: ``drift`` (a window of the log against an earlier one), ``skew``
            (a window against the training profile) or ``performance``
            (predictions against labels that arrived later, or estimated).
        window_start: first ``time`` of the log rows it covers (inclusive, UTC).
        window_end: end of the window (exclusive, UTC).
        rows: how many logged predictions it used.
        scores: metric name -> value (``psi.tenure``, ``auc``, ...).
        breached: the score names over their configured thresholds; a drift or
            performance trigger fires on a non-empty ``breached``.
        details: small JSON-able facts (thresholds, reference profile URI, ...).
        created: when it was stored.
    """

    id: str
    model: str
    version: int
    kind: str = field()
    window_start: datetime
    window_end: datetime
    rows: int = 0
    scores: dict[str, float] = Factory(dict)
    breached: tuple[str, ...] = field(default=(), converter=to_tuple)
    details: dict[str, Any] = Factory(dict)
    created: datetime

    @kind.validator
    def _check_kind(self, _attribute: Any, value: str) -> None:
        if value not in KINDS:
            raise ValueError(f"monitoring kind must be one of {', '.join(KINDS)}, got {value!r}")

    @staticmethod
    def make_id(
        model: str, version: int, kind: str, window_start: datetime, window_end: datetime
    ) -> str:
        """The id of a result: ``drift:churn:3:<start>:<end>`` (UTC, ISO 8601)."""
        return ":".join(
            [kind, model, str(version), window_start.isoformat(), window_end.isoformat()]
        )


__all__ = ["KINDS", "MonitoringResult"]
