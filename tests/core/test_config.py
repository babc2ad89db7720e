"""Config: file discovery, profiles, environment overrides, provenance, errors."""

from __future__ import annotations

import pytest

from conveyor.config import MASK, Config
from conveyor.errors import ConfigError


@pytest.fixture(autouse=True)
def _no_conveyor_env(monkeypatch):
    from conveyor.testing import clean_environment

    clean_environment(monkeypatch)


def test_defaults_need_no_file(tmp_path):
    config = Config.load(cwd=tmp_path)
    assert config.file is None
    assert config.root == tmp_path.resolve()
    assert config.state_dir == tmp_path.resolve() / ".conveyor"
    assert config.section("metadata_store") == {"backend": "sqlite"}
    assert config.section("artifact_store") == {"backend": "local"}
    assert config.sources["metadata_store.backend"] == "default"


def test_file_is_found_from_a_subfolder(tmp_path):
    (tmp_path / "conveyor.toml").write_text('[metadata_store]\nurl = "sqlite:///x.db"\n')
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    config = Config.load(cwd=sub)
    assert config.file == tmp_path / "conveyor.toml"
    assert config.root == tmp_path.resolve()
    assert config.section("metadata_store")["url"] == "sqlite:///x.db"
    assert config.sources["metadata_store.url"] == "conveyor.toml"


def test_tool_conveyor_in_pyproject(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[tool.conveyor.project]\nname = "from-pyproject"\n'
    )
    config = Config.load(cwd=tmp_path)
    assert config.file == tmp_path / "pyproject.toml"
    assert config.section("project")["name"] == "from-pyproject"


def test_pyproject_without_tool_conveyor_is_ignored(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert Config.load(cwd=tmp_path).file is None


def test_profiles_deep_merge_over_the_base(tmp_path, monkeypatch):
    (tmp_path / "conveyor.toml").write_text(
        '[server]\nbackend = "http"\nport = 8080\nhost = "127.0.0.1"\n'
        "[profiles.production.server]\nport = 9000\n"
        "[profiles.qa.server]\nport = 7000\n"
    )
    base = Config.load(cwd=tmp_path)
    assert base.section("server")["port"] == 8080
    prod = Config.load(cwd=tmp_path, profile="production")
    assert prod.section("server") == {"backend": "http", "port": 9000, "host": "127.0.0.1"}
    assert prod.sources["server.port"] == "conveyor.toml [profiles.production]"
    assert prod.sources["server.host"] == "conveyor.toml"
    monkeypatch.setenv("CONVEYOR_PROFILE", "qa")
    assert Config.load(cwd=tmp_path).section("server")["port"] == 7000


def test_builtin_profile_without_table_is_allowed(tmp_path):
    assert Config.load(cwd=tmp_path, profile="staging").profile == "staging"


def test_unknown_profile_is_an_error_listing_known_ones(tmp_path):
    (tmp_path / "conveyor.toml").write_text("[profiles.qa.server]\nport = 1\n")
    with pytest.raises(ConfigError, match="unknown profile 'prod'") as info:
        Config.load(cwd=tmp_path, profile="prod")
    assert "qa" in info.value.hint and "production" in info.value.hint


def test_environment_overrides_win_and_are_typed(tmp_path, monkeypatch):
    (tmp_path / "conveyor.toml").write_text("[server]\nport = 8080\n")
    monkeypatch.setenv("CONVEYOR_SERVER__PORT", "9090")
    monkeypatch.setenv("CONVEYOR_SERVER__HOSTS", '["a", "b"]')
    monkeypatch.setenv("CONVEYOR_PLUGIN__SLACK__CHANNEL", "#ml")
    config = Config.load(cwd=tmp_path, profile="production")
    assert config.section("server")["port"] == 9090
    assert config.section("server")["hosts"] == ["a", "b"]
    assert config.sources["server.port"] == "env CONVEYOR_SERVER__PORT"
    assert config.plugin_config("slack") == {"channel": "#ml"}


def test_environment_override_for_unknown_section_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVEYOR_SERVNG__PORT", "1")
    with pytest.raises(ConfigError, match="CONVEYOR_SERVNG__PORT"):
        Config.load(cwd=tmp_path)


def test_secrets_from_env_are_resolved_on_use_and_masked(tmp_path, monkeypatch):
    (tmp_path / "conveyor.toml").write_text(
        '[metadata_store]\nurl = "postgresql://ml:hunter2@db/conveyor"\n'
        'password = { env = "PG_PASSWORD" }\napi_token = "t0ken"\n'
    )
    config = Config.load(cwd=tmp_path)
    with pytest.raises(ConfigError, match="PG_PASSWORD"):
        config.section("metadata_store")
    monkeypatch.setenv("PG_PASSWORD", "s3cret")
    assert config.section("metadata_store")["password"] == "s3cret"
    shown = repr(config.masked()) + repr(config.flat())
    for secret in ("s3cret", "hunter2", "t0ken"):
        assert secret not in shown
    masked = config.masked()["metadata_store"]
    assert masked["url"] == f"postgresql://ml:{MASK}@db/conveyor"
    assert masked["api_token"] == MASK


def test_unknown_section_names_file_key_and_allowed(tmp_path):
    (tmp_path / "conveyor.toml").write_text('[metadata_stor]\nurl = "x"\n')
    with pytest.raises(ConfigError) as info:
        Config.load(cwd=tmp_path)
    assert str(tmp_path / "conveyor.toml") in info.value.message
    assert "$.metadata_stor" in info.value.message
    assert "metadata_store" in info.value.hint


def test_invalid_toml_names_the_file(tmp_path):
    (tmp_path / "conveyor.toml").write_text("[server\nport = 1\n")
    with pytest.raises(ConfigError, match="conveyor.toml is not valid TOML"):
        Config.load(cwd=tmp_path)


def test_section_must_be_a_table(tmp_path):
    (tmp_path / "conveyor.toml").write_text('server = "http"\n')
    with pytest.raises(ConfigError, match=r"'\$.server' must be a table"):
        Config.load(cwd=tmp_path)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[plugins]\ndisable = "cron"\n', r"'\$.plugins.disable' must be a list"),
        ('[plugins]\nblock = ["cron"]\n', r"unknown key '\$.plugins.block'"),
    ],
)
def test_invalid_plugins_table(tmp_path, body, message):
    (tmp_path / "conveyor.toml").write_text(body)
    with pytest.raises(ConfigError, match=message):
        Config.load(cwd=tmp_path)


def test_plugins_table_and_environment_combine(tmp_path, monkeypatch):
    (tmp_path / "conveyor.toml").write_text('[plugins]\ndisable = ["cron"]\nmodules = ["h"]\n')
    monkeypatch.setenv("CONVEYOR_DISABLE_PLUGINS", "s3")
    selection = Config.load(cwd=tmp_path).plugin_selection()
    assert selection.disable == ("cron", "s3")
    assert selection.modules == ("h",)
    assert selection.load is None


def test_explicit_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        Config.load(tmp_path / "nope.toml")


def test_relative_paths_resolve_against_the_project_root(tmp_path):
    (tmp_path / "conveyor.toml").write_text("")
    sub = tmp_path / "sub"
    sub.mkdir()
    config = Config.load(cwd=sub)
    assert config.resolve_path("data/x") == tmp_path.resolve() / "data" / "x"
    assert config.resolve_path("/abs/x").as_posix() == "/abs/x"
