"""The command line: core commands, plugin commands, error output, start-up cost."""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest

from conveyor import __version__, hookimpl
from conveyor.cli import make_cli
from conveyor.errors import ConveyorError, PluginConflictError


def test_version_and_help(cli):
    assert cli.invoke("--version").output.strip() == f"conveyor, version {__version__}"
    result = cli.invoke("--help")
    assert result.exit_code == 0
    for command in ("plugins", "backends", "config", "init"):
        assert command in result.output


def test_plugins_json_lists_bundled_plugins(cli, plugin_manager):
    rows = json.loads(cli.invoke("plugins", "--json").output)
    by_name = {row["name"]: row for row in rows}
    assert set(by_name) == set(plugin_manager.infos)
    for row in rows:
        assert row["distribution"] == "conveyor"
        assert row["status"] == "loaded"
        assert row["hooks"]
    providers = {p for row in rows for p in row["backends"]}
    assert providers, "bundled plugins provide backends"


def test_plugins_hook_filter(cli, register_plugin):
    class Listener:
        @hookimpl
        def on_run_started(self, app, event):
            pass

    register_plugin(Listener(), "run-listener")
    rows = json.loads(cli.invoke("plugins", "--json", "--hook", "on_run_started").output)
    assert [row["name"] for row in rows] == ["run-listener"]
    assert rows[0]["source"] == "manual"


def test_backends_json(cli, plugin_manager):
    rows = json.loads(cli.invoke("backends", "--json").output)
    assert {(r["kind"], r["name"]) for r in rows} == {
        (s.kind.value, s.name) for s in plugin_manager.catalogue()
    }
    text = cli.invoke("backends").output
    assert text.splitlines()[0].split()[:3] == ["KIND", "NAME", "SCHEMES"]


def test_config_json_shows_sources_and_masks_secrets(cli, tmp_path):
    (tmp_path / "conveyor.toml").write_text(
        '[metadata_store]\nurl = "sqlite:///m.db"\ntoken = "abc123"\n'
    )
    result = cli.invoke("config", "--json", env={"CONVEYOR_SERVER__PORT": "9999"})
    data = json.loads(result.output)
    values = {v["key"]: v for v in data["values"]}
    assert values["metadata_store.url"]["source"] == "conveyor.toml"
    assert values["metadata_store.token"]["value"] == "********"
    assert values["server.port"] == {
        "key": "server.port",
        "value": 9999,
        "source": "env CONVEYOR_SERVER__PORT",
    }
    assert "abc123" not in cli.invoke("config").output


def test_init_scaffolds_and_refuses_to_overwrite(cli, tmp_path):
    result = cli.invoke("init", "proj")
    assert result.exit_code == 0, result.output
    for name in ("conveyor.toml", ".gitignore", "README.md"):
        assert (tmp_path / "proj" / name).is_file()
    assert 'name = "proj"' in (tmp_path / "proj" / "conveyor.toml").read_text()
    again = cli.invoke("init", "proj")
    assert again.exit_code == 1
    assert "already exist" in again.output and "--force" in again.output
    assert cli.invoke("init", "proj", "--force").exit_code == 0


def _expected_default_findings(plugin_manager) -> list[dict]:
    """An info finding for each default backend no installed plugin provides; no others."""
    from conveyor.backends import BackendKind
    from conveyor.config import BACKEND_SECTIONS, DEFAULT_BACKENDS

    catalogue = plugin_manager.catalogue()
    return [
        {"check": "config.backend", "subject": section, "severity": "info"}
        for kind, section in BACKEND_SECTIONS.items()
        if DEFAULT_BACKENDS[section] not in catalogue.names(BackendKind(kind))
    ]


@pytest.mark.parametrize("where", ["empty folder", "scaffolded project"])
def test_defaults_pass_their_own_check(cli, plugin_manager, tmp_path, monkeypatch, where):
    if where == "scaffolded project":
        assert cli.invoke("init", "proj").exit_code == 0
        monkeypatch.chdir(tmp_path / "proj")
    else:
        monkeypatch.chdir(tmp_path)
    result = cli.invoke("config", "check", "--json")
    assert result.exit_code == 0, result.output
    findings = [
        {k: f[k] for k in ("check", "subject", "severity")} for f in json.loads(result.output)
    ]
    assert findings == _expected_default_findings(plugin_manager)
    for finding in json.loads(result.output):
        assert "(the default; only commands that use a" in finding["message"]


