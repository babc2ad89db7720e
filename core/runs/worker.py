"""``python -m conveyor.runs.worker``: run steps sent as JSON lines on stdin.

Each input line is one :meth:`conveyor.runs.StepWork.to_json` document; each
output line is its :class:`conveyor.runs.StepResult` as JSON (a failure included).
Run it in the project folder, or anywhere the task's ``root`` exists.  An
executor keeps one such process per worker and talks to it through pipes; only
JSON crosses the boundary.
"""

from __future__ import annotations

import sys

from conveyor.runs.work import run_task


def main() -> None:
    for line in sys.stdin:
        if line.strip():
            sys.stdout.write(run_task(line) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
