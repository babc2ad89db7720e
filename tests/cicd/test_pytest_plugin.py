"""Pipeline CI: a separate project's tests get the fixtures through the pytest11 entry point."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

PIPELINE = """
import polars as pl

from conveyor.pipeline import pipeline, step


@step
def raw(rows: int):
    if rows < 0:
        raise ValueError("rows must be >= 0")
    return pl.DataFrame({"customer": list(range(rows)), "spend": [float(i) for i in range(rows)]})


@step
def features(table):
    return table.with_columns((pl.col("spend") * 2).alias("spend_x2"))


@pipeline
def training(rows: int = 10):
    features(raw(rows))
"""

TESTS = """
import pytest

import pipeline


def test_the_whole_pipeline_produces_the_agreed_schema_and_lineage(conveyor_pipeline):
    run = conveyor_pipeline.run("training", rows=25)
    table = conveyor_pipeline.assert_artifact(
        run, "features", schema={"customer": "Int64", "spend_x2": "Float64"}, min_rows=25
    )
    assert table["spend_x2"].to_list()[:3] == [0.0, 2.0, 4.0]
    conveyor_pipeline.assert_lineage(run, "features", upstream=["raw"])
    assert conveyor_pipeline.sample_output(run, "features", n=5).height == 5


def test_one_step_on_plain_values(conveyor_pipeline):
    run = conveyor_pipeline.run_step(pipeline.raw, 3)
    assert conveyor_pipeline.assert_artifact(run, "raw", min_rows=3).height == 3


def test_the_stack_is_temporary(conveyor_stack, conveyor_project_dir, tmp_path):
    assert conveyor_stack.config.section("pipelines")["training"]["target"] == "pipeline:training"
    assert conveyor_stack.root == tmp_path / conveyor_project_dir.name
    assert (conveyor_stack.root / "pipeline.py").exists(), "the project's files are copied"


def test_a_wrong_schema_is_reported(conveyor_pipeline):
    run = conveyor_pipeline.run("training")
    with pytest.raises(AssertionError, match="spend_x2: Float64 != Int64"):
        conveyor_pipeline.assert_artifact(run, "features", schema={"spend_x2": "Int64"})


def test_a_missing_upstream_is_reported(conveyor_pipeline):
    run = conveyor_pipeline.run("training")
    with pytest.raises(AssertionError, match="does not trace back to an output of step 'features'"):
        conveyor_pipeline.assert_lineage(run, "raw", upstream=["features"])


def test_a_failing_step_names_itself(conveyor_pipeline):
    with pytest.raises(AssertionError, match="raw: failed: .*rows must be >= 0"):
        conveyor_pipeline.run("training", rows=-1)
"""


def make_project(root: Path) -> None:
    root.mkdir()
    (root / "conveyor.toml").write_text('[pipelines.training]\ntarget = "pipeline:training"\n')
    (root / "pipeline.py").write_text(PIPELINE)
    (root / "tests").mkdir()
    (root / "tests" / "test_pipeline.py").write_text(TESTS)


def pytest_in(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_projects_own_tests_use_the_fixtures_through_the_entry_point(tmp_path):
    project = tmp_path / "churn"
    make_project(project)
    done = pytest_in(project)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"\b6 passed\b", done.stdout), done.stdout
    assert not (project / ".conveyor").exists(), "the tests' stack lives in tmp_path"


def test_the_plugin_can_be_switched_off(tmp_path):
    project = tmp_path / "churn"
    make_project(project)
    done = pytest_in(project, "-p", "no:conveyor")
    assert done.returncode != 0
    assert "fixture 'conveyor_pipeline' not found" in done.stdout


def test_loading_the_plugin_imports_nothing_heavy():
    code = (
        "import sys, conveyor.testing; "
        "print(sorted({'polars', 'pyarrow', 'lightgbm', 'numpy', 'fsspec'} & set(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd="/"
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
