"""``conveyor check``: exit 0 on a good project, 1 with a clear message on broken ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def project(cli: Any, tmp_path: Path) -> Path:
    assert cli.invoke("init", "shop", "--rows", "1500").exit_code == 0
    root = tmp_path / "shop"
    return root


def check(cli: Any, root: Path, *args: str) -> Any:
    return cli.invoke("--config", str(root / "conveyor.toml"), "check", "--duration", "0.5", *args)


def stages(result: Any) -> dict[str, Any]:
    return {s["name"]: s for s in json.loads(result.output)["stages"]}


def test_a_good_project_passes_and_writes_the_report(cli, project):
    report = project / "check.md"
    result = check(cli, project, "--report", str(report))
    assert result.exit_code == 0, result.output
    assert "check passed" in result.output
    text = report.read_text()
    assert text.startswith("## conveyor check: passed")
    for stage in ("config", "pipelines", "contracts", "dry_run", "serving"):
        assert f"| {stage} | ✅ pass |" in text
    assert "| auc |" in text and "Gate verdict: passed" in text
    assert "Latency under load: p50" in text
    runs = cli.invoke("--config", str(project / "conveyor.toml"), "runs", "list", "--json")
    assert json.loads(runs.output) == [], "the dry run ran on a scratch copy"


def test_bad_config_fails_first(cli, project):
    with (project / "conveyor.toml").open("a") as f:
        f.write("\n[no_such_section]\nx = 1\n")
    result = check(cli, project, "--json")
    assert result.exit_code == 1
    config = stages(result)["config"]
    assert config["ok"] is False and "unknown section '$.no_such_section'" in config["message"]
    assert list(stages(result)) == ["config"]


def test_a_pipeline_that_does_not_import(cli, project):
    (project / "pipeline.py").write_text("import no_such_module_anywhere\n")
    result = check(cli, project)
    assert result.exit_code == 1
    assert "FAIL  pipelines" in result.output
    assert "no_such_module_anywhere" in result.output


def test_a_contract_violation_in_the_sample_data(cli, project):
    import polars as pl

    data = sorted((project / "data").glob("*.parquet"))
    frame = pl.read_parquet(data[-1])
    frame.with_columns(pl.lit("n/a").alias("f03")).write_parquet(data[-1])  # float64 in the view
    result = check(cli, project)
    assert result.exit_code == 1
    assert "FAIL  contracts" in result.output, result.output
    assert "breaks the contract at step" in result.output


def test_a_candidate_that_fails_the_smoke_request(cli, project):
    with (project / "conveyor.toml").open("a") as f:
        f.write("\n[server]\nmax_body = 16\n")
    result = check(cli, project, "--json")
    assert result.exit_code == 1
    serving = stages(result)["serving"]
    assert serving["ok"] is False and "fails the smoke request" in serving["message"]
    assert stages(result)["dry_run"]["ok"] is True


def test_a_missed_latency_budget(cli, project):
    result = check(cli, project, "--max-latency", "p99=0.0001", "--json")
    assert result.exit_code == 1
    serving = stages(result)["serving"]
    assert (
        serving["ok"] is False
        and "p99" in serving["message"]
        and "> 0.0001 ms" in serving["message"]
    )
