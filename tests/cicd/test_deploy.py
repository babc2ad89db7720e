"""Pipeline CD: environments, their deployment rules, the audit log and watch's refusal."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

PIPELINE = """
from conveyor.pipeline import pipeline, step


@step
def hello():
    return {"hello": 1}


@pipeline
def training():
    hello()
"""

CONFIG = """
[pipelines.training]
target = "pipeline:training"

[triggers.yearly]
backend = "cron"
schedule = "0 0 1 1 *"
pipeline = "training"

[profiles.test.deploy]
mode = "auto"

[profiles.preprod.deploy]
mode = "review"
after = "test"

[profiles.production.deploy]
mode = "approval"
approvers = ["alice"]
after = "preprod"
min_runs = 2
"""


def project(root: Path) -> None:
    (root / "conveyor.toml").write_text(CONFIG)
    (root / "pipeline.py").write_text(PIPELINE)


def deploy(cli: Any, profile: str, *extra: str) -> Any:
    return cli.invoke("pipelines", "deploy", "training", "--profile", profile, *extra)


def test_production_needs_a_named_approver_and_n_preprod_runs_and_both_are_audited(cli, tmp_path):
    project(tmp_path)
    refused = deploy(cli, "production", "--approved-by", "alice")
    assert refused.exit_code == 1
    assert "is not the one deployed in preprod" in refused.output

    assert deploy(cli, "test").exit_code == 0
    unreviewed = deploy(cli, "preprod")
    assert unreviewed.exit_code == 1 and "no reviewer is named" in unreviewed.output
    assert deploy(cli, "preprod", "--reviewed-by", "bob").exit_code == 0

    no_approver = deploy(cli, "production")
    assert no_approver.exit_code == 1
    assert "named approver" in no_approver.output and "alice" in no_approver.output
    wrong = deploy(cli, "production", "--approved-by", "mallory")
    assert wrong.exit_code == 1 and "'mallory' is not an approver" in wrong.output
    early = deploy(cli, "production", "--approved-by", "alice")
    assert early.exit_code == 1 and "0 of the 2 successful run(s)" in early.output

    assert cli.invoke("--profile", "preprod", "run", "training").exit_code == 0
    # a run of the same code in another environment does not count
    assert cli.invoke("--profile", "test", "run", "training").exit_code == 0
    still = deploy(cli, "production", "--approved-by", "alice")
    assert still.exit_code == 1 and "1 of the 2" in still.output
    assert cli.invoke("--profile", "preprod", "run", "training").exit_code == 0
    allowed = deploy(cli, "production", "--approved-by", "alice")
    assert allowed.exit_code == 0, allowed.output
    assert "Deployed training" in allowed.output

    log = cli.invoke("pipelines", "history", "training", "--profile", "production", "--json")
    entries = json.loads(log.output)
    assert [e["action"] for e in entries] == ["refused"] * 5 + ["deployed"]
    assert [e["approved_by"] for e in entries] == [
        "alice",
        None,
        "mallory",
        "alice",
        "alice",
        "alice",
    ]
    assert {e["environment"] for e in entries} == {"production"}
    assert "1 of the 2" in entries[4]["reason"]
    preprod = json.loads(
        cli.invoke("pipelines", "history", "--profile", "preprod", "--json").output
    )
    assert [(e["action"], e["reviewed_by"]) for e in preprod] == [
        ("refused", None),
        ("deployed", "bob"),
    ]
    table = cli.invoke("pipelines", "history", "--profile", "production")
    assert "mallory" in table.output and "deployed" in table.output


def test_watch_runs_only_the_deployed_version(cli, tmp_path):
    project(tmp_path)
    undeployed = cli.invoke("--profile", "test", "watch", "--once")
    assert undeployed.exit_code == 1
    assert "has no deployed version in test" in undeployed.output
    assert deploy(cli, "test").exit_code == 0
    assert cli.invoke("--profile", "test", "watch", "--once").exit_code == 0

    (tmp_path / "pipeline.py").write_text(PIPELINE.replace('{"hello": 1}', '{"hello": 2}'))
    sys.modules.pop("pipeline")  # a new watch process imports the changed code
    changed = cli.invoke("--profile", "test", "watch", "--once")
    assert changed.exit_code == 1
    assert "is not the version deployed in test" in changed.output
    assert "conveyor pipelines deploy training --profile test" in changed.output


def test_a_profile_without_deploy_rules_watches_what_is_on_disk(cli, tmp_path):
    project(tmp_path)
    assert cli.invoke("--profile", "staging", "watch", "--once").exit_code == 0


def test_bad_rules_are_a_config_error_naming_the_key(cli, tmp_path):
    project(tmp_path)
    (tmp_path / "conveyor.toml").write_text(
        CONFIG + '\n[profiles.broken.deploy]\nmode = "approval"\n'
    )
    result = deploy(cli, "broken")
    assert result.exit_code == 1
    assert "names no approvers" in result.output and "approvers = [" in result.output
