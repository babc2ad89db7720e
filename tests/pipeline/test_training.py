"""The example project end to end: init, train, gate, register, promote, refuse, cache."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from conveyor.ml.data import Shift, generate

FAST = ["-p", "train={num_boost_round = 60, learning_rate = 0.2}"]


@pytest.fixture
def project(cli, tmp_path, monkeypatch):
    result = cli.invoke("init", "proj", "--rows", "6000")
    assert result.exit_code == 0, result.output
    monkeypatch.chdir(tmp_path / "proj")
    return tmp_path / "proj"


def run(cli, *extra):
    result = cli.invoke("run", "--json", *FAST, *extra)
    return result.exit_code, json.loads(result.output)


def statuses(summary):
    return {s["step"]: s["status"] for s in summary["steps"]}


def test_train_gate_register_promote_then_refuse_worse_data_then_fully_cached(cli, project):
    code, first = run(cli)
    assert code == 0, first
    assert first["status"] == "succeeded"
    assert set(statuses(first).values()) == {"succeeded"}
    shown = json.loads(cli.invoke("models", "show", "proj", "--json").output)
    assert json.dumps(shown).count('"production"') >= 1
    listed = json.loads(cli.invoke("models", "list", "--json").output)
    (model,) = listed
    assert model["name"] == "proj"
    assert model["aliases"] == {"production": 1, "staging": 1}
    # the split is kept in memory by the pipeline; registering stored the three parts
    from conveyor.app import Conveyor

    app = Conveyor.load(cwd=project)
    datasets = {d.role: d for d in app.registry.get("proj", 1).datasets}
    assert set(datasets) == {"train", "validation", "holdout"}
    for ref in datasets.values():
        assert not ref.uri.startswith("transient:")
        assert app.artifacts.has_content(ref.uri)
        assert ref.start is not None and ref.end is not None
    assert datasets["train"].end <= datasets["validation"].start
    app.close()

    # worse data arrives: the label is noise, so the candidate fails the gate
    generate(
        6000, days=28, seed=7, start=datetime(2024, 1, 29), shift=Shift(concept=0.5)
    ).write_parquet(project / "data" / "batch-0002.parquet")
    code, second = run(cli)
    assert code == 1
    assert second["status"] == "refused"
    assert statuses(second)["gate"] == "refused"
    assert statuses(second)["register_model"] == "skipped"
    assert "Model gate: FAILED" in second["error"]
    assert {f["check"] for f in second["findings"]} >= {"gate.threshold"}
    listed = json.loads(cli.invoke("models", "list", "--json").output)
    assert listed[0]["aliases"] == {"production": 1, "staging": 1}, "production moved"

    # the same inputs again: nothing is recomputed, and the refusal stands
    code, third = run(cli)
    assert code == 1
    assert third["status"] == "refused"
    assert set(statuses(third).values()) <= {"cached", "refused", "skipped"}
    assert statuses(third)["train_model"] == "cached"
    assert statuses(third)["gate"] == "refused"


def test_unchanged_inputs_after_promotion_are_fully_cached(cli, project):
    assert run(cli)[0] == 0
    assert run(cli)[0] == 0  # production moved: validation and gate re-check against it
    code, third = run(cli)
    assert code == 0
    assert set(statuses(third).values()) == {"cached"}


def test_approval_policy_keeps_production_until_approved(cli, project, monkeypatch):
    # the scaffold's production profile says [promotion] production = "approval"
    monkeypatch.setenv("CONVEYOR_PROFILE", "production")
    approval = ()
    assert run(cli, *approval)[0] == 0
    listed = json.loads(cli.invoke("models", "list", "--json").output)
    assert listed[0]["aliases"] == {"staging": 1}
    approved = cli.invoke("models", "approve", "proj", "1", "--by", "alice")
    assert approved.exit_code == 0, approved.output
    code, summary = run(cli, *approval)
    assert code == 0
    assert statuses(summary)["promote"] == "succeeded", "an approval reruns promotion"
    assert statuses(summary)["train_model"] == "cached"
    listed = json.loads(cli.invoke("models", "list", "--json").output)
    assert listed[0]["aliases"] == {"production": 1, "staging": 1}


def test_unknown_pipeline_parameter_is_a_clear_error(cli, project):
    result = cli.invoke("run", "-p", "rounds=3")
    assert result.exit_code == 1
    assert "got bad parameters" in result.output
    assert "Hint: its parameters are: data, model" in result.output


def test_a_plugin_model_check_joins_the_gate(cli, project, register_plugin):
    from conveyor import hookimpl
    from conveyor.checks import Finding

    seen = {}

    class Governance:
        @hookimpl
        def check_model(self, context):
            seen["auc"] = context.metrics["auc"]
            seen["incumbent"] = context.incumbent_metrics
            return [Finding(check="governance.signoff", message="no model card yet")]

    register_plugin(Governance(), "governance")
    code, summary = run(cli)
    assert code == 1
    assert summary["status"] == "refused"
    assert {f["check"] for f in summary["findings"]} >= {"governance.signoff"}
    assert 0.5 < seen["auc"] <= 1.0
    assert seen["incumbent"] is None
    assert json.loads(cli.invoke("models", "list", "--json").output) == []


READ_BACK = """
import json, sys
from conveyor.app import Conveyor
from conveyor.runs import load_run_output

app = Conveyor.load()
run = app.metadata.get_run(sys.argv[1])
seen = {}
for execution in run.steps:
    for name, record in execution.outputs.items():
        if record.metadata.get("transient"):
            continue
        value = load_run_output(app, run.id, execution.name, name)
        seen[f"{execution.name}.{name}"] = {"type": type(value).__name__,
                                             "passed": getattr(value, "passed", None)}
print(json.dumps(seen))
"""


def test_every_stored_output_of_a_run_reads_back_in_a_fresh_process(cli, project):
    import os
    import subprocess
    import sys

    code, summary = run(cli)
    assert code == 0, summary
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    done = subprocess.run(
        [sys.executable, "-c", READ_BACK, summary["run_id"]],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert {k: v["type"] for k, v in seen.items()} == {
        "ingest_features.output": "dict",
        "build_training_set.output": "DataFrame",
        "validate_data.output": "DataProfile",
        "train_model.output": "TrainedModel",
        "evaluate_candidate.output": "Evaluation",
        "gate.output": "GateVerdict",
        "register_model.output": "dict",
        "promote.output": "dict",
        "materialize_features.output": "dict",
    }
    assert seen["gate.output"]["passed"] is True
