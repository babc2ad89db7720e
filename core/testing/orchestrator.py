"""The orchestrator (executor) conformance suite.

Subclass :class:`OrchestratorContract` and provide a fixture ``app``: a Conveyor
app whose ``[orchestrator]`` selects the executor under test, rooted in a
temporary folder.  Core runs the pipelines (:func:`conveyor.runs.run_pipeline`);
the suite checks what the executor must give core: ordering, parallel
independent steps (when ``max_parallel > 1``), failures reported with their
exception, core's retries and timeouts, and outputs that come back intact.

The steps are module-level functions of this module, so an executor that runs
work in other processes finds them there.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pytest

from conveyor.errors import ConveyorError
from conveyor.pipeline import pipeline, step
from conveyor.runs import read_output, run_pipeline

# -- steps ----------------------------------------------------------------------------


@step(cache=False)
def start(n: int) -> dict:
    return {"seen": [n], "at": time.time()}


@step(cache=False)
def then(previous: dict, n: int) -> dict:
    return {"seen": [*previous["seen"], n], "at": time.time(), "after": previous["at"]}


@pipeline
def chain():
    then(then(start(1), n=2), n=3)


@step(cache=False)
def busy(name: str, seconds: float = 0.5) -> dict:
    begun = time.time()
    time.sleep(seconds)
    return {"name": name, "start": begun, "end": time.time()}


@pipeline
def two_independent():
    busy("a")
    busy("b")


@step(cache=False)
def explodes() -> None:
    raise ValueError("boom from the step")


@step(cache=False)
def never_reached(value: Any) -> int:
    return 1


@pipeline
def failing():
    never_reached(explodes())


def _bump(ctx: Any, name: str) -> int:
    counter = ctx.app.root / f"{name}.attempts"
    count = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(count))
    return count


@step(cache=False, retries=2, backoff_s=0.05)
def flaky(ctx) -> int:
    count = _bump(ctx, "flaky")
    if count < 3:
        raise OSError(f"transient failure {count}")
    return count


@pipeline
def flaky_pipeline():
    flaky()


@step(cache=False, retries=3, backoff_s=0.05)
def bad_data(ctx) -> int:
    _bump(ctx, "bad_data")
    raise ConveyorError("the data is bad", hint="fix the data")


@pipeline
def final_error():
    bad_data()


@step(cache=False, timeout_s=0.5)
def hangs() -> int:
    time.sleep(10)  # far past the timeout, so a loaded machine cannot blur the two
    return 1


@pipeline
def hanging():
    never_reached(hangs())


@step(cache=False, outputs=("raw", "meta", "table"))
def produce() -> tuple:
    import polars as pl

    frame = pl.DataFrame({"id": [1, 2, 3], "x": [0.5, None, 2.5], "s": ["a", "b", None]})
    return bytes(range(256)) * 4, {"k": [1, 2.5, "x", None], "nested": {"a": True}}, frame


@step(cache=False)
def consume(raw: bytes, meta: dict, table: Any) -> dict:
    return {
        "sha256": hashlib.sha256(raw).hexdigest(),
        "meta": meta,
        "rows": table.height,
        "x": table["x"].to_list(),
        "s": table["s"].to_list(),
    }


@pipeline
def round_trip():
    raw, meta, table = produce()
    consume(raw, meta, table)


# -- the suite -------------------------------------------------------------------------


class OrchestratorContract:
    """What every orchestrator (executor) must do for core.  Provide ``app``."""

    def test_steps_run_in_dependency_order(self, app: Any) -> None:
        result = run_pipeline(app, chain)
        assert result.ok, result.error
        assert [o.status for o in result.steps.values()] == ["succeeded"] * 3
        final = result.output("then_2")
        assert final["seen"] == [1, 2, 3]
        middle = result.output("then")
        assert middle["after"] <= middle["at"] <= final["after"] <= final["at"]

    def test_independent_steps_run_in_parallel(self, app: Any) -> None:
        if app.orchestrator.max_parallel < 2:
            pytest.skip("this executor runs one step at a time")
        result = run_pipeline(app, two_independent)
        assert result.ok, result.error
        a, b = result.output("busy"), result.output("busy_2")
        assert max(a["start"], b["start"]) < min(a["end"], b["end"]), "they did not overlap"

    def test_a_failure_is_reported_with_its_exception(self, app: Any) -> None:
        result = run_pipeline(app, failing)
        assert result.status == "failed"
        assert result.steps["explodes"].status == "failed"
        assert result.error is not None
        assert "ValueError: boom from the step" in result.error
        assert result.steps["never_reached"].status == "skipped"
        assert app.metadata.get_run(result.run_id).status == "failed"

    def test_core_retries_unexpected_errors(self, app: Any) -> None:
        result = run_pipeline(app, flaky_pipeline)
        assert result.ok, result.error
        assert result.steps["flaky"].attempts == 3
        assert result.output("flaky") == 3
        assert (app.root / "flaky.attempts").read_text() == "3"

    def test_conveyor_errors_are_final(self, app: Any) -> None:
        result = run_pipeline(app, final_error)
        assert result.status == "failed"
        assert result.steps["bad_data"].attempts == 1
        assert result.hint == "fix the data"
        assert (app.root / "bad_data.attempts").read_text() == "1"

    def test_a_step_past_its_timeout_is_timed_out_and_nothing_after_it_starts(
        self, app: Any
    ) -> None:
        begun = time.monotonic()
        result = run_pipeline(app, hanging)
        assert time.monotonic() - begun < 8, "core waited for the step to finish"
        assert result.status == "failed"
        assert result.steps["hangs"].status == "timed_out"
        assert result.error is not None
        assert "timed out after 0.5 s" in result.error
        assert result.steps["never_reached"].status == "skipped"
        (execution,) = [s for s in app.metadata.get_run(result.run_id).steps if s.name == "hangs"]
        assert execution.status == "failed"
        assert "timed out" in execution.error

    def test_outputs_come_back_intact(self, app: Any) -> None:
        result = run_pipeline(app, round_trip)
        assert result.ok, result.error
        raw = bytes(range(256)) * 4
        assert result.output("produce", "raw") == raw
        assert result.output("produce", "meta") == {"k": [1, 2.5, "x", None], "nested": {"a": True}}
        assert result.output("consume") == {
            "sha256": hashlib.sha256(raw).hexdigest(),
            "meta": {"k": [1, 2.5, "x", None], "nested": {"a": True}},
            "rows": 3,
            "x": [0.5, None, 2.5],
            "s": ["a", "b", None],
        }
        record = result.steps["produce"].outputs["raw"]
        assert record.fingerprint == hashlib.sha256(raw).hexdigest()
        assert read_output(app, record) == raw, "the stored bytes differ"
        table = read_output(app, result.steps["produce"].outputs["table"])
        assert table["s"].to_list() == ["a", "b", None]
        assert app.artifacts.info(record.metadata["key"]).sha256 == record.fingerprint
