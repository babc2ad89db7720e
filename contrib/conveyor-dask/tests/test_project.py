"""The scaffolded project on a 2-worker cluster: the same run as on the local orchestrator."""

from __future__ import annotations

import json

FAST = ["-p", "train={num_boost_round = 60, learning_rate = 0.2}"]
# Two outputs differ between any two runs, whatever runs them: ingest_features answers with
# the time it ingested, and the gate's verdict carries the seconds its load-and-predict
# check took.  So do the keys of the steps that read them.
UNREPEATABLE = ("ingest_features", "gate", "materialize_features")
THEIR_READERS = ("build_training_set", "materialize_features", "register_model")


def run(cli, *extra):
    result = cli.invoke("run", "--json", *FAST, *extra)
    return result.exit_code, json.loads(result.output)


def recorded(project):
    """Per step: its cache key and the fingerprints of its inputs and outputs."""
    from conveyor.app import Conveyor

    app = Conveyor.load(cwd=project)
    try:
        (run_summary,) = app.metadata.list_runs()[:1]
        execution = app.metadata.get_run(run_summary.id)
        steps = {
            s.name: {
                "cache_key": s.cache_key,
                "inputs": {k: v.fingerprint for k, v in s.inputs.items()},
                "outputs": {k: v.fingerprint for k, v in s.outputs.items()},
            }
            for s in execution.steps
        }
        verdict = app.registry.validations("proj", 1)[-1]
        return steps, (verdict.passed, verdict.summary, app.registry.get("proj", 1).sha256)
    finally:
        app.close()


def test_the_scaffolded_project_runs_on_the_cluster_as_it_does_locally(
    cli, tmp_path, monkeypatch, dask_plugin, dask_toml
):
    projects = {}
    for where in ("local", "cluster"):
        monkeypatch.chdir(tmp_path)
        (tmp_path / where).mkdir()
        monkeypatch.chdir(tmp_path / where)
        assert cli.invoke("init", "proj", "--rows", "4000").exit_code == 0
        projects[where] = tmp_path / where / "proj"
        monkeypatch.chdir(projects[where])
        if where == "cluster":
            with (projects[where] / "conveyor.toml").open("a") as toml:
                toml.write("\n" + dask_toml)
        code, first = run(cli)
        assert code == 0, first
        assert {s["status"] for s in first["steps"]} == {"succeeded"}
    local, local_verdict = recorded(projects["local"])
    cluster, cluster_verdict = recorded(projects["cluster"])
    assert sorted(cluster) == sorted(local)
    # every other key, input and output is the same, the training set and model included
    for name in local:
        if name not in THEIR_READERS:
            assert cluster[name]["cache_key"] == local[name]["cache_key"], name
            assert cluster[name]["inputs"] == local[name]["inputs"], name
        if name not in UNREPEATABLE:
            assert cluster[name]["outputs"] == local[name]["outputs"], name
    assert cluster_verdict == local_verdict
    assert cluster_verdict[0] is True

    # promotion moved production: validation and gate re-check against it, then all cached
    assert run(cli)[0] == 0
    code, third = run(cli)
    assert code == 0, third
    assert {s["status"] for s in third["steps"]} == {"cached"}
    # the local orchestrator computes the very same keys for every step of this project
    text = (projects["cluster"] / "conveyor.toml").read_text().replace(dask_toml, "")
    (projects["cluster"] / "conveyor.toml").write_text(text)
    code, local_run = run(cli)
    assert code == 0, local_run
    assert {s["status"] for s in local_run["steps"]} == {"cached"}
