"""The discrete-event engine: one clock and one event heap, nothing global.

Events are ``(time, priority, sequence, callback, argument)`` tuples in a binary heap; the sequence number (a
per-engine counter) makes the order strict and total, so a run is deterministic. A second, pre-sorted source
of events -- the arrivals of a trace -- is merged in without pushing every arrival through the heap, which
keeps a million-request run cheap.

Priorities order simultaneous events: an instance's iteration end (:data:`PRIO_ITERATION`) comes before an
arrival (:data:`PRIO_ARRIVAL`), so a request arriving exactly when a batch finishes is seen by the next batch;
control events (scaling, failures: :data:`PRIO_CONTROL`) come last.

Examples
--------
>>> eng = Engine()
>>> seen = []
>>> eng.schedule(2.0, PRIO_CONTROL, lambda arg, now: seen.append((now, arg)), "b")
>>> eng.schedule(1.0, PRIO_CONTROL, lambda arg, now: seen.append((now, arg)), "a")
>>> eng.run()
>>> seen
[(1.0, 'a'), (2.0, 'b')]

Compiled core: ``setup.py`` builds this module with Cython, typed by ``engine.pxd`` beside it (a new
attribute or method of its classes is declared there too); the ``.py`` file stays the pure-Python
implementation (:mod:`workbench._pure` chooses, ``tests/test_compiled_core.py`` checks both agree).
"""

from __future__ import annotations

import gc
import heapq
import itertools
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from workbench.errors import WorkbenchError

#: Priority of an instance's batch-iteration end.
PRIO_ITERATION = 0
#: Priority of a request arrival (trace arrivals and delayed submissions).
PRIO_ARRIVAL = 1
#: Priority of control events (instance start/stop/failure, autoscaler ticks).
PRIO_CONTROL = 2

Callback = Callable[[Any, float], None]


class SimulationError(WorkbenchError):
    """The simulation reached an impossible state (a bug or a bad hook); raised instead of hanging."""


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause Python's cyclic garbage collector inside the block (restored on exit, also on errors)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class ArrivalFeed:
    """A pre-sorted stream of arrival times delivered to ``callback(index, time)`` in order.

    Parameters
    ----------
    times
        Non-decreasing arrival times in seconds (a Python list is fastest).
    callback
        Called with the arrival's position in ``times`` and its time.
    """

    __slots__ = ("callback", "pos", "times")

    def __init__(self, times: list[float], callback: Callback) -> None:
        self.times = times
        self.callback = callback
        self.pos = 0


class Engine:
    """Owns the simulation clock and the event heap.

    Attributes
    ----------
    now
        Current simulated time in seconds; never decreases.
    events
        Number of events processed so far (heap events plus arrivals).
    """

    __slots__ = ("_counter", "_heap", "events", "now")

    def __init__(self) -> None:
        self.now = 0.0
        self.events = 0
        self._heap: list[tuple] = []
        self._counter = itertools.count()

    def schedule(self, time: float, priority: int, callback: Callback, arg: Any = None) -> None:
        """Call ``callback(arg, time)`` at ``time`` (>= now); ties are broken by ``priority``, then FIFO."""
        if time < self.now:
            raise SimulationError(f"event scheduled in the past: {time!r} < now {self.now!r}")
        heapq.heappush(self._heap, (time, priority, next(self._counter), callback, arg))

    def push(self, time: float, priority: int, callback: Callback, arg: Any = None) -> None:
        """The fast path of :meth:`schedule` for callers whose ``time`` is not in the past by construction
        (``now`` plus a duration already checked to be >= 0): the same event, without the check."""
        heapq.heappush(self._heap, (time, priority, next(self._counter), callback, arg))

    def run(self, feed: ArrivalFeed | None = None, until: float = math.inf) -> None:
        """Process events (and the arrivals of ``feed``) in order until none is left or ``until`` is reached.

        Python's cyclic garbage collector is paused while the loop runs (the simulator creates no reference
        cycles per event, and rescanning a million live requests at every collection would dominate the run
        time); it is restored afterwards.
        """
        with paused_gc():
            self._run(feed, until)

    def _run(self, feed: ArrivalFeed | None, until: float) -> None:
        heap = self._heap
        pop = heapq.heappop
        times = feed.times if feed is not None else []
        n_arr = len(times)
        pos = feed.pos if feed is not None else 0
        arrive = feed.callback if feed is not None else None
        events = 0
        while True:
            if pos < n_arr:
                t_arr = times[pos]
                if heap:
                    top = heap[0]
                    if top[0] < t_arr or (top[0] == t_arr and top[1] < PRIO_ARRIVAL):
                        if top[0] > until:
                            break
                        pop(heap)
                        self.now = top[0]
                        events += 1
                        top[3](top[4], top[0])
                        continue
                if t_arr > until:
                    break
                self.now = t_arr
                events += 1
                pos += 1
                arrive(pos - 1, t_arr)
            elif heap:
                top = heap[0]
                if top[0] > until:
                    break
                pop(heap)
                self.now = top[0]
                events += 1
                top[3](top[4], top[0])
            else:
                break
        if feed is not None:
            feed.pos = pos
        self.events += events

    @property
    def pending(self) -> int:
        """Number of events waiting in the heap."""
        return len(self._heap)
