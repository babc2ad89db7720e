"""Conveyor: a LightGBM model turned into a self-maintaining production loop.

Every backend the loop touches is a plugin.  A plugin marks its hook
implementations with :data:`hookimpl`::

    from conveyor import hookimpl

    @hookimpl
    def register_artifact_stores(register):
        register("mine", factory="my_pkg.store:MyStore", config_class=MyStoreConfig)
"""

if __name__ != "conveyor":  # pragma: no cover - guard against `import core` from the repo root
    raise ImportError(
        f"'{__name__}' is Conveyor's source folder, not a package to import: "
        "import 'conveyor' instead (install with `pip install -e .`)."
    )

import pluggy

__version__ = "0.1.0"

#: Marks a plugin's hook implementations.
hookimpl = pluggy.HookimplMarker("conveyor")
#: Marks hook specifications (core's own, or a plugin that defines hooks of its own).
hookspec = pluggy.HookspecMarker("conveyor")

__all__ = ["__version__", "hookimpl", "hookspec"]
