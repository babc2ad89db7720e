"""Pipeline CI: what a team's own tests use to test their feature logic and pipelines.

The ``conveyor_pipeline`` fixture hands a test a :class:`PipelineKit` on a temporary
Conveyor stack (SQLite + local files under ``tmp_path``) that imports the project's
own modules: run a whole pipeline or one step, take sample data from a feature view
or from a step's output, and assert the artifacts produced, their schemas and their
lineage::

    def test_features_have_the_agreed_schema(conveyor_pipeline):
        run = conveyor_pipeline.run("training", rows=200)
        table = conveyor_pipeline.assert_artifact(
            run, "build_features", schema={"customer_id": "Int64", "spend_7d": "Float64"}
        )
        conveyor_pipeline.assert_lineage(run, "train", upstream=["build_features"])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from attrs import define


@define
class PipelineKit:
    """Runs pipelines and steps of a project on one app and checks what they produced.

    Attributes:
        app: the :class:`~conveyor.app.Conveyor` the runs are recorded in.
    """

    app: Any

    def run(self, pipeline: Any, **parameters: Any) -> Any:
        """Run ``pipeline`` (a ``[pipelines]`` name, ``module:function`` or a pipeline
        object) without the cache; AssertionError naming the failed steps unless it
        succeeded.  Returns the :class:`~conveyor.runs.RunResult`."""
        from conveyor.pipeline import Pipeline, load_pipeline
        from conveyor.runs import run_pipeline
        from conveyor.runs.resolve import resolve_pipeline

        configured: dict[str, Any] = {}
        if isinstance(pipeline, Pipeline):
            pipe = pipeline
        else:
            _, target, configured = resolve_pipeline(self.app.config, pipeline)
            pipe = load_pipeline(target)
        graph = pipe.build(**{**configured, **parameters})
        return self._succeeded(run_pipeline(self.app, graph, use_cache=False))

    def run_step(self, step: Any, *args: Any, **kwargs: Any) -> Any:
        """Run one ``@step`` on plain values as a one-step pipeline, recorded like any
        run (so its outputs are stored and checked); returns the RunResult."""
        from conveyor.pipeline import Pipeline
        from conveyor.runs import run_pipeline

        def single() -> None:
            step(*args, **kwargs)

        graph = Pipeline(single, name=f"test_{step.name}").build()
        return self._succeeded(run_pipeline(self.app, graph, use_cache=False))

    def _succeeded(self, result: Any) -> Any:
        if not result.ok:
            failed = [
                f"{o.node}: {o.status}: {o.error}"
                for o in result.steps.values()
                if o.status not in ("succeeded", "cached", "skipped")
            ]
            raise AssertionError(
                f"run {result.run_id} of {result.pipeline} {result.status}: "
                + ("; ".join(failed) or str(result.error))
            )
        return result

    def sample(self, view: str, n: int = 100, *, seed: int = 0) -> Any:
        """Up to ``n`` rows of feature view ``view``'s offline data (polars), the same
        rows for the same ``seed``."""
        frame = self.app.features.read_view(view).collect()
        if frame.height == 0:
            raise AssertionError(f"feature view {view!r} has no data; ingest some first")
        return frame.sample(n=min(n, frame.height), seed=seed, shuffle=False)

    def sample_output(
        self, result: Any, step: str, name: str = "output", n: int = 100, *, seed: int = 0
    ) -> Any:
        """Up to ``n`` rows of a table a step of ``result`` produced (polars)."""
        frame = as_frame(result.output(step, name), f"{step}.{name}")
        return frame.sample(n=min(n, frame.height), seed=seed, shuffle=False)

    def assert_artifact(
        self,
        result: Any,
        step: str,
        name: str = "output",
        *,
        schema: Mapping[str, str] | None = None,
        min_rows: int = 0,
    ) -> Any:
        """Assert that ``step`` of ``result`` recorded output ``name`` with a fingerprint;
        for a table, that it has at least ``min_rows`` rows and the columns of
        ``schema`` (name -> polars dtype name, e.g. ``"Int64"``).  Returns the value."""
        outcome = result.steps.get(step)
        if outcome is None:
            raise AssertionError(f"run {result.run_id} has no step {step!r}: {list(result.steps)}")
        record = outcome.outputs.get(name)
        if record is None:
            raise AssertionError(f"step {step!r} recorded no output {name!r}")
        if not record.fingerprint:
            raise AssertionError(f"output {step}.{name} was recorded without a fingerprint")
        value = result.output(step, name)
        if schema is not None or min_rows:
            frame = as_frame(value, f"{step}.{name}")
            assert_schema(frame, schema or {}, f"{step}.{name}")
            if frame.height < min_rows:
                raise AssertionError(
                    f"{step}.{name} has {frame.height} rows, fewer than {min_rows}"
                )
        return value

    def assert_lineage(
        self, result: Any, step: str, name: str = "output", *, upstream: Iterable[str] = ()
    ) -> Any:
        """Assert that output ``name`` of ``step`` traces back, in the lineage graph, to
        the run and to the outputs of every step in ``upstream``.  Returns the graph."""
        from conveyor.interfaces.lineage import node_id

        record = result.steps[step].outputs.get(name)
        if record is None:
            raise AssertionError(f"step {step!r} recorded no output {name!r}")
        graph = self.app.metadata.lineage(node_id("artifact", record.id), depth=50)
        if node_id("run", result.run_id) not in graph.nodes:
            raise AssertionError(f"{step}.{name} is not linked to run {result.run_id}")
        reached = {n.id for n in graph.nodes.values()}
        for before in upstream:
            outputs = result.steps[before].outputs.values()
            if not any(node_id("artifact", r.id) in reached for r in outputs):
                raise AssertionError(
                    f"{step}.{name} does not trace back to an output of step {before!r}"
                )
        return graph


def as_frame(value: Any, what: str) -> Any:
    """``value`` as a polars DataFrame (from polars, Arrow), or AssertionError."""
    import polars as pl

    if isinstance(value, pl.LazyFrame):
        return value.collect()
    if isinstance(value, pl.DataFrame):
        return value
    try:
        import pyarrow as pa

        if isinstance(value, pa.Table):
            return pl.from_arrow(value)
    except ImportError:  # pragma: no cover - pyarrow is a dependency
        pass
    raise AssertionError(f"{what} is a {type(value).__name__}, not a table")


def assert_schema(frame: Any, schema: Mapping[str, str], what: str) -> None:
    """Assert ``frame`` has each column of ``schema`` with that dtype (by name)."""
    actual = {name: str(dtype) for name, dtype in frame.schema.items()}
    problems = [
        f"{column}: missing" if column not in actual else f"{column}: {actual[column]} != {dtype}"
        for column, dtype in schema.items()
        if actual.get(column) != dtype
    ]
    if problems:
        raise AssertionError(f"{what} schema differs: {'; '.join(problems)} (has {actual})")


def project_stack(root: Path, project: Path) -> Any:
    """A Conveyor app on a copy of ``project`` (config, code, data) under ``root``.

    The copy is :func:`conveyor.ci.scratch_copy`'s, as ``conveyor check``'s dry run
    uses: the project's files without its state, every store the embedded default,
    empty, so no test touches real state.
    """
    from conveyor.app import add_to_path
    from conveyor.ci import scratch_copy
    from conveyor.config import BACKEND_SECTIONS, DEFAULT_BACKENDS, Config
    from conveyor.manager import PluginSelection, make_plugin_manager

    config = Config.load(cwd=project)
    for section in BACKEND_SECTIONS.values():
        if section != "server":  # how to serve is not where state lives
            config.data[section] = {"backend": DEFAULT_BACKENDS[section]}
    add_to_path(config.root)
    return scratch_copy(config, make_plugin_manager(PluginSelection.from_env()), root)
