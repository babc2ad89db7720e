"""What a run hands back: :class:`RunResult` and one :class:`StepOutcome` per step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from attrs import Factory, define, frozen

from conveyor.errors import NotFoundError
from conveyor.pipeline import is_transient

#: every status a step can end with in a :class:`RunResult`
STEP_OUTCOMES = ("succeeded", "cached", "failed", "refused", "timed_out", "skipped")


@frozen(kw_only=True)
class StepOutcome:
    """What happened to one step of a run.

    Attributes:
        node: the node id.
        status: one of :data:`STEP_OUTCOMES`.  ``refused``: the step is a gate whose
            verdict did not pass (or it raised ``GateRefused``); ``timed_out``: core
            stopped waiting for it after ``timeout_s`` (see ``docs/pipelines.md``).
        duration_s: wall time, including storing outputs.
        attempts: how many times the step's work was submitted.
        outputs: output name -> its ArtifactRecord in the metadata store.
        metrics: metrics the step logged.
        error: the error, for failed/refused/timed-out steps.
        hint: how to fix it, when known.
        findings: a refused gate's (or a failed check's) findings.
    """

    node: str
    status: str
    duration_s: float = 0.0
    attempts: int = 0
    outputs: dict[str, Any] = Factory(dict)
    metrics: dict[str, float] = Factory(dict)
    error: str | None = None
    hint: str | None = None
    findings: tuple[Any, ...] = ()

    @property
    def stopped_run(self) -> bool:
        """Whether this outcome ends the run (nothing after it starts)."""
        return self.status in ("failed", "refused", "timed_out")


@define
class RunResult:
    """The outcome of a pipeline run: its id, status and each step's outcome."""

    run_id: str
    pipeline: str
    status: str
    steps: dict[str, StepOutcome]
    error: str | None = None
    hint: str | None = None
    duration_s: float = 0.0
    findings: tuple[Any, ...] = ()
    _values: dict[tuple[str, str], Any] = Factory(dict)
    _app: Any = None

    def output(self, node: str, name: str = "output") -> Any:
        """The value a step produced (read back from the artifact store if needed)."""
        if (node, name) in self._values:
            return self._values[(node, name)]
        record = self.steps[node].outputs.get(name)
        if record is None:
            raise NotFoundError(f"step {node!r} of run {self.run_id} has no output {name!r}")
        return read_output(
            self._app,
            record,
            run_id=self.run_id,
            hint=(
                "run again with use_cache=False to compute it, or give the step persist=True "
                "to store its outputs"
            ),
        )

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"


Progress = Callable[[str, str, StepOutcome | None], None]


def read_output(
    app: Any, record: Any, *, run_id: str | None = None, hint: str | None = None
) -> Any:
    """Read a recorded step output back from the artifact store, in any process.

    The materializer named in the record (and the plugin that registered it) must
    be loaded; otherwise the error names the plugin to enable or install.
    """
    if is_transient(record) and "key" not in record.metadata:
        step = record.metadata.get("step", "?")
        raise NotFoundError(
            f"output {record.uri} of step {step!r} was kept in memory (persist=False)"
            + (
                f" and run {run_id} reused it from the cache without computing it"
                if run_id
                else ", so nothing is stored to read back"
            ),
            hint=hint or "give the step persist=True to store its outputs",
        )
    materializer = app.pm.materializers().named(
        record.metadata["materializer"], plugin=record.metadata.get("materializer_plugin")
    )
    return materializer.load(app.artifacts, record.metadata["key"])


def load_run_output(app: Any, run_id: str, step: str, name: str = "output") -> Any:
    """The stored output ``name`` of step ``step`` of a finished run (by id or prefix)."""
    run = app.metadata.get_run(run_id)
    for execution in run.steps:
        if execution.name == step:
            record = execution.outputs.get(name)
            if record is None:
                break
            return read_output(app, record)
    raise NotFoundError(
        f"step {step!r} of run {run.id} has no output {name!r}",
        hint=f"conveyor runs show {run.id} lists each step's outputs",
    )
