"""Choosing and configuring the artifact store from conveyor.toml."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conveyor.app import Conveyor
from conveyor.config import Config
from conveyor.errors import ConfigError, ConveyorError, PluginLoadError
from conveyor.plugins.local.store import LocalArtifactStore, root_from_url
from conveyor.plugins.s3.store import S3ArtifactStore

from .conftest import BUCKET, CREDENTIALS, REGION


def _app(tmp_path: Path, plugin_manager, toml: str) -> Conveyor:
    (tmp_path / "conveyor.toml").write_text(toml)
    return Conveyor(config=Config.load(cwd=tmp_path), pm=plugin_manager)


def test_the_default_is_local_under_dot_conveyor(conveyor_app, tmp_path: Path) -> None:
    store = conveyor_app.artifacts
    assert isinstance(store, LocalArtifactStore)
    assert Path(store.root) == (tmp_path / ".conveyor" / "artifacts").resolve()
    store.put_bytes("k", b"1")
    assert (Path(store.root) / "keys" / "k~.json").is_file()


@pytest.mark.parametrize("url", ["data/artifacts", "file:data/artifacts"])
def test_relative_urls_are_relative_to_the_project(
    tmp_path: Path, plugin_manager, url: str
) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "conveyor.toml").write_text(f'[artifact_store]\nurl = "{url}"\n')
    app = Conveyor(config=Config.load(cwd=tmp_path / "sub"), pm=plugin_manager)
    assert Path(app.artifacts.root) == (tmp_path / "data" / "artifacts").resolve()


def test_file_urls_select_the_local_store(tmp_path: Path, plugin_manager) -> None:
    target = tmp_path / "elsewhere" / "my store"
    app = _app(tmp_path, plugin_manager, f'[artifact_store]\nurl = "{target.as_uri()}"\n')
    assert app.backend_spec("artifact_store")[0].name == "local"
    assert Path(app.artifacts.root) == target.resolve()


@pytest.mark.parametrize("url", ["file://otherhost/x", "file:///x?y=1", "file:///x\x00"])
def test_bad_file_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError):
        root_from_url(url)


def _s3_toml(endpoint: str, prefix: str, extra: str = "") -> str:
    return (
        f'[artifact_store]\nurl = "s3://{BUCKET}/{prefix}"\nendpoint_url = "{endpoint}"\n'
        f'region = "{REGION}"\naccess_key_id = "{CREDENTIALS["access_key_id"]}"\n'
        f'secret_access_key = {{ env = "TEST_S3_SECRET" }}\n{extra}'
    )


def test_an_s3_url_selects_the_s3_store(
    tmp_path: Path, plugin_manager, moto_s3_endpoint: str, s3_bucket: str, monkeypatch
) -> None:
    monkeypatch.setenv("TEST_S3_SECRET", CREDENTIALS["secret_access_key"])
    app = _app(tmp_path, plugin_manager, _s3_toml(moto_s3_endpoint, "from-config"))
    spec, config = app.backend_spec("artifact_store")
    assert spec.name == "s3"
    assert "testing-secret" not in repr(config)
    store = app.artifacts
    assert isinstance(store, S3ArtifactStore)
    assert store.uri == f"s3://{BUCKET}/from-config"
    store.put_bytes("k", b"via config")
    assert store.get_bytes("k") == b"via config"


def test_an_environment_variable_selects_s3(tmp_path: Path, plugin_manager, monkeypatch) -> None:
    monkeypatch.setenv("CONVEYOR_ARTIFACT_STORE__URL", "s3://some-bucket/x")
    app = Conveyor(config=Config.load(cwd=tmp_path), pm=plugin_manager)
    assert app.backend_spec("artifact_store")[0].name == "s3"


def test_aws_environment_variables_are_used(
    tmp_path: Path, plugin_manager, moto_s3_endpoint: str, s3_bucket: str, monkeypatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_s3_endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "env-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    app = _app(tmp_path, plugin_manager, f'[artifact_store]\nurl = "s3://{BUCKET}/env"\n')
    store = app.artifacts
    assert store.endpoint_url == moto_s3_endpoint and store.region == REGION
    store.put_table("t.parquet", __import__("pyarrow").table({"a": [1, 2]}))
    assert store.scan_table("t.parquet").collect()["a"].to_list() == [1, 2]
    assert store.storage_options()["aws_access_key_id"] == "env-key"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[artifact_store]\nbackend = "local"\nurl = "s3://b-ucket/x"\n', "selects 's3'"),
        ('[artifact_store]\nurl = "s3://"\n', "not an S3 URL"),
        ('[artifact_store]\nurl = "s3://Bad_Bucket/x"\n', "not an S3 URL"),
        ('[artifact_store]\nurl = "s3://bucket/x"\nblock_size = 10\n', "too small"),
        ('[artifact_store]\nurl = "s3://bucket/x"\nendpiont_url = "x"\n', "endpiont_url"),
        ('[artifact_store]\nurl = "s3://bucket/../x"\n', "refused"),
        ('[artifact_store]\nurl = "gs://bucket/x"\n', "gs://"),
        ('[artifact_store]\nbackend = "s3"\n', "url"),
    ],
)
def test_bad_config_is_a_clear_error(
    tmp_path: Path, plugin_manager, toml: str, message: str
) -> None:
    app = _app(tmp_path, plugin_manager, toml)
    with pytest.raises(ConveyorError, match=message) as caught:
        app.artifacts
    assert caught.value.hint or "allows" in str(caught.value)


def test_missing_s3fs_names_the_extra(tmp_path: Path, plugin_manager, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "s3fs", None)
    monkeypatch.delitem(sys.modules, "conveyor.plugins.s3.store")
    app = _app(tmp_path, plugin_manager, '[artifact_store]\nurl = "s3://bucket/x"\n')
    with pytest.raises(PluginLoadError) as caught:
        app.artifacts
    assert "conveyor[s3]" in caught.value.hint


def test_listing_plugins_imports_no_storage_libraries(tmp_path: Path) -> None:
    import subprocess

    code = (
        "import sys; from conveyor.manager import make_plugin_manager, PluginSelection; "
        "pm = make_plugin_manager(PluginSelection()); list(pm.catalogue()); "
        "import conveyor.cli.artifacts; "
        "print(sorted(m for m in ('s3fs', 'fsspec', 'pyarrow', 'polars', 'botocore') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == "[]"
