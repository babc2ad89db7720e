"""Conveyor's bundled plugins.

Each module or subpackage here is an ordinary plugin, listed in Conveyor's own
``pyproject.toml`` under the ``conveyor`` entry-point group exactly as a third-party
plugin lists itself, and it can be disabled by name like any other.
"""

if __name__ != "conveyor.plugins":  # pragma: no cover - guard against `import plugins`
    raise ImportError(
        f"'{__name__}' is the source folder of Conveyor's bundled plugins: "
        "import 'conveyor.plugins' instead (install with `pip install -e .`)."
    )
