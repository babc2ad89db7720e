"""Lint and format are part of the test command, so CI keeps both clean."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: the project's own code; not what a user's commands leave in the checkout
#: (`conveyor demo` writes ./conveyor-demo, `conveyor init` a project folder)
SOURCES = ["core", "plugins", "contrib", "tests", "setup.py"]


def _ruff() -> list[str]:
    """ruff of the running interpreter (a virtualenv's bin need not be on PATH)."""
    if importlib.util.find_spec("ruff") is None:
        pytest.fail("ruff is not installed: pip install -e '.[test]' installs it")
    return [sys.executable, "-m", "ruff"]


def test_ruff_check_is_clean() -> None:
    done = subprocess.run(
        [*_ruff(), "check", "--no-cache", *SOURCES],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_format_leaves_every_file_as_it_is() -> None:
    done = subprocess.run(
        [*_ruff(), "format", "--check", "--no-cache", *SOURCES],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, (
        done.stdout + done.stderr + "\nrun `ruff format .` and commit the result"
    )
