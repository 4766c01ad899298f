# cython: wraparound=False
"""The discrete-event engine: one clock and one event heap, nothing global.

Events are ordered by ``(time, priority, sequence)``; the sequence number (a per-engine counter) makes the
order strict and total, so a run is deterministic. A second, pre-sorted source of events -- the arrivals of a
trace -- is merged in without pushing every arrival through the heap, which keeps a million-request run
cheap.

The event heap has two implementations with the same order: compiled (Cython), a binary heap of typed
:class:`Event` objects compared as C numbers (``time``, then ``key`` = priority and sequence packed in one
integer); pure Python, :mod:`heapq` over ``(time, priority, sequence, callback, argument)`` tuples (the fastest
heap in pure Python). :data:`COMPILED` says which runs; since the order is total both pop the same events in
the same order.

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

from workbench._pure import is_compiled
from workbench.errors import WorkbenchError

#: Priority of an instance's batch-iteration end.
PRIO_ITERATION = 0
#: Priority of a request arrival (trace arrivals and delayed submissions).
PRIO_ARRIVAL = 1
#: Priority of control events (instance start/stop/failure, autoscaler ticks).
PRIO_CONTROL = 2

Callback = Callable[[Any, float], None]


#: Bits of an event's ``key`` below its priority: ``key = priority << KEY_BITS | sequence``.
KEY_BITS = 56
#: Keys of arrival events start here (an event whose key is below comes before an arrival at the same time).
ARRIVAL_KEY = PRIO_ARRIVAL << KEY_BITS


def _probe() -> None:
    """Do nothing: a function of this module, whose type says whether the module runs compiled."""


#: This module is the compiled build (typed event heap) rather than the pure-Python source (heapq).
COMPILED = is_compiled(_probe)


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
    handler
        A :class:`Handler` whose ``on_event`` is ``callback`` (the compiled engine then calls it by a typed
        call; ``None``: call ``callback``).
    """

    __slots__ = ("callback", "handler", "pos", "times")

    def __init__(self, times: list[float], callback: Callback, handler: Handler | None = None) -> None:
        self.times = times
        self.callback = callback
        self.handler = handler
        self.pos = 0


class Handler:
    """A receiver of typed events (:meth:`Engine.push_handler`).

    The compiled engine calls its :meth:`on_event` as a C method (no Python-level call, no boxed arguments);
    the pure-Python engine calls the bound method like any callback. The simulator's instances are handlers
    (their step ends).
    """

    __slots__ = ()

    def on_event(self, arg: int, now: float) -> None:
        """Handle the event scheduled with the integer ``arg`` at time ``now``."""
        raise NotImplementedError


def heap_push(heap: list, entry: Event) -> None:
    """Add ``entry`` to the typed ``heap`` (a binary min-heap of :class:`Event` objects on ``(time, key)``).

    The one binary heap of the compiled core: the engine's events and an instance's decode finishes (an
    :class:`Event` whose ``iarg`` is the iteration and ``arg`` the request); the pure-Python core uses ``heapq``
    over tuples, which orders them the same way.
    """
    heap.append(entry)
    i = len(heap) - 1
    while i > 0:
        j = (i - 1) >> 1
        parent = heap[j]
        if parent.time < entry.time or (parent.time == entry.time and parent.key < entry.key):
            break
        heap[i] = parent
        i = j
    heap[i] = entry


def heap_pop(heap: list) -> Event:
    """Remove and return the first entry of the (non-empty) typed ``heap``."""
    top = heap[0]
    last = heap.pop()
    n = len(heap)
    if n:
        i = 0
        while True:
            c = 2 * i + 1
            if c >= n:
                break
            child = heap[c]
            if c + 1 < n:
                right = heap[c + 1]
                if right.time < child.time or (right.time == child.time and right.key < child.key):
                    c += 1
                    child = right
            if last.time < child.time or (last.time == child.time and last.key < child.key):
                break
            heap[i] = child
            i = c
        heap[i] = last
    return top


class Event:
    """One scheduled event of the compiled engine's heap.

    It runs ``handler.on_event(iarg, time)`` when it has a handler, else ``callback(arg, time)``; events are
    ordered by ``time`` then ``key`` (priority and sequence number, see :data:`KEY_BITS`).
    """

    __slots__ = ("arg", "callback", "handler", "iarg", "key", "time")

    def __init__(self, time: float, key: int, callback: Callback, arg: Any) -> None:
        self.time = time
        self.key = key
        self.callback = callback
        self.arg = arg
        self.handler: Handler | None = None
        self.iarg = 0


