"""Fixtures shared by Conveyor's own tests (the public ones live in conveyor.testing)."""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def repo_root() -> Path:
    return REPO


@pytest.fixture
def fake_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Install a throwaway distribution on ``sys.path`` (a real ``.dist-info`` folder).

    ``make(name, version, entry_points={"ep": "module"}, modules={"module": "source"})``
    """
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))

    def make(
        name: str, version: str = "1.0", *, entry_points: dict[str, str], modules: dict[str, str]
    ) -> Path:
        info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        lines = "\n".join(f"{ep} = {target}" for ep, target in entry_points.items())
        (info / "entry_points.txt").write_text(f"[conveyor]\n{lines}\n")
        for module, source in modules.items():
            (site / f"{module}.py").write_text(textwrap.dedent(source))
        importlib.invalidate_caches()
        return site

    yield make
    for module in [m for m in sys.modules if m.startswith("fake_")]:
        del sys.modules[module]
