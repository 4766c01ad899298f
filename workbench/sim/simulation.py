"""The simulation: engine + instances + router + result recording, and the lifecycle hooks of the fleet layer.

:func:`simulate` runs a trace through ``n`` identical instances. The fleet layer (pools, autoscaling,
disaggregation, failures) drives the same :class:`Simulation` through a few small hooks:

``router``
    A :class:`~workbench.sim.routing.Router`: ``choose(request, view, now) -> int`` over the
    :class:`~workbench.sim.views.InstanceView` of the routable (``"on"``) instances (``view.instances``),
    returning a position in it, or -1 to reject (the router's ``reject_reason`` attribute, if any, is
    recorded). The routers of :mod:`workbench.sim.routing` and the fleet controller are such routers.
    Default: round robin.
``add_instance(config, state="on"|"off")``
    A new instance (its index is its position in ``sim.instances``).
``start_instance(inst, setup_s)`` / ``drain_instance(inst)`` / ``fail_instance(inst, repair_s=None)``
    Lifecycle off -> starting (``setup_s``) -> on -> draining -> off; a failed instance's requests are
    re-routed at once (``retries`` counted per request and in ``counters["retried"]``). Call them from
    events: ``sim.engine.schedule(t, PRIO_CONTROL, lambda arg, now: sim.start_instance(...))``.
``on_finish(request, instance, now) -> bool``
    Called when a request finishes on an instance (for a ``role="prefill"`` instance: after its first
    token). Return ``True`` to take the request over (e.g. set ``request.kv_ready = True`` and
    ``sim.submit(request, at=now + transfer_s)`` to a decode pool); ``False`` records it as finished.
``on_state_change(instance, old, new, now)``
    Called on every lifecycle change (autoscalers and routers that cache the instance list).
``submit(request, at=None)``
    Route a request now or at a later time. Requests that find no routable instance wait in
    ``sim.pending`` and are routed when an instance turns on.
``on_end(now)``
    Called when the events have run out: a router that holds requests (:data:`DEFER`) rejects those it still
    holds (:meth:`Simulation.reject`), so that every request is recorded.
``on_done(request, now, rejected)``
    Called when a request is done for good (recorded as finished or rejected; not at a P/D hand-off).
``closed_loop``
    Release rules (:class:`workbench.sim.closed_loop.ClosedLoop`): only its ``roots`` arrive by the trace,
    the other rows when the loop calls :meth:`Simulation.release` (or :meth:`Simulation.reject_row`).

Compiled core: ``setup.py`` builds this module with Cython, typed by ``simulation.pxd`` beside it (a new
attribute or method of its classes is declared there too); the ``.py`` file stays the pure-Python
implementation (:mod:`workbench._pure` chooses, ``tests/test_compiled_core.py`` checks both agree).
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from workbench._progress import interactive as _interactive
from workbench.errors import ConfigError, WorkloadError
from workbench.seeds import Streams
from workbench.sim.closed_loop import open_workload
from workbench.sim.config import InstanceConfig, SimConfig
from workbench.sim.engine import (
    PRIO_ARRIVAL,
    PRIO_CONTROL,
    ArrivalFeed,
    Engine,
    SimulationError,
    paused_gc,
)
from workbench.sim.hierarchy import attach_hierarchy, finish_hierarchy
from workbench.sim.instance import (
    DRAINING,
    IDLE,
    OFF,
    ON,
    SEG_OFF,
    SEG_STARTING,
    SEG_STATES,
    STARTING,
    Instance,
    TypedHost,
)
from workbench.sim.invariants import check_result, warn_rejections
from workbench.sim.request import Request, new_request
from workbench.sim.result import INSTANCE_SCHEMA, REQUEST_SCHEMA, SEGMENT_SCHEMA, SimResult
from workbench.sim.routing.load import RoundRobin
from workbench.sim.views import InstanceView
from workbench.traces.schema import Trace, check_requests

NAN = math.nan
#: ``progress=None`` shows a bar only for traces at least this long (and only after a second of wall time).
PROGRESS_MIN_REQUESTS = 100_000
#: Router return value: the router keeps the request (e.g. until its pool has an instance on) and routes it
#: later with :meth:`Simulation.route`.
DEFER = -2


class TypedRouter:
    """Base of a router that the compiled simulation calls by a typed C method call (the fleet controller);
    any other router's ``choose`` is a Python-level call. Same contract as a router's ``choose``."""

    __slots__ = ()

    def choose(self, request: Request, routable: Any, now: float) -> int:
        """Position in ``routable`` of the instance that serves ``request`` (negative: reject or defer)."""
        raise NotImplementedError


class Simulation(TypedHost):
    """Discrete-event simulation of LLM instances sharing one clock (the :class:`InstanceHost` of its
    instances).

    Parameters
    ----------
    seed
        Root of the simulation's named random streams (:class:`workbench.seeds.Streams`; :meth:`rng`).
    router
        Routing policy (see module docstring); default round robin.
    prefix_block_tokens
        Tokens per ``prefix_hashes`` block of the trace (``trace.prefix_block_tokens``).
    record_segments
        Keep the per-instance time series (needed for energy); ``False`` saves memory.
    check
        Check every result against the invariants of :mod:`workbench.sim.invariants` (on by default;
        cheap). Rejected requests are always reported with a :class:`~workbench.sim.invariants.RejectionWarning`
        giving their count and reasons.
    """

    def __init__(
        self,
        *,
        seed: int | np.random.SeedSequence | Streams = 0,
        router: Any = None,
        prefix_block_tokens: int | None = None,
        record_segments: bool = True,
        check: bool = True,
    ) -> None:
        self.engine = Engine()
        #: check every result against :mod:`workbench.sim.invariants` (cheap; raises InvariantError)
        self.check = check
        #: the simulation's named random streams (:mod:`workbench.seeds`)
        self.streams = Streams(seed)
        self.router = router if router is not None else RoundRobin()
        self.prefix_block_tokens = prefix_block_tokens
        self.record_segments = record_segments
        self.instances: list[Instance] = []
        self.routable: list[Instance] = []
        self.pending: deque[Request] = deque()
        self.on_finish: Callable[[Request, Instance, float], bool] | None = None
        self.on_state_change: Callable[[Instance, str, str, float], None] | None = None
        self.on_end: Callable[[float], None] | None = None
        self.on_done: Callable[[Request, float, bool], None] | None = None
        self.closed_loop: Any = None
        #: Keep requests that find no routable instance in ``pending`` (an autoscaler will start one)
        #: instead of rejecting them.
        self.hold_unroutable = False
        #: Recount each instance's bookkeeping before every step (slow; for tests). Set before adding instances.
        self.audit = False
        self.counters: dict[str, int] = {"rejected": 0, "retried": 0, "failures": 0, "cold_starts": 0}
        # segments as rows of 8 doubles (instance, start, end, state, batch, prefill, kv, iterations)
        self._seg = array("d")
        #: where instances write their finished segments (``None``: not recorded)
        self.segment_sink = self._seg.extend if record_segments else None
        self._records = _Records(0)
        self._ids: list = []
        self._prompt: list = []
        self._output: list = []
        self._hashes: list | None = None
        self._sessions: list | None = None
        self._classes: list | None = None
        self._view: InstanceView | None = None

    # ------------------------------------------------------------------ setup and hooks
    def rng(self, name: str) -> np.random.Generator:
        """The generator of the simulation's random stream ``name`` (keyed by the name, not by call order)."""
        return self.streams.rng(name)

    def add_instance(self, config: InstanceConfig, *, state: str = ON) -> Instance:
        """Create an instance, ``"on"`` (serving at the current time) or ``"off"``."""
        if state not in (ON, OFF):
            raise ConfigError(f"state must be 'on' or 'off' when adding an instance, got {state!r}")
        inst = Instance(self, len(self.instances), config, prefix_block_tokens=self.prefix_block_tokens,
                        state=state, now=self.engine.now)  # fmt: skip
        self.instances.append(inst)
        if state == ON:
            self.routable.append(inst)
            self._view = None
        return inst

    @property
    def view(self) -> InstanceView:
        """The routers' view of the routable instances (rebuilt after a lifecycle change)."""
        view = self._view
        if view is None:
            view = self._view = InstanceView(self.routable, self.engine)
        return view

    def _set_state(self, inst: Instance, new: str, now: float) -> None:
        old = inst.state
        inst.state = new
        self._view = None
        if new == ON:
            if inst not in self.routable:
                self.routable.append(inst)
                self.routable.sort(key=lambda x: x.index)
        elif inst in self.routable:
            self.routable.remove(inst)
        if self.on_state_change is not None:
            self.on_state_change(inst, old, new, now)

    def start_instance(self, inst: Instance, setup_s: float = 0.0) -> None:
        """Turn an ``"off"`` instance on after ``setup_s`` seconds (a cold start); a draining one back on."""
        now = self.engine.now
        if inst.state == DRAINING:
            self._set_state(inst, ON, now)
            return
        if inst.state != OFF:
            return
        self.counters["cold_starts"] += 1
        inst.set_segment_state(SEG_STARTING, now)
        self._set_state(inst, STARTING, now)
        self.engine.schedule(now + setup_s, PRIO_CONTROL, self._started, inst)

    def _started(self, inst: Instance, now: float) -> None:
        if inst.state != STARTING:
            return
        inst.set_segment_state(IDLE, now)
        self._set_state(inst, ON, now)
        inst.resume(now)
        while self.pending and self.routable:
            self.route(self.pending.popleft(), now)

    def drain_instance(self, inst: Instance) -> None:
        """Stop routing to ``inst``; it turns off once its queue and batch are empty."""
        now = self.engine.now
        if inst.state not in (ON, STARTING):
            return
        if inst.state == STARTING:
            inst.set_segment_state(SEG_OFF, now)
            self._set_state(inst, OFF, now)
            return
        self._set_state(inst, DRAINING, now)
        if not inst.busy and not inst.waiting:
            self.instance_drained(inst, now)

    def instance_drained(self, inst: Instance, now: float) -> None:
        """A draining instance ran out of work: it turns off."""
        inst.set_segment_state(SEG_OFF, now)
        self._set_state(inst, OFF, now)

    def fail_instance(self, inst: Instance, repair_s: float | None = None) -> list[Request]:
        """Fail ``inst`` now: its requests are re-routed (and counted); restart after ``repair_s`` if given."""
        now = self.engine.now
        if inst.state == OFF:
            return []
        reqs = inst.evacuate(now)
        self.counters["failures"] += 1
        self.counters["retried"] += len(reqs)
        inst.set_segment_state(SEG_OFF, now)
        self._set_state(inst, OFF, now)
        for req in reqs:
            self.route(req, now)
        if repair_s is not None:
            self.engine.schedule(now + repair_s, PRIO_CONTROL, lambda i, t: self.start_instance(i), inst)
        return reqs

    def submit(self, request: Request, at: float | None = None) -> None:
        """Route ``request`` now (``at=None``) or at time ``at``."""
        if at is None or at <= self.engine.now:
            self.route(request, self.engine.now)
        else:
            self.engine.schedule(at, PRIO_ARRIVAL, self._route_event, request)

    def _route_event(self, request: Request, now: float) -> None:
        self.route(request, now)

    def route(self, req: Request, now: float) -> None:
        """Pick an instance for ``req`` with the router and queue it there (or reject it)."""
        routable = self.routable
        if len(routable) == 1 and self.router.__class__ is RoundRobin:
            inst = routable[0]
        elif not routable:
            if self.hold_unroutable or self._any_starting():
                self.pending.append(req)
            else:
                self.reject(req, "no instance is on")
            return
        else:
            router = self.router
            if isinstance(router, TypedRouter):
                typed = router  # (a C call in the compiled build)
                pos = typed.choose(req, self.view, now)
            else:
                pos = router.choose(req, self.view, now)
            if pos == DEFER:  # the router holds the request and submits it later (fleet layer)
                return
            if pos < 0:
                self.reject(req, getattr(self.router, "reject_reason", None) or "rejected by the router")
                return
            inst = routable[pos]
        if req.prompt_tokens + req.output_tokens > inst.fit_tokens or req.prompt_tokens > inst.max_prompt:
            self.reject(req, inst.reject_reason(req))
            return
        inst.enqueue(req, now)

    def _any_starting(self) -> bool:
        return any(i.state == STARTING for i in self.instances)

    def release(self, row: int, at: float) -> None:
        """Closed loop: trace row ``row`` arrives at ``at`` (>= now) and is routed."""
        self.engine.schedule(at, PRIO_ARRIVAL, self._arrive_row, row)

    def reject_row(self, row: int, reason: str) -> None:
        """Closed loop: record trace row ``row``, never issued, as rejected with ``reason``."""
        self.reject(self._make_row(row), reason)

    def reject(self, req: Request, reason: str) -> None:
        """Record ``req`` as rejected with ``reason`` (never dropped silently)."""
        self.counters["rejected"] += 1
        self._records.reasons[req.index] = reason
        self._records.store(req)
        if self.on_done is not None:
            self.on_done(req, self.engine.now, True)

    def request_finished(self, req: Request, inst: Instance, now: float) -> None:
        """``req`` finished on ``inst``: hand it to ``on_finish`` or record it."""
        if self.on_finish is not None and self.on_finish(req, inst, now):
            return
        req.finish_s = now
        self._records.store(req)
        if self.on_done is not None:
            self.on_done(req, now, False)

    # ------------------------------------------------------------------ running a trace
    def run(self, requests, *, progress: bool | None = None) -> SimResult:
        """Simulate ``requests`` (canonical trace columns) to completion and return the result tables.

        Parameters
        ----------
        requests
            The trace rows: a polars DataFrame, or a :class:`~workbench.traces.schema.Trace` (whose
            ``prefix_block_tokens``, when set, must be the simulation's if an instance caches prefixes).
        progress
            Show a tqdm progress bar of the requests done (finished or rejected) and the simulated time,
            updated every few thousand requests (no cost per event). ``None`` (auto): on when the session is
            interactive (stderr is a terminal, or an IPython kernel) and the trace has at least
            :data:`PROGRESS_MIN_REQUESTS` rows, appearing only after one second; quiet otherwise.

        Raises
        ------
        WorkloadError
            For anything but a Trace or DataFrame, and for bad rows (see :func:`trace_rows`).
        ConfigError
            Without instances, for prefill instances without ``on_finish``, or when the trace's prefix block
            size differs from the one the instances were built with (their caches would ignore its hashes).
        """
        return self._run_checked(*trace_rows(requests), progress)

    def _run_checked(self, requests: pl.DataFrame, block: int | None, progress: bool | None) -> SimResult:
        """:meth:`run` on rows already checked by :func:`trace_rows` (with the trace's block size)."""
        if (
            block is not None
            and block != self.prefix_block_tokens
            and any(i.config.scheduler.prefix_caching for i in self.instances)
        ):
            raise ConfigError(
                f"the trace's prefix_block_tokens is {block} but the simulation's is "
                f"{self.prefix_block_tokens}; build it with Simulation(prefix_block_tokens={block})"
            )
        bar = _progress_bar(requests.height, progress)
        try:
            with paused_gc():
                result = self._run(requests, bar)
        finally:
            if bar is not None:
                bar.update(self._records.count - bar.n)
                bar.close()
        if self.check:
            check_result(result, requests.height)
        warn_rejections(result, stacklevel=4)
        return result

    def _run(self, requests: pl.DataFrame, bar=None) -> SimResult:
        """Run checked ``requests`` (see :func:`trace_rows`)."""
        if self.on_finish is None and any(i.role == "prefill" for i in self.instances):
            raise ConfigError("role='prefill' instances need an on_finish hook that hands requests on")
        if not self.instances:
            raise ConfigError("the simulation has no instances")
        n = requests.height
        self._requests = requests
        self._records = _Records(n) if bar is None else _ProgressRecords(n, bar, self.engine)
        arrival = requests["arrival_s"].to_list()
        ids = requests["request_id"].to_list()
        prompt = requests["prompt_tokens"].to_list()
        output = requests["output_tokens"].to_list()
        optional = {}
        for name in ("prefix_hashes", "session_id", "request_class"):
            if name in requests.columns and requests[name].null_count() < n:
                optional[name] = requests[name].to_list()
        # the trace's columns, read by on_event (an arrival)
        self._ids = ids
        self._prompt = prompt
        self._output = output
        self._hashes = optional.get("prefix_hashes")
        self._sessions = optional.get("session_id")
        self._classes = optional.get("request_class")
        make = self.on_event
        loop = self.closed_loop
        if loop is None:
            feed = ArrivalFeed(arrival, make, self)  # (the compiled engine calls on_event typed)
        else:  # only first steps arrive by the trace; the loop releases the others (release())
            roots = loop.roots
            self._arrive_row = make
            self._make_row = lambda i: new_request(i, ids[i], NAN, prompt[i], output[i])
            feed = ArrivalFeed([arrival[r] for r in roots], lambda pos, now: make(roots[pos], now))
        self.engine.run(feed)
        if self.on_end is not None:
            self.on_end(self.engine.now)
        if self.pending:
            for req in list(self.pending):
                self.reject(req, "no instance turned on before the end of the simulation")
            self.pending.clear()
        unfinished = sum(i.outstanding for i in self.instances)
        if unfinished:
            raise SimulationError(f"{unfinished} request(s) were left unfinished when the events ran out")
        return self.result()

    def on_event(self, arg: int, now: float) -> None:
        """Trace row ``arg`` arrives at ``now``: make its request and route it (the arrivals' typed event)."""
        req = new_request(arg, self._ids[arg], now, self._prompt[arg], self._output[arg])
        if self._hashes is not None:
            req.prefix_hashes = self._hashes[arg]
        if self._sessions is not None:
            req.session_id = self._sessions[arg]
        if self._classes is not None:
            req.request_class = self._classes[arg]
        self.route(req, now)

    def result(self) -> SimResult:
        """Build the result tables (once, from the recorded lists)."""
        end = self.engine.now
        for inst in self.instances:
            inst.close_segments(end)
        rows = self._requests
        if self.closed_loop is not None:  # a released row arrived when it was released
            rows = rows.with_columns(pl.Series("arrival_s", self.closed_loop.arrivals).fill_nan(None))
        requests = self._records.table(rows, self.instances)
        seg = np.frombuffer(self._seg, dtype=np.float64).reshape(-1, 8)
        segments = pl.DataFrame(
            {
                "instance": seg[:, 0].astype(np.int32),
                "start_s": seg[:, 1],
                "end_s": seg[:, 2],
                "state": pl.Series(seg[:, 3].astype(np.int8)).replace_strict(
                    dict(enumerate(SEG_STATES)), return_dtype=pl.Utf8
                ),
                "batch_size": seg[:, 4].astype(np.int32),
                "prefill_tokens": seg[:, 5].astype(np.int64),
                "kv_blocks_used": seg[:, 6].astype(np.int32),
                "iterations": seg[:, 7].astype(np.int64),
            },
            schema=SEGMENT_SCHEMA,
        ).sort("instance", "start_s", maintain_order=True)
        instances = pl.DataFrame(
            {
                "instance": [i.index for i in self.instances],
                "pool": [i.pool for i in self.instances],
                "gpu": [i.config.gpu for i in self.instances],
                "model": [i.config.model for i in self.instances],
                "tp": [i.config.tp for i in self.instances],
                "n_gpus": [float(i.config.n_gpus or i.config.tp) for i in self.instances],
                "kv_capacity_blocks": [i.kv.capacity for i in self.instances],
            },
            schema=INSTANCE_SCHEMA,
        )
        counters = dict(self.counters)
        counters.update(
            events=self.engine.events,
            iterations=sum(i.n_iterations for i in self.instances),
            tokens_generated=sum(i.tokens_out for i in self.instances),
            preemptions=sum(i.n_preemptions for i in self.instances),
            prefix_hit_tokens=sum(i.prefix_hit_tokens for i in self.instances),
            prefix_query_tokens=sum(i.prefix_query_tokens for i in self.instances),
            kv_peak_blocks=max(i.kv.peak for i in self.instances),
            makespan_s=end,
        )
        return SimResult(requests=requests, segments=segments, instances=instances, counters=counters)


