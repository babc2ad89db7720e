"""``conveyor models ...``, ``conveyor runs ...`` and ``conveyor lineage``."""

from __future__ import annotations

import json
from typing import Any

import pytest


@pytest.fixture
def populated(conveyor_app: Any) -> dict[str, Any]:
    """A run that trained ``churn`` v1 and v2, with production on v1."""
    app = conveyor_app
    info = app.artifacts.put_bytes("models/churn/model.txt", b"tree\n")
    event = app.metadata.record_trigger_event("drift", "psi 0.31 on age")
    run_id = app.metadata.start_run("train", parameters={"lr": 0.05}, trigger_event=event.id)
    step = app.metadata.start_step(
        run_id,
        "fit",
        inputs={"train": {"uri": "file:///data/train.parquet", "fingerprint": "f" * 64}},
    )
    app.metadata.finish_step(step, "succeeded", outputs={"model": info}, metrics={"auc": 0.9})
    app.metadata.log_metrics(run_id, {"auc": 0.9})
    app.metadata.finish_run(run_id, "succeeded")
    for _ in range(2):
        mv = app.registry.register(
            "churn",
            artifact_uri=info.uri,
            sha256=info.sha256,
            run_id=run_id,
            metrics={"auc": 0.9},
            signature=[{"name": "age", "dtype": "float64"}],
        )
    app.registry.record_validation("churn", 1, passed=True, summary="beats incumbent")
    app.registry.set_alias("churn", "production", 1, actor="ci")
    return {"run": run_id, "step": step, "info": info, "latest": mv}


def test_models_list_and_show(cli: Any, populated: dict[str, Any]) -> None:
    result = cli.invoke("models", "list")
    assert result.exit_code == 0, result.output
    assert "churn" in result.output
    assert "production=v1" in result.output
    data = json.loads(cli.invoke("models", "list", "--json").output)
    assert data == [
        {
            "name": "churn",
            "latest_version": 2,
            "versions": 2,
            "aliases": {"production": 1},
            "updated": data[0]["updated"],
        }
    ]
    shown = cli.invoke("models", "show", "churn:1")
    assert "stage:        production" in shown.output
    assert "beats incumbent" in shown.output
    detail = json.loads(cli.invoke("models", "show", "churn:2", "--json").output)
    assert detail["version"] == 2
    assert detail["signature"]["features"][0]["name"] == "age"
    listing = json.loads(cli.invoke("models", "show", "churn", "--json").output)
    assert [v["stage"] for v in listing["versions"]] == ["production", "development"]
    missing = cli.invoke("models", "show", "nope")
    assert missing.exit_code == 1
    assert "no model named 'nope'" in missing.output


def test_promote_refuses_without_verdict_then_forces(cli: Any, populated: dict[str, Any]) -> None:
    refused = cli.invoke("models", "promote", "churn", "2", "--to", "production")
    assert refused.exit_code == 1
    assert "validation verdict" in refused.output
    assert "Hint:" in refused.output
    no_reason = cli.invoke("models", "promote", "churn", "2", "--to", "production", "--force")
    assert no_reason.exit_code == 1
    forced = cli.invoke(
        "models",
        "promote",
        "churn",
        "2",
        "--to",
        "production",
        "--force",
        "--reason",
        "hotfix",
        "--by",
        "alice",
        "--json",
    )
    assert forced.exit_code == 0, forced.output
    change = json.loads(forced.output)
    assert (change["from_version"], change["to_version"], change["forced"]) == (1, 2, True)
    history = json.loads(cli.invoke("models", "history", "churn", "--json").output)
    assert [(h["actor"], h["forced"]) for h in history] == [("ci", False), ("alice", True)]
    text = cli.invoke("models", "history", "churn").output
    assert "set (forced)" in text
    assert "hotfix" in text


def test_rollback_approve_archive_and_history_at(cli: Any, populated: dict[str, Any]) -> None:
    cli.invoke("models", "promote", "churn", "2", "--to", "champion")
    cli.invoke("models", "promote", "churn", "1", "--to", "champion")
    back = cli.invoke("models", "rollback", "churn", "--alias", "champion", "--by", "oncall")
    assert back.exit_code == 0, back.output
    assert "rolled back from v1 to v2" in back.output
    approved = cli.invoke("models", "approve", "churn", "2", "--by", "bob")
    assert approved.output.strip() == "churn v2 approved by bob"
    shown = json.loads(cli.invoke("models", "show", "churn:2", "--json").output)
    assert [a["by"] for a in shown["governance"]["approvals"]] == ["bob"]
    refused = cli.invoke("models", "promote", "churn", "2", "--to", "archived")
    assert refused.exit_code == 1  # still holds champion
    at = cli.invoke(
        "models",
        "history",
        "churn",
        "--alias",
        "production",
        "--at",
        "2000-01-01T00:00:00",
        "--json",
    )
    assert json.loads(at.output)["version"] is None
    nothing = cli.invoke("models", "rollback", "churn", "--alias", "staging")
    assert nothing.exit_code == 1


