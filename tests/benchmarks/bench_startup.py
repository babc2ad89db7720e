"""`conveyor --help` start-up time against the floor of its own imports.

Run: pytest -m benchmark tests/benchmarks/bench_startup.py -s
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.benchmark

RUNS = 10
GOAL = 1.3
FLOOR = (
    "import click, pluggy, attrs\n"
    "from importlib.metadata import entry_points\n"
    "entry_points(group='conveyor')\n"
)


def conveyor_script() -> Path:
    """The ``conveyor`` console script of the interpreter running the tests (not PATH's)."""
    folders = [sysconfig.get_path("scripts"), str(Path(sys.executable).parent)]
    if f"{os.name}_user" in sysconfig.get_scheme_names():
        folders.append(sysconfig.get_path("scripts", f"{os.name}_user"))
    for folder in folders:
        script = Path(folder) / ("conveyor.exe" if os.name == "nt" else "conveyor")
        if script.is_file():
            return script
    raise AssertionError(f"no conveyor script in {', '.join(folders)}: pip install -e .")


#: as an installed program runs: with bytecode caches.  PYTHONDONTWRITEBYTECODE (set
#: in some shells and CI images) would make an editable checkout compile every one of
#: its modules from source on each start, while the floor's libraries come with
#: their .pyc from pip: not the same work.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def median_wall_time(cmd: list[str], runs: int = RUNS) -> float:
    # the warm-up fills the page cache and writes the bytecode caches
    subprocess.run(cmd, capture_output=True, check=True, env=ENV)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True, env=ENV)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def test_help_start_up_against_import_floor(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    conveyor = str(conveyor_script())
    floor = median_wall_time([sys.executable, "-c", FLOOR])
    bare = median_wall_time([sys.executable, "-c", "pass"])
    help_ = median_wall_time([conveyor, "--help"])
    plugins = median_wall_time([conveyor, "plugins"])
    print(f"\npython -c pass            {bare * 1000:7.1f} ms")
    print(f"import floor              {floor * 1000:7.1f} ms")
    print(
        f"conveyor --help           {help_ * 1000:7.1f} ms  ratio {help_ / floor:.2f}x "
        f"(goal <= {GOAL}x: {'met' if help_ / floor <= GOAL else 'NOT MET'})"
    )
    print(f"conveyor plugins          {plugins * 1000:7.1f} ms  ratio {plugins / floor:.2f}x")
