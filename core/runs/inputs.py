"""A run's values and each step's work: arguments, recomputation, the portable form.

Part of :class:`conveyor.runs.runner._Run`: what a step is called with (values
of this run, read from the store, or recomputed for outputs kept in memory),
the step's work in this process, and its JSON form for another process.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, cast

from attrs import asdict, has

from conveyor.errors import ConveyorError
from conveyor.pipeline import Graph, Node, StepContext, is_transient
from conveyor.runs.outcome import StepOutcome, read_output
from conveyor.runs.work import (
    StepResult,
    StepWork,
    project_of,
    record_to_json,
    split_outputs,
    store_outputs,
)

if TYPE_CHECKING:
    from attrs import AttrsInstance


class StepInputs:
    """The values side of a run (mixed into the runner, which sets these attributes)."""

    app: Any
    graph: Graph
    catalogue: Any
    run_id: str
    trigger_event: str | None
    values: dict[tuple[str, str], Any]
    outcomes: dict[str, StepOutcome]
    started: dict[str, tuple[str, str, dict[str, Any], float]]
    lock: threading.Lock
    recompute_lock: threading.RLock

    def _context(self, node: Node, records: dict[str, Any]) -> StepContext:
        return StepContext(
            app=self.app,
            run_id=self.run_id,
            step=node.id,
            parameters=self.graph.parameters,
            trigger_event=self.trigger_event,
            inputs=records,
        )

    def _arguments(self, node: Node, ctx: StepContext) -> dict[str, Any]:
        kwargs: dict[str, Any] = dict(node.params)
        for arg, ref in node.inputs.items():
            kwargs[arg] = self._value(ref.node, ref.name)
        for arg, ext in node.externals.items():
            kwargs[arg] = ext.resolve(self.app)
        if node.step.wants_context:
            kwargs["ctx"] = ctx
        return kwargs

    def _run_here(self, node: Node, work: StepWork) -> StepResult:
        """The step's work in this process: inputs from memory, outputs stored."""
        ctx = self._context(node, self.started[node.id][2])
        result = node.step.fn(**self._arguments(node, ctx))
        values = split_outputs(node.id, node.step.options.outputs, result)
        if work.cancelled:
            raise ConveyorError(f"step {node.id!r} finished after core stopped waiting for it")
        outputs = store_outputs(
            self.app,
            self.catalogue,
            values,
            prefix=f"runs/{self.run_id}/{node.id}",
            persist=node.step.options.persist,
        )
        return StepResult(outputs=outputs, metrics=ctx.metrics, values=values)

    def _describe(self, node: Node) -> dict[str, Any]:
        """The step's work as JSON, for an executor that runs it in another process."""
        fn = node.step.fn
        inputs = {}
        for arg, ref in node.inputs.items():
            record = self.outcomes[ref.node].outputs.get(ref.name)
            inputs[arg] = (
                None
                if record is None
                else {
                    "key": record.metadata.get("key"),
                    "materializer": record.metadata["materializer"],
                    "plugin": record.metadata.get("materializer_plugin"),
                }
            )
        externals = {}
        for arg, ext in node.externals.items():
            if not has(type(ext)):
                raise ConveyorError(
                    f"the external input {arg!r} of step {node.id!r} is not an "
                    "attrs class, so it cannot be sent to another process",
                    hint="make it an attrs class, or run in this process",
                )
            kind = type(ext)
            externals[arg] = {
                "type": f"{kind.__module__}:{kind.__qualname__}",
                "fields": asdict(cast("AttrsInstance", ext)),
            }  # has() above
        return {
            **project_of(self.app),
            "run_id": self.run_id,
            "pipeline": self.graph.pipeline,
            "node": node.id,
            "step": f"{fn.__module__}:{fn.__qualname__}",
            "params": node.params,
            "inputs": inputs,
            "externals": externals,
            "records": {k: record_to_json(v) for k, v in self.started[node.id][2].items()},
            "parameters": self.graph.parameters,
            "trigger_event": self.trigger_event,
            "outputs": list(node.step.options.outputs),
            "prefix": f"runs/{self.run_id}/{node.id}",
        }

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
        value = None if record is None else read_output(self.app, record)
        with self.lock:
            self.values[key] = value
        return value

    def _recompute(self, node: Node) -> None:
        ctx = self._context(node, {})
        values = split_outputs(
            node.id, node.step.options.outputs, node.step.fn(**self._arguments(node, ctx))
        )
        with self.lock:
            for name, value in values.items():
                self.values[(node.id, name)] = value
