"""Crash-test worker: moves an alias and SIGKILLs itself at a named point of the move.

Run as ``python _crash_worker.py PROJECT MODEL ACTION POINT [VERSION]``; ACTION is
``set`` or ``rollback``; POINT is a checkpoint name (``set.after_audit``, ...) or
``loop`` (flip production between versions 1..4 forever, printing each commit).
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from conveyor.app import Conveyor
from conveyor.plugins.sqlite.registry import SQLiteRegistryBackend
from conveyor.registry import ModelRegistry


def main() -> None:
    project, model, action, point = sys.argv[1:5]

    def checkpoint(self: Any, name: str) -> None:
        if name == point:
            os.kill(os.getpid(), signal.SIGKILL)

    # inside the backend's transaction (``*.begin`` ... ``*.after_alias``) and in
    # core's registry once the backend committed (``*.committed``)
    SQLiteRegistryBackend._checkpoint = checkpoint  # type: ignore[method-assign]
    ModelRegistry._checkpoint = checkpoint  # type: ignore[method-assign]
    registry = Conveyor.load(cwd=project).registry
    print("ready", flush=True)
    if point == "loop":
        n = 0
        while True:
            n += 1
            registry.set_alias(model, "production", n % 4 + 1, actor="looper")
            print(n, flush=True)
    if action == "set":
        registry.set_alias(
            model, "production", int(sys.argv[5]), actor="crasher", reason="crash test"
        )
    else:
        registry.rollback(model, "production", actor="crasher", reason="crash test")
    print("finished", flush=True)


if __name__ == "__main__":
    main()
