"""The sizing workflow that the explorer, ``make figures``, notebook 05 and ``workbench plan`` share.

:func:`plan` sizes the fleet (:func:`~workbench.planning.size_fleet`), builds the trade-off table (clocks, batch
caps) and optionally the pool-split study; :class:`PlanSpec` is the same question read from a TOML file::

    [workload]
    preset = "poisson"          # a workbench.presets name, or: trace = "path/to/file.csv"
    qps = 10.0

    [slo]
    ttft_s = 1.0
    tpot_s = 0.05

    [candidates]
    gpus = ["H100", "A100", "L40S"]
    topologies = ["monolithic", "length_pools"]
    thresholds = [2048, 4096]

    [plan]
    model = "Llama-3.1-8B"
    perf = "roofline"           # or "calibrated:<name>", a saved calibration ($WORKBENCH_CALIBRATIONS)
    check = 2
    tolerance = 0.05            # the measurement kernel's relative tolerance of the P99's CI
    max_requests = 128000       # and its cap on one verdict's run ("undecided" beyond it)
    seed = 0
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from workbench.config import read_toml
from workbench.errors import ConfigError
from workbench.planning.compare import pool_split_study
from workbench.planning.pareto import tradeoff_table
from workbench.planning.sizing import SizingResult, size_fleet
from workbench.planning.spec import SLO, candidate_grid
from workbench.planning.workload import workload
from workbench.sim.measure import Precision
from workbench.traces.schema import Trace

#: Columns of the ranked table that the CLI and the explorer show (all of them are in ``Plan.ranked``).
RANKED_COLUMNS = ("rank", "candidate", "instances", "sim_instances", "gpus", "usd_per_hour", "ttft_p99_s",
                  "sim_ttft_p99_s", "tpot_p99_s", "sim_tpot_p99_s", "sim_slo_met")  # fmt: skip


def ranked_headline(ranked: pl.DataFrame) -> pl.DataFrame:
    """Return the :data:`RANKED_COLUMNS` of a ranked table (those it has)."""
    return ranked.select([c for c in RANKED_COLUMNS if c in ranked.columns])


@dataclass(frozen=True)
class Plan:
    """Everything one sizing question gives.

    The sizing, its ranking, the trade-offs and the split study (``None`` when not asked for).
    """

    result: SizingResult
    ranked: pl.DataFrame
    tradeoffs: pl.DataFrame | None
    split: pl.DataFrame | None


def plan(
    trace: Trace | object,
    qps: float,
    ttft_s: float,
    tpot_s: float,
    *,
    gpus: Sequence[str] = ("H100", "A100", "L40S"),
    topologies: Sequence[str] = ("monolithic", "length_pools", "disaggregated"),
    thresholds: Sequence[int] = (2048, 4096),
    model: str = "Llama-3.1-8B",
    check: int = 2,
    precision: Precision | None = None,
    split_study: bool = False,
    seed: int = 0,
    progress: bool | Callable[[int, int], None] | None = False,
    perf: str = "roofline",
    tradeoffs: bool = True,
) -> Plan:
    """Size the fleet, build the trade-off table (clocks, batch caps) and optionally the split study.

    Parameters
    ----------
    trace
        The workload (rescaled to ``qps``): a trace (finite), or a generator / drawable preset
        (:meth:`workbench.presets.Preset.workload`) that the measurement kernel draws as many requests from as
        its verdicts need.
    qps
        Target mean arrival rate (requests per second).
    ttft_s, tpot_s
        P99 targets (s).
    gpus, topologies, thresholds
        The candidate grid (:func:`~workbench.planning.candidate_grid`).
    model
        Model served.
    check
        Candidates sized by the measurement kernel (0: analytic only).
    precision
        The kernel's tolerance and request cap (:class:`~workbench.sim.measure.Precision`).
    split_study
        Also run :func:`~workbench.planning.compare.pool_split_study`.
    seed
        Seed of the simulation checks.
    progress
        Progress bar of the checks (default: none; ``None``: when interactive); a callable is called as
        ``progress(done, total)`` after each checked candidate (the explorer's bar).
    perf
        Performance model by name (``"roofline"`` or ``"calibrated:<name>"``, see
        :func:`~workbench.planning.size_fleet`); with a calibration the batch cap is the decode batch its
        benchmark exercised (at most 256), and the trade-off table keeps batch caps up to it.
    tradeoffs
        Build the trade-off table (default); ``False`` leaves ``Plan.tradeoffs`` ``None`` (the sizing
        explorer's first, analytic answer: the table and its Pareto chart follow in the background).

    Returns
    -------
    Plan
    """
    slo = SLO(ttft_s=ttft_s, tpot_s=tpot_s)
    wl = workload(trace, qps)
    from workbench.hardware import calibration_domain

    dom = calibration_domain(perf)
    cap = 256 if dom is None else min(256, dom.max_decode_seqs)
    cands = candidate_grid(
        list(gpus), topologies=list(topologies), thresholds=list(thresholds), max_num_seqs=[cap]
    )
    result = size_fleet(wl, slo, cands, model=model, check=check, precision=precision, stop_early=False,
                        seed=seed, progress=progress, perf=perf)  # fmt: skip
    ranked = result.ranked()
    topo = [t for t in topologies if t != "disaggregated"] or ["monolithic"]
    caps = [c for c in (64, 128, 256) if c <= cap] or [cap]
    trade = tradeoff_table(wl, slo, gpus=list(gpus), model=model, topologies=topo, thresholds=list(thresholds),
                           max_num_seqs=caps, perf=perf) if tradeoffs else None  # fmt: skip
    split = (
        pool_split_study(wl, slo, gpus=list(gpus), thresholds=list(thresholds), model=model)
        if split_study
        else None
    )
    return Plan(result, ranked, trade, split)


def _section(data: dict[str, Any], name: str, keys: Sequence[str]) -> dict[str, Any]:
    part = data.get(name, {})
    if not isinstance(part, dict):
        raise ConfigError(f"[{name}] must be a table, got {type(part).__name__}")
    unknown = sorted(set(part) - set(keys))
    if unknown:
        raise ConfigError(f"[{name}]: unknown key(s) {unknown}; valid keys: {', '.join(keys)}")
    return part


@dataclass(frozen=True)
class PlanSpec:
    """A sizing question as ``workbench plan`` reads it from TOML (see the module docstring).

    Exactly one of ``preset`` (a :mod:`workbench.presets` name) and ``trace`` (a file or dataset name for
    :func:`workbench.traces.load`) gives the workload.
    """

    qps: float
    preset: str | None = "poisson"
    trace: str | None = None
    ttft_s: float = 1.0
    tpot_s: float = 0.05
    gpus: tuple[str, ...] = ("H100", "A100", "L40S")
    topologies: tuple[str, ...] = ("monolithic", "length_pools")
    thresholds: tuple[int, ...] = (2048, 4096)
    model: str = "Llama-3.1-8B"
    perf: str = "roofline"
    check: int = 2
    tolerance: float = 0.05
    max_requests: int = 128_000
    seed: int = 0
    split_study: bool = False
    base_dir: Path = field(default=Path("."), compare=False)

    @classmethod
    def from_toml(cls, path: str | Path) -> PlanSpec:
        """Read and validate a plan file (one :class:`ConfigError` naming the key on bad input)."""
        data = read_toml(path, "plan config")
        unknown = sorted(set(data) - {"workload", "slo", "candidates", "plan"})
        if unknown:
            raise ConfigError(f"{path}: unknown table(s) {unknown}; valid: workload, slo, candidates, plan")
        wl = _section(data, "workload", ("preset", "trace", "qps"))
        slo = _section(data, "slo", ("ttft_s", "tpot_s"))
        cands = _section(data, "candidates", ("gpus", "topologies", "thresholds"))
        opts = _section(
            data, "plan", ("model", "perf", "check", "tolerance", "max_requests", "seed", "split_study")
        )
        if "qps" not in wl:
            raise ConfigError(f"{path}: [workload] qps is required (target requests per second)")
        if "preset" in wl and "trace" in wl:
            raise ConfigError(f"{path}: [workload] give one of preset and trace, not both")
        kwargs: dict[str, Any] = {**slo, **opts, "qps": wl["qps"]}
        if "trace" in wl:
            kwargs.update(trace=wl["trace"], preset=None)
        elif "preset" in wl:
            kwargs["preset"] = wl["preset"]
        for key in ("gpus", "topologies", "thresholds"):
            if key in cands:
                if not isinstance(cands[key], list) or not cands[key]:
                    raise ConfigError(f"{path}: [candidates] {key} must be a non-empty list")
                kwargs[key] = tuple(cands[key])
        return cls(**kwargs, base_dir=Path(path).resolve().parent)

    def __post_init__(self) -> None:
        from workbench.config import require_int, require_positive

        for name in ("qps", "ttft_s", "tpot_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{name} must be a number, got {value!r}")
            require_positive(name, value)
        require_int("check", self.check, low=0)
        _ = self.precision  # validates tolerance and max_requests
        require_int("seed", self.seed, low=0)
        if self.preset is not None:
            from workbench import presets

            presets.get(self.preset)
        if not isinstance(self.perf, str):
            raise ConfigError(f"perf must be a performance-model name, got {self.perf!r}")
        from workbench.hardware import calibration_domain

        calibration_domain(self.perf)  # "roofline", or a saved calibration: fails here when unknown

    @property
    def precision(self) -> Precision:
        """The measurement kernel's :class:`~workbench.sim.measure.Precision`.

        Built from ``tolerance`` and ``max_requests``.
        """
        from workbench.config import require_int

        require_int("max_requests", self.max_requests, low=100)
        start = min(Precision().start_requests, self.max_requests)
        return Precision(tolerance=self.tolerance, start_requests=start, max_requests=self.max_requests)

    def workload_trace(self) -> Trace:
        """Return the workload: the preset's trace, or the trace file (relative to the TOML file's folder)."""
        from workbench import presets, traces

        if self.trace is not None:
            path = Path(self.trace)
            local = path if path.is_absolute() else self.base_dir / path
            return traces.load(str(local) if local.exists() else self.trace)
        return presets.generate(self.preset or "poisson", seed=self.seed)

    def workload(self) -> object:
        """Return what the kernel measures on: a drawable preset itself (fresh draws), else its trace.

        The trace is :meth:`workload_trace`.
        """
        from workbench import presets

        if self.trace is None and presets.get(self.preset or "poisson").drawable:
            return presets.get(self.preset or "poisson")
        return self.workload_trace()

    def run(self, progress: bool | None = None) -> Plan:
        """Answer the question (:func:`plan`)."""
        return plan(self.workload(), self.qps, self.ttft_s, self.tpot_s, gpus=self.gpus,
                    topologies=self.topologies, thresholds=self.thresholds, model=self.model, check=self.check,
                    precision=self.precision, split_study=self.split_study, seed=self.seed,
                    progress=progress, perf=self.perf)  # fmt: skip


__all__ = ["RANKED_COLUMNS", "Plan", "PlanSpec", "plan", "ranked_headline"]
