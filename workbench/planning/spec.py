"""What a sizing question is made of: service-level objectives and candidate fleets.

The cost basis is :class:`workbench.tco.CostBasis`.

A :class:`Candidate` is one fleet *shape* (GPU, tensor parallelism, topology, batch cap, clock, router) whose
instance counts the planner chooses. Topologies:

``"monolithic"``
    One pool serves every request.
``"length_pools"``
    Two pools split by prompt length (inference-fleet-sim, arXiv 2603.16054): prompts of at most ``threshold``
    tokens go to the short pool (``gpu``/``tp``), longer ones to the long pool (``gpu2``/``tp2``, default: the
    same). Different GPUs per pool make a heterogeneous fleet.
``"disaggregated"``
    Prefill/decode disaggregation: a prefill pool (``gpu``/``tp``) hands each request's KV cache over a link of
    ``link_gbps`` to a decode pool (``gpu2``/``tp2``).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from workbench.config import require_choice, require_int, require_positive, require_range
from workbench.errors import ConfigError

TOPOLOGIES: tuple[str, ...] = ("monolithic", "length_pools", "disaggregated")


@functools.lru_cache(maxsize=256)
def gpu_name(name: str) -> str:
    """Canonical GPU name (``"h100"`` -> ``"H100-SXM"``); unknown names raise :class:`HardwareError`."""
    from workbench.hardware import gpu

    return gpu(name).name


@dataclass(frozen=True, slots=True)
class SLO:
    """Latency targets of a fleet.

    Attributes
    ----------
    ttft_s
        Target time to first token (s) at the ``quantile`` (P99 by default); ``None`` for no target.
    tpot_s
        Target time per output token (s) at the ``quantile``; ``None`` for no target.
    goodput
        Optional goodput target: the fraction of requests that must meet both targets. When given it replaces
        the P99 quantile (``goodput=0.95`` asks for P95 latencies within the targets in the analytic screen, and
        for at least 95 % of requests meeting both targets in the simulation check).
    """

    ttft_s: float | None = 2.0
    tpot_s: float | None = 0.1
    goodput: float | None = None

    def __post_init__(self) -> None:
        if self.ttft_s is None and self.tpot_s is None:
            raise ConfigError("SLO needs at least one of ttft_s and tpot_s")
        if self.ttft_s is not None:
            require_positive("SLO.ttft_s", self.ttft_s)
        if self.tpot_s is not None:
            require_positive("SLO.tpot_s", self.tpot_s)
        if self.goodput is not None:
            require_range("SLO.goodput", self.goodput, 0.5, 0.9999)

    @property
    def quantile(self) -> float:
        """Latency quantile the targets apply to (0.99, or the goodput target)."""
        return 0.99 if self.goodput is None else float(self.goodput)

    @property
    def label(self) -> str:
        """Short text such as ``"P99 TTFT <= 2 s, P99 TPOT <= 100 ms"``."""
        q = f"P{self.quantile * 100:g}"
        parts = []
        if self.ttft_s is not None:
            parts.append(f"{q} TTFT <= {self.ttft_s:g} s")
        if self.tpot_s is not None:
            parts.append(f"{q} TPOT <= {self.tpot_s * 1e3:g} ms")
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class Candidate:
    """One fleet shape to size.

    Attributes
    ----------
    gpu, tp
        GPU type and tensor-parallel degree of the only, short or prefill pool.
    topology
        One of :data:`TOPOLOGIES`.
    threshold
        Prompt-token threshold of ``"length_pools"`` (short pool: ``prompt_tokens <= threshold``).
    gpu2, tp2
        GPU and TP of the long or decode pool (default: ``gpu`` and ``tp``).
    max_num_seqs
        Batch cap per instance (vLLM ``max_num_seqs``).
    clock
        GPU clock as a fraction of its maximum (DVFS); iteration times scale with ``1 / clock``.
    router
        Router inside each pool (a name registered in :mod:`workbench.sim.routing`).
    link_gbps
        KV-transfer link bandwidth of ``"disaggregated"`` (GB/s per instance).
    """

    gpu: str
    tp: int = 1
    topology: str = "monolithic"
    threshold: int | None = None
    gpu2: str | None = None
    tp2: int | None = None
    max_num_seqs: int = 256
    clock: float = 1.0
    router: str = "jsq"
    link_gbps: float = 50.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "topology", require_choice("Candidate.topology", self.topology, TOPOLOGIES))
        for name in ("tp", "max_num_seqs"):  # numpy integers are stored as Python ints
            object.__setattr__(self, name, require_int(f"Candidate.{name}", getattr(self, name)))
        if self.tp2 is not None:
            object.__setattr__(self, "tp2", require_int("Candidate.tp2", self.tp2))
        for name in ("gpu", "gpu2"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, str) and value):
                raise ConfigError(f"Candidate.{name} must be a GPU name, got {value!r}")
        gpu_name(self.gpu)  # unknown GPU -> HardwareError listing the known ones
        if self.gpu2 is not None:
            gpu_name(self.gpu2)
        from workbench.sim.routing import POOL_ROUTERS, ROUTERS, check_router_name

        if not isinstance(self.router, str):
            raise ConfigError(f"Candidate.router must be a router name, got {self.router!r}")
        check_router_name(self.router, "Candidate.router")
        if self.router in POOL_ROUTERS:
            valid = ", ".join(sorted(set(ROUTERS) - POOL_ROUTERS))
            raise ConfigError(
                f"Candidate.router {self.router!r} chooses between pools (the topology does that); "
                f"use a router inside a pool: {valid}"
            )
        require_range("Candidate.clock", self.clock, 0.1, 1.0)
        require_positive("Candidate.link_gbps", self.link_gbps)
        if self.topology == "length_pools":
            threshold = require_int("Candidate.threshold (of topology 'length_pools')", self.threshold)
            object.__setattr__(self, "threshold", threshold)
        elif self.threshold is not None:
            raise ConfigError(f"Candidate.threshold is only used by 'length_pools', not {self.topology!r}")
        if self.topology == "monolithic" and (self.gpu2 is not None or self.tp2 is not None):
            raise ConfigError("Candidate.gpu2/tp2 are only used by 'length_pools' and 'disaggregated'")

    @property
    def second_gpu(self) -> str:
        """GPU of the long or decode pool."""
        return self.gpu2 if self.gpu2 is not None else self.gpu

    @property
    def second_tp(self) -> int:
        """TP of the long or decode pool."""
        return self.tp2 if self.tp2 is not None else self.tp

    @property
    def label(self) -> str:
        """Readable one-line description, e.g. ``"2-pool @4096: short 1xH100-SXM, long 2xH100-SXM"``."""
        one = f"{self.tp}x{self.gpu}"
        two = f"{self.second_tp}x{self.second_gpu}"
        extra = f" cap{self.max_num_seqs}" + (f" clk{self.clock:g}" if self.clock != 1.0 else "")
        if self.topology == "monolithic":
            return f"mono {one}{extra}"
        if self.topology == "length_pools":
            return f"2-pool @{self.threshold}: short {one}, long {two}{extra}"
        return f"P/D: prefill {one}, decode {two}{extra}"


def candidate_grid(
    gpus: Sequence[str],
    *,
    tps: Iterable[int] = (1,),
    topologies: Iterable[str] = ("monolithic",),
    thresholds: Iterable[int] = (4096,),
    gpus2: Sequence[str | None] = (None,),
    max_num_seqs: Iterable[int] = (256,),
    clocks: Iterable[float] = (1.0,),
    routers: Iterable[str] = ("jsq",),
) -> list[Candidate]:
    """All distinct combinations of the axes as candidates (thresholds and ``gpus2`` only where they apply).

    ``gpus2=(None,)`` keeps the second pool on the first pool's GPU; list GPU names to add heterogeneous fleets.
    Combinations that describe the same fleet appear once, in first-seen order: a second-pool GPU equal to the
    first pool's (``gpus2=[None, "H100"]`` with ``gpus=["H100"]``), or GPU aliases of one GPU (``"h100"``,
    ``"H100-SXM"``).

    Parameters
    ----------
    gpus
        GPU of the (first) pool.
    tps
        Tensor-parallel degrees.
    topologies
        Fleet shapes, from :data:`TOPOLOGIES`.
    thresholds
        Prompt-length split of ``length_pools`` (tokens).
    gpus2
        GPU of the second pool (``None``: the first pool's).
    max_num_seqs
        Batch caps of the instances.
    clocks
        SM clock fractions.
    routers
        Routers within a pool.

    Returns
    -------
    list of Candidate
        The distinct candidates.
    """
    if not gpus:
        raise ConfigError("candidate list is empty: give at least one GPU in gpus")
    out: list[Candidate] = []
    seen: set[tuple] = set()
    tps, thresholds, gpus2 = list(tps), list(thresholds), list(gpus2)
    caps, clocks, routers = list(max_num_seqs), list(clocks), list(routers)
    for topo in topologies:
        topo = require_choice("topology", topo, TOPOLOGIES)
        ths = thresholds if topo == "length_pools" else [None]
        g2s = gpus2 if topo != "monolithic" else [None]
        for g, tp, th, g2, cap, clk, r in itertools.product(gpus, tps, ths, g2s, caps, clocks, routers):
            second = None if g2 is None or gpu_name(g2) == gpu_name(g) else g2
            key = (topo, gpu_name(g), tp, th, None if second is None else gpu_name(second), cap, float(clk), r)
            if key in seen:
                continue
            seen.add(key)
            out.append(Candidate(g, tp, topo, th, second, None, cap, clk, r))
    return out
