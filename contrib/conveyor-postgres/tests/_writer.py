"""Kill-test writer: registers, promotes, rolls back and archives at random, forever.

Run as ``python _writer.py PROJECT MODEL SEED``; prints ``ready`` once the project is
open, then one line per committed operation, until it is killed.
"""

from __future__ import annotations

import random
import sys

from conveyor.app import Conveyor
from conveyor.errors import ConveyorError


def main() -> None:
    project, model, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rng = random.Random(seed)
    app = Conveyor.load(cwd=project)
    registry = app.registry
    info = app.artifacts.put_bytes(f"models/{model}/model.txt", b"tree\nversion=v4\n")
    print("ready", flush=True)
    n = 0
    while True:
        n += 1
        versions = [v.version for v in registry.list_versions(model)]
        choice = rng.random()
        try:
            if choice < 0.25:
                mv = registry.register(model, artifact_uri=info.uri, sha256=info.sha256)
                registry.record_validation(model, mv.version, passed=True, summary="ok")
            elif choice < 0.75:
                alias = rng.choice(("production", "staging", "champion"))
                registry.set_alias(model, alias, rng.choice(versions), actor=f"w{seed}")
            elif choice < 0.9:
                registry.rollback(model, rng.choice(("production", "staging")), actor=f"w{seed}")
            else:
                registry.archive(model, rng.choice(versions), actor=f"w{seed}")
        except ConveyorError:
            pass  # refused by a rule (nothing to roll back to, holds an alias): no write
        print(n, flush=True)


if __name__ == "__main__":
    main()
