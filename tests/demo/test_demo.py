"""`conveyor demo --size small`, end to end in a subprocess: the loop closes by itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

MODEL = "churn-demo"


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, float]:
    folder = tmp_path_factory.mktemp("demo") / "conveyor-demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "conveyor", "demo", "--dir", str(folder), "--size", "small"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=folder.parent,
    )
    seconds = time.monotonic() - began
    assert done.returncode == 0, done.stdout + done.stderr
    return folder, done.stdout, seconds


def test_two_versions_the_second_trained_because_of_the_drift_trigger(
    demo, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conveyor.app import Conveyor
    from conveyor.testing import isolate_project_imports

    folder, _, _ = demo
    # loading the app puts the demo folder on sys.path: later tests must not import
    # its features.py and pipeline.py
    isolate_project_imports(request, monkeypatch, folder)
    app = Conveyor.load(cwd=folder)
    try:
        versions = app.registry.list_versions(MODEL)
        assert [v.version for v in versions] == [1, 2]
        assert app.registry.resolve(MODEL, "production").version == 2
        first, second = versions
        # the first came from a manual run, the second from the recorded drift trigger
        first_event = app.metadata.get_trigger_event(
            app.metadata.get_run(first.run_id).trigger_event
        )
        assert first_event.trigger == "manual"
        run = app.metadata.get_run(second.run_id)
        event = app.metadata.get_trigger_event(run.trigger_event)
        assert event.trigger == "drift" and event.fired
        assert "skew breached" in event.reason
        graph = app.metadata.lineage(f"model:{MODEL}:2")
        triggers = [n for n in graph.nodes.values() if n.kind == "trigger"]
        assert [n.id for n in triggers] == [f"trigger:{event.id}"]
        assert triggers[0].label == "drift"
    finally:
        app.close()


def test_the_swap_under_load_failed_no_request(demo) -> None:
    folder, _, _ = demo
    summary = json.loads((folder / "demo-summary.json").read_text())
    traffic = summary["traffic"]
    assert traffic["failed"] == 0, traffic["errors"]
    assert traffic["sent"] == traffic["ok"] > 0
    # both versions answered the traffic that kept flowing through the swap, in order
    assert set(traffic["by_version"]) == {"1", "2"}
    assert traffic["by_version"]["2"] >= 1
    assert traffic["versions_monotonic"]
    assert summary["versions"] == [1, 2] and summary["production"] == 2


def test_the_monitoring_saw_the_drift_and_the_reports_parse(demo) -> None:
    folder, stdout, _ = demo
    summary = json.loads((folder / "demo-summary.json").read_text())
    assert summary["drift"]["week4"] == []
    assert any(name.endswith(".f00") for name in summary["drift"]["week5"])
    assert len(summary["reports"]) == 2
    for report in summary["reports"]:
        path = Path(report)
        assert path.is_file() and path.parent.parent == folder
        parser = _Tags()
        parser.feed(path.read_text(encoding="utf-8"))
        parser.close()
        assert {"html", "svg", "table"} <= set(parser.tags)
        assert str(path) in stdout
    assert f"conveyor models history {MODEL}" in stdout
    assert f"conveyor lineage {MODEL}:2" in stdout
    for stage in range(1, 9):
        assert f"[{stage}/8]" in stdout


def test_a_folder_that_is_not_a_demo_is_refused_untouched(tmp_path: Path) -> None:
    from conveyor.cli import make_cli
    from conveyor.manager import make_plugin_manager

    keep = tmp_path / "notes.txt"
    keep.write_text("mine")
    result = CliRunner().invoke(make_cli(make_plugin_manager()), ["demo", "--dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "is not empty and is not a previous demo's folder" in result.output
    assert keep.read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == [
        "notes.txt"
    ]


def test_the_retrained_model_measures_better_on_the_new_data(demo) -> None:
    folder, _, _ = demo
    auc = json.loads((folder / "demo-summary.json").read_text())["auc"]
    assert auc["v1_week5"] < auc["v1_week4"], "the shift costs the first model"
    assert auc["v2_week6"] > auc["v1_week6"] + 0.03, auc
