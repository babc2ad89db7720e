"""The local orchestrator on the real default stores (local files + SQLite)."""

from __future__ import annotations

import threading

import polars as pl
import pytest

from conveyor import hookimpl
from conveyor.config import Config
from conveyor.errors import ConveyorError
from conveyor.pipeline import GateRefused, files, pipeline, step
from conveyor.runs import run_pipeline

CALLS: dict[str, int] = {}


def called(name: str) -> None:
    CALLS[name] = CALLS.get(name, 0) + 1


@pytest.fixture(autouse=True)
def _reset_calls():
    CALLS.clear()


@step
def ingest(paths: list) -> pl.DataFrame:
    called("ingest")
    return pl.concat([pl.read_csv(p) for p in paths])


@step
def double(frame: pl.DataFrame, factor: int = 2) -> pl.DataFrame:
    called("double")
    return frame.with_columns(pl.col("x") * factor)


@step
def summarise(ctx, frame: pl.DataFrame) -> dict:
    called("summarise")
    ctx.log_metrics({"total": frame["x"].sum()})
    return {"rows": frame.height, "total": int(frame["x"].sum())}


@pipeline
def numbers(data: str = "data/*.csv", factor: int = 2):
    summarise(double(ingest(files(data)), factor=factor))


@pytest.fixture
def app(conveyor_app):
    data = conveyor_app.root / "data"
    data.mkdir()
    (data / "a.csv").write_text("x\n1\n2\n3\n")
    return conveyor_app


def configure(app, text: str) -> None:
    (app.root / "conveyor.toml").write_text(text)
    app.close()
    app.config = Config.load(cwd=app.root)


def test_run_records_steps_outputs_metrics_and_lineage(app):
    result = run_pipeline(app, numbers)
    assert result.status == "succeeded", result.error
    assert [o.status for o in result.steps.values()] == ["succeeded"] * 3
    assert result.output("summarise") == {"rows": 3, "total": 12}
    assert result.output("double")["x"].to_list() == [2, 4, 6]
    run = app.metadata.get_run(result.run_id)
    assert run.status == "succeeded"
    assert run.parameters == {"data": "data/*.csv", "factor": 2}
    assert [s.name for s in run.steps] == ["ingest", "double", "summarise"]
    assert run.steps[2].metrics == {"total": 12.0}
    summary = run.steps[2].outputs["output"]
    graph = app.metadata.lineage(f"artifact:{summary.id}", direction="upstream")
    assert any("a.csv" in str(n.attributes) or "data/" in n.label for n in graph.nodes.values())


def test_second_run_is_fully_cached_and_a_parameter_reruns_downstream(app):
    first = run_pipeline(app, numbers)
    again = run_pipeline(app, numbers)
    assert [o.status for o in again.steps.values()] == ["cached"] * 3
    assert again.output("summarise") == first.output("summarise")
    assert CALLS == {"ingest": 1, "double": 1, "summarise": 1}
    changed = run_pipeline(app, numbers, parameters={"factor": 3})
    assert [o.status for o in changed.steps.values()] == ["cached", "succeeded", "succeeded"]
    assert changed.output("summarise") == {"rows": 3, "total": 18}


def test_new_data_invalidates_the_cache(app):
    run_pipeline(app, numbers)
    (app.root / "data" / "b.csv").write_text("x\n10\n")
    result = run_pipeline(app, numbers)
    assert [o.status for o in result.steps.values()] == ["succeeded"] * 3
    assert result.output("summarise") == {"rows": 4, "total": 32}


def test_no_cache_runs_everything(app):
    run_pipeline(app, numbers)
    result = run_pipeline(app, numbers, use_cache=False)
    assert [o.status for o in result.steps.values()] == ["succeeded"] * 3


def test_a_deleted_output_is_not_reused(app):
    first = run_pipeline(app, numbers)
    key = first.steps["double"].outputs["output"].metadata["key"]
    app.artifacts.delete(key)
    again = run_pipeline(app, numbers)
    assert again.steps["double"].status == "succeeded"


ATTEMPTS = {"flaky": 0}


@step(retries=2, backoff_s=0.01)
def flaky() -> int:
    ATTEMPTS["flaky"] += 1
    if ATTEMPTS["flaky"] < 3:
        raise OSError("transient")
    return ATTEMPTS["flaky"]


@pipeline
def flaky_pipeline():
    flaky()