def test_a_configured_backend_nobody_provides_fails_the_check(cli, tmp_path, monkeypatch):
    (tmp_path / "conveyor.toml").write_text('[orchestrator]\nbackend = "nowhere"\n')
    monkeypatch.chdir(tmp_path)
    result = cli.invoke("config", "check", "--json")
    assert result.exit_code == 1
    mine = [f for f in json.loads(result.output) if f["subject"] == "orchestrator"]
    assert [f["severity"] for f in mine] == ["error"]
    assert "no orchestrator backend named 'nowhere'" in mine[0]["message"]


def test_conveyor_error_is_one_line_and_a_hint(cli, tmp_path):
    (tmp_path / "conveyor.toml").write_text("[bogus]\n")
    result = cli.invoke("config")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("Error: ") and "$.bogus" in lines[0]
    assert lines[1].startswith("Hint: allowed sections:")
    assert "--traceback" in lines[2]
    assert "Traceback" not in result.output


def test_traceback_flag_reraises(cli, tmp_path):
    (tmp_path / "conveyor.toml").write_text("[bogus]\n")
    with pytest.raises(ConveyorError):
        cli.invoke("--traceback", "config")


def test_plugin_adds_a_command(plugin_manager, register_plugin):
    class Commands:
        @hookimpl
        def register_commands(self, cli):
            @cli.command()
            def greet():
                """Say hi."""
                click.echo("hi from a plugin")

    register_plugin(Commands(), "greeter")
    from click.testing import CliRunner

    result = CliRunner().invoke(make_cli(plugin_manager, strict=True), ["greet"])
    assert result.output == "hi from a plugin\n"


def test_plugin_command_clash_is_a_conflict(plugin_manager, register_plugin, capsys):
    class Clash:
        @hookimpl
        def register_commands(self, cli):
            @cli.command()
            def plugins():
                pass

    register_plugin(Clash(), "clasher")
    with pytest.raises(PluginConflictError, match="conveyor plugins"):
        make_cli(plugin_manager, strict=True)
    group = make_cli(plugin_manager)  # not strict: reported, skipped, the rest still works
    assert "clasher" in capsys.readouterr().err
    assert group.commands["plugins"].help.startswith("List plugins")


HEAVY = ("polars", "pyarrow", "lightgbm", "numpy", "fsspec", "cattrs")


@pytest.mark.parametrize("args", [["--help"], ["plugins"], ["backends"]])
def test_start_up_imports_nothing_heavy(args, tmp_path):
    code = (
        "import sys\n"
        "from conveyor.cli import main\n"
        "try:\n"
        f"    main({args!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print('HEAVY=' + ','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=True,
    ).stdout
    assert out.strip().splitlines()[-1] == "HEAVY="


def test_broken_plugin_does_not_break_the_cli(fake_distribution, tmp_path):
    site = fake_distribution(
        "conveyor-broken",
        "0.3",
        entry_points={"broken": "fake_broken"},
        modules={"fake_broken": "import nonexistent_dependency_xyz"},
    )
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    run = [sys.executable, "-m", "conveyor", "plugins", "--json"]
    result = subprocess.run(run, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "warning: plugin 'broken' (conveyor-broken 0.3) failed to import" in result.stderr
    assert "CONVEYOR_DISABLE_PLUGINS=broken" in result.stderr
    row = next(r for r in json.loads(result.stdout) if r["name"] == "broken")
    assert row["status"] == "failed" and "nonexistent_dependency_xyz" in row["error"]
    env["CONVEYOR_DISABLE_PLUGINS"] = "broken"
    result = subprocess.run(run, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert result.returncode == 0 and "warning" not in result.stderr
    row = next(r for r in json.loads(result.stdout) if r["name"] == "broken")
    assert row["status"] == "disabled"
