"""The local orchestrator: runs a pipeline in this process, recording everything.

Steps run in dependency order (independent ones in parallel threads when
``max_workers > 1``), with per-step retries, timeouts and caching keyed by the
step's code fingerprint, its input fingerprints and its parameters.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from attrs import Factory, define, frozen

from conveyor.errors import ConveyorError, NotFoundError
from conveyor.events import RunFinished, RunStarted, StepFinished
from conveyor.interfaces.orchestrator import Orchestrator
from conveyor.materializers import materializer_for, materializer_named
from conveyor.pipeline import (
    GateRefused,
    Graph,
    Node,
    Pipeline,
    StepContext,
    cache_key,
    is_transient,
    transient_fingerprint,
)
from conveyor.plugins.local.config import LocalOrchestratorConfig


@frozen(kw_only=True)
class StepOutcome:
    """What happened to one step of a run.

    Attributes:
        node: the node id.
        status: ``succeeded``, ``cached``, ``failed``, ``refused`` or ``skipped``.
        duration_s: wall time, including storing outputs.
        attempts: how many times the step function was called.
        outputs: output name -> its ArtifactRecord in the metadata store.
        metrics: metrics the step logged.
        error: the error, for failed/refused steps.
    """

    node: str
    status: str
    duration_s: float = 0.0
    attempts: int = 0
    outputs: dict[str, Any] = Factory(dict)
    metrics: dict[str, float] = Factory(dict)
    error: str | None = None
    hint: str | None = None


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
        if is_transient(record):
            raise NotFoundError(
                f"output {name!r} of step {node!r} was kept in memory (persist=False) and "
                f"run {self.run_id} reused it from the cache without computing it",
                hint="run again with use_cache=False to compute it, or give the step "
                "persist=True to store its outputs")
        return _load(self._app, record)

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"


Progress = Callable[[str, str, StepOutcome | None], None]


def _load(app: Any, record: Any) -> Any:
    return materializer_named(record.metadata["materializer"]).load(
        app.artifacts, record.metadata["key"])


def _git_commit(root: Path) -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


class LocalOrchestrator(Orchestrator):
    """Runs pipelines in-process; see the module docstring."""

    def __init__(self, *, app: Any, config: LocalOrchestratorConfig) -> None:
        self.app = app
        self.config = config
        self._git: str | bool | None = False

    def run(self, pipeline: Pipeline | Graph, *, parameters: Mapping[str, Any] | None = None,
            trigger_event: str | None = None, resume_from: str | None = None,
            use_cache: bool = True, progress: Progress | None = None) -> RunResult:
        graph = pipeline if isinstance(pipeline, Graph) else pipeline.build(**(parameters or {}))
        if self._git is False:
            self._git = _git_commit(self.app.root)
        return _Run(self, graph, trigger_event=trigger_event, resume_from=resume_from,
                    use_cache=use_cache and self.config.cache, progress=progress).execute()


class _Run:
    """One execution of a graph (state shared by the scheduler and the step runner)."""

    def __init__(self, orchestrator: LocalOrchestrator, graph: Graph, *,
                 trigger_event: str | None, resume_from: str | None, use_cache: bool,
                 progress: Progress | None) -> None:
        self.app = orchestrator.app
        self.config = orchestrator.config
        self.git = orchestrator._git or None
        self.graph = graph
        self.trigger_event = trigger_event
        self.use_cache = use_cache
        self.progress = progress or (lambda node, status, outcome: None)
        self.metadata = self.app.metadata
        self.values: dict[tuple[str, str], Any] = {}
        self.outcomes: dict[str, StepOutcome] = {}
        self.lock = threading.Lock()
        self.recompute_lock = threading.RLock()
        self.resumable: dict[str, Any] = {}
        if resume_from is not None:
            previous = self.metadata.get_run(resume_from)
            if previous.pipeline != graph.pipeline:
                raise ConveyorError(
                    f"run {resume_from} is a run of {previous.pipeline!r}, not "
                    f"{graph.pipeline!r}", hint="resume a run of the same pipeline")
            self.resumable = {s.name: s for s in previous.steps
                              if s.status in ("succeeded", "cached")}

    # -- scheduling ----------------------------------------------------------------------

    def execute(self) -> RunResult:
        started = time.perf_counter()
        self.run_id = self.metadata.start_run(
            self.graph.pipeline, parameters=self.graph.parameters,
            trigger_event=self.trigger_event, code_fingerprint=self.graph.fingerprint,
            git_commit=self.git)
        self.app.emit("on_run_started", RunStarted(
            run_id=self.run_id, pipeline=self.graph.pipeline, trigger=self.trigger_event,
            parameters=self.graph.parameters))
        failed: StepOutcome | None = None
        try:
            if self.config.max_workers == 1:
                for node in self.graph.topological():
                    outcome = self.run_node(node)
                    if outcome.status in ("failed", "refused"):
                        failed = outcome
                        break
            else:
                failed = self._execute_parallel()
        except BaseException as exc:
            self.metadata.finish_run(self.run_id, "failed", error=f"interrupted: {exc!r}")
            raise
        for node in self.graph.nodes:
            if node.id not in self.outcomes:
                self.outcomes[node.id] = StepOutcome(node=node.id, status="skipped")
        status = "succeeded" if failed is None else failed.status
        error = None if failed is None else f"step {failed.node!r}: {failed.error}"
        self.metadata.finish_run(self.run_id, status, error=error)
        self.app.emit("on_run_finished", RunFinished(
            run_id=self.run_id, pipeline=self.graph.pipeline, status=status, error=error))
        return RunResult(run_id=self.run_id, pipeline=self.graph.pipeline, status=status,
                         steps=self.outcomes, error=error,
                         hint=None if failed is None else failed.hint,
                         duration_s=time.perf_counter() - started,
                         findings=getattr(self, "findings", ()),
                         values=self.values, app=self.app)

    def _execute_parallel(self) -> StepOutcome | None:
        pending = {node.id: node for node in self.graph.nodes}
        running: dict[Future[StepOutcome], str] = {}
        failed: StepOutcome | None = None
        with ThreadPoolExecutor(max_workers=self.config.max_workers,
                                thread_name_prefix="conveyor-step") as pool:
            while (pending or running) and failed is None:
                done_ids = {n for n, o in self.outcomes.items()
                            if o.status in ("succeeded", "cached")}
                for node_id, node in list(pending.items()):
                    if len(running) >= self.config.max_workers:
                        break
                    if node.upstream <= done_ids:
                        del pending[node_id]
                        running[pool.submit(self.run_node, node)] = node_id
                if not running:
                    break
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    del running[future]
                    outcome = future.result()
                    if outcome.status in ("failed", "refused") and failed is None:
                        failed = outcome
            if running:
                wait(running)
        return failed

    # -- one step ------------------------------------------------------------------------

    def run_node(self, node: Node) -> StepOutcome:
        started = time.perf_counter()
        self.progress(node.id, "running", None)
        inputs = {arg: self.outcomes[ref.node].outputs.get(ref.name)
                  for arg, ref in node.inputs.items()}
        input_fps = {arg: (rec.fingerprint if rec is not None else "none")
                     for arg, rec in inputs.items()}
        external_fps = {arg: ext.fingerprint(self.app) for arg, ext in node.externals.items()}
        key = cache_key(node, input_fps, external_fps)
        records = {arg: rec for arg, rec in inputs.items() if rec is not None}
        records.update({arg: {"uri": ext.describe(self.app), "fingerprint": external_fps[arg]}
                        for arg, ext in node.externals.items()})
        step_id = self.metadata.start_step(self.run_id, node.id, inputs=records, cache_key=key)

        reused = self._reusable(node, key)
        if reused is not None:
            self.metadata.finish_step(step_id, "cached", outputs=reused.outputs,
                                      metrics=reused.metrics, cache_hit=True)
            refusal = self._refusal_of_records(node, reused.outputs)
            outcome = StepOutcome(node=node.id, status="cached" if refusal is None else "refused",
                                  outputs=dict(reused.outputs), metrics=dict(reused.metrics),
                                  duration_s=time.perf_counter() - started,
                                  error=None if refusal is None else refusal.message,
                                  hint=None if refusal is None else refusal.hint)
            return self._finish(node, outcome, refusal)

        ctx = StepContext(app=self.app, run_id=self.run_id, step=node.id,
                          parameters=self.graph.parameters, trigger_event=self.trigger_event,
                          inputs=records)
        attempts = 0
        options = node.step.options
        while True:
            attempts += 1
            try:
                kwargs = self._arguments(node, ctx)
                result = self._call(node, kwargs)
                outputs, refusal = self._store_outputs(node, result, key)
                break
            except GateRefused as exc:
                return self._fail(node, step_id, "refused", exc, attempts, started, ctx)
            except ConveyorError as exc:
                return self._fail(node, step_id, "failed", exc, attempts, started, ctx)
            except Exception as exc:
                if attempts > options.retries:
                    return self._fail(node, step_id, "failed", exc, attempts, started, ctx)
                time.sleep(options.backoff_s * 2 ** (attempts - 1))
        metrics = ctx.metrics
        self.metadata.finish_step(step_id, "succeeded", outputs=outputs, metrics=metrics)
        outcome = StepOutcome(node=node.id, status="succeeded" if refusal is None else "refused",
                              outputs=outputs, metrics=metrics, attempts=attempts,
                              duration_s=time.perf_counter() - started,
                              error=None if refusal is None else refusal.message,
                              hint=None if refusal is None else refusal.hint)
        return self._finish(node, outcome, refusal)

    def _refusal_of_records(self, node: Node, records: Mapping[str, Any]) -> Any:
        for name, record in records.items():
            materializer = materializer_named(record.metadata["materializer"])
            if materializer.refusal is not None:
                error = materializer.refusal(self._value(node.id, name, record))
                if error is not None:
                    return error
        return None

    def _reusable(self, node: Node, key: str) -> Any:
        previous = self.resumable.get(node.id)
        if previous is not None and previous.cache_key == key and self._outputs_intact(previous):
            return previous
        if not (self.use_cache and node.step.options.cache):
            return None
        hit = self.metadata.find_cached_step(key)
        if hit is None:
            return None
        expires = node.step.options.cache_expires
        if expires is not None and hit.ended is not None and \
                datetime.now(UTC) - hit.ended > expires:
            return None
        return hit if self._outputs_intact(hit) else None

    def _outputs_intact(self, execution: Any) -> bool:
        """Cached outputs are reused only while their bytes are still stored unchanged."""
        for record in execution.outputs.values():
            if is_transient(record):
                continue  # nothing stored: recomputed from its inputs when needed
            try:
                info = self.app.artifacts.info(record.metadata["key"])
            except (NotFoundError, KeyError):
                return False
            if info.sha256 != record.fingerprint:
                return False
        return True

    def _arguments(self, node: Node, ctx: StepContext) -> dict[str, Any]:
        kwargs: dict[str, Any] = dict(node.params)
        for arg, ref in node.inputs.items():
            kwargs[arg] = self._value(ref.node, ref.name)
        for arg, ext in node.externals.items():
            kwargs[arg] = ext.resolve(self.app)
        if node.step.wants_context:
            kwargs["ctx"] = ctx
        return kwargs

    def _value(self, node_id: str, name: str, record: Any = None) -> Any:
        """The value of an output: from this run, read from the store, or recomputed.

        An output kept in memory (``persist=False``) whose step was a cache hit has
        no stored bytes, so its step runs again, here, the first time a value is
        needed.  The cache key it was reused under is the one it is recomputed from
        (the same code, inputs and parameters), as for any cached output.
        """
        key = (node_id, name)
        with self.lock:
            if key in self.values:
                return self.values[key]
        if record is None:
            record = self.outcomes[node_id].outputs.get(name)
        if record is not None and is_transient(record):
            with self.recompute_lock:  # one recomputation, however many steps ask
                if key not in self.values:
                    self._recompute(self.graph.node(node_id))
            return self.values[key]
        value = None if record is None else _load(self.app, record)
        with self.lock:
            self.values[key] = value
        return value

    def _recompute(self, node: Node) -> None:
        ctx = StepContext(app=self.app, run_id=self.run_id, step=node.id,
                          parameters=self.graph.parameters, trigger_event=self.trigger_event,
                          inputs={})
        values = self._output_values(node, self._call(node, self._arguments(node, ctx)))
        with self.lock:
            for name, value in values.items():
                self.values[(node.id, name)] = value

    def _call(self, node: Node, kwargs: dict[str, Any]) -> Any:
        timeout = node.step.options.timeout_s
        if timeout is None:
            return node.step.fn(**kwargs)
        # A thread cannot be killed: on timeout the step is failed and its thread is
        # abandoned (daemon); its result, if it ever comes, is discarded.
        result: dict[str, Any] = {}

        def target() -> None:
            try:
                result["value"] = node.step.fn(**kwargs)
            except BaseException as exc:  # handed to the caller below
                result["error"] = exc

        thread = threading.Thread(target=target, daemon=True, name=f"conveyor-{node.id}")
        thread.start()
        thread.join(timeout)
        if thread.is_alive():
            raise FutureTimeout(f"step {node.id!r} timed out after {timeout:g} s")
        if "error" in result:
            raise result["error"]
        return result.get("value")

    def _output_values(self, node: Node, result: Any) -> dict[str, Any]:
        """A step's return value as ``output name -> value``."""
        names = node.step.options.outputs
        if len(names) == 1:
            return {names[0]: result}
        if not isinstance(result, tuple) or len(result) != len(names):
            raise ConveyorError(
                f"step {node.id!r} declares outputs {names} but returned "
                f"{type(result).__name__}",
                hint=f"return a tuple of {len(names)} values")
        return dict(zip(names, result, strict=True))

    def _store_outputs(self, node: Node, result: Any, cache_key: str
                       ) -> tuple[dict[str, Any], Any]:
        """Store (or, with ``persist=False``, only record) each output.

        Returns the records and the refusal one of them carries.
        """
        outputs: dict[str, Any] = {}
        refusal = None
        for name, value in self._output_values(node, result).items():
            with self.lock:
                self.values[(node.id, name)] = value
            if value is None:
                continue  # nothing to store; downstream steps receive None
            materializer = materializer_for(value)
            if refusal is None and materializer.refusal is not None:
                refusal = materializer.refusal(value)
            if not node.step.options.persist:
                outputs[name] = self.metadata.record_artifact(
                    f"transient://{self.graph.pipeline}/{node.id}/{name}",
                    transient_fingerprint(cache_key, name), kind=materializer.name,
                    metadata={"materializer": materializer.name, "step": node.id,
                              "transient": True})
                continue
            key = f"runs/{self.run_id}/{node.id}/{name}.{materializer.extension}"
            info = materializer.save(self.app.artifacts, key, value)
            outputs[name] = self.metadata.record_artifact(
                info.uri, info.sha256, kind=materializer.name, size=info.size,
                media_type=info.media_type,
                metadata={"key": key, "materializer": materializer.name, "step": node.id})
        return outputs, refusal

    def _fail(self, node: Node, step_id: str, status: str, exc: BaseException, attempts: int,
              started: float, ctx: StepContext) -> StepOutcome:
        message = exc.message if isinstance(exc, ConveyorError) else \
            f"{type(exc).__name__}: {exc}"
        hint = exc.hint if isinstance(exc, ConveyorError) else None
        if getattr(exc, "findings", None):
            self.findings = tuple(exc.findings)
        self.metadata.finish_step(step_id, "failed", error=message, metrics=ctx.metrics)
        outcome = StepOutcome(node=node.id, status=status, error=message, hint=hint,
                              attempts=attempts, metrics=ctx.metrics,
                              duration_s=time.perf_counter() - started)
        return self._finish(node, outcome)

    def _finish(self, node: Node, outcome: StepOutcome, refusal: Any = None) -> StepOutcome:
        with self.lock:
            self.outcomes[node.id] = outcome
            if refusal is not None and getattr(refusal, "findings", None):
                self.findings = tuple(refusal.findings)
        self.app.emit("on_step_finished", StepFinished(
            run_id=self.run_id, step=node.id, status=outcome.status,
            duration_s=outcome.duration_s, cached=outcome.status == "cached",
            error=outcome.error))
        self.progress(node.id, outcome.status, outcome)
        return outcome
