"""The trigger binding: what core applies around every trigger's decision.

A ``[triggers.<name>]`` section binds one trigger to one pipeline::

    [triggers.nightly]
    backend = "cron"             # which trigger kind
    pipeline = "training"        # a name in [pipelines] (default: as `conveyor run`)
    cooldown = "6h"              # no second firing within 6 hours of the last one
    single_flight = true         # never while a run of that pipeline is running
    enabled = true
    schedule = "0 2 * * *"       # the cron backend's own key

The binding keys are :class:`TriggerBinding`'s fields; the rest of the section is
the backend's config class.  :func:`evaluate` asks the trigger, applies the
binding and records the outcome, identically for every trigger kind.

What is recorded (``app.metadata.record_trigger_event``): a firing, under the
decision's key, and a firing the binding refused (cooldown, single flight),
under ``<key>#<status>`` so a refusal repeated every tick is stored once.  A plain
"not due" is not stored: a watcher evaluating every minute would otherwise write
half a million rows a year per trigger.  Each stored event's ``details`` has a
``"conveyor"`` entry: ``now`` (the time the decision was taken at, which the
cooldown counts from), ``pipeline``, ``backend`` and, for a refusal,
``last_fired`` (the id of the newest firing then, so it is found in one lookup).

With a ``holder`` (``conveyor watch``, ``conveyor trigger fire``), single flight
is a lease in the metadata store: :func:`evaluate` takes ``pipeline:<name>`` before
recording a firing and hands it to the caller with the outcome; the caller runs
and releases it.  A lease whose holder died lapses after its ttl, and the run it
covered is then recorded ``interrupted`` (:func:`recover`).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from attrs import field, frozen

from conveyor.errors import ConfigError, ConveyorError, NotFoundError
from conveyor.interfaces.triggers import TriggerDecision

if TYPE_CHECKING:
    from conveyor.interfaces.metadata import Lease, MetadataStore, TriggerEvent
    from conveyor.interfaces.triggers import Trigger

log = logging.getLogger("conveyor.triggers")

#: Every status an outcome can have; only ``fired`` starts a run.
STATUSES = ("fired", "not_due", "disabled", "cooldown", "running", "duplicate")
#: How many recent events are searched for the last firing when the newest event
#: does not point at it (events recorded by something other than this module).
_SEARCH_WINDOW = 200
#: How many of the newest events are read for a firing before trusting a pointer.
_RECENT = 20
#: How long a lease lasts unless renewed (the watcher renews it every third of that).
DEFAULT_LEASE_TTL = timedelta(minutes=2)


def _no_negative(_instance: Any, _attribute: Any, value: timedelta) -> None:
    if value < timedelta(0):
        raise ValueError("cooldown cannot be negative")


@frozen(kw_only=True)
class TriggerBinding:
    """The core-owned keys of ``[triggers.<name>]``.

    Attributes:
        pipeline: the ``[pipelines]`` name (or ``module:function``) the trigger
            runs; ``None`` picks it as ``conveyor run`` does.
        cooldown: minimum time between two firings (seconds or ``"30m"``, ``"6h"``).
        single_flight: refuse to fire while a run of the pipeline is running.
        enabled: ``false`` skips the trigger without asking it.
    """

    pipeline: str | None = None
    cooldown: timedelta = field(default=timedelta(0), validator=_no_negative)
    single_flight: bool = True
    enabled: bool = True


@frozen(kw_only=True)
class TriggerOutcome:
    """What evaluating one binding came to.

    Attributes:
        trigger: the binding's name (``nightly`` for ``[triggers.nightly]``).
        status: one of :data:`STATUSES`.
        reason: why, in words (the decision's reason, or the binding's refusal).
        pipeline: the ``[pipelines]`` name the binding runs.
        decision: the trigger's decision (``None`` when disabled).
        event: the stored event (``None`` when nothing was stored); a run started
            for a ``fired`` outcome passes ``trigger_event=event.id``.
        lease: the pipeline's lease taken for a ``fired`` outcome evaluated with a
            holder; the caller releases it when the run ends.
    """

    trigger: str
    status: str
    reason: str
    pipeline: str | None = None
    decision: TriggerDecision | None = None
    event: TriggerEvent | None = None
    lease: Lease | None = None

    @property
    def fired(self) -> bool:
        """Whether a run should start now."""
        return self.status == "fired"


def trigger_names(app: Any) -> list[str]:
    """The configured ``[triggers.<name>]`` sections, sorted."""
    return sorted(app.config.data.get("triggers", {}))


def binding(app: Any, name: str) -> TriggerBinding:
    """The binding keys of ``[triggers.<name>]``, structured (ConfigError if invalid)."""
    from conveyor.config import core_keys, structure

    if name not in app.config.data.get("triggers", {}):
        raise ConfigError(
            f"no trigger named {name!r} in {app.config.where}",
            hint=f"configured: {', '.join(trigger_names(app)) or 'none'}; "
            f'add [triggers.{name}] with backend = "..."',
        )
    section = f"triggers.{name}"
    keys = core_keys("trigger")
    table = {k: v for k, v in app.config.section(section).items() if k in keys}
    return structure(TriggerBinding, table, section=section, where=app.config.where)


def decided_at(event: TriggerEvent) -> datetime:
    """The ``now`` an event's decision was taken at (its ``created`` if not recorded)."""
    meta = event.details.get("conveyor")
    stamp = meta.get("now") if isinstance(meta, dict) else None
    return datetime.fromisoformat(stamp) if isinstance(stamp, str) else event.created


