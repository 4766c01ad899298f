"""Synthetic workloads: arrival processes, length models, sessions with prefix reuse, and generators.

All randomness flows from named streams of one seed (:mod:`workbench.seeds`).

The building blocks live in one module per job, and are all importable from here:
:mod:`~workbench.traces.arrivals`, :mod:`~workbench.traces.lengths`, :mod:`~workbench.traces.sessions`,
:mod:`~workbench.traces.servegen`. This module holds the generator that combines them, :class:`Synthetic`.

Building blocks (small frozen objects, swappable behind the :class:`ArrivalProcess` / :class:`LengthModel`
protocols):

* arrivals: :class:`Poisson`, :class:`Renewal` (Gamma or Weibull gaps with target rate and CV),
  :class:`TimeVarying` (a :class:`PiecewiseRate` or :class:`Diurnal` rate profile; Poisson by thinning,
  other CVs by time rescaling of a unit-rate renewal process);
* lengths: :class:`Fixed`, :class:`LogNormal` (fit by moments of the logs), :class:`Empirical` (resample rows of
  a table), :class:`Pmf` (independent probability mass functions, as ServeGen publishes them);
* prefix models (Mooncake hash convention: one id per ``block_tokens`` prompt block, equal id = same prefix
  up to and including that block): :class:`Sessions`, multi-turn conversations whose later turns reuse the
  earlier turns' prefix blocks and shared system prompts; :class:`PrefixReuse`, reuse depths and distances
  resampled from a trace (what :func:`~workbench.traces.transforms.fit` uses);
* generators: :class:`Synthetic` (arrivals x lengths [x prefix model]) and :class:`ServeGenMix` (per-client
  ServeGen windows and length PMFs), both with ``.generate(n | duration_s, seed) -> Trace``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from workbench.errors import WorkloadError
from workbench.seeds import SeedLike, Streams
from workbench.traces.arrivals import (
    ArrivalProcess,
    Diurnal,
    PiecewiseRate,
    Poisson,
    RateProfile,
    Renewal,
    TimeVarying,
    check_count_or_duration,
    weibull_shape,
)
from workbench.traces.lengths import MAX_TOKENS, Empirical, Fixed, LengthModel, LogNormal, Pmf, TotalTokenCdf
from workbench.traces.schema import Trace, to_trace
from workbench.traces.servegen import SERVEGEN_PDF_WINDOW_S, SERVEGEN_SOURCE, SERVEGEN_WINDOW_S, ServeGenMix
from workbench.traces.sessions import PrefixReuse, Sessions


@dataclass(frozen=True, slots=True)
class Synthetic:
    """A workload generator: an arrival process, a length model and optionally a prefix model.

    Attributes
    ----------
    arrivals
        Arrival process (:class:`Poisson`, :class:`Renewal`, :class:`TimeVarying`, ...).
    lengths
        Length model (:class:`Fixed`, :class:`LogNormal`, :class:`Empirical`, :class:`Pmf`); with
        :class:`Sessions` it gives each turn's new user message and its output.
    sessions
        Prefix model that assigns ``prefix_hashes``: :class:`Sessions` (multi-turn conversations, also sets
        ``session_id`` and ``turn``) or :class:`PrefixReuse` (reuse resampled from a trace); ``None`` for no
        hashes.
    name, request_class, client
        Trace name and the constant ``request_class`` / ``client`` tags of the generated requests.

    Examples
    --------
    >>> from workbench.traces.synthetic import Synthetic, Renewal, LogNormal
    >>> gen = Synthetic(Renewal(rate=5.0, cv=2.0), LogNormal(7.0, 1.0, 5.0, 1.0))
    >>> trace = gen.generate(n=1000, seed=1)
    >>> len(trace)
    1000
    """

    arrivals: ArrivalProcess = field(default_factory=lambda: Poisson(1.0))
    lengths: LengthModel = field(default_factory=Fixed)
    sessions: Sessions | PrefixReuse | None = None
    name: str = "synthetic"
    request_class: str | None = None
    client: str | None = None

    def generate(self, n: int | None = None, *, duration_s: float | None = None, seed: SeedLike = 0) -> Trace:
        """Generate ``n`` requests, or all requests arriving in ``[0, duration_s)``.

        Parameters
        ----------
        n
            Number of requests; give this or ``duration_s``.
        duration_s
            Length of the generated span in seconds.
        seed
            Seed (or SeedSequence) from which the arrival, length and prefix streams are spawned.

        Returns
        -------
        Trace
            The requests in the canonical schema. The first arrival is at the first sampled gap (not forced
            to 0). Same seed -> identical trace.

        Raises
        ------
        WorkloadError
            When no request arrives in the span.
        """
        check_count_or_duration(n, duration_s)
        streams = Streams(seed)
        r_arr, r_len, r_ses = (streams.rng(f"synthetic/{s}") for s in ("arrivals", "lengths", "sessions"))
        t = self.arrivals.sample(r_arr, n=n, duration_s=duration_s)
        if t.size == 0:
            raise WorkloadError(f"generator {self.name!r} produced no requests; raise the rate or duration")
        prompt, output = self.lengths.sample(r_len, t.size)
        if self.sessions is None:
            cols: dict = {"arrival_s": t, "prompt_tokens": prompt, "output_tokens": output}
            block = None
        else:
            cols = self.sessions.build(r_ses, t, prompt, output)
            block = self.sessions.block_tokens
        if self.request_class is not None:
            cols["request_class"] = [self.request_class] * t.size
        if self.client is not None:
            cols["client"] = [self.client] * t.size
        return to_trace(cols, name=self.name, block_tokens=block, generator=repr(self))


__all__ = [
    "MAX_TOKENS",
    "SERVEGEN_PDF_WINDOW_S",
    "SERVEGEN_SOURCE",
    "SERVEGEN_WINDOW_S",
    "ArrivalProcess",
    "Diurnal",
    "Empirical",
    "Fixed",
    "LengthModel",
    "LogNormal",
    "PiecewiseRate",
    "Pmf",
    "Poisson",
    "PrefixReuse",
    "RateProfile",
    "Renewal",
    "SeedLike",
    "ServeGenMix",
    "Sessions",
    "Synthetic",
    "TimeVarying",
    "TotalTokenCdf",
    "check_count_or_duration",
    "to_trace",
    "weibull_shape",
]