def test_retries_with_backoff(app):
    ATTEMPTS["flaky"] = 0
    result = run_pipeline(app, flaky_pipeline)
    assert result.status == "succeeded"
    assert result.steps["flaky"].attempts == 3
    ATTEMPTS["flaky"] = -10
    failing = run_pipeline(app, flaky_pipeline, use_cache=False)
    assert failing.status == "failed"
    assert failing.steps["flaky"].attempts == 3
    assert "OSError: transient" in failing.error


@step(retries=3)
def refuses() -> None:
    called("refuses")
    raise ConveyorError("data is bad", hint="fix the data")


@pipeline
def refusing():
    refuses()


def test_conveyor_errors_are_not_retried(app):
    result = run_pipeline(app, refusing)
    assert result.status == "failed"
    assert CALLS["refuses"] == 1
    assert result.hint == "fix the data"
    assert app.metadata.get_run(result.run_id).status == "failed"


@step(timeout_s=0.2)
def slow() -> None:
    threading.Event().wait(5)


@step
def after_slow(value: None) -> int:
    called("after_slow")
    return 1


@pipeline
def slow_pipeline():
    after_slow(slow())


def test_timeout_fails_the_step(app):
    result = run_pipeline(app, slow_pipeline)
    assert result.status == "failed"
    assert "timed out after 0.2 s" in result.error


def test_a_thread_past_its_timeout_is_reported_running_and_nothing_after_it_starts(app, capsys):
    import time

    begun = time.monotonic()
    result = run_pipeline(app, slow_pipeline)
    assert time.monotonic() - begun < 2, "the run waited for the thread"
    outcome = result.steps["slow"]
    assert outcome.status == "timed_out"
    assert "could not be stopped and may still be running" in outcome.error
    assert "no step after it was started" in outcome.error
    assert "warning: step 'slow' timed out after 0.2 s" in capsys.readouterr().err
    assert result.steps["after_slow"].status == "skipped"
    assert "after_slow" not in CALLS
    (execution,) = app.metadata.get_run(result.run_id).steps  # after_slow never started
    assert execution.status == "failed" and "timed out" in execution.error


@step
def gate() -> None:
    raise GateRefused("candidate is worse than production")


@step
def after_gate() -> int:
    called("after_gate")
    return 1


@pipeline
def gated():
    gate()
    after_gate()


def test_gate_refusal_ends_the_run_refused_and_skips_the_rest(app):
    result = run_pipeline(app, gated)
    assert result.status == "refused"
    assert result.steps["after_gate"].status == "skipped"
    assert "after_gate" not in CALLS
    assert app.metadata.get_run(result.run_id).status == "refused"


FAIL = {"on": True}


@step
def first() -> dict:
    called("first")
    return {"a": 1}


@step(cache=False)
def second(value: dict) -> dict:
    called("second")
    if FAIL["on"]:
        raise RuntimeError("broken until fixed")
    return {**value, "b": 2}


@pipeline
def resumable():
    second(first())


def test_resume_reuses_the_steps_that_succeeded(app):
    FAIL["on"] = True
    failed = run_pipeline(app, resumable, use_cache=False)
    assert failed.status == "failed"
    FAIL["on"] = False
    resumed = run_pipeline(app, resumable, use_cache=False, resume_from=failed.run_id)
    assert resumed.status == "succeeded"
    assert resumed.steps["first"].status == "cached"
    assert resumed.output("second") == {"a": 1, "b": 2}
    assert CALLS == {"first": 1, "second": 2}


BARRIER = threading.Barrier(2, timeout=60)  # generous: a loaded CI machine starts threads late


@step(cache=False)
def left() -> int:
    BARRIER.wait()
    return 1


@step(cache=False)
def right() -> int:
    BARRIER.wait()
    return 2


@step(cache=False)
def join(a: int, b: int) -> int:
    return a + b


@pipeline
def diamond():
    join(left(), right())


def test_independent_steps_run_in_parallel_when_asked(app):
    configure(app, "[orchestrator]\nmax_workers = 2\n")
    BARRIER.reset()
    result = run_pipeline(app, diamond)
    assert result.status == "succeeded", result.error
    assert result.output("join") == 3


def test_trigger_event_and_lifecycle_hooks(app, register_plugin):
    seen = []

    class Listener:
        @hookimpl
        def on_run_started(self, event):
            seen.append(("run_started", event.trigger))

        @hookimpl
        def on_step_finished(self, event):
            seen.append(("step", event.step, event.status))

        @hookimpl
        def on_run_finished(self, event):
            seen.append(("run_finished", event.status))

    register_plugin(Listener(), "listener")
    event = app.metadata.record_trigger_event("manual", "test")
    result = run_pipeline(app, numbers, trigger_event=event.id)
    assert app.metadata.get_run(result.run_id).trigger_event == event.id
    assert seen == [
        ("run_started", event.id),
        ("step", "ingest", "succeeded"),
        ("step", "double", "succeeded"),
        ("step", "summarise", "succeeded"),
        ("run_finished", "succeeded"),
    ]


