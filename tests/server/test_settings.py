"""Shared server settings and the bind policy: read by core from [server]."""

from __future__ import annotations

import pytest

from conveyor.config import Config
from conveyor.errors import ConfigError
from conveyor.server import ServerSettings, check_bind, is_loopback, server_settings

TOKEN = "a-long-enough-token-123"


def load(tmp_path, text):
    (tmp_path / "conveyor.toml").write_text(text)
    return Config.load(cwd=tmp_path)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("myhost.example.com", False),
        ("127.0.0.1.nip.io", False),
    ],
)
def test_loopback_hosts(host, loopback):
    assert is_loopback(host) is loopback


def test_defaults_bind_loopback_only(tmp_path):
    settings = server_settings(Config.load(cwd=tmp_path))
    assert settings == ServerSettings()
    assert (settings.host, settings.port, settings.alias, settings.token) == (
        "127.0.0.1",
        8080,
        "production",
        None,
    )


def test_shared_keys_go_to_core_and_the_rest_to_the_backend(conveyor_app, stdlib_server):
    (conveyor_app.root / "conveyor.toml").write_text(
        f'[server]\n{stdlib_server}model = "churn"\nport = 9000\n'
    )
    conveyor_app.config = Config.load(cwd=conveyor_app.root)
    server = conveyor_app.server
    assert (server.settings.model, server.settings.port) == ("churn", 9000)
    assert server.config.max_body == 65536
    spec, config = conveyor_app.backend_spec("server")
    assert (spec.name, config.max_body) == ("stdlib", 65536)


def test_unknown_keys_name_both_sets_of_allowed_keys(conveyor_app, stdlib_server):
    (conveyor_app.root / "conveyor.toml").write_text(f"[server]\n{stdlib_server}prot = 1\n")
    conveyor_app.config = Config.load(cwd=conveyor_app.root)
    with pytest.raises(ConfigError, match=r"prot") as info:
        conveyor_app.server
    allowed = info.value.hint.split("allows: ")[1].split(", ")
    assert {"max_body", "model", "alias", "host", "port", "token"} <= set(allowed)


def test_a_token_from_the_environment_is_resolved_and_never_shown(tmp_path, monkeypatch):
    monkeypatch.setenv("SERVE_TOKEN", TOKEN)
    config = load(tmp_path, '[server]\nhost = "0.0.0.0"\ntoken = { env = "SERVE_TOKEN" }\n')
    settings = server_settings(config)
    assert settings.token == TOKEN
    assert TOKEN not in repr(settings)
    assert TOKEN not in repr(config.masked()) + repr(config.flat())


def test_a_public_host_needs_a_token(tmp_path):
    with pytest.raises(ConfigError, match="'0.0.0.0' is reachable") as info:
        server_settings(load(tmp_path, '[server]\nhost = "0.0.0.0"\n'))
    assert "127.0.0.1" in info.value.hint
    assert "CONVEYOR_SERVER_TOKEN" in info.value.hint
    check_bind(ServerSettings(host="0.0.0.0", token=TOKEN))


def test_short_tokens_are_refused_even_on_loopback(tmp_path):
    with pytest.raises(ConfigError, match="shorter than 16"):
        server_settings(load(tmp_path, '[server]\ntoken = "hunter2"\n'))


@pytest.mark.parametrize(
    ("line", "path"),
    [
        ("port = 70000", r"port must be between 0 and 65535.* @ \$\.server"),
        ('port = "http"', r"\$\.server\.port"),
        ('alias = " "', r"alias must not be empty @ \$\.server"),
    ],
)
def test_invalid_values_name_the_key(tmp_path, line, path):
    with pytest.raises(ConfigError, match=path):
        server_settings(load(tmp_path, f"[server]\n{line}\n"))
