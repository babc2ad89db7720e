"""The served model and the watcher that follows its alias through the registry.

The server reads :attr:`ModelSlot.current` once per request, so a swap is one
reference assignment: a request that started on the old version finishes on it.
A new version is swapped in only after it loaded hash-verified, passed its canary
(parsed and smoke-predicted in a child process) and predicted a sample here; until
then, and for ever if it fails, the old version keeps serving.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from attrs import field, frozen

from conveyor.errors import ConveyorError

if TYPE_CHECKING:
    from conveyor.interfaces.registry import ModelVersion
    from conveyor.models import TrainedModel
    from conveyor.models.onerow import OneRowPredictor
    from conveyor.plugins.http.entities import EntityFeatures
    from conveyor.plugins.http.metrics import ServerMetrics

log = logging.getLogger("conveyor.plugins.http")


@frozen(kw_only=True)
class Served:
    """One loaded model version and what every response about it repeats."""

    name: str
    version: int
    model: TrainedModel = field(repr=False)
    headers: tuple[tuple[bytes, bytes], ...] = field(repr=False)
    one_row: OneRowPredictor = field(repr=False)
    entities: EntityFeatures | None = field(default=None, repr=False)

    label: tuple[str, str] = field(init=False, repr=False)  # (name, version) for metrics

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "label", (self.name, str(self.version)))


def load_served(app: Any, version: ModelVersion) -> Served:
    """Load ``version`` (SHA-256 verified, canary in a child process) and smoke-predict a
    sample of its signature in this process; raises the load's ConveyorError."""
    from conveyor.models import load_registered_model, predict
    from conveyor.models.canary import sample_for
    from conveyor.models.onerow import OneRowPredictor
    from conveyor.plugins.http.entities import entity_features

    model = load_registered_model(app, version)
    predict(model, sample_for(model.signature))
    return Served(
        name=version.name,
        version=version.version,
        model=model,
        one_row=OneRowPredictor(model.booster),
        headers=(
            (b"x-conveyor-model", version.name.encode()),
            (b"x-conveyor-model-version", str(version.version).encode()),
        ),
        entities=entity_features(app, version.name, version.version),
    )


def only_model(app: Any) -> str:
    """The registry's only model (the default when ``[server]`` names none)."""
    models = [m.name for m in app.registry.list_models()]
    if len(models) != 1:
        raise ConveyorError(
            f"[server] names no model and the registry has {len(models)}",
            hint='set model = "NAME" in [server], or pass --model',
        )
    return models[0]


class ModelSlot:
    """The version answering now, and a thread that follows the alias.

    ``last_error`` keeps the latest failed swap (reported on ``/v2/health/ready``
    and by the ``conveyor_model_swaps{result="failed"}`` metric).
    """

    def __init__(
        self, app: Any, name: str, alias: str, *, poll_interval: float, metrics: ServerMetrics
    ) -> None:
        self.app, self.name, self.alias = app, name, alias
        self.poll_interval = poll_interval
        self.metrics = metrics
        self.current: Served | None = None
        self.last_error: str | None = None
        self._failed: set[int] = set()
        self._cursor = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def load_initial(self, *, required: bool = True) -> Served | None:
        """Load what the alias points at now (the server is not ready before); a
        challenger's alias (``required=False``) may point nowhere yet."""
        self._cursor = self._latest_change()
        version = self._resolve()
        if version is None and not required:
            return None
        if version is None:
            raise ConveyorError(
                f"alias {self.alias!r} of model {self.name!r} points at no version",
                hint=f"promote one: conveyor models promote "
                f"{self.name} VERSION --alias {self.alias}",
            )
        self._install(load_served(self.app, version))
        return self.current

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True, name="conveyor-http-follow")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    # -- following ------------------------------------------------------------------------

    def _resolve(self) -> ModelVersion | None:
        return self.app.registry.resolve(self.name, self.alias)

    def _latest_change(self) -> int:
        cursor = self._cursor
        while True:
            changes = self.app.registry.changes_since(cursor, model=self.name, limit=1000)
            if not changes:
                return cursor
            cursor = changes[-1].id

    def _moved(self) -> bool:
        """Whether the alias moved since the last poll (one change-feed query)."""
        changes = self.app.registry.changes_since(self._cursor, model=self.name, limit=1000)
        if changes:
            self._cursor = changes[-1].id
        return any(c.alias == self.alias for c in changes)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_interval):
            try:
                self.poll()
            except Exception as exc:  # the registry may be briefly unreachable
                log.warning("following %s@%s: %s", self.name, self.alias, exc)

    def poll(self) -> bool:
        """Swap to the alias's version if it moved and loads; True when it swapped."""
        if not self._moved():
            return False
        version = self._resolve()
        current = self.current
        if (
            version is None
            or (current is not None and version.version == current.version)
            or version.version in self._failed
        ):
            return False
        try:
            served = load_served(self.app, version)
        except ConveyorError as exc:
            self._failed.add(version.version)
            self.last_error = f"v{version.version}: {exc.message}"
            self.metrics.swaps.labels("failed").inc()
            log.error(
                "model %s v%s was not swapped in, v%s keeps serving: %s%s",
                self.name,
                version.version,
                current.version if current else "-",
                exc.message,
                f" (hint: {exc.hint})" if exc.hint else "",
            )
            from conveyor.events import ModelSwapFailed

            self.app.emit(
                "on_model_swap_failed",
                ModelSwapFailed(
                    model=self.name,
                    alias=self.alias,
                    version=version.version,
                    serving=current.version if current else None,
                    error=exc.message + (f" (hint: {exc.hint})" if exc.hint else ""),
                ),
            )
            return False
        self._install(served)
        self.metrics.swaps.labels("ok").inc()
        log.info("model %s: now serving v%s", self.name, served.version)
        return True

    def _install(self, served: Served) -> None:
        old = self.current
        self.current = served  # one reference assignment: requests hold their own
        self.last_error = None
        self.metrics.swapped(old.label if old else None, served.label)
