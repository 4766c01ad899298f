"""Workloads: the canonical request schema, loaders for public traces, generators, transforms, description.

Every request source becomes a :class:`Trace` whose ``requests`` table has the columns of :data:`SCHEMA`
(listed with their meaning in :mod:`workbench.traces.schema`).

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
