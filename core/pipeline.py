"""Authoring pipelines: ``@step`` and ``@pipeline`` on plain Python functions.

A pipeline is a function that calls steps; calling it with parameters *builds* a
graph (nothing runs), and :func:`conveyor.runs.run_pipeline` runs the graph::

    from conveyor.pipeline import pipeline, step

    @step
    def load(path: str) -> pl.DataFrame: ...

    @step(retries=2, timeout=600)
    def train(data: pl.DataFrame, rounds: int) -> lgb.Booster: ...

    @pipeline
    def training(path: str = "data.parquet", rounds: int = 100):
        train(load(path), rounds)

Inside a pipeline, a step call returns :class:`Output` handles that later steps
take as inputs; plain values become the step's parameters.  Outside a pipeline a
step is an ordinary function call, so every step is usable (and testable) alone.
A step that declares a parameter named ``ctx`` receives a :class:`StepContext`.
"""

from __future__ import annotations

import ast
import contextvars
import functools
import hashlib
import importlib
import inspect
import textwrap
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from attrs import Factory, field, frozen

from conveyor.convert import to_tuple
from conveyor.errors import ConfigError, ConveyorError
from conveyor.externals import (  # re-exported: they are part of authoring pipelines
    External,
    Files,
    ModelAlias,
    ModelState,
    canonical_json,
    files,
    model_alias,
    model_state,
)

_BUILDING: contextvars.ContextVar[_GraphBuilder | None] = contextvars.ContextVar(
    "conveyor_pipeline_builder", default=None
)


class PipelineDefinitionError(ConveyorError):
    """A pipeline or step is defined or wired incorrectly."""


class GateRefused(ConveyorError):
    """Raised by a step to refuse: the step ends ``refused``, the run too, nothing after runs.

    A gate that should be reused from the cache returns its verdict instead (see
    ``@step(gate=True)``): a raised refusal stores nothing, so a rerun recomputes it.
    """

    def __init__(self, message: str, *, hint: str | None = None, findings=()) -> None:
        super().__init__(message, hint=hint)
        self.findings = tuple(findings)


# -- steps ------------------------------------------------------------------------------


def code_fingerprint(fn: Callable[..., Any]) -> str:
    """SHA-256 of a function's source with comments and formatting normalised away."""
    try:
        source = textwrap.dedent(inspect.getsource(fn))
        normalised = ast.dump(ast.parse(source), include_attributes=False)
    except (OSError, TypeError, SyntaxError):
        normalised = f"{fn.__module__}.{fn.__qualname__}"
    return hashlib.sha256(normalised.encode()).hexdigest()


@frozen(kw_only=True)
class StepOptions:
    """How a step runs.

    Attributes:
        cache: reuse earlier outputs when code, inputs and parameters match.
        cache_expires: how long cached outputs stay reusable (``None``: forever).
        retries: extra attempts after an unexpected error (ConveyorErrors are final).
        backoff_s: wait before retry n is ``backoff_s * 2**(n-1)`` seconds.
        timeout_s: a step running longer fails (``None``: no limit).
        outputs: names of the outputs when the function returns a tuple.
        persist: store the outputs in the artifact store.  ``False`` keeps them in
            memory for the run only: each is recorded with a fingerprint derived from
            the step's cache key (code, inputs, parameters), so downstream caching
            works as before, and a later run whose cache hit needs the value runs the
            step again.  For outputs that are cheap to recompute and large to store.
        gate: the step returns a verdict (a value with ``passed``, ``findings`` and
            ``report()``).  It is stored like any output; when it did not pass, core
            ends the step ``refused`` with the verdict's findings, starts nothing
            after it and ends the run ``refused``, also when the verdict is reused
            from the cache.
    """

    cache: bool = True
    cache_expires: timedelta | None = None
    retries: int = 0
    backoff_s: float = 1.0
    timeout_s: float | None = None
    outputs: tuple[str, ...] = field(default=("output",), converter=to_tuple)
    persist: bool = True
    gate: bool = False


