"""What start-up defers: config classes named as strings, distribution metadata."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import pytest
from attrs import frozen

from conveyor import hookimpl
from conveyor.errors import PluginLoadError
from conveyor.manager import _name_and_version


def _run(code: str, cwd, env=None) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_bundled_config_classes_are_imported_only_when_a_backend_is_configured(tmp_path):
    code = (
        "import sys\n"
        "from conveyor.app import Conveyor\n"
        "from conveyor.config import Config\n"
        "from conveyor.manager import make_plugin_manager\n"
        "pm = make_plugin_manager(distribution='conveyor')\n"
        "assert 'local' in pm.catalogue().names('artifact_store')\n"
        "print('before', 'conveyor.plugins.local.config' in sys.modules)\n"
        "app = Conveyor(config=Config.load(cwd='.'), pm=pm)\n"
        "spec, config = app.backend_spec('artifact_store')\n"
        "print('after', 'conveyor.plugins.local.config' in sys.modules, type(config).__name__)\n"
    )
    assert _run(code, tmp_path).split() == [
        "before",
        "False",
        "after",
        "True",
        "LocalArtifactStoreConfig",
    ]


@frozen
class NamedConfig:
    size: int = 1


def _plugin(config_class):
    class Plugin:
        @hookimpl
        def register_orchestrators(self, register):
            register("named", factory=lambda app, config: config, config_class=config_class)

    return Plugin()


def _configure(app, text: str) -> None:
    from conveyor.config import Config

    (app.root / "conveyor.toml").write_text(text)
    app.config = Config.load(cwd=app.root)


def test_a_config_class_named_by_string_structures_the_section(conveyor_app, register_plugin):
    register_plugin(_plugin(f"{__name__}:NamedConfig"), "named-plugin")
    _configure(conveyor_app, '[orchestrator]\nbackend = "named"\nsize = 3\n')
    assert conveyor_app.orchestrator == NamedConfig(size=3)


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("conveyor_no_such_module_xyz:Config", "cannot be imported: ModuleNotFoundError"),
        (f"{__name__}:Misspelt", "cannot be imported: AttributeError"),
        ("conveyor.config:structure", "which is not a class"),
    ],
)
def test_a_config_class_string_that_does_not_resolve_names_the_plugin(
    conveyor_app, register_plugin, ref, message
):
    register_plugin(_plugin(ref), "named-plugin")
    _configure(conveyor_app, '[orchestrator]\nbackend = "named"\n')
    with pytest.raises(PluginLoadError, match=message) as caught:
        conveyor_app.backend_spec("orchestrator")
    assert "'named-plugin'" in caught.value.message
    assert "named-plugin" in (caught.value.hint or "")


def test_a_malformed_config_class_string_fails_the_plugin_at_registration(
    plugin_manager, register_plugin, capsys
):
    register_plugin(_plugin("NamedConfig"), "named-plugin")
    assert "named" not in plugin_manager.catalogue().names("orchestrator")
    info = plugin_manager.infos["named-plugin"]
    assert info.status == "failed" and '"module:Class"' in (info.error or "")
    assert "named-plugin" in capsys.readouterr().err


def test_help_lists_every_core_and_plugin_command(fake_distribution, tmp_path):
    from conveyor.cli import core_commands

    site = fake_distribution(
        "conveyor-greeter",
        entry_points={"greeter": "fake_greeter"},
        modules={
            "fake_greeter": """
                import click
                from conveyor import hookimpl

                @hookimpl
                def register_commands(cli):
                    @cli.command()
                    def greet():
                        "Say hello from a plugin."
            """
        },
    )
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    out = _run("from conveyor.cli import main; main(['--help'])", tmp_path, env)
    listed = {line.split()[0] for line in out.split("Commands:")[1].splitlines() if line.strip()}
    # installed contrib distributions may add theirs (conveyor-postgres: migrate)
    assert {c.name for c in core_commands()} | {"greet"} <= listed


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ("Metadata-Version: 2.1\nName: conveyor-x\nVersion: 1.2\n\nName: not-me\n", "conveyor-x"),
        # headers are case-insensitive: the full parser answers for unusual spellings
        ("Metadata-Version: 2.1\nname: conveyor-x\nversion: 1.2\n", "conveyor-x"),
    ],
)
def test_distribution_name_and_version_from_the_metadata_headers(tmp_path, headers, expected):
    info = tmp_path / "conveyor_x-1.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(headers)
    dist = importlib.metadata.PathDistribution(info)
    assert _name_and_version(dist) == (expected, "1.2")
