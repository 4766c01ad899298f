"""Workloads: the canonical request schema, loaders for public traces, generators, transforms, description.

Every request source becomes a :class:`Trace` whose ``requests`` table has the columns of :data:`SCHEMA`:

==================  ==================  ======================================================================
column              dtype               meaning
==================  ==================  ======================================================================
``request_id``      UInt64              unique id, 0..n-1 in arrival order unless the source has ids
``arrival_s``       Float64             seconds from trace start, non-decreasing (null in length-only tables)
``prompt_tokens``   Int32 (> 0)         input tokens
``output_tokens``   Int32 (> 0)         generated tokens
``session_id``      UInt64, nullable    conversation / session id
``turn``            Int32, nullable     turn index within the session (0-based)
``client``          Utf8, nullable      client / tenant
``request_class``   Utf8, nullable      model or task class, for class-aware routing
``prefix_hashes``   List(UInt64), null  hashes of consecutive prompt blocks; equal hash = reusable KV block
==================  ==================  ======================================================================

Main entry points: :func:`load` (file or dataset name), :func:`scan` (lazy, unvalidated, for files too big to
load), :func:`write`, :func:`describe`, the generators in
:mod:`workbench.traces.synthetic` and the transforms in :mod:`workbench.traces.transforms`.
"""

from workbench.traces.describe import describe, interarrival_cv, rate_series, summary_table
from workbench.traces.formats import FORMATS, TableFormat, register_format
from workbench.traces.io import load, scan, write
from workbench.traces.resample import poisson_requests
from workbench.traces.schema import COLUMNS, REQUIRED, SCHEMA, Trace
from workbench.traces.synthetic import (
    Diurnal,
    Empirical,
    Fixed,
    LogNormal,
    PiecewiseRate,
    Pmf,
    Poisson,
    PrefixReuse,
    Renewal,
    ServeGenMix,
    Sessions,
    Synthetic,
    TimeVarying,
    TotalTokenCdf,
)
from workbench.traces.transforms import attach_arrivals, filter, fit, merge, rescale, scale_lengths, slice
from workbench.traces.validate import validate

__all__ = [  # noqa: RUF022 - grouped: schema, io, generators, transforms
    "COLUMNS",
    "FORMATS",
    "REQUIRED",
    "SCHEMA",
    "TableFormat",
    "Trace",
    "describe",
    "interarrival_cv",
    "load",
    "rate_series",
    "register_format",
    "scan",
    "summary_table",
    "validate",
    "write",
    "Diurnal",
    "Empirical",
    "Fixed",
    "LogNormal",
    "PiecewiseRate",
    "Pmf",
    "Poisson",
    "PrefixReuse",
    "Renewal",
    "ServeGenMix",
    "Sessions",
    "Synthetic",
    "TimeVarying",
    "TotalTokenCdf",
    "attach_arrivals",
    "filter",
    "fit",
    "merge",
    "poisson_requests",
    "rescale",
    "scale_lengths",
    "slice",
]
