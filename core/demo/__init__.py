"""``conveyor demo``: the whole continuous-training loop on synthetic data, in one command.

:func:`run_demo` runs the stages (see :mod:`conveyor.demo.runner`) in a folder it
creates; :data:`SIZES` names how much it does.  docs/getting-started.md follows it.
"""

from conveyor.demo.project import SIZES, Size
from conveyor.demo.runner import SUMMARY, run_demo

__all__ = ["SIZES", "SUMMARY", "Size", "run_demo"]
