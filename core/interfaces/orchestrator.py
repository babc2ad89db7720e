"""The orchestrator interface: an executor of steps' work.

Core decides what runs, when, with which inputs, whether it is cached and how
often it is retried (:mod:`conveyor.runs`); an orchestrator only executes the
work it is handed and reports its result or its failure through a
:class:`concurrent.futures.Future`.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from concurrent.futures import Future

    from conveyor.runs import StepResult, StepWork


class Orchestrator(abc.ABC):
    """Executes :class:`~conveyor.runs.StepWork` that core submits.

    What an implementation must guarantee: ``submit`` returns at once (or after
    running the work inline) with a future that ends in the work's
    :class:`~conveyor.runs.StepResult` or in the exception it raised; core never
    has more than ``max_parallel`` works submitted and unfinished.

    Attributes:
        max_parallel: how many works core may have running at once.
        in_process: ``True`` when ``work()`` is called in this process (values may
            stay in memory).  ``False`` when the work runs elsewhere from its JSON
            form (``work.to_json()`` run by :func:`conveyor.runs.run_task`, whose
            answer :meth:`~conveyor.runs.StepResult.from_json` turns back into a
            result): core then stores every output in the artifact store.
    """

    max_parallel: int = 1
    in_process: bool = True

    @abc.abstractmethod
    def submit(self, work: StepWork) -> Future[StepResult]:
        """Start ``work``; the future holds its result, or the exception it raised.

        ``work.timeout_s`` is how long core will wait: an executor that can stop
        the work then (kill a child process) should; core records the step as
        ``timed_out`` either way and starts nothing after it.
        """

    def close(self) -> None:
        """Release workers and pools (called when the app closes)."""
        return None