class Engine:
    """Owns the simulation clock and the event heap.

    Attributes
    ----------
    now
        Current simulated time in seconds; never decreases.
    events
        Number of events processed so far (heap events plus arrivals).
    """

    __slots__ = ("_counter", "_heap", "_seq", "events", "now")

    def __init__(self) -> None:
        self.now = 0.0
        self.events = 0
        #: the event heap: Event objects (compiled) or (time, priority, sequence, callback, arg) tuples (heapq)
        self._heap: list = []
        self._counter = itertools.count()  # sequence numbers of the heapq events
        self._seq = 0  # sequence numbers of the typed events

    def schedule(self, time: float, priority: int, callback: Callback, arg: Any = None) -> None:
        """Call ``callback(arg, time)`` at ``time`` (>= now); ties are broken by ``priority``, then FIFO."""
        if time < self.now:
            raise SimulationError(f"event scheduled in the past: {time!r} < now {self.now!r}")
        self.push(time, priority, callback, arg)

    def push(self, time: float, priority: int, callback: Callback, arg: Any = None) -> None:
        """Schedule ``callback(arg, time)`` as :meth:`schedule` does, without checking ``time``.

        The fast path for callers whose ``time`` is not in the past by construction (``now`` plus a duration
        already checked to be >= 0): the same event, without the check.
        """
        if COMPILED:
            ev = Event.__new__(Event)  # (a direct allocation in the compiled build, no __init__ call)
            ev.time = time
            ev.key = (priority << KEY_BITS) | self._seq
            ev.callback = callback
            ev.arg = arg
            self._seq += 1
            heap_push(self._heap, ev)
        else:
            heapq.heappush(self._heap, (time, priority, next(self._counter), callback, arg))

    def schedule_handler(self, time: float, priority: int, handler: Handler, arg: int) -> None:
        """:meth:`schedule` of ``handler.on_event(arg, time)`` (a typed call in the compiled engine)."""
        if time < self.now:
            raise SimulationError(f"event scheduled in the past: {time!r} < now {self.now!r}")
        self.push_handler(time, priority, handler, arg)

    def push_handler(self, time: float, priority: int, handler: Handler, arg: int) -> None:
        """Schedule ``handler.on_event(arg, time)`` as :meth:`push` does.

        The same event order as :meth:`push`, dispatched by a typed call in the compiled engine.
        """
        if COMPILED:
            ev = Event.__new__(Event)
            ev.time = time
            ev.key = (priority << KEY_BITS) | self._seq
            ev.handler = handler
            ev.iarg = arg
            self._seq += 1
            heap_push(self._heap, ev)
        else:
            heapq.heappush(self._heap, (time, priority, next(self._counter), handler.on_event, arg))

    def run(self, feed: ArrivalFeed | None = None, until: float = math.inf) -> None:
        """Process events (and the arrivals of ``feed``) in order until none is left or ``until`` is reached.

        Python's cyclic garbage collector is paused while the loop runs (the simulator creates no reference
        cycles per event, and rescanning a million live requests at every collection would dominate the run
        time); it is restored afterwards.
        """
        with paused_gc():
            if COMPILED:
                self._run_typed(feed, until)
            else:
                self._run(feed, until)

    def _run_typed(self, feed: ArrivalFeed | None, until: float) -> None:
        """:meth:`_run` over the typed heap (the compiled engine)."""
        heap = self._heap
        times = feed.times if feed is not None else []
        n_arr = len(times)
        pos = feed.pos if feed is not None else 0
        arrive = feed.callback if feed is not None else None
        typed = feed.handler if feed is not None else None
        events = 0
        while True:
            if pos < n_arr:  # the next arrival, unless an event comes first (events win ties of priority)
                t_arr = times[pos]
                take = False
                if heap:
                    top = heap[0]
                    take = top.time < t_arr or (top.time == t_arr and top.key < ARRIVAL_KEY)
                if not take:
                    if t_arr > until:
                        break
                    self.now = t_arr
                    events += 1
                    pos += 1
                    if typed is not None:
                        typed.on_event(pos - 1, t_arr)
                    else:
                        arrive(pos - 1, t_arr)
                    continue
            elif heap:
                top = heap[0]
            else:
                break
            if top.time > until:
                break
            heap_pop(heap)  # the same object as top
            self.now = top.time
            events += 1
            handler = top.handler
            if handler is not None:
                handler.on_event(top.iarg, top.time)
            else:
                top.callback(top.arg, top.time)
        if feed is not None:
            feed.pos = pos
        self.events += events

    def _run(self, feed: ArrivalFeed | None, until: float) -> None:
        """Run the event loop over the heapq heap (pure Python): events in order, merged with the arrivals."""
        heap = self._heap
        pop = heapq.heappop
        times = feed.times if feed is not None else []
        n_arr = len(times)
        pos = feed.pos if feed is not None else 0
        arrive = feed.callback if feed is not None else None
        events = 0
        while True:
            if pos < n_arr:  # the next arrival, unless an event comes first (events win ties of priority)
                t_arr = times[pos]
                take = False
                if heap:
                    top = heap[0]
                    take = top[0] < t_arr or (top[0] == t_arr and top[1] < PRIO_ARRIVAL)
                if not take:
                    if t_arr > until:
                        break
                    self.now = t_arr
                    events += 1
                    pos += 1
                    arrive(pos - 1, t_arr)
                    continue
            elif heap:
                top = heap[0]
            else:
                break
            if top[0] > until:
                break
            pop(heap)
            self.now = top[0]
            events += 1
            top[3](top[4], top[0])
        if feed is not None:
            feed.pos = pos
        self.events += events

    @property
    def pending(self) -> int:
        """Number of events waiting in the heap."""
        return len(self._heap)
