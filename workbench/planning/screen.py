"""Step 1 of sizing: the analytic screen, vectorised over thousands of candidate fleets.

Every candidate decomposes into one or two *pool problems* (a monolithic pool; the short and long pools of a
length split; the prefill and decode pools of a disaggregated fleet), and each pool is sized on its own: the
smallest instance count ``n`` whose predicted latency quantiles meet the SLO. All pools of all candidates are
solved together by a vectorised doubling-and-bisection search on ``n`` (the predictions fall monotonically with
``n``).

The model of one pool of ``n`` instances receiving ``lam`` requests/s (sample moments over the pool's share of
the workload sample; ``t_pf(p)`` prefill time, ``t_d(b)`` decode-iteration time at batch ``b`` and the pool's
mean context, both tabulated once per (GPU, model, TP, clock) from the performance model at that clock):

* slots per instance ``c = min(max_num_seqs, KV tokens / E[prompt + output])``; mean batch ``b`` from Little's
  law ``b = min(c, lam / n x (E[t_pf] + E[o] t_d(b)))`` (fixed point);
* admission queue: M/G/k with ``k = n c`` slots, service ``S = t_pf + o t_d(c)`` (all slots busy when anyone
  waits); Erlang-C probability of waiting and the Allen-Cunneen-scaled exponential tail
  ``P(W > t) = C exp(-(k / E[S] - lam) t x 2 / (ca^2 + cs^2))``;
* prefill queue: M/G/n with service ``t_pf`` (one prefill stream per instance);
* ``TTFT_q = W_slots,q + W_prefill,q + t_pf,q + t_d(b)``;
* TPOT: the larger of ``t_d(b_q) / (1 - rho_pf)`` (``b_q = min(c, b + z sqrt(b))``, ``rho_pf`` the share of
  instance time spent on prefill) and the quantile of a prefill-stall model: iterations that carry another
  request's prefill chunk stall a decoding request, stalls arrive as a Poisson stream, so short-output
  requests that meet one or two stalls set the tail (:meth:`PoolProblems.tpot_fail_share`);
* disaggregated: the prefill pool has TTFT only (plus the KV transfer of a ``q``-quantile prompt), the decode
  pool TPOT only (its admission wait spread over the output tokens).

Arrivals (``arrivals=``): real traces are bursty, and their tail latency is set by the requests that arrive in
bursts. The default ``"burst"`` model is a pointwise-stationary approximation: each pool is sized for the rate
that the SLO-quantile request sees in windows of the TTFT target (:meth:`Workload.burst_rate`, Poisson counting
noise removed), with Poisson arrivals inside the window. ``"renewal"`` keeps the mean rate and puts the index of
dispersion into the Allen-Cunneen ``ca^2``; ``"poisson"`` uses the mean rate and ``ca^2 = 1``. On the Azure code
trace at 20 req/s (index of dispersion ~90 at 2 s) ``"renewal"`` undercounts the simulator 3-6x; ``"burst"``
lands within -25 % to +15 % of it at a 100-ms TPOT target (but see *Accuracy* below for tight TPOT targets). On
Poisson traces the three agree.

Accuracy. These are approximations for screening; the simulation check (:mod:`workbench.planning.check`)
verifies the best candidates, bisecting from the analytic count, so an error of the screen costs simulation time
and can reorder the shortlist, but does not change a verified answer. Analytic -> simulated instance counts
(Llama-3.1-8B, monolithic, 3,000-request window, ``arrivals="burst"``):

======================================  ========  =========  ============  =========================
workload, SLO (P99 TTFT / TPOT)         H100      A100       L40S          screen vs simulator
======================================  ========  =========  ============  =========================
Poisson 10 req/s, 1 s / 50 ms           1 -> 1    5 -> 9     4 -> 8        under-counts up to 2x
Azure code 20 req/s, 2 s / 100 ms       16 -> 21  61 -> 71   82 -> 71      within -25 % / +15 %
Azure code 20 req/s, 1 s / 50 ms        33 -> 28  267 -> 90  1,074 -> 121  over-counts 3-9x
ServeGen-style 100 req/s, 2 s / 100 ms  5 -> 5    17 -> 17   21 -> 17      within 25 %
======================================  ========  =========  ============  =========================

Where it over-counts: a bursty trace with a TPOT target close to the GPU's decode step. The burst model sizes
the pool for the rate the P99 request sees in windows of the TTFT target (348 req/s in 1-s windows of the Azure
code trace at a mean of 20 req/s) and applies that rate to the TPOT constraint too, where the prefill-stall
model then allows only small batches per instance (TPOT alone: 62 L40S at the mean rate, 652 at the 2-s burst
rate of 211 req/s). In the simulator 121 L40S already hold P99 TPOT at 49 ms: bursts show up in TTFT (prefills
queue) far more than in the TPOT of running decodes. Where it under-counts: Poisson traces whose TTFT target is
a few prefill times on a slower GPU whose decode step is near half the TPOT target (the M/G/n prefill queue
ignores that prefills share iterations with decodes, and the stall model underrates the stalls).

Two-pool fleets: each pool is sized for the quantile on its own requests, stricter than the fleet-wide
quantile, so the screen is conservative for length splits (on the Azure code trace at 100 req/s it predicts a
split costs 3-21 % more than one pool, where the simulator finds it 2-12 % cheaper).

So: always verify (``check >= 1``), and on bursty traces with tight TPOT targets check several candidates
(``check=3`` or more) rather than trusting the analytic order.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import gammainc, ndtri

from workbench.analytic.queueing import erlang_c
from workbench.config import require_choice
from workbench.errors import HardwareError
from workbench.hardware import (
    CalibratedModel,
    PerformanceModel,
    RooflineModel,
    calibration_domain,
    clocked,
    kv_capacity_tokens,
    model,
    performance_model,
)
from workbench.planning.spec import SLO, Candidate, gpu_name
from workbench.planning.workload import Workload

#: Grids of the performance tables: prompt tokens, decode batch, context tokens per sequence.
P_GRID = np.unique(np.geomspace(1, 2**19, 64).round())
B_GRID = 2.0 ** np.arange(0, 13)
C_GRID = np.geomspace(16, 2**19, 32)
#: Prefill token budget of one iteration (vLLM ``max_num_batched_tokens``) assumed by the stall model.
BATCH_TOKENS = 8192
#: Output-length quantiles per pool in the TPOT stall model.
O_POINTS = 16
#: Arrival models of the screen: ``"burst"`` (pointwise-stationary at the rate the SLO-quantile request sees,
#: :meth:`Workload.burst_rate`), ``"renewal"`` (mean rate, G/G/c with ca^2 = index of dispersion) and
#: ``"poisson"`` (mean rate, ca^2 = 1).
ARRIVALS: tuple[str, ...] = ("burst", "renewal", "poisson")
#: Largest instance count per pool the search considers.
N_MAX = 1 << 16

PerfFactory = Callable[[str, str, int], PerformanceModel]
#: A performance model for the screen: a name (``"roofline"``, ``"calibrated:<name>"``; see
#: :func:`workbench.hardware.performance_model`), a :class:`~workbench.hardware.CalibratedModel`, or a factory
#: ``(gpu, model, tp) -> PerformanceModel``.
PerfSpec = PerfFactory | str | CalibratedModel

ROLE_COLOCATED, ROLE_PREFILL, ROLE_DECODE = 0, 1, 2


def roofline(gpu_name: str, model_name: str, tp: int) -> PerformanceModel:
    """Default performance model: :class:`~workbench.hardware.RooflineModel` with its documented defaults."""
    return RooflineModel(gpu_name, model_name, tp)


class _Named:
    """Factory of a named performance model (:func:`perf_factory`).

    Compared by identity, so the screen's table cache never serves a calibration saved again under the same
    name.
    """

    def __init__(self, spec: str | CalibratedModel) -> None:
        self.spec = spec

    def __call__(self, gpu_name: str, model_name: str, tp: int) -> PerformanceModel:
        perf = performance_model(self.spec, gpu_name, model_name, tp)
        # the screen tabulates far beyond any batch it uses (prompts to 2^19 tokens, batches to 4,096): a
        # calibration's fit without its domain check; the simulation check runs the checked model
        return perf.roofline if isinstance(perf, CalibratedModel) else perf


def perf_factory(perf: PerfSpec) -> PerfFactory:
    """Return the screen's factory for a :data:`PerfSpec`.

    ``"roofline"`` gives :func:`roofline`, cached across calls.
    """
    if callable(perf):
        return perf
    if perf == "roofline":
        return roofline
    calibration_domain(perf)  # an unknown name or a malformed spec fails here, once
    return _Named(perf)


@functools.lru_cache(maxsize=256)
def perf_tables(
    gpu_name: str, model_name: str, tp: int, factory: PerfFactory = roofline, clock: float = 1.0
) -> dict:
    """Tabulate a performance model at a clock.

    Prefill time over :data:`P_GRID`, decode time over B x C grids, KV tokens. The clock goes through
    :func:`workbench.hardware.clocked` (the roofline slows only its compute terms; other models scale all times
    by ``1 / clock``).

    ``fits`` is ``False`` (and the tables empty) when the model does not fit on ``tp`` GPUs.
    """
    try:
        kv = kv_capacity_tokens(gpu_name, model_name, tp)
        perf = clocked(factory(gpu_name, model_name, tp), clock)
    except HardwareError as exc:
        return {"fits": False, "why": str(exc)}
    from workbench.hardware import Batch

    pf = np.array(
        [perf.iteration_time(Batch(prefill_tokens=int(p), prefill_context=p * p / 2)) for p in P_GRID]
    )
    dec = np.array(
        [
            [perf.iteration_time(Batch(decode_seqs=int(b), decode_context=int(b * c))) for c in C_GRID]
            for b in B_GRID
        ]
    )
    return {"fits": True, "kv_tokens": float(kv), "prefill": pf, "decode": dec, "why": ""}


def _interp_rows(x: np.ndarray, grid: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Row-wise linear interpolation: ``table[r]`` tabulated on ``grid``, evaluated at ``x[r]`` (clamped)."""
    x = np.clip(x, grid[0], grid[-1])
    i = np.clip(np.searchsorted(grid, x, side="right") - 1, 0, len(grid) - 2)
    w = (x - grid[i]) / (grid[i + 1] - grid[i])
    rows = np.arange(len(x))
    return table[rows, i] * (1 - w) + table[rows, i + 1] * w


