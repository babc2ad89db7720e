"""Packaging: the wheel holds every package and entry point; a real third-party plugin works."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from conveyor import __version__
from conveyor.testing import install_in_virtualenv, virtualenv_seeing_this_interpreter

pytestmark = pytest.mark.slow


def package_dirs(repo: Path) -> set[str]:
    found = set()
    for top, prefix in (("core", "conveyor"), ("plugins", "conveyor/plugins")):
        for init in (repo / top).rglob("__init__.py"):
            rel = init.parent.relative_to(repo / top).as_posix()
            found.add(prefix if rel == "." else f"{prefix}/{rel}")
    return found


def test_version_matches_pyproject(repo_root):
    pyproject = tomllib.loads((repo_root / "pyproject.toml").read_text())
    assert pyproject["project"]["version"] == __version__


def test_wheel_holds_every_package_and_bundled_entry_point(repo_root, tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(repo_root),
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("conveyor-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in package_dirs(repo_root):
        assert f"{package}/__init__.py" in names, f"{package} missing from the wheel"
    for template in (repo_root / "core" / "scaffold" / "template").iterdir():
        assert f"conveyor/scaffold/template/{template.name}" in names
    (ep_file,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(ep_file).decode()
    declared = tomllib.loads((repo_root / "pyproject.toml").read_text())
    for name, module in declared["project"]["entry-points"]["conveyor"].items():
        assert f"{name} = {module}" in text
        path = module.replace(".", "/")
        assert f"{path}.py" in names or f"{path}/__init__.py" in names
    assert "conveyor = conveyor.cli:main" in text


def test_source_folders_refuse_to_be_imported_by_their_folder_name(repo_root):
    for folder, right in (("core", "conveyor"), ("plugins", "conveyor.plugins")):
        result = subprocess.run(
            [sys.executable, "-c", f"import {folder}"],
            cwd=repo_root,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode != 0
        assert f"import '{right}' instead" in result.stderr


def test_isolated_venv_finds_conveyor_but_installs_into_itself(tmp_path):
    python = virtualenv_seeing_this_interpreter(tmp_path / "venv")
    probe = subprocess.run(
        [
            str(python),
            "-c",
            "import sys, sysconfig, conveyor; print(sys.prefix); "
            "print(sysconfig.get_paths()['purelib']); print(conveyor.__version__)",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.split("\n")
    assert Path(probe[0]) == tmp_path / "venv"
    assert Path(probe[1]).is_relative_to(tmp_path / "venv")
    assert probe[2] == __version__


def test_third_party_plugin_in_a_fresh_virtualenv(repo_root, tmp_path):
    """Install tests/fixtures/conveyor-hello beside Conveyor and use it like a user would."""
    python = install_in_virtualenv(repo_root / "tests/fixtures/conveyor-hello", tmp_path / "venv")
    project = tmp_path / "project"
    project.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}

    def conveyor(*args: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(python), "-m", "conveyor", *args],
            cwd=project,
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=120,
        )

    listed = conveyor("plugins", "--json")
    assert listed.returncode == 0, listed.stderr
    row = next(r for r in json.loads(listed.stdout) if r["name"] == "hello")
    assert row["distribution"] == "conveyor-hello" and row["version"] == "1.2.3"
    assert row["status"] == "loaded"
    assert row["backends"] == {"orchestrator": ["hello"]}
    assert row["hooks"] == ["register_commands", "register_orchestrators"]

    (project / "conveyor.toml").write_text('[orchestrator]\nbackend = "hello"\ngreeting = "hej"\n')
    ran = conveyor("hello")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "HelloOrchestrator: hej"

    disabled = conveyor("plugins", "--json", CONVEYOR_DISABLE_PLUGINS="hello")
    row = next(r for r in json.loads(disabled.stdout) if r["name"] == "hello")
    assert row["status"] == "disabled"
    gone = conveyor("hello", CONVEYOR_DISABLE_PLUGINS="hello")
    assert gone.returncode == 2 and "No such command 'hello'" in gone.stderr
    check = conveyor("config", "check", CONVEYOR_DISABLE_PLUGINS="hello")
    assert check.returncode == 1
    assert "hello (disabled by configuration)" in check.stdout
