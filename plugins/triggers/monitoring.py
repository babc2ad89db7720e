"""The ``drift`` and ``performance`` triggers: fire on a stored monitoring result.

They read the newest :class:`~conveyor.monitoring.MonitoringResult` of the model
version in production through the metadata store and never recompute: core's
monitoring (``conveyor monitor``, or a scheduled pipeline) stores the results.
A result's id is the key, so one result fires at most once, however often a
watcher evaluates it; a flapping signal is held to one firing per ``cooldown`` by
the binding.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from attrs import Factory, field, frozen

from conveyor.interfaces.triggers import Trigger, TriggerDecision

#: How many of the newest results per kind are read to find the newest usable one.
_SCAN = 20


def _not_negative(_instance: Any, attribute: Any, value: Any) -> None:
    if value is not None and value < type(value)(0):
        raise ValueError(f"{attribute.name} cannot be negative")


@frozen(kw_only=True)
class MonitoringTriggerConfig:
    """The keys of a ``drift`` or ``performance`` trigger.

    Attributes:
        model: the registered model watched.
        alias: whose results are read: the version this alias points at.
        version: read this version instead of resolving ``alias``.
        thresholds: score name -> threshold; when given they decide instead of the
            result's own ``breached`` (drift: a score above its threshold breaches;
            performance: a score below it, a metric floor).
        min_rows: ignore results computed over fewer logged predictions.
        max_age: ignore results whose window ended longer ago than this (0: any).
    """

    model: str
    alias: str = "production"
    version: int | None = field(default=None, validator=_not_negative)
    thresholds: dict[str, float] = Factory(dict)
    min_rows: int = field(default=0, validator=_not_negative)
    max_age: timedelta = field(default=timedelta(0), validator=_not_negative)


class MonitoringTrigger(Trigger):
    """Fires on the newest stored result of :attr:`kinds` that breaches."""

    kinds: tuple[str, ...] = ()
    #: whether a score breaches a threshold by exceeding it (drift) or falling below
    above: bool = True

    def __init__(self, *, app: Any, config: MonitoringTriggerConfig) -> None:
        self.app, self.config = app, config

    def _version(self) -> int | None:
        if self.config.version is not None:
            return self.config.version
        found = self.app.registry.resolve(self.config.model, self.config.alias)
        return None if found is None else found.version

    def breaches(self, result: Any) -> list[str]:
        """The score names of ``result`` that breach (config thresholds, else its own)."""
        if not self.config.thresholds:
            return list(result.breached)
        return sorted(
            name
            for name, limit in self.config.thresholds.items()
            if name in result.scores
            and (result.scores[name] > limit if self.above else result.scores[name] < limit)
        )

    def evaluate(self, now: datetime, last_event: Any) -> TriggerDecision:
        cfg = self.config
        version = self._version()
        if version is None:
            return TriggerDecision(
                fire=False,
                reason=f"no version of {cfg.model!r} has "
                f"alias {cfg.alias!r}: nothing in production to watch",
            )
        # the newest usable result decides: one computed over too few rows does not
        results = [
            r
            for kind in self.kinds
            for r in self.app.metadata.list_monitoring_results(
                model=cfg.model, version=version, kind=kind, limit=_SCAN
            )
            if r.rows >= cfg.min_rows and r.created <= now
        ]
        results = [r for r in results if not cfg.max_age or now - r.window_end <= cfg.max_age]
        what = f"{cfg.model} v{version} ({'/'.join(self.kinds)})"
        if not results:
            return TriggerDecision(fire=False, reason=f"{what}: no recent monitoring result")
        newest = max(results, key=lambda r: (r.window_end, r.created))
        breached = self.breaches(newest)
        evidence = {
            "result": newest.id,
            "model": cfg.model,
            "version": version,
            "kind": newest.kind,
            "window_end": newest.window_end.isoformat(),
            "rows": newest.rows,
            "breached": breached,
            "scores": {k: newest.scores[k] for k in breached},
        }
        if not breached:
            return TriggerDecision(
                fire=False, details=evidence, reason=f"{what}: result {newest.id} within thresholds"
            )
        if last_event is not None and last_event.key == newest.id:
            return TriggerDecision(
                fire=False, details=evidence, reason=f"{what}: result {newest.id} already fired"
            )
        scores = ", ".join(f"{k}={newest.scores.get(k, float('nan')):.4g}" for k in breached)
        return TriggerDecision(
            fire=True,
            key=newest.id,
            details=evidence,
            reason=f"{what}: {newest.kind} breached ({scores}) in the "
            f"window ending {newest.window_end.isoformat()}",
        )


class DriftTrigger(MonitoringTrigger):
    """Fires when the newest drift or skew result breaches its thresholds."""

    kinds = ("drift", "skew")
    above = True


class PerformanceTrigger(MonitoringTrigger):
    """Fires when the newest performance result falls below its floors."""

    kinds = ("performance",)
    above = False
