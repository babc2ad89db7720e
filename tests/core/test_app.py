"""Choosing backends by name and URL scheme; events and checks."""

from __future__ import annotations

import pytest
from attrs import frozen

from conveyor import hookimpl
from conveyor.checks import DataCheckContext, Finding, Severity
from conveyor.errors import ConfigError, PluginLoadError, UnknownBackendError
from conveyor.events import TriggerFired


@frozen(kw_only=True)
class MemoConfig:
    url: str = "memo://default"
    size: int = 1


class Memo:
    def __init__(self, *, app, config):
        self.app = app
        self.config = config
        self.closed = False

    def close(self):
        self.closed = True


class MemoPlugin:
    @hookimpl
    def register_orchestrators(self, register):
        register(
            "memo",
            factory=Memo,
            config_class=MemoConfig,
            schemes=("memo",),
            description="in-memory test orchestrator",
        )
        register(
            "ghost",
            factory="conveyor_nonexistent_module:Ghost",
            config_class=MemoConfig,
            extras=("conveyor-ghost>=1",),
        )


@pytest.fixture
def app(conveyor_app, register_plugin):
    register_plugin(MemoPlugin(), "memo-plugin")
    return conveyor_app


def write_config(app, text):
    from conveyor.config import Config

    (app.root / "conveyor.toml").write_text(text)
    app.config = Config.load(cwd=app.root)


def test_backend_by_name_gets_structured_config(app):
    write_config(app, '[orchestrator]\nbackend = "memo"\nsize = 3\n')
    backend = app.orchestrator
    assert isinstance(backend, Memo)
    assert backend.config == MemoConfig(size=3)
    assert backend.app is app
    assert app.orchestrator is backend, "backends are built once"


def test_backend_by_url_scheme(app):
    write_config(app, '[orchestrator]\nurl = "memo://elsewhere"\n')
    assert app.orchestrator.config.url == "memo://elsewhere"


def test_url_and_a_different_explicit_backend_conflict(app):
    write_config(app, '[orchestrator]\nbackend = "ghost"\nurl = "memo://x"\n')
    with pytest.raises(ConfigError, match="says backend = 'ghost' but its url"):
        app.orchestrator


def test_unknown_backend_lists_installed_and_suggests(app):
    write_config(app, '[orchestrator]\nbackend = "dask"\n')
    with pytest.raises(UnknownBackendError) as info:
        app.orchestrator
    assert "no orchestrator backend named 'dask'" in info.value.message
    assert "installed: ghost, local, memo" in info.value.message
    assert info.value.hint == "pip install conveyor-dask"


def test_unknown_scheme(app):
    write_config(app, '[orchestrator]\nurl = "ftp://x"\n')
    with pytest.raises(UnknownBackendError, match="handles 'ftp://' URLs"):
        app.orchestrator


def test_unknown_option_names_path_and_allowed_keys(app):
    write_config(app, '[orchestrator]\nbackend = "memo"\nsise = 3\n')
    with pytest.raises(ConfigError) as info:
        app.orchestrator
    assert "$.orchestrator" in info.value.message and "sise" in info.value.message
    assert str(app.root / "conveyor.toml") in info.value.message
    assert info.value.hint == "[orchestrator] allows: url, size"


def test_wrong_option_type_names_the_path(app):
    write_config(app, '[orchestrator]\nbackend = "memo"\nsize = "big"\n')
    with pytest.raises(ConfigError, match=r"\$\.orchestrator\.size"):
        app.orchestrator


def test_validator_message_reaches_the_user(app):
    from conveyor.config import structure
    from conveyor.plugins.local.config import LocalOrchestratorConfig

    with pytest.raises(ConfigError, match=r"max_workers must be 1 or more @ \$\.orchestrator"):
        structure(
            LocalOrchestratorConfig,
            {"max_workers": 0},
            section="orchestrator",
            where="conveyor.toml",
        )


def test_factory_import_error_names_the_extra(app):
    write_config(app, '[orchestrator]\nbackend = "ghost"\n')
    with pytest.raises(PluginLoadError) as info:
        app.orchestrator
    assert "memo-plugin" in info.value.message
    assert "conveyor-ghost>=1" in info.value.hint


def test_triggers_are_named_sections(app, register_plugin):
    class TriggerPlugin:
        @hookimpl
        def register_triggers(self, register):
            register("memo", factory=Memo, config_class=MemoConfig)

    register_plugin(TriggerPlugin(), "trigger-plugin")
    write_config(app, '[triggers.nightly]\nbackend = "memo"\nsize = 2\n')
    assert app.trigger("nightly").config.size == 2
    with pytest.raises(ConfigError, match="no trigger named 'weekly'"):
        app.trigger("weekly")


def test_close_closes_opened_backends(app):
    write_config(app, '[orchestrator]\nbackend = "memo"\n')
    backend = app.orchestrator
    app.close()
    assert backend.closed


def test_preflight_reports_each_broken_section(app):
    write_config(app, '[orchestrator]\nbackend = "memo"\nsise = 1\n')
    findings = {f.subject: f for f in app.preflight()}
    assert "sise" in findings["orchestrator"].message


def test_emit_calls_listeners_and_survives_a_broken_one(app, register_plugin, capsys):
    seen = []

    class Listener:
        @hookimpl
        def on_trigger_fired(self, app, event):
            seen.append(event)

    class Broken:
        @hookimpl
        def on_trigger_fired(self, event):
            raise RuntimeError("listener down")

    register_plugin(Listener(), "listener")
    register_plugin(Broken(), "broken-listener")
    event = TriggerFired(trigger="manual", reason="asked")
    app.emit("on_trigger_fired", event)
    assert seen == [event]
    assert "broken-listener" in capsys.readouterr().err


def test_checks_collect_every_finding_and_a_crash_is_one(app, register_plugin):
    class Checks:
        @hookimpl
        def check_data(self, context):
            return [
                Finding(
                    check="rows",
                    message=f"{context.dataset} has few rows",
                    severity=Severity.WARNING,
                )
            ]

    class Crashing:
        @hookimpl
        def check_data(self, app, context):
            raise ValueError("oops")

    register_plugin(Checks(), "checks")
    register_plugin(Crashing(), "crashing")
    findings = app.run_checks("check_data", DataCheckContext(dataset="training", table=None))
    assert sorted(f.check for f in findings) == ["crashing.crashed", "rows"]
    assert any(f.blocking for f in findings)