def _p_wait(k: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Erlang-C probability of waiting for ``k`` servers and offered load ``a`` (1 when ``a >= k``)."""
    k = np.maximum(np.asarray(k, float), 1.0)
    return erlang_c(k, np.minimum(np.asarray(a, float) / k, 1.0))


def _wait_quantile(
    c_wait: np.ndarray, drain: np.ndarray, ca2: np.ndarray, cs2: np.ndarray, prob: float
) -> np.ndarray:
    """Quantile ``prob`` of the G/G/k wait: ``P(W > t) = C exp(-drain t 2 / (ca2 + cs2))`` (Allen-Cunneen)."""
    tail = np.log(np.maximum(c_wait, 1e-300) / (1.0 - prob))
    return np.where(c_wait > 1.0 - prob, tail * (ca2 + cs2) / 2.0 / np.maximum(drain, 1e-300), 0.0)


@dataclass(frozen=True)
class PoolProblems:
    """Pool problems as parallel arrays (one entry per pool); see the module docstring for the model."""

    lam: np.ndarray
    role: np.ndarray
    slots: np.ndarray
    e_pf: np.ndarray
    v_pf: np.ndarray
    q_pf: np.ndarray
    m_pf: np.ndarray
    e_o: np.ndarray
    v_o: np.ndarray
    cov: np.ndarray
    dec: np.ndarray  # decode time over B_GRID at the pool's context and clock
    extra_ttft: np.ndarray
    ttft_slo: np.ndarray
    tpot_slo: np.ndarray
    fits: np.ndarray
    ca2: np.ndarray  # arrival burstiness (index of dispersion on the SLO time scale) of the pool's stream
    o_grid: np.ndarray  # (pools, K) output-length quantiles of requests with >= 2 output tokens
    o_share: np.ndarray  # share of requests with >= 2 output tokens (those with a TPOT)
    chunks: np.ndarray  # mean prefill chunks per request

    def _td(self, b: np.ndarray) -> np.ndarray:
        return _interp_rows(np.maximum(b, 1.0), B_GRID, self.dec)

    def predict(self, n: np.ndarray, q: float) -> dict[str, np.ndarray]:
        """Latency predictions for ``n`` instances per pool (quantile ``q`` and medians), busy share, batch."""
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return self._predict(n, q)

    def _predict(self, n: np.ndarray, q: float) -> dict[str, np.ndarray]:
        n = np.maximum(np.asarray(n, float), 1.0)
        dec_role, pre_role = self.role == ROLE_DECODE, self.role == ROLE_PREFILL
        e_pf = np.where(dec_role, 0.0, self.e_pf)
        c = np.where(pre_role, 1.0, self.slots)
        e_o = np.where(pre_role, 0.0, self.e_o)
        td_full = self._td(c)
        b = np.minimum(c, self.lam / n * (e_pf + e_o * td_full))
        for _ in range(3):  # Little's law fixed point for the mean batch
            b = np.minimum(c, self.lam / n * (e_pf + e_o * self._td(b)))
        # admission (slot) queue, served when all c slots of all n instances are busy
        es = e_pf + e_o * td_full
        vs = (
            np.where(dec_role, 0.0, self.v_pf)
            + td_full**2 * self.v_o
            + 2 * td_full * np.where(dec_role, 0, self.cov)
        )
        vs = np.where(pre_role, self.v_pf, vs)
        cs2 = vs / np.maximum(es, 1e-300) ** 2
        k = n * c
        a = self.lam * es
        cw = _p_wait(k, a)
        drain = k / np.maximum(es, 1e-300) - self.lam
        w_slot_q, w_slot_50 = (_wait_quantile(cw, drain, self.ca2, cs2, p) for p in (q, 0.5))
        # prefill queue (colocated pools; for prefill pools the slot queue above is that queue)
        rho_pf = self.lam * e_pf / n
        cs2_pf = self.v_pf / np.maximum(e_pf, 1e-300) ** 2
        cw_pf = np.where(self.role == ROLE_COLOCATED, _p_wait(n, self.lam * e_pf), 0.0)
        drain_pf = n / np.maximum(e_pf, 1e-300) - self.lam
        w_pf_q, w_pf_50 = (_wait_quantile(cw_pf, drain_pf, self.ca2, cs2_pf, p) for p in (q, 0.5))
        stable = (a < k) & (rho_pf < 1.0) & self.fits
        z = float(ndtri(q))
        b_q = np.minimum(c, b + z * np.sqrt(b))
        slow = 1.0 / np.maximum(1.0 - np.where(self.role == ROLE_COLOCATED, rho_pf, 0.0), 1e-9)
        first = np.where(pre_role, 0.0, self._td(b))
        ttft_q = w_slot_q + w_pf_q + np.where(dec_role, 0.0, self.q_pf) + first + self.extra_ttft
        ttft_50 = w_slot_50 + w_pf_50 + np.where(dec_role, 0.0, self.m_pf) + first + self.extra_ttft
        spread = np.where(dec_role, 1.0 / np.maximum(self.e_o, 1.0), 0.0)
        tpot_q = np.where(pre_role, 0.0, self._td(b_q) * slow + w_slot_q * spread)
        tpot_50 = np.where(pre_role, 0.0, self._td(b) * slow + w_slot_50 * spread)
        inf = np.inf
        ttft_q, ttft_50 = np.where(stable, ttft_q, inf), np.where(stable, ttft_50, inf)
        tpot_q, tpot_50 = np.where(stable, tpot_q, inf), np.where(stable, tpot_50, inf)
        util = np.where(pre_role, rho_pf, 1.0 - np.exp(-b))  # busy share (Poisson occupancy)
        return {
            "ttft_q": np.where(dec_role, 0.0, ttft_q),
            "ttft_50": np.where(dec_role, 0.0, ttft_50),
            "tpot_q": tpot_q,
            "tpot_50": tpot_50,
            "batch": np.where(pre_role, 1.0, b),
            "util": util,
            "stable": stable,
            "td": self._td(b),
            "stall_rate": self.lam / n * self.chunks,
            "stall_s": e_pf / np.maximum(self.chunks, 1e-12),
            "rho_pf": np.where(self.role == ROLE_COLOCATED, rho_pf, 0.0),
        }

    def tpot_fail_share(self, pred: dict, limit: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Share of requests of colocated pools whose TPOT exceeds ``limit`` through prefill stalls.

        A request with ``o`` output tokens decodes for ``o - 1`` iterations of ``t_d(b)``; iterations that
        carry another request's prefill chunk stall it by ``t_pf / chunks``. Stalls arrive as a Poisson stream
        (rate ``lam / n x chunks`` per instance), so its TPOT exceeds ``limit`` when at least
        ``k = floor((limit - t_d)(o - 1) / stall) + 1`` stalls fall in its window: ``P = gammainc(k, m)``.
        """
        sel = slice(None) if rows is None else rows
        o1 = self.o_grid[sel] - 1.0
        td = pred["td"][sel][:, None]
        stall = np.maximum(pred["stall_s"][sel], 1e-12)[:, None]
        window = o1 * td / np.maximum(1.0 - pred["rho_pf"][sel], 1e-9)[:, None]
        m = pred["stall_rate"][sel][:, None] * window
        lim = np.asarray(limit, float)[:, None] if np.ndim(limit) else limit
        k = np.floor(np.maximum(lim - td, 0.0) * o1 / stall) + 1.0
        p_fail = np.where(lim <= td, 1.0, gammainc(k, np.maximum(m, 0.0)))
        return self.o_share[sel] * p_fail.mean(axis=1)

    def tpot_quantile(self, pred: dict, q: float, rows: np.ndarray) -> np.ndarray:
        """Return the ``q`` quantile of TPOT of pools ``rows`` under the stall model.

        Found by bisection on the limit.
        """
        lo = pred["td"][rows].copy()
        hi = lo + 64.0 * pred["stall_s"][rows] + 1e-6
        for _ in range(16):
            mid = 0.5 * (lo + hi)
            ok = self.tpot_fail_share(pred, mid, rows) <= 1.0 - q
            hi, lo = np.where(ok, mid, hi), np.where(ok, lo, mid)
        return hi

    def feasible(self, n: np.ndarray, q: float) -> np.ndarray:
        """Whether ``n`` instances per pool meet the pool's SLO."""
        p = self.predict(n, q)
        ok = p["stable"] & (p["ttft_q"] <= self.ttft_slo)
        stalls = ok & (self.role == ROLE_COLOCATED) & np.isfinite(self.tpot_slo)
        ok &= stalls | (p["tpot_q"] <= self.tpot_slo)
        rows = np.flatnonzero(stalls)
        if rows.size:  # the prefill-stall tail, only where everything else already holds
            ok[rows] = self.tpot_fail_share(p, self.tpot_slo[rows], rows) <= 1.0 - q
        return ok

    def stable_instances(self) -> np.ndarray:
        """Fewest instances per pool whose capacity exceeds the offered load (full batches; 0 without traffic).

        The lower end of the bracket the measurement kernel's bisection starts from: below it the pool's work
        arrives faster than full batches of every instance clear it.
        """
        c = np.where(self.role == ROLE_PREFILL, 1.0, self.slots)
        e_pf = np.where(self.role == ROLE_DECODE, 0.0, self.e_pf)
        e_o = np.where(self.role == ROLE_PREFILL, 0.0, self.e_o)
        es_full = e_pf + e_o * self._td(c)
        n = np.floor(np.maximum(self.lam * es_full / c, self.lam * e_pf)) + 1
        return np.where(self.lam > 0, np.minimum(n, N_MAX), 0.0)

    def min_instances(self, q: float) -> tuple[np.ndarray, np.ndarray]:
        """Smallest feasible ``n`` per pool (``N_MAX`` where none is) and whether one was found."""
        active = (self.lam > 0) & self.fits
        n_stable = np.maximum(self.stable_instances(), 1.0)
        lo = np.maximum(n_stable - 1, 0)  # known infeasible (or zero)
        hi = np.minimum(np.maximum(n_stable, 1), N_MAX)
        ok = self.feasible(hi, q) | ~active
        while True:
            grow = ~ok & (hi < N_MAX)
            if not grow.any():
                break
            lo = np.where(grow, hi, lo)
            hi = np.where(grow, np.minimum(hi * 2, N_MAX), hi)
            ok = np.where(grow, self.feasible(hi, q), ok)
        found = ok & active
        lo = np.where(found, lo, hi)
        while True:
            gap = found & (hi - lo > 1)
            if not gap.any():
                break
            mid = np.floor((lo + hi) / 2)
            f = self.feasible(mid, q)
            hi = np.where(gap & f, mid, hi)
            lo = np.where(gap & ~f, mid, lo)
        n = np.where(active, hi, 0.0)
        return n, found | (self.lam <= 0)


def _segments(cands: Sequence[Candidate]) -> list[tuple[str, int | None]]:
    seen: dict[tuple[str, int | None], None] = {("all", None): None}
    for c in cands:
        if c.topology == "length_pools":
            seen[("le", c.threshold)] = None
            seen[("gt", c.threshold)] = None
    return list(seen)


def build_problems(
    wl: Workload,
    slo: SLO,
    cands: Sequence[Candidate],
    model_name: str,
    factory: PerfFactory = roofline,
    arrivals: str = "burst",
) -> tuple[PoolProblems, np.ndarray, np.ndarray, dict]:
    """Pool problems of all candidates: arrays over pools, and the pool index of each candidate's two roles.

    Returns ``(problems, first, second, info)`` where ``first[i]``/``second[i]`` index candidate ``i``'s pools
    (``second = -1`` for monolithic) and ``info`` holds per-pool GPU names, TP and table look-ups.
    """
    arrivals = require_choice("arrivals", arrivals, ARRIVALS)
    model(model_name)  # unknown model -> HardwareError listing the known ones
    q = slo.quantile
    segs = _segments(cands)
    seg_index = {s: i for i, s in enumerate(segs)}
    p, o = wl.prompt, wl.output
    masks = np.array(
        [np.ones_like(p, bool) if k == "all" else (p <= t) if k == "le" else (p > t) for k, t in segs]
    )
    # per (gpu, tp) tables and per (gpu, tp, segment) moments
    pools: list[tuple] = []  # (gpu, tp, segment, role, clock, cap, link_gbps)
    first = np.empty(len(cands), np.int64)
    second = np.full(len(cands), -1, np.int64)
    pool_index: dict[tuple, int] = {}

    def add(key: tuple) -> int:
        if key not in pool_index:
            pool_index[key] = len(pools)
            pools.append(key)
        return pool_index[key]

    for i, c in enumerate(cands):
        g1, g2 = gpu_name(c.gpu), gpu_name(c.second_gpu)  # unknown GPU -> HardwareError
        if c.topology == "monolithic":
            first[i] = add((g1, c.tp, seg_index[("all", None)], ROLE_COLOCATED, c.clock, c.max_num_seqs, 0.0))
        elif c.topology == "length_pools":
            th = c.threshold
            first[i] = add((g1, c.tp, seg_index[("le", th)], ROLE_COLOCATED, c.clock, c.max_num_seqs, 0.0))
            second[i] = add(
                (g2, c.second_tp, seg_index[("gt", th)], ROLE_COLOCATED, c.clock, c.max_num_seqs, 0.0)
            )
        else:
            s = seg_index[("all", None)]
            first[i] = add((g1, c.tp, s, ROLE_PREFILL, c.clock, c.max_num_seqs, c.link_gbps))
            second[i] = add((g2, c.second_tp, s, ROLE_DECODE, c.clock, c.max_num_seqs, 0.0))
    keys = np.array([(k[0], k[1]) for k in pools], dtype=object)
    gt_keys = sorted({(k[0], k[1], k[4]) for k in pools})
    gt_index = {k: j for j, k in enumerate(gt_keys)}
    tables = [perf_tables(g, model_name, tp, factory, clk) for g, tp, clk in gt_keys]
    n_gt, n_seg = len(gt_keys), len(segs)
    # moments per (gpu-tp, segment)
    frac = masks.mean(axis=1)
    e_o = np.zeros((n_seg,))
    v_o = np.zeros((n_seg,))
    ctx = np.zeros((n_seg,))
    e_kv = np.ones((n_seg,))
    o_grid = np.full((n_seg, O_POINTS), 2.0)
    o_share = np.zeros(n_seg)
    chunks = np.ones(n_seg)
    mom = np.zeros((n_gt, n_seg, 6))  # e_pf, v_pf, q_pf, m_pf, cov, unused
    dec = np.ones((n_gt, n_seg, len(B_GRID)))
    for s in range(n_seg):
        m = masks[s]
        if m.any():
            e_o[s], v_o[s] = o[m].mean(), o[m].var()
            ctx[s] = (p[m] + o[m] / 2).mean()
            e_kv[s] = (p[m] + o[m]).mean()
            chunks[s] = np.ceil(p[m] / BATCH_TOKENS).mean()
            many = o[m][o[m] >= 2]
            o_share[s] = many.size / m.sum()
            if many.size:
                o_grid[s] = np.quantile(many, (np.arange(O_POINTS) + 0.5) / O_POINTS)
    for j, tab in enumerate(tables):
        if not tab["fits"]:
            continue
        tpf = np.interp(p, P_GRID, tab["prefill"])
        # decode time at each segment's mean context, over the batch grid
        for s in range(n_seg):
            m = masks[s]
            dec[j, s] = [np.interp(ctx[s], C_GRID, row) for row in tab["decode"]]
            if m.any():
                x = tpf[m]
                mom[j, s, :5] = (
                    x.mean(),
                    x.var(),
                    np.quantile(x, q),
                    np.median(x),
                    np.mean((x - x.mean()) * (o[m] - o[m].mean())),
                )
    r_gt = np.array([gt_index[(k[0], k[1], k[4])] for k in pools], np.int64)
    r_seg = np.array([k[2] for k in pools], np.int64)
    role = np.array([k[3] for k in pools], np.int64)
    cap = np.array([k[5] for k in pools], float)
    link = np.array([k[6] for k in pools], float)
    fits = np.array([tables[j]["fits"] for j in r_gt], bool)
    kv_tok = np.array([tables[j].get("kv_tokens", 0.0) for j in r_gt])
    slots = np.maximum(np.minimum(cap, np.floor(kv_tok / e_kv[r_seg])), 1.0)
    kv_bytes = model(model_name).kv_bytes_per_token()
    q_prompt = np.quantile(p, q)
    extra = np.where(role == ROLE_PREFILL, q_prompt * kv_bytes / (np.maximum(link, 1e-9) * 1e9), 0.0)
    inf = np.inf
    window = float(np.clip(slo.ttft_s or 2.0, 0.5, 30.0))
    lam = wl.burst_rate(window, q) if arrivals == "burst" else wl.qps
    idc = max(wl.idc(window), 1.0) if arrivals == "renewal" else 1.0
    ttft = slo.ttft_s if slo.ttft_s is not None else inf
    tpot = slo.tpot_s if slo.tpot_s is not None else inf
    mo = mom[r_gt, r_seg]
    problems = PoolProblems(
        lam=lam * frac[r_seg],
        role=role,
        slots=slots,
        e_pf=mo[:, 0],
        v_pf=mo[:, 1],
        q_pf=mo[:, 2],
        m_pf=mo[:, 3],
        e_o=e_o[r_seg],
        v_o=v_o[r_seg],
        cov=mo[:, 4],
        dec=dec[r_gt, r_seg],
        extra_ttft=extra,
        ttft_slo=np.where(role == ROLE_DECODE, inf, ttft),
        tpot_slo=np.where(role == ROLE_PREFILL, inf, tpot),
        fits=fits,
        ca2=1.0 + frac[r_seg] * (idc - 1.0),
        o_grid=o_grid[r_seg],
        o_share=o_share[r_seg],
        chunks=chunks[r_seg],
    )
    info = {
        "gpu": keys[:, 0] if len(keys) else np.array([]),
        "tp": np.array([k[1] for k in pools], np.int64),
        "why": [tables[j]["why"] for j in r_gt],
        "frac": frac[r_seg],
        "e_o": e_o[r_seg],
        "rate_ratio": wl.qps / lam,
    }
    return problems, first, second, info


def solve(
    wl: Workload,
    slo: SLO,
    cands: Sequence[Candidate],
    model_name: str,
    factory: PerfFactory = roofline,
    arrivals: str = "burst",
) -> dict[str, np.ndarray]:
    """Minimum instance counts and predictions for every candidate (arrays over candidates).

    Keys: ``n1``, ``n2`` (instances per pool), ``n1_stable``, ``n2_stable`` (fewest instances whose capacity
    exceeds the pool's load: the lower end of the kernel's bracket), ``ok`` (SLO met within :data:`N_MAX`),
    ``ttft_q``, ``tpot_q``,
    ``ttft_50``, ``tpot_50`` (whole fleet: the worse pool), per-pool ``batch1/2``, ``util1/2``, ``fits``, and
    ``miss`` (for infeasible candidates: the factor by which the best reachable latency exceeds the target).
    """
    probs, first, second, info = build_problems(wl, slo, cands, model_name, factory, arrivals)
    q = slo.quantile
    ratio = info["rate_ratio"]
    n, found = probs.min_instances(q)
    pred = probs.predict(np.where(n > 0, n, 1.0), q)
    rows = np.flatnonzero((probs.role == ROLE_COLOCATED) & pred["stable"])
    pred["tpot_q"][rows] = np.maximum(pred["tpot_q"][rows], probs.tpot_quantile(pred, q, rows))
    two = second >= 0
    s = np.where(two, second, first)

    def pick(key: str, how: Callable) -> np.ndarray:
        return np.where(two, how(pred[key][first], pred[key][s]), pred[key][first])

    # zero-traffic pools report no latency
    for key in ("ttft_q", "ttft_50", "tpot_q", "tpot_50"):
        pred[key] = np.where(probs.lam > 0, pred[key], 0.0)
    ok = found[first] & np.where(two, found[s], True)
    ttft_q, tpot_q = pick("ttft_q", np.maximum), pick("tpot_q", np.maximum)
    ttft_t = slo.ttft_s if slo.ttft_s is not None else np.inf
    tpot_t = slo.tpot_s if slo.tpot_s is not None else np.inf
    with np.errstate(invalid="ignore", divide="ignore"):
        miss = np.maximum(ttft_q / ttft_t, tpot_q / tpot_t) - 1.0
    fits = probs.fits[first] & np.where(two, probs.fits[s], True)
    low = probs.stable_instances()
    return {
        "n1": n[first].astype(np.int64),
        "n2": np.where(two, n[s], 0).astype(np.int64),
        "n1_stable": low[first].astype(np.int64),
        "n2_stable": np.where(two, low[s], 0).astype(np.int64),
        "ok": ok,
        "fits": fits,
        "ttft_q": ttft_q,
        "tpot_q": tpot_q,
        "ttft_50": pick("ttft_50", np.maximum),
        "tpot_50": pick("tpot_50", np.maximum),
        # busy share and batch at the mean rate (the screen sized for the burst rate): for energy
        "batch1": pred["batch"][first] * ratio,
        "batch2": np.where(two, pred["batch"][s], 0.0) * ratio,
        "util1": pred["util"][first] * ratio,
        "util2": np.where(two, pred["util"][s], 0.0) * ratio,
        "lam1": probs.lam[first],
        "lam2": np.where(two, probs.lam[s], 0.0),
        "miss": np.where(ok, 0.0, np.where(np.isfinite(miss), miss, np.inf)),
        "why": np.array(
            [info["why"][f] or (info["why"][t] if t >= 0 else "") for f, t in zip(first, second, strict=True)]
        ),
    }