def last_fired(metadata: MetadataStore, name: str) -> TriggerEvent | None:
    """The newest event of trigger ``name`` that fired, or ``None``.

    The newest few events are read first: a refusal records the firing its process
    saw, which another process may have overtaken meanwhile, so a firing among them
    wins over that pointer.  Older firings are found through the newest refusal's
    pointer, else in a wider window.
    """
    recent = metadata.list_trigger_events(trigger=name, limit=_RECENT)
    for event in recent:
        if event.fired:
            return event
    if not recent:
        return None
    meta = recent[0].details.get("conveyor")
    if isinstance(meta, dict) and "last_fired" in meta:
        if meta["last_fired"] is None:
            return None
        try:
            return metadata.get_trigger_event(meta["last_fired"])
        except NotFoundError:
            pass
    for event in metadata.list_trigger_events(trigger=name, limit=_SEARCH_WINDOW):
        if event.fired:
            return event
    return None


def lease_name(pipeline: str) -> str:
    """The lease a run of ``pipeline`` is covered by."""
    return f"pipeline:{pipeline}"


def evaluate(
    app: Any,
    name: str,
    now: datetime,
    *,
    holder: str | None = None,
    lease_ttl: timedelta = DEFAULT_LEASE_TTL,
    trigger: Trigger | None = None,
) -> TriggerOutcome:
    """Evaluate the binding ``[triggers.<name>]`` at ``now`` and record what it decided.

    Disabled bindings are skipped without asking the trigger.  A firing decision
    is refused inside the cooldown and, with ``single_flight``, while a run of the
    pipeline is running or (with a ``holder``) another holder has its lease; a key
    already stored is a ``duplicate`` (that tick fired already, here or in another
    process).  A firing is recorded and announced through ``on_trigger_fired``;
    the caller starts the run (and releases ``outcome.lease``).  ``trigger``
    replaces the configured one (a manual request).
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ConveyorError(
            f"trigger {name!r} evaluated at a naive time {now.isoformat()}",
            hint="pass a timezone-aware datetime, e.g. datetime.now(UTC)",
        )
    config = binding(app, name)
    pipeline = _pipeline_name(app, config)
    if not config.enabled:
        return TriggerOutcome(
            trigger=name,
            status="disabled",
            pipeline=pipeline,
            reason=f"[triggers.{name}] has enabled = false",
        )
    trigger = trigger if trigger is not None else app.trigger(name)
    last = last_fired(app.metadata, name)
    decision = trigger.evaluate(now, last)
    backend = app.config.section(f"triggers.{name}").get("backend")
    _check_decision(name, backend, decision)
    if not decision.fire:
        log.debug("trigger %s not due: %s", name, decision.reason)
        return TriggerOutcome(
            trigger=name,
            status="not_due",
            reason=decision.reason,
            pipeline=pipeline,
            decision=decision,
        )
    meta = {
        "now": now.isoformat(),
        "pipeline": pipeline,
        "backend": backend,
        "profile": app.config.profile,
    }

    refusal = _refusal(app, config, pipeline, last, now)
    lease = None
    if refusal is None and config.single_flight and holder is not None:
        lease = app.metadata.acquire_lease(lease_name(pipeline), holder, now=now, ttl=lease_ttl)
        if lease is None:
            held = app.metadata.get_lease(lease_name(pipeline))
            refusal = (
                "running",
                (
                    f"single flight: {held.holder if held else 'another holder'}"
                    f" holds the lease of pipeline {pipeline!r}"
                ),
            )
    if refusal is not None:
        status, why = refusal
        event = app.metadata.record_trigger_event(
            name,
            f"refused ({why}): {decision.reason}",
            fired=False,
            details={
                **decision.details,
                "conveyor": {**meta, "last_fired": last.id if last else None},
            },
            key=None if decision.key is None else f"{decision.key}#{status}",
        )
        return TriggerOutcome(
            trigger=name,
            status=status,
            reason=why,
            pipeline=pipeline,
            decision=decision,
            event=event,
        )

    event = app.metadata.record_trigger_event(
        name,
        decision.reason,
        details={**decision.details, "conveyor": meta},
        key=decision.key,
        fired=True,
    )
    if not event.is_new:
        if lease is not None:
            app.metadata.release_lease(lease.name, lease.holder)
        return TriggerOutcome(
            trigger=name,
            status="duplicate",
            pipeline=pipeline,
            decision=decision,
            event=event,
            reason=f"key {decision.key!r} already fired (event {event.id})",
        )
    from conveyor.events import TriggerFired

    if lease is not None:  # the lease now names the event whose run it covers
        lease = (
            app.metadata.acquire_lease(lease.name, holder, now=now, ttl=lease_ttl, key=event.id)
            or lease
        )
    app.emit(
        "on_trigger_fired",
        TriggerFired(trigger=name, reason=event.reason, event_id=event.id, details=event.details),
    )
    return TriggerOutcome(
        trigger=name,
        status="fired",
        reason=decision.reason,
        pipeline=pipeline,
        decision=decision,
        event=event,
        lease=lease,
    )


def recover(app: Any, pipeline: str, now: datetime) -> list[str]:
    """Record ``interrupted`` the run a lapsed lease of ``pipeline`` covered; their ids.

    A holder renews its lease while its run goes on; one that stopped renewing
    (killed, machine lost) left the run ``running`` with nobody executing it.
    """
    lease = app.metadata.get_lease(lease_name(pipeline))
    if lease is None or lease.key is None or not lease.expired(now):
        return []
    why = (
        f"interrupted: {lease.holder} stopped renewing the lease of pipeline "
        f"{pipeline!r} (expired {lease.expires.isoformat()})"
    )
    interrupted = []
    for run in app.metadata.search_runs(trigger_event=lease.key, status="running", limit=10):
        app.metadata.finish_run(run.id, "interrupted", error=why)
        log.warning("run %s of %s recorded interrupted: %s", run.id, pipeline, why)
        interrupted.append(run.id)
    return interrupted


def _check_decision(name: str, backend: Any, decision: Any) -> None:
    who = f"trigger {name!r} (backend {backend!r})"
    if not isinstance(decision, TriggerDecision):
        raise ConveyorError(
            f"{who} returned {type(decision).__name__}, not a TriggerDecision",
            hint="fix or disable the plugin that provides this trigger",
        )
    if decision.fire and not decision.key:
        raise ConveyorError(
            f"{who} decided to fire without an idempotency key",
            hint="a firing TriggerDecision needs a key (the tick or evidence "
            "it fires for), so one tick starts one run",
        )


def _refusal(
    app: Any, config: TriggerBinding, pipeline: str, last: TriggerEvent | None, now: datetime
) -> tuple[str, str] | None:
    if last is not None and config.cooldown and now - decided_at(last) < config.cooldown:
        return "cooldown", (
            f"cooldown: last fired at {decided_at(last).isoformat()}, cooldown is {config.cooldown}"
        )
    if config.single_flight:
        recover(app, pipeline, now)
        for run_pipeline in _recorded_names(app, config, pipeline):
            running = app.metadata.search_runs(pipeline=run_pipeline, status="running", limit=1)
            if running:
                return "running", (
                    f"single flight: run {running[0].id} of pipeline "
                    f"{run_pipeline!r} is still running"
                )
    return None


def _pipeline_name(app: Any, config: TriggerBinding) -> str:
    from conveyor.runs.resolve import resolve_pipeline

    return resolve_pipeline(app.config, config.pipeline)[0]


def _recorded_names(app: Any, config: TriggerBinding, pipeline: str) -> list[str]:
    """The names runs of the bound pipeline are recorded under (the @pipeline's name)."""
    from conveyor.pipeline import load_pipeline
    from conveyor.runs.resolve import resolve_pipeline

    _, target, _ = resolve_pipeline(app.config, config.pipeline)
    return list(dict.fromkeys([load_pipeline(target).name, pipeline]))


__all__ = [
    "DEFAULT_LEASE_TTL",
    "STATUSES",
    "TriggerBinding",
    "TriggerOutcome",
    "binding",
    "decided_at",
    "evaluate",
    "last_fired",
    "lease_name",
    "recover",
    "trigger_names",
]
