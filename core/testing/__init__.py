"""Conveyor's test kit: an opt-in pytest plugin for Conveyor and its plugins.

Installing Conveyor registers it with pytest through a ``pytest11`` entry point
(named ``conveyor``), so a project's own tests get the fixtures with no setup;
``-p no:conveyor`` switches it off.  Loading it defines fixtures only: nothing heavy
is imported until a test asks for one.

Pipeline CI fixtures (a team's tests of its own pipelines, :mod:`.pipelines`):

* ``conveyor_project_dir``: the project under test -- pytest's rootdir; override the
  fixture to point elsewhere.
* ``conveyor_stack``: a :class:`~conveyor.app.Conveyor` on a copy of that project
  (config, code, data) under ``tmp_path`` whose stores are the embedded defaults,
  empty.
* ``conveyor_pipeline``: a :class:`~conveyor.testing.pipelines.PipelineKit` on that
  stack: ``run(pipeline, **params)``, ``run_step(step, *args)``,
  ``sample(view)``, ``sample_output(run, step)``, ``assert_artifact(run, step,
  schema=...)``, ``assert_lineage(run, step, upstream=[...])``.

Fixtures for Conveyor and its plugins:

* ``plugin_manager``: a fresh manager holding exactly the plugins of the
  ``conveyor`` distribution (the bundled ones), whatever else is installed.
* ``register_plugin``: ``register(obj, name=None)`` registers a test plugin on
  that manager; it is unregistered at teardown.
* ``conveyor_app``: a :class:`~conveyor.app.Conveyor` rooted in ``tmp_path``
  (config file ``tmp_path / "conveyor.toml"`` if the test writes one first),
  with every ``CONVEYOR_*`` environment variable cleared.
* ``cli``: ``cli.invoke(*args)`` runs the ``conveyor`` command in ``tmp_path``
  through click's ``CliRunner`` and returns the result.

``install_in_virtualenv(plugin_dir, env_dir)`` installs a plugin distribution into
a throwaway virtualenv that sees the running environment, for tests that use the
plugin exactly as a user would (through ``python -m conveyor``).

Conformance suites, one per backend kind, live in the submodules
(``conveyor.testing.artifacts``, ``.metadata``, ``.registry``, ``.features``,
``.orchestrator``, ``.server``, ``.triggers``, and ``.predictions`` for the
prediction log on an artifact store): subclass one and provide the fixture it names
(``store``, ``registry``, ``online``, ``app``, ``server_backend``, ``trigger``) to
hold your plugin to the same tests as the bundled ones.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor.manager import ConveyorPluginManager, PluginInfo, PluginSelection


def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove every ``CONVEYOR_*`` variable so the machine's settings cannot leak in."""
    for name in list(os.environ):
        if name.startswith("CONVEYOR_"):
            monkeypatch.delenv(name)


def isolate_project_imports(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, root: Path
) -> None:
    """Undo, at teardown, what running a project under ``root`` does to imports.

    The app puts the project root on ``sys.path`` and imports the project's modules
    (``pipeline``, ``features``, hook modules); another test's project must not
    find them.
    """
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    prefixes = (str(root), str(root.resolve()))

    def forget() -> None:
        for name in set(sys.modules) - before:
            location = getattr(sys.modules.get(name), "__file__", None) or ""
            if location.startswith(prefixes):
                sys.modules.pop(name, None)

    request.addfinalizer(forget)


@pytest.fixture
def plugin_manager(monkeypatch: pytest.MonkeyPatch) -> ConveyorPluginManager:
    """A fresh plugin manager with exactly the bundled plugins."""
    from conveyor.manager import make_plugin_manager

    clean_environment(monkeypatch)
    return make_plugin_manager(PluginSelection(), distribution="conveyor", strict=True)


@pytest.fixture
def register_plugin(plugin_manager: ConveyorPluginManager) -> Iterator[Callable[..., str]]:
    """``register(obj, name=None) -> name``; every plugin is unregistered at teardown."""
    names: list[str] = []

    def register(plugin: Any, name: str | None = None) -> str:
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        info = PluginInfo(name=name, module=getattr(plugin, "__module__", ""), source="manual")
        if not plugin_manager.add_plugin(plugin, info):
            raise AssertionError(
                f"test plugin {name!r} is invalid: {plugin_manager.infos[name].error}"
            )
        names.append(name)
        return name

    yield register
    for name in reversed(names):
        if plugin_manager.get_plugin(name) is not None:
            plugin_manager.unregister(name=name)