#: Columns the simulator reads from every trace row.
def trace_rows(trace) -> tuple[pl.DataFrame, int | None]:
    """The rows of a Trace (valid by construction: not checked again) or of a DataFrame (checked here with the
    rules of a Trace, :func:`workbench.traces.schema.check_requests`) and the trace's prefix block size.

    Raises
    ------
    WorkloadError
        For another object, a trace without arrival times, or bad rows (naming the field and the first bad
        row, counted from 1).
    """
    if isinstance(trace, Trace):
        if not trace.has_arrivals:
            raise WorkloadError(f"trace {trace.name!r} has no arrival times; attach arrivals before simulating")
        return trace.requests, trace.prefix_block_tokens
    if isinstance(trace, pl.DataFrame):
        return check_requests(trace), None
    raise WorkloadError(f"trace must be a Trace or a polars DataFrame, got {type(trace).__name__}")


class _Records:
    """Per-request outcome columns, preallocated for ``n`` trace rows and filled when a request ends."""

    __slots__ = ("admitted_s", "cached_tokens", "count", "finish_s", "first_token_s", "instance", "preemptions",
                 "reasons", "retries")  # fmt: skip

    def __init__(self, n: int) -> None:
        nan_row = array("d", [NAN])
        self.admitted_s = nan_row * n
        self.first_token_s = nan_row * n
        self.finish_s = nan_row * n
        zero_row = array("i", [0])
        self.cached_tokens = zero_row * n
        self.preemptions = zero_row * n
        self.instance = array("i", [-1]) * n
        self.retries = zero_row * n
        self.reasons: dict[int, str] = {}
        self.count = 0

    def store(self, req: Request) -> None:
        i = req.index
        self.admitted_s[i] = req.admitted_s
        self.first_token_s[i] = req.first_token_s
        self.finish_s[i] = req.finish_s
        self.cached_tokens[i] = req.cached_tokens
        self.preemptions[i] = req.preemptions
        self.instance[i] = req.instance
        self.retries[i] = req.retries
        self.count += 1

    def table(self, requests: pl.DataFrame, instances: list[Instance]) -> pl.DataFrame:
        """The ``requests`` result table (trace order) from the trace columns and the recorded outcomes."""
        n = requests.height
        if self.count != n:
            raise SimulationError(f"{n} requests entered but {self.count} were recorded")
        cols = {name: np.asarray(getattr(self, name), dtype=np.float64) for name in _REC_FLOAT}
        cols.update({name: np.asarray(getattr(self, name), dtype=np.int32) for name in _REC_INT})
        pools = [i.pool for i in instances]
        reasons = self.reasons
        rejected = np.zeros(n, dtype=bool)
        rejected[list(reasons)] = True
        out = pl.DataFrame(cols).with_columns(
            requests["request_id"].cast(pl.UInt64),
            requests["arrival_s"].cast(pl.Float64),
            requests["prompt_tokens"].cast(pl.Int32),
            requests["output_tokens"].cast(pl.Int32),
            pl.Series("rejected", rejected),
            pl.Series("reject_reason", [reasons.get(i) for i in range(n)] if reasons else [None] * n, pl.Utf8),
        )
        out = out.with_columns(
            pl.col("^.*_s$").fill_nan(None),
            pl.col("instance")
            .replace_strict(dict(enumerate(pools)), default=None, return_dtype=pl.Utf8)
            .alias("pool"),
        ).with_columns(
            (pl.col("first_token_s") - pl.col("arrival_s")).alias("ttft_s"),
            pl.when(pl.col("output_tokens") > 1)
            .then((pl.col("finish_s") - pl.col("first_token_s")) / (pl.col("output_tokens") - 1))
            .alias("tpot_s"),
            (pl.col("finish_s") - pl.col("arrival_s")).alias("e2e_s"),
            (pl.col("admitted_s") - pl.col("arrival_s")).alias("queue_s"),
        )
        schema = dict(REQUEST_SCHEMA)
        schema["retries"] = pl.Int32()
        return out.select([pl.col(c).cast(t) for c, t in schema.items()])


