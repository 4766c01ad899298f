"""Invariants every simulation result must satisfy, checked after each run (cheap; on by default).

A wrong number is worse than an error, so :func:`check_result` looks at a finished
:class:`~workbench.sim.result.SimResult` and raises one :class:`~workbench.errors.InvariantError` naming the
broken rule and the numbers, instead of letting an impossible table reach a user. The checks are vectorised
passes over the result tables (a few milliseconds per hundred thousand requests). They are switched off with
``check=False`` on :func:`workbench.sim.simulate`, :func:`workbench.sim.fleet.simulate` and
:class:`~workbench.sim.simulation.Simulation`; :func:`workbench.power.energy` checks the power of every segment
against the GPU's power range in the same way.

Rules
-----
1. **Every request is accounted for, once**: one row per trace row (unique ids); each is either served
   (finished, not rejected) or rejected with a reason; a served request's times are ordered (arrival <=
   admission <= first token <= finish) and finite.
2. **Utilisation is physical**: each instance's segments are consecutive and non-overlapping, with
   ``start_s <= end_s``, so busy time never exceeds powered time (utilisation in [0, 1]).
3. **The time frame is the trace's**: the run starts at 0, so the first request may not arrive long after it.
   A first arrival later than both the trace's own span (first to last arrival) and an hour means times such
   as Unix epoch seconds: the instances would idle for that long, which multiplies energy per token and
   divides utilisation by the idle lead-in. Shift the times to start at 0 (:func:`workbench.traces.load` does).
4. **No NaN in the summary tables** (:func:`~workbench.sim.metrics.summary`,
   :func:`~workbench.sim.metrics.summarize`): a value that cannot be computed is null.

:func:`~workbench.sim.metrics.rejection_summary` groups the rejected requests by the kind of their reason (the
text before the first colon); the simulator warns with it (:class:`RejectionWarning`) and the summary tables
carry it as ``reject_reasons``.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import polars as pl

from workbench.config import as_float
from workbench.errors import InvariantError
from workbench.sim.metrics import rejection_summary, summarize, summary
from workbench.sim.result import SimResult
from workbench.traces.schema import ids_unique

P = ParamSpec("P")
R = TypeVar("R")
#: Largest lead-in before the first arrival that is never questioned (seconds).
LEAD_IN_FREE_S = 3600.0


class RejectionWarning(UserWarning):
    """Some requests of a simulation were rejected (the message gives the count and the reasons; ``count``)."""

    def __init__(self, message: str, count: int = 0) -> None:
        super().__init__(message)
        self.count = count


def rejections_in_table(func: Callable[P, R]) -> Callable[P, R]:
    """Decorate a study whose result table reports every run's rejections.

    The table's ``rejected`` and ``reject_reasons`` (of :func:`~workbench.sim.metrics.summarize`) say it all, so
    the runs' :class:`RejectionWarning` s are not repeated one by one.
    """

    @functools.wraps(func)
    def study(*args: P.args, **kwargs: P.kwargs) -> R:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RejectionWarning)
            return func(*args, **kwargs)

    return study


def warn_rejections(result: SimResult, *, stacklevel: int = 3) -> None:
    """Warn (:class:`RejectionWarning`) with the count and the reasons when any request was rejected."""
    text = rejection_summary(result.requests)
    if text is not None:
        n, total = int(result.requests["rejected"].sum()), result.requests.height
        warnings.warn(RejectionWarning(f"{n} of {total} requests rejected: {text}", n), stacklevel=stacklevel)


def check_result(result: SimResult, trace_rows: int | None = None) -> None:
    """Raise :class:`InvariantError` unless ``result`` satisfies the module's rules.

    Parameters
    ----------
    result
        A finished simulation.
    trace_rows
        Rows of the simulated trace (every one must be in ``result.requests``); not checked when ``None``.
    """
    req = result.requests
    _accounting(req, trace_rows)
    _segments(result.segments)
    _time_frame(req)
    for name, row in (("summary", summary(result).row(0, named=True)), ("summarize", summarize(result))):
        nan = [c for c, v in row.items() if isinstance(v, float) and math.isnan(v)]
        if nan:
            raise InvariantError(f"the {name} table has NaN in {nan}; a value that cannot be computed is null")


def _accounting(req: pl.DataFrame, trace_rows: int | None) -> None:
    if trace_rows is not None and req.height != trace_rows:
        raise InvariantError(f"{trace_rows} requests went in but {req.height} rows came out")
    if req.height == 0:
        return
    col = pl.col
    served = col("finish_s").is_not_null() & ~col("rejected")
    times = ("arrival_s", "admitted_s", "first_token_s", "finish_s")
    if not ids_unique(req["request_id"]):  # (is_first_distinct is slow: only to find the row)
        first = req.filter(~col("request_id").is_first_distinct()).head(1).to_dicts()[0]
        raise InvariantError(f"a request id appears twice: {first['request_id']}")
    rules = {
        "a request is neither served nor rejected": ~served & ~col("rejected"),
        "a rejected request has a finish time": col("rejected") & col("finish_s").is_not_null(),
        "a rejected request has no reason": col("rejected") & col("reject_reason").is_null(),
        "a served request has a missing or non-finite time": served
        & pl.any_horizontal(col(t).is_null() | ~col(t).is_finite() for t in times),
        "a served request's times are out of order (arrival <= admitted <= first token <= finish)": served
        & (
            (col("admitted_s") < col("arrival_s") - 1e-9)
            | (col("first_token_s") < col("admitted_s") - 1e-9)
            | (col("finish_s") < col("first_token_s") - 1e-9)
        ),
    }
    found = req.select(**{k: v.fill_null(False).any() for k, v in rules.items()}).row(0, named=True)
    for rule, broken in found.items():
        if broken:
            first = req.filter(rules[rule].fill_null(False)).head(1).to_dicts()[0]
            shown = {k: first[k] for k in ("request_id", *times, "rejected", "reject_reason") if k in first}
            raise InvariantError(f"{rule}: {shown}")


def _segments(seg: pl.DataFrame) -> None:
    if seg.height == 0:
        return
    ordered = seg.sort("instance", "start_s", maintain_order=True)
    gap = (pl.col("start_s") - pl.col("end_s").shift(1).over("instance")).fill_null(0.0)
    found = ordered.select(
        negative=(pl.col("end_s") < pl.col("start_s")).any(),
        overlap=(gap < -1e-6).any(),
        nonfinite=(~pl.col("start_s").is_finite() | ~pl.col("end_s").is_finite()).any(),
    ).row(0, named=True)
    if found["nonfinite"]:
        raise InvariantError("a segment has a non-finite start or end time")
    if found["negative"]:
        raise InvariantError("a segment ends before it starts")
    if found["overlap"]:
        raise InvariantError("two segments of one instance overlap (busy time would exceed powered time)")


def _time_frame(req: pl.DataFrame) -> None:
    if req.height == 0:
        return
    first, last = as_float(req["arrival_s"].min()), as_float(req["arrival_s"].max())
    span = last - first
    if first > max(span, LEAD_IN_FREE_S):
        raise InvariantError(
            f"the first request arrives at {first:.6g} s, after {first / 86_400:.3g} days of idle instances "
            f"and longer than the {span:.6g} s its arrivals span: the times look absolute (e.g. Unix epoch "
            "seconds) and would dominate energy per token and utilisation; shift them to start at 0 "
            "(traces.load does), or pass check=False if the idle lead-in is meant"
        )