@pytest.fixture
def conveyor_app(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    plugin_manager: ConveyorPluginManager,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Any]:
    """An app whose config and ``.conveyor/`` state live in ``tmp_path``."""
    from conveyor.app import Conveyor
    from conveyor.config import Config

    clean_environment(monkeypatch)
    isolate_project_imports(request, monkeypatch, tmp_path)
    monkeypatch.chdir(tmp_path)
    app = Conveyor(config=Config.load(cwd=tmp_path), pm=plugin_manager)
    yield app
    app.close()


def virtualenv_seeing_this_interpreter(env_dir: Path) -> Path:
    """A new virtualenv whose site-packages come first, then the running interpreter's.

    ``system_site_packages=True`` would expose the *base* interpreter's packages, which
    hold Conveyor only when it was installed there, not when the tests run in a
    virtualenv.  A ``.pth`` line calling ``site.addsitedir`` on the running
    interpreter's site folders works in both cases, and also runs their own ``.pth``
    files (the editable-install finder).  What is installed into the new environment
    lands there only, as a third party's distribution would.  Returns its python.
    """
    import site
    import subprocess
    import sysconfig
    import venv

    venv.EnvBuilder(system_site_packages=False, with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    own = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()
    folders = [
        sysconfig.get_paths()["purelib"],
        sysconfig.get_paths()["platlib"],
        *site.getsitepackages(),
    ]
    if site.ENABLE_USER_SITE:
        folders.append(site.getusersitepackages())
    seen = [f for f in dict.fromkeys(folders) if f in sys.path and Path(f).is_dir()]
    lines = "".join(f"import site; site.addsitedir({f!r})\n" for f in seen)
    (Path(own) / "_running_interpreter.pth").write_text(lines)
    return python


def install_in_virtualenv(plugin_dir: Path, env_dir: Path) -> Path:
    """Install the plugin distribution in ``plugin_dir`` into a new virtualenv; its python.

    The environment is :func:`virtualenv_seeing_this_interpreter`'s, so nothing is
    downloaded.  ``plugin_dir`` is copied first, so the build leaves no files in the
    source tree.
    """
    import shutil
    import subprocess

    python = virtualenv_seeing_this_interpreter(env_dir)
    source = env_dir.parent / f"{plugin_dir.name}-src"
    shutil.copytree(plugin_dir, source)
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            str(source),
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    return python


class CliInvoker:
    """Runs ``conveyor`` commands in-process against one plugin manager."""

    def __init__(self, pm: ConveyorPluginManager) -> None:
        self.pm = pm

    def invoke(
        self, *args: str, input: str | None = None, env: dict[str, str] | None = None
    ) -> Any:
        from click.testing import CliRunner

        from conveyor.cli import make_cli

        runner = CliRunner()
        return runner.invoke(
            make_cli(self.pm, strict=True),
            list(args),
            input=input,
            env=env,
            catch_exceptions=False,
            prog_name="conveyor",
        )


@pytest.fixture
def cli(
    request: pytest.FixtureRequest,
    plugin_manager: ConveyorPluginManager,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> CliInvoker:
    """``cli.invoke(*args)``: run a ``conveyor`` command in ``tmp_path``."""
    clean_environment(monkeypatch)
    isolate_project_imports(request, monkeypatch, tmp_path)
    monkeypatch.chdir(tmp_path)
    return CliInvoker(plugin_manager)


@pytest.fixture
def conveyor_project_dir(request: pytest.FixtureRequest) -> Path:
    """The project whose pipelines are tested: pytest's rootdir (override to change)."""
    return Path(request.config.rootpath)


@pytest.fixture
def conveyor_stack(
    tmp_path: Path, conveyor_project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """The project's app on a copy under ``tmp_path``, every store embedded and empty."""
    from conveyor.testing.pipelines import project_stack

    clean_environment(monkeypatch)
    monkeypatch.setattr(sys, "path", list(sys.path))
    app = project_stack(tmp_path, conveyor_project_dir)
    yield app
    app.close()


@pytest.fixture
def conveyor_pipeline(conveyor_stack: Any) -> Any:
    """A :class:`~conveyor.testing.pipelines.PipelineKit` on ``conveyor_stack``."""
    from conveyor.testing.pipelines import PipelineKit

    return PipelineKit(app=conveyor_stack)