_REC_FLOAT = ("admitted_s", "first_token_s", "finish_s")
_REC_INT = ("cached_tokens", "preemptions", "instance", "retries")


def _progress_bar(n: int, progress: bool | None):
    """A tqdm bar for ``n`` requests, or ``None`` (see :meth:`Simulation.run` for ``progress``)."""
    if progress is None:
        progress = n >= PROGRESS_MIN_REQUESTS and _interactive()
        delay = 1.0
    else:
        delay = 0.0
    if not progress or n == 0:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=n, unit="req", desc="simulating", delay=delay, smoothing=0.1)


class _ProgressRecords(_Records):
    """:class:`_Records` that advance a progress bar every ``step`` requests stored."""

    def __init__(self, n: int, bar, engine: Engine) -> None:
        super().__init__(n)
        self.bar = bar
        self.engine = engine
        self.step = max(1, min(5_000, n // 200))
        self.next = self.step

    def store(self, req: Request) -> None:
        _Records.store(self, req)
        if self.count >= self.next:
            self.next = self.count + self.step
            self.bar.set_postfix_str(f"simulated {self.engine.now:,.1f} s", refresh=False)
            self.bar.update(self.count - self.bar.n)


def simulate(
    trace,
    config: SimConfig | InstanceConfig | None = None,
    *,
    seed: int = 0,
    router: Any = None,
    record_segments: bool = True,
    progress: bool | None = None,
    hierarchy=None,
    check: bool = True,
) -> SimResult:
    """Simulate a trace on ``config.n_instances`` identical instances.

    Parameters
    ----------
    trace
        A :class:`workbench.traces.schema.Trace` (or a polars DataFrame in the canonical schema), or a
        :class:`~workbench.traces.agentic.SessionWorkload` to run closed-loop (:mod:`workbench.sim.closed_loop`;
        its open-loop replay is ``simulate(workload.trace, ...)``).
    config
        :class:`SimConfig` (or a single :class:`InstanceConfig`); default one Llama-3.1-8B on an H100.
    seed
        Seed of the simulation's random streams (randomised routers draw from ``Simulation.rng(name)``).
    router
        Routing policy object (default round robin).
    record_segments
        Keep the per-instance time series.
    progress
        Progress bar: ``True``/``False``, or ``None`` for automatic (see :meth:`Simulation.run`).
    hierarchy
        KV tiers below the GPU, a shared store and contended links (a
        :class:`~workbench.sim.kvtiers.KVHierarchy`, see :mod:`workbench.sim.hierarchy`); ``None``: off.
    check
        Check the result against :mod:`workbench.sim.invariants` (default on). Requests that cannot run
        (longer than the model's context or the KV cache: :meth:`Instance.reject_reason
        <workbench.sim.instance.Instance.reject_reason>`, the rule the fleet simulator applies too) are
        rejected with a reason, counted in a warning and in the summary tables (``reject_reasons``).

    Returns
    -------
    SimResult
        ``requests``, ``segments`` and ``instances`` tables (see :mod:`workbench.sim.result`) and counters.

    Examples
    --------
    >>> import polars as pl
    >>> from workbench.sim import InstanceConfig, LinearPerfModel, simulate
    >>> reqs = pl.DataFrame({"request_id": [0, 1], "arrival_s": [0.0, 0.5], "prompt_tokens": [100, 50],
    ...                      "output_tokens": [10, 5]})
    >>> cfg = InstanceConfig(perf=LinearPerfModel(), kv_capacity_tokens=10_000)
    >>> simulate(reqs, cfg).requests["finish_s"].is_not_null().all()
    True
    """
    if config is None:
        config = SimConfig()
    if isinstance(config, InstanceConfig):
        config = SimConfig(instance=config)
    trace, loop = open_workload(trace)
    requests, block = trace_rows(trace)
    sim = Simulation(
        seed=seed, router=router, prefix_block_tokens=block, record_segments=record_segments, check=check
    )
    for _ in range(config.n_instances):
        sim.add_instance(config.instance)
    runtime = attach_hierarchy(sim, hierarchy, requests.height)
    if loop is not None:
        loop.bind(sim)
    return finish_hierarchy(sim._run_checked(requests, block, progress), runtime)
