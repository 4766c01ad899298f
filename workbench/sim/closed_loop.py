"""Closed-loop runs: a step of a session is issued only after its parent step has been answered.

:class:`ClosedLoop` drives a :class:`~workbench.traces.agentic.SessionWorkload` through a
:class:`~workbench.sim.simulation.Simulation`: the rows of first steps arrive at their ``arrival_s``; when the
last row of a step finishes, the rows of each child step are released ``think_s`` later (their ``arrival_s``
in the result is that release time, so TTFT and end-to-end latency count from it). A rejected row fails its
step: the session stops there, and the rows of every later step of it are recorded as rejected ("not issued")
rather than silently dropped.

Use it through ``simulate(workload, ...)`` (:func:`workbench.sim.simulate`, :func:`workbench.sim.fleet.simulate`
accept a ``SessionWorkload`` wherever they accept a trace) -- the open-loop replay of the same rows is
``simulate(workload.trace, ...)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from workbench.sim.request import Request
    from workbench.sim.simulation import Simulation
    from workbench.traces.agentic import SessionWorkload

#: Reject reason of the rows of a step that was never issued because an earlier step of its session failed.
NOT_ISSUED = "not issued: an earlier step of its session was rejected (request {row})"


class ClosedLoop:
    """Release rules of one closed-loop run (see module docstring).

    Parameters
    ----------
    workload
        The rows, their steps, parents and think times.

    Attributes
    ----------
    roots
        Rows released at their trace arrival time (first steps), in row order.
    """

    def __init__(self, workload: SessionWorkload) -> None:
        step = workload.step
        parent = workload.parent
        self.think = workload.think_s.tolist()
        self.step = step.tolist()
        n_steps = int(step.max()) + 1 if step.size else 0
        self.left = np.bincount(step, minlength=n_steps).tolist()  # rows of each step not yet done
        order = np.argsort(step, kind="stable")
        bounds = np.searchsorted(step[order], np.arange(n_steps + 1))
        self.rows_of = [order[bounds[s] : bounds[s + 1]].tolist() for s in range(n_steps)]
        first_rows = order[bounds[:-1]] if n_steps else np.zeros(0, dtype=np.int64)
        parent_of_step = parent[first_rows]
        self.children: list[list[int]] = [[] for _ in range(n_steps)]
        for s, p in enumerate(parent_of_step.tolist()):
            if p >= 0:
                self.children[p].append(s)
        self.failed: list[int] = [-1] * n_steps  # a row of the step that was rejected (-1: none)
        self.roots = np.flatnonzero(parent < 0).tolist()
        self.released = 0
        #: time each row arrived (was released); NaN for rows never issued
        self.arrivals = np.full(step.size, np.nan)

    def bind(self, sim: Simulation) -> None:
        """Drive ``sim``: only first steps arrive by the trace, the rest by :meth:`done` (its ``on_done``)."""
        if sim.on_done is not None:
            from workbench.errors import ConfigError

            raise ConfigError("the simulation already has an on_done hook; a closed loop needs it")
        self.sim = sim
        sim.on_done = self.done
        sim.closed_loop = self

    def done(self, req: Request, now: float, rejected: bool) -> None:
        """Row ``req.index`` has finished (or was rejected) at ``now``: release the next steps when due."""
        self.arrivals[req.index] = req.arrival_s
        s = self.step[req.index]
        if rejected and self.failed[s] < 0:
            self.failed[s] = req.index
        left = self.left[s] - 1
        self.left[s] = left
        if left:
            return
        failed = self.failed[s]
        for child in self.children[s]:
            if failed >= 0:
                self._abort(child, failed)
            else:
                for row in self.rows_of[child]:
                    self.released += 1
                    self.sim.release(row, now + self.think[row])

    def _abort(self, s: int, cause: int) -> None:
        """Reject every row of step ``s`` and, through :meth:`done`, of its descendants."""
        reason = NOT_ISSUED.format(row=cause)
        for row in self.rows_of[s]:
            self.sim.reject_row(row, reason)


def open_workload(trace) -> tuple[object, ClosedLoop | None]:
    """Return the rows to simulate and their release rules.

    The rules are those of a :class:`~workbench.traces.agentic.SessionWorkload`; ``None`` for a plain trace,
    which runs open-loop.
    """
    from workbench.traces.agentic import SessionWorkload

    if isinstance(trace, SessionWorkload):
        return trace.trace, ClosedLoop(trace)
    return trace, None
