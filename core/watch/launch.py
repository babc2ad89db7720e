"""Starting the run a firing asked for, under its pipeline's lease.

The lease is renewed by a heartbeat thread while the run goes on and released
when it ends.  A run is started with ``trigger_event=event.id``, which the metadata
store lets start once (the run key); a firing whose run never started (the
watcher died in between) is started by the next watcher, once (:func:`pending`).
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from typing import Any

from attrs import frozen

from conveyor.errors import AlreadyExistsError, ConveyorError
from conveyor.triggers import TriggerOutcome, last_fired, lease_name
from conveyor.watch.clock import Clock

log = logging.getLogger("conveyor.watch")


@frozen(kw_only=True)
class Launch:
    """What came of starting a firing's run.

    Attributes:
        trigger: the trigger's name.
        event_id: the trigger event the run is for.
        status: the run's status, ``duplicate`` (another process started it),
            ``refused`` (the code on disk is not the environment's deployed version)
            or ``error`` (it could not start: the reason says why).
        run_id: the run, when one was recorded.
        reason: in words.
    """

    trigger: str
    event_id: str
    status: str
    run_id: str | None = None
    reason: str = ""


class _Heartbeat(threading.Thread):
    """Renews a lease every third of its ttl until stopped."""

    def __init__(self, app: Any, name: str, holder: str, clock: Clock, ttl: timedelta) -> None:
        super().__init__(name=f"lease-{name}", daemon=True)
        self.app, self.lease, self.holder, self.clock, self.ttl = app, name, holder, clock, ttl
        self.done = threading.Event()

    def run(self) -> None:
        while not self.clock.wait(self.ttl.total_seconds() / 3, self.done):
            try:
                if (
                    self.app.metadata.renew_lease(
                        self.lease, self.holder, now=self.clock.now(), ttl=self.ttl
                    )
                    is None
                ):
                    log.warning(
                        "lease %s was taken over: another watcher may start the "
                        "pipeline while this run goes on",
                        self.lease,
                    )
            except Exception:  # a busy store must not kill the run; the next beat retries
                log.exception("renewing lease %s failed", self.lease)


def launch(
    app: Any, outcome: TriggerOutcome, *, holder: str, clock: Clock, lease_ttl: timedelta
) -> Launch:
    """Run the pipeline ``outcome`` fired for, renewing and then releasing its lease.

    An interruption (SIGINT, a second SIGTERM) records the run ``interrupted`` and
    propagates; any other failure to start is logged and returned as ``error``.
    """
    from conveyor.deploy import DeploymentRefused, require_deployed
    from conveyor.pipeline import load_pipeline
    from conveyor.runs import run_pipeline
    from conveyor.runs.resolve import resolve_pipeline

    event = outcome.event
    if not outcome.fired or event is None or outcome.pipeline is None:
        raise ConveyorError(
            f"trigger {outcome.trigger!r} did not fire ({outcome.status})",
            hint="launch only outcomes whose status is 'fired'",
        )
    lease = outcome.lease
    beat = None
    if lease is not None:
        beat = _Heartbeat(app, lease.name, holder, clock, lease_ttl)
        beat.start()
    try:
        name, target, parameters = resolve_pipeline(app.config, outcome.pipeline)
        graph = load_pipeline(target).build(**parameters)
        require_deployed(app, name, graph.fingerprint)
        result = run_pipeline(app, graph, trigger_event=event.id)
        return Launch(
            trigger=outcome.trigger,
            event_id=event.id,
            status=result.status,
            run_id=result.run_id,
            reason=result.error or outcome.reason,
        )
    except AlreadyExistsError:
        return Launch(
            trigger=outcome.trigger,
            event_id=event.id,
            status="duplicate",
            reason=f"event {event.id} already has its run",
        )
    except DeploymentRefused as exc:
        log.error("trigger %s: %s (%s)", outcome.trigger, exc.message, exc.hint)
        return Launch(
            trigger=outcome.trigger, event_id=event.id, status="refused", reason=exc.message
        )
    except Exception as exc:
        log.exception(
            "trigger %s: the run of %s could not start", outcome.trigger, outcome.pipeline
        )
        return Launch(
            trigger=outcome.trigger,
            event_id=event.id,
            status="error",
            reason=f"{type(exc).__name__}: {exc}",
        )
    except BaseException as exc:
        for run in app.metadata.search_runs(trigger_event=event.id, limit=1):
            app.metadata.finish_run(
                run.id, "interrupted", error=f"interrupted: {type(exc).__name__}"
            )
        raise
    finally:
        if beat is not None and lease is not None:
            beat.done.set()
            beat.join()
            app.metadata.release_lease(lease.name, holder)


def pending(
    app: Any, name: str, pipeline: str, now: datetime, *, holder: str, lease_ttl: timedelta
) -> TriggerOutcome | None:
    """The newest firing of ``name`` whose run never started, leased to ``holder``.

    ``None`` when it has its run, or another holder has the pipeline's lease (it
    may be starting that run right now).
    """
    last = last_fired(app.metadata, name)
    if last is None or app.metadata.search_runs(trigger_event=last.id, limit=1):
        return None
    meta = last.details.get("conveyor")
    if not isinstance(meta, dict) or meta.get("pipeline") != pipeline:
        return None  # recorded by something other than a binding of this pipeline
    lease = app.metadata.acquire_lease(
        lease_name(pipeline), holder, now=now, ttl=lease_ttl, key=last.id
    )
    if lease is None:
        return None
    if app.metadata.search_runs(trigger_event=last.id, limit=1):  # started meanwhile
        app.metadata.release_lease(lease.name, holder)
        return None
    return TriggerOutcome(
        trigger=name,
        status="fired",
        pipeline=pipeline,
        event=last,
        lease=lease,
        reason=f"its run never started: {last.reason}",
    )
