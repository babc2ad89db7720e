"""The executor contract, held by the local orchestrator and by conveyor-hello's."""

from __future__ import annotations

import importlib
import sys

import pytest

from conveyor.config import Config
from conveyor.testing.orchestrator import OrchestratorContract


def configure(app, text: str):
    (app.root / "conveyor.toml").write_text(text)
    app.close()
    app.config = Config.load(cwd=app.root)
    return app


class TestLocalInline(OrchestratorContract):
    @pytest.fixture
    def app(self, conveyor_app):
        return configure(conveyor_app, '[orchestrator]\nbackend = "local"\n')


class TestLocalThreads(OrchestratorContract):
    @pytest.fixture
    def app(self, conveyor_app):
        return configure(conveyor_app, '[orchestrator]\nbackend = "local"\nmax_workers = 2\n')


@pytest.fixture
def hello_plugin(repo_root, monkeypatch):
    """conveyor-hello's module, imported from the fixture folder (not installed here)."""
    monkeypatch.syspath_prepend(str(repo_root / "tests" / "fixtures" / "conveyor-hello"))
    module = importlib.import_module("conveyor_hello")
    yield module
    sys.modules.pop("conveyor_hello", None)


class TestHelloChildProcesses(OrchestratorContract):
    @pytest.fixture
    def app(self, conveyor_app, register_plugin, hello_plugin):
        register_plugin(hello_plugin, "hello")
        app = configure(conveyor_app, '[orchestrator]\nbackend = "hello"\n')
        assert type(app.orchestrator).__name__ == "HelloOrchestrator"
        return app
