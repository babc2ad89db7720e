"""``conveyor artifacts ls`` and ``conveyor artifacts gc``."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import BUCKET, CREDENTIALS, REGION


def test_ls_on_an_empty_store(cli) -> None:
    result = cli.invoke("artifacts", "ls")
    assert result.exit_code == 0, result.output
    assert "No artifacts in file://" in result.output


def test_ls_lists_sorted_with_a_prefix(cli, conveyor_app) -> None:
    store = conveyor_app.artifacts
    for key in ("reports/b.html", "models/churn/2/model.txt", "models/churn/1/model.txt"):
        store.put_bytes(key, key.encode() * 100)
    result = cli.invoke("artifacts", "ls")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:2] == ["KEY", "SIZE"]
    assert [line.split()[0] for line in lines[1:]] == [
        "models/churn/1/model.txt",
        "models/churn/2/model.txt",
        "reports/b.html",
    ]
    assert "2.3 KiB" in result.output
    result = cli.invoke("artifacts", "ls", "models/", "--json")
    rows = json.loads(result.output)
    assert [r["key"] for r in rows] == ["models/churn/1/model.txt", "models/churn/2/model.txt"]
    assert rows[0] == {**store.info(rows[0]["key"]).to_dict()}
    assert "No artifacts under 'nothing/'" in cli.invoke("artifacts", "ls", "nothing/").output


def test_ls_refuses_a_traversal_prefix(cli) -> None:
    result = cli.invoke("artifacts", "ls", "../etc")
    assert result.exit_code == 1
    assert "Error: artifact prefix '../etc' is refused" in result.output
    assert "Hint:" in result.output


def test_gc_is_a_dry_run_unless_told(cli, conveyor_app) -> None:
    store = conveyor_app.artifacts
    store.put_bytes("k", b"first")
    store.put_bytes("k", b"second")
    stale = Path(store.root, "blobs", ".tmp-0badf00d")
    stale.write_bytes(b"half-written")

    young = cli.invoke("artifacts", "gc")
    assert young.exit_code == 0, young.output
    assert "Nothing to remove" in young.output

    dry = cli.invoke("artifacts", "gc", "--older-than", "0s")
    assert dry.exit_code == 0, dry.output
    assert "would remove temporary   blobs/.tmp-0badf00d" in dry.output
    assert "would remove unreferenced blobs/" in dry.output
    assert "gc --yes" in dry.output
    assert stale.exists()

    done = cli.invoke("artifacts", "gc", "--yes", "--older-than", "0s", "--json")
    report = json.loads(done.output)
    assert report["dry_run"] is False
    assert report["temporary"] == ["blobs/.tmp-0badf00d"]
    assert len(report["unreferenced"]) == 1
    assert report["bytes_freed"] == len(b"half-written") + len(b"first")
    assert not stale.exists()
    assert store.get_bytes("k") == b"second"


def test_gc_rejects_a_bad_duration(cli) -> None:
    result = cli.invoke("artifacts", "gc", "--older-than", "soon")
    assert result.exit_code == 2
    assert "not a duration" in result.output


def test_ls_on_s3(cli, tmp_path: Path, moto_s3_endpoint: str, make_s3_store) -> None:
    store = make_s3_store("cli-listing")
    store.put_bytes("a/one", b"1")
    (tmp_path / "conveyor.toml").write_text(
        f'[artifact_store]\nurl = "s3://{BUCKET}/cli-listing"\n'
        f'endpoint_url = "{moto_s3_endpoint}"\nregion = "{REGION}"\n'
        f'access_key_id = "{CREDENTIALS["access_key_id"]}"\n'
        f'secret_access_key = "{CREDENTIALS["secret_access_key"]}"\n'
    )
    result = cli.invoke("artifacts", "ls", "--json")
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)
    assert row["key"] == "a/one"
    assert row["uri"].startswith(f"s3://{BUCKET}/cli-listing/blobs/")