class Step:
    """A function registered as a pipeline step (see :func:`step`)."""

    def __init__(self, fn: Callable[..., Any], name: str, options: StepOptions) -> None:
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.name = name
        self.options = options
        self.signature = inspect.signature(fn)
        self.wants_context = "ctx" in self.signature.parameters
        #: the signature callers see inside a pipeline: ``ctx`` is supplied at run time
        self.call_signature = self.signature.replace(
            parameters=[p for name, p in self.signature.parameters.items() if name != "ctx"]
        )
        self.fingerprint = code_fingerprint(fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        builder = _BUILDING.get()
        if builder is None:
            return self.fn(*args, **kwargs)
        return builder.add(self, args, kwargs)

    def __repr__(self) -> str:
        return f"<step {self.name}>"


def step(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    cache: bool = True,
    cache_expires: timedelta | None = None,
    retries: int = 0,
    backoff_s: float = 1.0,
    timeout_s: float | None = None,
    outputs: tuple[str, ...] | None = None,
    persist: bool = True,
    gate: bool = False,
) -> Any:
    """Make ``fn`` a pipeline step.  Usable bare (``@step``) or with options."""
    options = StepOptions(
        cache=cache,
        cache_expires=cache_expires,
        retries=retries,
        backoff_s=backoff_s,
        timeout_s=timeout_s,
        outputs=outputs or ("output",),
        persist=persist,
        gate=gate,
    )
    if gate and len(options.outputs) != 1:
        raise PipelineDefinitionError(
            "a gate step has exactly one output: its verdict",
            hint="drop outputs=, or split the step in two",
        )

    def wrap(f: Callable[..., Any]) -> Step:
        return Step(f, name or f.__name__, options)

    return wrap(fn) if fn is not None else wrap


# -- graph ------------------------------------------------------------------------------


@frozen
class Output:
    """A handle on one output of one step invocation, used while building a graph."""

    node: str
    name: str = "output"


@frozen(kw_only=True)
class Node:
    """One step invocation in a graph.

    Attributes:
        id: unique in the graph: the step name, suffixed ``_2``, ``_3`` when reused.
        step: the step.
        inputs: argument name -> Output of an upstream node.
        externals: argument name -> External input (files, a model alias).
        params: argument name -> plain JSON-able value.
    """

    id: str
    step: Step = field(eq=False)
    inputs: dict[str, Output] = Factory(dict)
    externals: dict[str, External] = Factory(dict)
    params: dict[str, Any] = Factory(dict)

    @property
    def upstream(self) -> set[str]:
        return {ref.node for ref in self.inputs.values()}


@frozen(kw_only=True)
class Graph:
    """A built pipeline: nodes in the order the pipeline called them."""

    pipeline: str
    nodes: tuple[Node, ...] = field(converter=to_tuple)
    parameters: dict[str, Any] = Factory(dict)
    fingerprint: str = ""

    def node(self, node_id: str) -> Node:
        return next(n for n in self.nodes if n.id == node_id)


class _GraphBuilder:
    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self._ids: dict[str, int] = {}

    def add(self, step_: Step, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            bound = step_.call_signature.bind_partial(*args, **kwargs)
        except TypeError as exc:
            raise PipelineDefinitionError(f"step {step_.name!r} called wrongly: {exc}") from None
        bound.apply_defaults()
        count = self._ids.get(step_.name, 0) + 1
        self._ids[step_.name] = count
        node_id = step_.name if count == 1 else f"{step_.name}_{count}"
        inputs: dict[str, Output] = {}
        externals: dict[str, External] = {}
        params: dict[str, Any] = {}
        for arg, value in bound.arguments.items():
            if isinstance(value, Output):
                inputs[arg] = value
            elif isinstance(value, External):
                externals[arg] = value
            elif isinstance(value, tuple) and value and all(isinstance(v, Output) for v in value):
                raise PipelineDefinitionError(
                    f"step {step_.name!r} got a tuple of outputs for {arg!r}",
                    hint="unpack the outputs of the upstream step and pass one of them",
                )
            else:
                try:
                    canonical_json(value)
                except TypeError:
                    raise PipelineDefinitionError(
                        f"parameter {arg!r} of step {step_.name!r} is a "
                        f"{type(value).__name__}, which is not JSON-able",
                        hint="pass plain values (str, number, bool, list, dict) or the "
                        "output of another step",
                    ) from None
                params[arg] = value
        missing = [
            p
            for p, spec in step_.call_signature.parameters.items()
            if p not in bound.arguments and spec.default is inspect.Parameter.empty
        ]
        if missing:
            raise PipelineDefinitionError(
                f"step {step_.name!r} is missing argument(s): {', '.join(missing)}"
            )
        self.nodes.append(
            Node(id=node_id, step=step_, inputs=inputs, externals=externals, params=params)
        )
        outs = step_.options.outputs
        if len(outs) == 1:
            return Output(node_id, outs[0])
        return tuple(Output(node_id, name) for name in outs)


class Pipeline:
    """A function registered as a pipeline (see :func:`pipeline`)."""

    def __init__(self, fn: Callable[..., Any], name: str) -> None:
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.name = name
        self.signature = inspect.signature(fn)
        self.fingerprint = code_fingerprint(fn)

    def build(self, **parameters: Any) -> Graph:
        """Call the pipeline function in build mode and return its graph."""
        try:
            bound = self.signature.bind(**parameters)
        except TypeError as exc:
            known = ", ".join(self.signature.parameters) or "none"
            raise PipelineDefinitionError(
                f"pipeline {self.name!r} got bad parameters: {exc}",
                hint=f"its parameters are: {known}",
            ) from None
        bound.apply_defaults()
        builder = _GraphBuilder()
        token = _BUILDING.set(builder)
        try:
            self.fn(*bound.args, **bound.kwargs)
        finally:
            _BUILDING.reset(token)
        if not builder.nodes:
            raise PipelineDefinitionError(f"pipeline {self.name!r} calls no step")
        digest = hashlib.sha256(self.fingerprint.encode())
        for node in builder.nodes:
            digest.update(f"{node.id}:{node.step.fingerprint}".encode())
        return Graph(
            pipeline=self.name,
            nodes=builder.nodes,
            parameters=dict(bound.arguments),
            fingerprint=digest.hexdigest(),
        )

    def __call__(self, **parameters: Any) -> Graph:
        return self.build(**parameters)

    def __repr__(self) -> str:
        return f"<pipeline {self.name}>"


def pipeline(fn: Callable[..., Any] | None = None, *, name: str | None = None) -> Any:
    """Make ``fn`` a pipeline.  Usable bare (``@pipeline``) or with ``name=``."""

    def wrap(f: Callable[..., Any]) -> Pipeline:
        return Pipeline(f, name or f.__name__)

    return wrap(fn) if fn is not None else wrap


def load_pipeline(target: str) -> Pipeline:
    """Import ``module:function`` and check that it is a pipeline."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(
            f"{target!r} does not name a pipeline",
            hint="use module:function, e.g. pipeline:training",
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"cannot import the pipeline module {module_name!r}: {exc}",
            hint="run conveyor from the project folder, or fix the module name in [pipelines]",
        ) from exc
    obj = getattr(module, attr, None)
    if not isinstance(obj, Pipeline):
        raise ConfigError(
            f"{target} is not a @pipeline function",
            hint="decorate it with conveyor.pipeline.pipeline",
        )
    return obj


# -- run-time context ------------------------------------------------------------------


@frozen(kw_only=True)
class StepContext:
    """What a step that takes ``ctx`` receives.

    Attributes:
        app: the project's Conveyor app (stores, registry, config).
        run_id: the current run's id.
        step: the node id of the running step.
        parameters: the pipeline's parameters.
        trigger_event: id of the trigger event that started the run, if any.
        inputs: argument name -> the recorded artifact it came from (``uri`` and
            ``fingerprint``), for steps that record lineage of their own.
    """

    app: Any
    run_id: str
    step: str
    parameters: dict[str, Any] = Factory(dict)
    trigger_event: str | None = None
    inputs: dict[str, Any] = Factory(dict)
    _metrics: dict[str, float] = Factory(dict)

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        """Record metrics for this step (stored when the step finishes)."""
        self._metrics.update({k: float(v) for k, v in metrics.items()})

    @property
    def metrics(self) -> dict[str, float]:
        return dict(self._metrics)


def is_transient(record: Any) -> bool:
    """Whether an output record is of a value kept in memory (``persist=False``)."""
    return bool(record.metadata.get("transient"))


def transient_fingerprint(cache_key: str, output: str) -> str:
    """The fingerprint of an output kept in memory: its step's cache key and its name."""
    return hashlib.sha256(f"transient\0{cache_key}\0{output}".encode()).hexdigest()


def cache_key(
    node: Node, input_fingerprints: Mapping[str, str], external_fingerprints: Mapping[str, str]
) -> str:
    """The key under which a node's outputs may be reused."""
    material = {
        "step": node.step.name,
        "code": node.step.fingerprint,
        "params": node.params,
        "inputs": dict(sorted(input_fingerprints.items())),
        "externals": dict(sorted(external_fingerprints.items())),
        "outputs": list(node.step.options.outputs),
    }
    return hashlib.sha256(canonical_json(material).encode()).hexdigest()


__all__ = [
    "External",
    "Files",
    "GateRefused",
    "Graph",
    "ModelAlias",
    "ModelState",
    "Node",
    "Output",
    "Pipeline",
    "PipelineDefinitionError",
    "Step",
    "StepContext",
    "StepOptions",
    "cache_key",
    "code_fingerprint",
    "files",
    "is_transient",
    "load_pipeline",
    "model_alias",
    "model_state",
    "pipeline",
    "step",
    "transient_fingerprint",
]