def test_models_check(cli: Any, populated: dict[str, Any], conveyor_app: Any) -> None:
    ok = cli.invoke("models", "check")
    assert ok.exit_code == 0, ok.output
    assert "Registry OK" in ok.output
    blob = conveyor_app.artifacts.root + "/blobs/" + populated["info"].sha256
    import os

    os.chmod(blob, 0o600)
    with open(blob, "wb") as handle:
        handle.write(b"tampered")
    bad = cli.invoke("models", "check", "--deep", "--json")
    assert bad.exit_code == 1
    findings = json.loads(bad.output)
    assert {f["subject"] for f in findings} == {"churn:1", "churn:2"}


def test_runs_list_show_and_lineage(cli: Any, populated: dict[str, Any]) -> None:
    run_id = populated["run"]
    listed = cli.invoke("runs", "list")
    assert run_id in listed.output
    assert "succeeded" in listed.output
    assert json.loads(cli.invoke("runs", "list", "--json").output)[0]["id"] == run_id
    shown = cli.invoke("runs", "show", run_id[:6])
    assert shown.exit_code == 0, shown.output
    assert "trigger drift: psi 0.31 on age" in shown.output
    assert "step fit" in shown.output
    data = json.loads(cli.invoke("runs", "show", run_id, "--json").output)
    assert data["steps"][0]["outputs"]["model"]["fingerprint"] == populated["info"].sha256
    assert data["trigger"]["reason"] == "psi 0.31 on age"
    tree = cli.invoke("lineage", "churn:1")
    assert tree.exit_code == 0, tree.output
    lines = tree.output.splitlines()
    assert lines[0].startswith("model churn v1")
    assert any("<trained_on>" in line or "<input>" in line for line in lines)
    assert any("file:///data/train.parquet" in line for line in lines)
    assert any("trigger drift: psi 0.31 on age" in line for line in lines)
    graph = json.loads(cli.invoke("lineage", "churn:1", "--json").output)
    assert graph["root"] == "model:churn:1"
    assert {n["kind"] for n in graph["nodes"]} == {"model", "artifact", "step", "run", "trigger"}
    down = json.loads(cli.invoke("lineage", f"run:{run_id}", "--downstream", "--json").output)
    assert {"model:churn:1", "model:churn:2"} <= {n["id"] for n in down["nodes"]}
    assert cli.invoke("lineage", "churn").exit_code == 1
    assert cli.invoke("runs", "show", "zzz").exit_code == 1


def test_runs_show_json_prints_a_non_finite_metric_as_null(
    cli: Any, populated: dict[str, Any], conveyor_app: Any
) -> None:
    run_id = populated["run"]
    conveyor_app.metadata.log_metrics(run_id, {"diverged": float("nan"), "peak": float("inf")})
    shown = cli.invoke("runs", "show", run_id, "--json")
    assert shown.exit_code == 0, shown.output
    assert "NaN" not in shown.output and "Infinity" not in shown.output
    metrics = json.loads(shown.output)["metrics"]
    assert metrics["diverged"] is None and metrics["peak"] is None
    assert metrics["auc"] == 0.9


def test_registration_and_alias_events_fire(conveyor_app: Any, register_plugin: Any) -> None:
    from conveyor import hookimpl

    seen: list[Any] = []

    class Listener:
        @hookimpl
        def on_model_registered(self, event: Any) -> None:
            seen.append(event)

        @hookimpl
        def on_alias_changed(self, event: Any) -> None:
            seen.append(event)

    register_plugin(Listener(), "listener")
    info = conveyor_app.artifacts.put_bytes("m.txt", b"tree\n")
    registry = conveyor_app.registry
    registry.register("m", artifact_uri=info.uri, sha256=info.sha256)
    registry.set_alias("m", "staging", 1, actor="me", reason="try")
    registry.set_alias("m", "staging", 1, actor="me")  # no move, no event
    assert [type(e).__name__ for e in seen] == ["ModelRegistered", "AliasChanged"]
    assert (seen[0].model, seen[0].version, seen[0].sha256) == ("m", 1, info.sha256)
    assert (seen[1].alias, seen[1].to_version, seen[1].reason) == ("staging", 1, "try")
