"""Running a pipeline: what runs, when, with which inputs, cached or not, how often.

Core owns every run semantic; the configured orchestrator only executes the
:class:`~conveyor.runs.work.StepWork` it is handed (``submit(work) -> Future``).
Per step, core: computes the cache key, reuses an earlier execution whose outputs
are still stored unchanged, otherwise submits work (at most ``max_parallel`` at
once), retries unexpected errors with backoff, stops waiting after ``timeout_s``,
turns a gate's failing verdict into the outcome ``refused``, records everything
in the metadata store and fires the lifecycle hooks.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, wait
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from conveyor.errors import ConveyorError
from conveyor.events import RunFinished, RunStarted, StepFinished
from conveyor.pipeline import Graph, Node, Pipeline, cache_key
from conveyor.runs.inputs import StepInputs
from conveyor.runs.outcome import Progress, RunResult, StepOutcome
from conveyor.runs.reuse import record_outputs, reusable
from conveyor.runs.work import (
    StepFailure,
    StepResult,
    StepWork,
    finding_of,
)
from conveyor.sqlite import deferred_sync

log = logging.getLogger("conveyor.runs")

REFUSED_HINT = "nothing after the gate ran; fix the data or the model and run again"


def run_pipeline(
    app: Any,
    pipeline: Pipeline | Graph,
    *,
    parameters: Mapping[str, Any] | None = None,
    trigger_event: str | None = None,
    resume_from: str | None = None,
    use_cache: bool = True,
    progress: Progress | None = None,
) -> RunResult:
    """Run ``pipeline`` to the end on the configured orchestrator and return the result.

    Args:
        app: the project's app (stores, registry, the orchestrator that executes).
        pipeline: a ``@pipeline`` (built with ``parameters``) or a built graph.
        trigger_event: id of the trigger event that started the run, recorded with it.
        resume_from: a run of the same pipeline whose succeeded steps are reused when
            their cache keys still match.
        use_cache: reuse earlier executions' outputs (``False``: run every step).
        progress: ``progress(node, status, outcome)`` on every start and finish.
    """
    graph = pipeline if isinstance(pipeline, Graph) else pipeline.build(**(parameters or {}))
    return _Run(
        app,
        graph,
        trigger_event=trigger_event,
        resume_from=resume_from,
        use_cache=use_cache,
        progress=progress,
    ).execute()


_GIT: dict[Path, str | None] = {}


def _git_commit(root: Path) -> str | None:
    if root not in _GIT:
        try:
            done = subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
            )
            _GIT[root] = (done.stdout.strip() or None) if done.returncode == 0 else None
        except (OSError, subprocess.SubprocessError):
            _GIT[root] = None
    return _GIT[root]


class _Attempt:
    """A submitted attempt: its node, work, future and the time core stops waiting."""

    def __init__(self, node: Node, work: StepWork, future: Future[StepResult]) -> None:
        self.node, self.work, self.future = node, work, future
        timeout = node.step.options.timeout_s
        self.deadline = None if timeout is None else time.monotonic() + timeout


class _Run(StepInputs):
    """One execution of a graph."""

    def __init__(
        self,
        app: Any,
        graph: Graph,
        *,
        trigger_event: str | None,
        resume_from: str | None,
        use_cache: bool,
        progress: Progress | None,
    ) -> None:
        self.app = app
        self.executor = app.orchestrator
        self.in_process = bool(getattr(self.executor, "in_process", True))
        self.max_parallel = max(1, int(getattr(self.executor, "max_parallel", 1)))
        self.catalogue = app.pm.materializers()
        self.graph = graph
        self.trigger_event = trigger_event
        self.use_cache = use_cache
        self.progress = progress or (lambda node, status, outcome: None)
        self.metadata = app.metadata
        self.values: dict[tuple[str, str], Any] = {}
        self.outcomes: dict[str, StepOutcome] = {}
        self.findings: tuple[Any, ...] = ()
        self.lock = threading.Lock()
        self.recompute_lock = threading.RLock()
        self.resumable: dict[str, Any] = {}
        # per node: (step execution id, cache key, input records, time started)
        self.started: dict[str, tuple[str, str, dict[str, Any], float]] = {}
        if resume_from is not None:
            previous = self.metadata.get_run(resume_from)
            if previous.pipeline != graph.pipeline:
                raise ConveyorError(
                    f"run {resume_from} is a run of {previous.pipeline!r}, not {graph.pipeline!r}",
                    hint="resume a run of the same pipeline",
                )
            self.resumable = {
                s.name: s for s in previous.steps if s.status in ("succeeded", "cached")
            }

    # -- scheduling ----------------------------------------------------------------------

    def execute(self) -> RunResult:
        started = time.perf_counter()
        # a run's row is a marker until a step finishes, except when it is the run key of
        # a trigger event (a lost row would let that event start a second run)
        with deferred_sync() if self.trigger_event is None else nullcontext():
            self.run_id = self.metadata.start_run(
                self.graph.pipeline,
                parameters=self.graph.parameters,
                trigger_event=self.trigger_event,
                code_fingerprint=self.graph.fingerprint,
                git_commit=_git_commit(self.app.root),
            )
        self.app.emit(
            "on_run_started",
            RunStarted(
                run_id=self.run_id,
                pipeline=self.graph.pipeline,
                trigger=self.trigger_event,
                parameters=self.graph.parameters,
            ),
        )
        try:
            stopped = self._schedule()
        except BaseException as exc:
            self.metadata.finish_run(self.run_id, "failed", error=f"interrupted: {exc!r}")
            raise
        for node in self.graph.nodes:
            if node.id not in self.outcomes:
                self.outcomes[node.id] = StepOutcome(node=node.id, status="skipped")
        status = (
            "succeeded"
            if stopped is None
            else ("refused" if stopped.status == "refused" else "failed")
        )
        error = None if stopped is None else f"step {stopped.node!r}: {stopped.error}"
        self.metadata.finish_run(self.run_id, status, error=error)
        self.app.emit(
            "on_run_finished",
            RunFinished(
                run_id=self.run_id, pipeline=self.graph.pipeline, status=status, error=error
            ),
        )
        return RunResult(
            run_id=self.run_id,
            pipeline=self.graph.pipeline,
            status=status,
            steps=self.outcomes,
            error=error,
            hint=None if stopped is None else stopped.hint,
            duration_s=time.perf_counter() - started,
            findings=self.findings,
            values=self.values,
            app=self.app,
        )

    def _schedule(self) -> StepOutcome | None:
        """Start every step whose inputs exist, up to ``max_parallel`` at once."""
        pending = list(self.graph.nodes)
        running: list[_Attempt] = []
        retries: list[tuple[float, Node, int]] = []  # (when, node, attempt)
        stopped: StepOutcome | None = None
        while stopped is None and (pending or running or retries):
            now = time.monotonic()
            for entry in [r for r in retries if r[0] <= now]:
                if len(running) >= self.max_parallel:
                    break
                retries.remove(entry)
                running.append(self._submit(entry[1], entry[2]))
            done = {n for n, o in self.outcomes.items() if o.status in ("succeeded", "cached")}
            for node in list(pending):
                if stopped is not None or len(running) >= self.max_parallel:
                    break
                if not node.upstream <= done:
                    continue
                pending.remove(node)
                outcome = self._start(node)
                if outcome is None:
                    running.append(self._submit(node, 1))
                elif outcome.stopped_run:
                    stopped = outcome
                else:
                    done.add(node.id)
            if stopped is not None or not (running or retries):
                break
            stopped = self._collect(running, retries)
        # steps already running finish and are recorded; a timed-out one is not waited for
        if running:
            wait([a.future for a in running])
            for attempt in running:
                self._complete(attempt, retry=None)
        return stopped

    def _collect(
        self, running: list[_Attempt], retries: list[tuple[float, Node, int]]
    ) -> StepOutcome | None:
        """Wait for the next finished attempt, deadline or retry; handle what is due."""
        moments = [a.deadline for a in running if a.deadline is not None]
        moments += [r[0] for r in retries]
        timeout = None if not moments else max(0.0, min(moments) - time.monotonic())
        if not running:  # only retries are due later: wait for the first of them
            time.sleep(timeout or 0.0)
            return None
        finished = {a.future for a in running if a.future.done()}  # inline work: no wait
        if not finished:
            finished, _ = wait(
                [a.future for a in running], timeout=timeout, return_when=FIRST_COMPLETED
            )
        stopped = None
        for attempt in list(running):
            late = attempt.deadline is not None and time.monotonic() >= attempt.deadline
            if late and not (attempt.future in finished and attempt.future.exception() is None):
                # also when the executor stopped the work itself at the deadline
                running.remove(attempt)
                outcome: StepOutcome | None = self._timed_out(attempt)
            elif attempt.future in finished:
                running.remove(attempt)
                outcome = self._complete(attempt, retry=retries)
            else:
                continue
            if outcome is not None and outcome.stopped_run and stopped is None:
                stopped = outcome
        return stopped

    # -- one step ------------------------------------------------------------------------

    def _start(self, node: Node) -> StepOutcome | None:
        """Record the step's start; its outcome when it is reused, else ``None`` (run it)."""
        begun = time.perf_counter()
        self.progress(node.id, "running", None)
        inputs = {
            arg: self.outcomes[ref.node].outputs.get(ref.name) for arg, ref in node.inputs.items()
        }
        input_fps = {
            arg: (rec.fingerprint if rec is not None else "none") for arg, rec in inputs.items()
        }
        external_fps = {arg: ext.fingerprint(self.app) for arg, ext in node.externals.items()}
        key = cache_key(node, input_fps, external_fps)
        records: dict[str, Any] = {arg: rec for arg, rec in inputs.items() if rec is not None}
        records.update(
            {
                arg: {"uri": ext.describe(self.app), "fingerprint": external_fps[arg]}
                for arg, ext in node.externals.items()
            }
        )
        # only a marker: the step's finish, which makes its outputs reusable, waits for
        # the disk (and so makes this durable too)
        with deferred_sync():
            step_id = self.metadata.start_step(self.run_id, node.id, inputs=records, cache_key=key)
        self.started[node.id] = (step_id, key, records, begun)
        reused = reusable(
            self.app,
            node,
            key,
            previous=self.resumable.get(node.id),
            use_cache=self.use_cache,
            in_process=self.in_process,
        )
        if reused is None:
            return None
        self.metadata.finish_step(
            step_id, "cached", outputs=reused.outputs, metrics=reused.metrics, cache_hit=True
        )
        outcome = StepOutcome(
            node=node.id,
            status="cached",
            outputs=dict(reused.outputs),
            metrics=dict(reused.metrics),
            duration_s=time.perf_counter() - begun,
        )
        return self._finish(node, self._judge(node, outcome))

    def _submit(self, node: Node, attempt: int) -> _Attempt:
        work = StepWork(
            node=node.id,
            attempt=attempt,
            timeout_s=node.step.options.timeout_s,
            run_here=lambda w: self._run_here(node, w),
            describe=lambda: self._describe(node),
        )
        try:
            future = self.executor.submit(work)
        except Exception as exc:  # the executor refused the work: the step fails
            future = Future()
            future.set_exception(exc)
        return _Attempt(node, work, future)

    def _complete(self, attempt: _Attempt, *, retry: list[Any] | None) -> StepOutcome | None:
        """Record a finished attempt; ``None`` when it is retried instead."""
        node, number = attempt.node, attempt.work.attempt
        step_id, key, _, begun = self.started[node.id]
        try:
            result = attempt.future.result()
        except BaseException as exc:
            failure = StepFailure.of(exc)
            options = node.step.options
            if retry is not None and not failure.final and number <= options.retries:
                retry.append(
                    (time.monotonic() + options.backoff_s * 2 ** (number - 1), node, number + 1)
                )
                return None
            status = "refused" if failure.refused else "failed"
            return self._fail(node, step_id, status, failure, number, begun)
        outputs = self._record_outputs(node, key, result)
        self.metadata.finish_step(step_id, "succeeded", outputs=outputs, metrics=result.metrics)
        outcome = StepOutcome(
            node=node.id,
            status="succeeded",
            outputs=outputs,
            metrics=dict(result.metrics),
            attempts=number,
            duration_s=time.perf_counter() - begun,
        )
        return self._finish(node, self._judge(node, outcome))

    def _timed_out(self, attempt: _Attempt) -> StepOutcome:
        """Core stops waiting; the work is cancelled, and said to be running if it is."""
        node = attempt.node
        step_id, _, _, begun = self.started[node.id]
        attempt.work.cancel()
        stopped = attempt.future.cancel() or attempt.future.done()
        limit = node.step.options.timeout_s
        message = f"timed out after {limit:g} s"
        if not stopped:
            message += (
                "; its work could not be stopped and may still be running (its "
                "outputs will not be recorded); no step after it was started"
            )
            log.warning("step %r of run %s %s", node.id, self.run_id, message)
            print(f"warning: step {node.id!r} {message}", file=sys.stderr)
        self.metadata.finish_step(step_id, "failed", error=message)
        outcome = StepOutcome(
            node=node.id,
            status="timed_out",
            error=message,
            attempts=attempt.work.attempt,
            hint="raise timeout_s, or make the step faster",
            duration_s=time.perf_counter() - begun,
        )
        return self._finish(node, outcome)

    def _judge(self, node: Node, outcome: StepOutcome) -> StepOutcome:
        """A gate step's outcome is ``refused`` when its verdict did not pass."""
        if not node.step.options.gate:
            return outcome
        name = node.step.options.outputs[0]
        verdict = self._value(node.id, name, outcome.outputs.get(name))
        if verdict is None or not hasattr(verdict, "passed"):
            raise ConveyorError(
                f"gate step {node.id!r} returned no verdict",
                hint="a @step(gate=True) returns a value with passed, findings and report()",
            )
        if verdict.passed:
            return outcome
        from attrs import evolve

        return evolve(
            outcome,
            status="refused",
            error=verdict.report(),
            hint=REFUSED_HINT,
            findings=tuple(verdict.findings),
        )

    def _record_outputs(self, node: Node, key: str, result: StepResult) -> dict[str, Any]:
        if result.values is not None:
            with self.lock:
                for name, value in result.values.items():
                    self.values[(node.id, name)] = value
        return record_outputs(self.metadata, self.graph.pipeline, node, key, result.outputs)

    def _fail(
        self,
        node: Node,
        step_id: str,
        status: str,
        failure: StepFailure,
        attempts: int,
        begun: float,
    ) -> StepOutcome:
        message = failure.message if failure.final else f"{failure.type_name}: {failure.message}"
        findings = tuple(finding_of(f) for f in failure.findings)
        self.metadata.finish_step(step_id, "failed", error=message)
        outcome = StepOutcome(
            node=node.id,
            status=status,
            error=message,
            hint=failure.hint,
            attempts=attempts,
            findings=findings,
            duration_s=time.perf_counter() - begun,
        )
        return self._finish(node, outcome)

    def _finish(self, node: Node, outcome: StepOutcome) -> StepOutcome:
        with self.lock:
            self.outcomes[node.id] = outcome
            if outcome.findings:
                self.findings = outcome.findings
        self.app.emit(
            "on_step_finished",
            StepFinished(
                run_id=self.run_id,
                step=node.id,
                status=outcome.status,
                duration_s=outcome.duration_s,
                cached=outcome.status == "cached",
                error=outcome.error,
            ),
        )
        self.progress(node.id, outcome.status, outcome)
        return outcome