# -- outputs kept in memory (persist=False) ----------------------------------------------


@step(persist=False)
def ingest_in_memory(paths: list) -> pl.DataFrame:
    called("ingest_in_memory")
    return pl.concat([pl.read_csv(p) for p in paths])


@pipeline
def numbers_in_memory(data: str = "data/*.csv", factor: int = 2):
    summarise(double(ingest_in_memory(files(data)), factor=factor))


def test_an_in_memory_output_is_recorded_by_a_derived_fingerprint_and_not_stored(app):
    result = run_pipeline(app, numbers_in_memory)
    assert result.ok, result.error
    record = result.steps["ingest_in_memory"].outputs["output"]
    assert record.uri == "transient://numbers_in_memory/ingest_in_memory/output"
    assert record.metadata["transient"] is True
    assert result.output("ingest_in_memory")["x"].to_list() == [1, 2, 3]  # this run's value
    keys = [info.key for info in app.artifacts.list(f"runs/{result.run_id}/")]
    assert not any("ingest_in_memory" in key for key in keys)
    assert any("double" in key for key in keys)
    # the same inputs give the same fingerprint; new data gives another
    again = run_pipeline(app, numbers_in_memory, use_cache=False)
    assert again.steps["ingest_in_memory"].outputs["output"].fingerprint == record.fingerprint
    (app.root / "data" / "b.csv").write_text("x\n10\n")
    changed = run_pipeline(app, numbers_in_memory)
    assert changed.steps["ingest_in_memory"].outputs["output"].fingerprint != record.fingerprint
    assert changed.output("summarise") == {"rows": 4, "total": 32}


def test_unchanged_inputs_reuse_an_in_memory_step_without_running_it(app):
    run_pipeline(app, numbers_in_memory)
    again = run_pipeline(app, numbers_in_memory)
    assert [o.status for o in again.steps.values()] == ["cached"] * 3
    assert CALLS == {"ingest_in_memory": 1, "double": 1, "summarise": 1}
    with pytest.raises(ConveyorError, match="kept in memory") as caught:
        again.output("ingest_in_memory")
    assert "use_cache=False" in caught.value.hint


def test_a_cache_miss_downstream_recomputes_the_in_memory_value_once(app):
    run_pipeline(app, numbers_in_memory)
    changed = run_pipeline(app, numbers_in_memory, parameters={"factor": 3})
    assert [o.status for o in changed.steps.values()] == ["cached", "succeeded", "succeeded"]
    assert changed.output("summarise") == {"rows": 3, "total": 18}
    assert CALLS == {"ingest_in_memory": 2, "double": 2, "summarise": 2}


# -- gates: core turns a failing verdict into the outcome "refused" ------------------------


@step(gate=True)
def judge(passed: bool) -> object:
    from conveyor.checks import Finding
    from conveyor.ml.gate import GateVerdict

    called("judge")
    return GateVerdict(
        passed=passed,
        findings=[] if passed else [Finding(check="test.worse", message="the candidate is worse")],
    )


@pipeline
def judged(passed: bool = False):
    judge(passed)
    after_gate()


def test_a_failing_verdict_refuses_the_run_also_when_reused_from_the_cache(app):
    first = run_pipeline(app, judged)
    assert first.status == "refused"
    assert first.steps["judge"].status == "refused"
    assert [f.check for f in first.findings] == ["test.worse"]
    assert "Model gate: FAILED" in first.error
    assert first.steps["after_gate"].status == "skipped"
    again = run_pipeline(app, judged)
    assert again.status == "refused"
    assert again.steps["judge"].status == "refused"
    assert [f.check for f in again.findings] == ["test.worse"]
    assert CALLS == {"judge": 1}, "the stored verdict was reused"
    passing = run_pipeline(app, judged, parameters={"passed": True})
    assert passing.ok, passing.error
    assert CALLS == {"judge": 2, "after_gate": 1}


def test_a_gate_step_has_one_output():
    from conveyor.pipeline import PipelineDefinitionError

    with pytest.raises(PipelineDefinitionError, match="exactly one output"):
        step(gate=True, outputs=("a", "b"))
