"""The type checker passes over ``conveyor`` (core/ and plugins/) with the project's config.

setuptools maps ``core/`` to ``conveyor`` and ``plugins/`` to ``conveyor.plugins``
through ``package-dir``, which mypy does not follow; so the test lays out the
installed import names as a tree of symlinks and checks that tree.  The tree and
mypy's cache live in one folder per checkout under the system's temporary
directory, so a second run only re-checks what changed (a few seconds).  Run it
alone with ``pytest tests/core/test_types.py``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("mypy", reason="mypy comes with the test extra: pip install -e '.[test]'")


def import_tree(repo: Path, root: Path) -> Path:
    """``root/conveyor/<each entry of core/>`` plus ``root/conveyor/plugins -> plugins/``."""
    package = root / "conveyor"
    shutil.rmtree(package, ignore_errors=True)  # links only: the sources are not touched
    package.mkdir(parents=True)
    for entry in (repo / "core").iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    (package / "plugins").symlink_to(repo / "plugins")
    return root


def test_mypy_finds_no_errors(repo_root: Path) -> None:
    checkout = hashlib.sha256(str(repo_root.resolve()).encode()).hexdigest()[:12]
    work = Path(tempfile.gettempdir()) / f"conveyor-types-{checkout}"
    tree = import_tree(repo_root, work / "src")
    env = {**os.environ, "MYPYPATH": str(tree)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "-p",
            "conveyor",
            "--config-file",
            str(repo_root / "pyproject.toml"),
            "--cache-dir",
            str(work / "cache"),
            "--no-error-summary",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    # report paths as the repository names them, not through the symlink tree
    report = (result.stdout + result.stderr).replace(str(tree / "conveyor" / "plugins"), "plugins")
    report = report.replace(str(tree / "conveyor"), "core")
    assert result.returncode == 0, f"mypy found errors:\n{report}"
