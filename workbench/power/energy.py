"""Energy of a simulation: the exact integral of instance power over the piecewise-constant segments.

Power of an instance with ``n`` GPUs by segment state (``SimResult.segments``):

* ``busy``: ``n x P(b)`` from the (GPU, model, TP) logistic curve; a share ``phi`` of busy time may be
  *execution-idle* (the GPU waits between iterations or on a KV transfer) at ``rho x P(b)``, so the busy power
  is ``n x P(b) x (1 - phi + phi x rho)``;
* ``idle``: loaded-idle power ``n x P_idle`` (weights resident, no work);
* ``starting``: setup (cold start) at the loaded-idle power;
* ``off``: 0.

Energy is ``sum(power x (end_s - start_s))``; no sampling, so a constant timeline integrates to P x T exactly.
A run with a KV hierarchy adds its host memory, SSDs, store and network bytes (:mod:`workbench.power.kv`,
column ``kv_j``, included in ``energy_j``). Facility energy is IT energy x PUE.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from workbench.config import as_float, require_positive, require_pue, require_range
from workbench.errors import ConfigError, HardwareError, InvariantError
from workbench.power._facts import gpu_facts, resolve
from workbench.power.curves import LogisticPower, load_fits, power_curve
from workbench.power.kv import hierarchy_energy
from workbench.sim.result import SimResult

STATES = ("busy", "idle", "starting", "off")
#: Execution-idle share of in-execution time and of energy reported by the execution-idle study
#: (arXiv 2604.04745, abstract): 19.7 % and 10.7 %.
EXEC_IDLE_TIME_SHARE, EXEC_IDLE_ENERGY_SHARE = 0.197, 0.107
#: Execution-idle power / busy power implied by those two shares:
#: e/(1-e) = t*rho/(1-t)  =>  rho = e(1-t) / (t(1-e)) ~ 0.488.
EXEC_IDLE_POWER_RATIO = (
    EXEC_IDLE_ENERGY_SHARE * (1 - EXEC_IDLE_TIME_SHARE) / (EXEC_IDLE_TIME_SHARE * (1 - EXEC_IDLE_ENERGY_SHARE))
)
J_PER_KWH = 3.6e6


def idle_power_w(gpu: str) -> float:
    """Loaded-idle power of one GPU (W) from the shipped table (basis in ``power_fits.csv`` ``idle_source``).

    Parameters
    ----------
    gpu
        GPU name (catalog names and aliases).

    Returns
    -------
    float
        Loaded-idle power in W.
    """
    name = resolve(gpu)
    row = load_fits().filter((pl.col("gpu") == name) & (pl.col("scope") == "gpu_default"))
    if row.height == 0:
        raise ConfigError(f"no loaded-idle power for GPU {name!r} in power_fits.csv")
    return float(row["idle_w"][0])


@dataclass(frozen=True, slots=True)
class InstancePower:
    """Power parameters of one instance.

    Attributes
    ----------
    curve
        Per-GPU busy power versus batch.
    idle_w
        Per-GPU loaded-idle power (also used while starting).
    n_gpus
        GPUs of the instance (may be fractional for MIG).
    exec_idle_share
        Share ``phi`` of busy time spent execution-idle, in [0, 1).
    exec_idle_ratio
        Execution-idle power as a fraction ``rho`` of the busy power, in [0, 1].
    """

    curve: LogisticPower
    idle_w: float
    n_gpus: float = 1.0
    exec_idle_share: float = 0.0
    exec_idle_ratio: float = EXEC_IDLE_POWER_RATIO

    def __post_init__(self) -> None:
        require_positive("idle_w", self.idle_w, allow_zero=True)
        require_positive("n_gpus", self.n_gpus)
        require_range("exec_idle_share", self.exec_idle_share, 0.0, 0.999)
        require_range("exec_idle_ratio", self.exec_idle_ratio, 0.0, 1.0)

    def power_w(self, state: str, batch: float = 1.0) -> float:
        """Instance power (W) in ``state`` with ``batch`` running sequences."""
        if state == "busy":
            mix = 1.0 - self.exec_idle_share + self.exec_idle_share * self.exec_idle_ratio
            return float(self.n_gpus * self.curve(batch) * mix)
        if state in ("idle", "starting"):
            return self.n_gpus * self.idle_w
        if state == "off":
            return 0.0
        raise ConfigError(f"unknown state {state!r}; choose one of: {', '.join(STATES)}")


def instance_power(
    gpu: str,
    model: str | None = None,
    tp: int = 1,
    *,
    n_gpus: float | None = None,
    exec_idle_share: float = 0.0,
    task: str | None = None,
) -> InstancePower:
    """Power parameters of an instance of ``model`` on ``tp`` x ``gpu`` (fit, or GPU-level default).

    Parameters
    ----------
    gpu
        GPU name.
    model
        Model served (``None``: the GPU-level default curve).
    tp
        Tensor-parallel degree.
    n_gpus
        GPUs of the instance (default ``tp``).
    exec_idle_share
        Share of busy time spent execution-idle.
    task
        ML.ENERGY task whose fits to prefer.

    Returns
    -------
    InstancePower
        Busy curve, loaded-idle power and GPU count of the instance.
    """
    n = float(n_gpus if n_gpus is not None else tp)
    curve = power_curve(gpu, model, tp, n_gpus=int(max(1, round(n))), task=task)
    return InstancePower(curve, idle_power_w(gpu), n, exec_idle_share)


def mean_power_w(power: InstancePower, utilisation: float, batch: float) -> float:
    """Time-average instance power at ``utilisation`` (busy share of on-time) and running ``batch``.

    Parameters
    ----------
    power
        The instance's power curves.
    utilisation
        Busy share of on-time, in [0, 1].
    batch
        Running batch while busy.

    Returns
    -------
    float
        Mean power in W.
    """
    require_range("utilisation", utilisation, 0.0, 1.0)
    return utilisation * power.power_w("busy", batch) + (1.0 - utilisation) * power.power_w("idle")


@dataclass(frozen=True)
class EnergyReport:
    """Energy of a simulation by segment, instance, pool and fleet (polars tables; joules and kWh).

    ``segments`` adds ``power_w``, ``energy_j`` and ``exec_idle_j`` to the simulator's segments. The other
    tables hold time per state (s), energy per state (J), execution-idle time and energy and their shares of
    in-execution (busy) time and energy, IT and facility energy (kWh), completed requests, output tokens,
    J per request and J per output token.
    """

    segments: pl.DataFrame
    by_instance: pl.DataFrame
    by_pool: pl.DataFrame
    fleet: pl.DataFrame
    pue: float


def _per_instance(value: float | Mapping, instances: pl.DataFrame, name: str) -> list[float]:
    """Broadcast a scalar or a {instance id | pool name: value} mapping to the instance rows."""
    if not isinstance(value, Mapping):
        return [float(value)] * instances.height
    out = []
    for inst, pool in zip(instances["instance"], instances["pool"], strict=True):
        out.append(float(value.get(inst, value.get(pool, value.get("*", 0.0)))))
    unknown = set(value) - set(instances["instance"]) - set(instances["pool"]) - {"*"}
    if unknown:
        raise ConfigError(f"{name} names unknown instances or pools: {sorted(map(str, unknown))}")
    return out


def _check_segments(seg: pl.DataFrame, instances: pl.DataFrame) -> None:
    need = {"instance", "start_s", "end_s", "state", "batch_size"}
    missing = need - set(seg.columns)
    if missing:
        raise ConfigError(f"SimResult.segments lacks column(s) {sorted(missing)}")
    bad = seg.with_row_index("row").filter(
        (pl.col("end_s") < pl.col("start_s")) | ~pl.col("state").is_in(STATES) | pl.col("start_s").is_null()
    )
    if bad.height:
        r = bad.row(0, named=True)
        raise ConfigError(
            f"SimResult.segments row {r['row']}: need end_s >= start_s and state in {STATES}, "
            f"got start_s={r['start_s']}, end_s={r['end_s']}, state={r['state']!r}"
        )
    unknown = set(seg["instance"].unique()) - set(instances["instance"])
    if unknown:
        raise ConfigError(
            f"SimResult.segments has instances missing from SimResult.instances: {sorted(unknown)}"
        )


def energy(
    result: SimResult,
    *,
    pue: float = 1.0,
    exec_idle_share: float | Mapping | pl.Expr = 0.0,
    exec_idle_ratio: float = EXEC_IDLE_POWER_RATIO,
    exec_idle_at_idle_power: bool = False,
    power: Mapping[int, InstancePower] | None = None,
    task: str | None = None,
    check: bool = True,
) -> EnergyReport:
    """Exact energy of ``result`` by instance, pool and fleet.

    Parameters
    ----------
    result
        A simulation result (segments and instances per :mod:`workbench.sim.result`).
    pue
        Power usage effectiveness in :data:`workbench.config.PUE_RANGE` (1 to 5); facility energy = IT energy x
        PUE.
    exec_idle_share
        Execution-idle share of busy time: one value, a mapping by instance id or pool name (``"*"`` for
        the rest), or a polars expression over the segment columns (``iterations``, ``batch_size``,
        ``start_s``, ``end_s`` ...) giving each busy segment's share (clipped to [0, 1]), so that an
        execution-idle time the simulation produces (e.g. host overhead per iteration) enters segment by
        segment.
    exec_idle_ratio
        Execution-idle power / busy power (default from the execution-idle study, ~0.49).
    exec_idle_at_idle_power
        Draw the loaded-idle power during execution-idle instead (a GPU that drops its clocks as soon as it
        waits: the lower bound, and the "downscale during execution-idle" mitigation).
    power
        Optional {instance id: InstancePower} overriding the looked-up curves.
    task
        ML.ENERGY task whose fits to prefer (default: chat).
    check
        Check that every instance's mean power while powered lies in its GPUs' physical range (0 to 5 % above
        their TDP) and that energy per output token is finite and > 0 where tokens were made; an
        :class:`~workbench.errors.InvariantError` otherwise (see :mod:`workbench.sim.invariants`).

    Returns
    -------
    EnergyReport
        Tables by segment, instance, pool and fleet.
    """
    require_pue(pue)
    inst = result.instances.sort("instance")
    seg = result.segments
    _check_segments(seg, inst)
    phi_expr = exec_idle_share if isinstance(exec_idle_share, pl.Expr) else None
    idle_share = 0.0 if isinstance(exec_idle_share, pl.Expr) else exec_idle_share  # an expression: per segment
    shares = _per_instance(idle_share, inst, "exec_idle_share")
    params = []
    for row, phi in zip(inst.iter_rows(named=True), shares, strict=True):
        p = (power or {}).get(row["instance"])
        if p is None:
            # a MIG slice ("H100-SXM-MIG-3g") draws its share (n_gpus) of its GPU's power
            base_gpu = row["gpu"].split("-MIG-")[0]
            p = instance_power(base_gpu, row["model"], int(row["tp"]), n_gpus=row["n_gpus"], task=task)
        p = InstancePower(
            p.curve,
            p.idle_w,
            p.n_gpus,
            phi if power is None or row["instance"] not in power else p.exec_idle_share,
            exec_idle_ratio,
        )
        c = p.curve
        params.append(
            (row["instance"], c.p_low_w, c.p_high_w, c.k, c.x0, p.idle_w, p.n_gpus, p.exec_idle_share)
        )
    ptab = pl.DataFrame(
        params, schema=["instance", "_lo", "_hi", "_k", "_x0", "_idle", "_n", "_phi"], orient="row"
    ).with_columns(pl.col("instance").cast(seg.schema["instance"]))
    dur = pl.col("end_s") - pl.col("start_s")
    b = pl.max_horizontal(pl.col("batch_size").cast(pl.Float64).fill_null(1.0), pl.lit(1.0))
    busy_gpu = pl.col("_lo") + (pl.col("_hi") - pl.col("_lo")) / (
        1 + (-pl.col("_k") * (b.log(2) - pl.col("_x0"))).exp()
    )
    busy_full = pl.col("_n") * busy_gpu
    waiting_w = pl.col("_n") * pl.col("_idle") if exec_idle_at_idle_power else busy_full * exec_idle_ratio
    power_expr = (
        pl.when(pl.col("state") == "busy")
        .then(busy_full * (1 - pl.col("_phi")) + pl.col("_phi") * waiting_w)
        .when(pl.col("state").is_in(["idle", "starting"]))
        .then(pl.col("_n") * pl.col("_idle"))
        .otherwise(0.0)
    )
    is_busy = pl.col("state") == "busy"
    segs = seg.join(ptab, on="instance", how="left")
    if phi_expr is not None:
        share = phi_expr.cast(pl.Float64).clip(0.0, 1.0)
        segs = segs.with_columns(_phi=pl.when(pl.col("state") == "busy").then(share).otherwise(0.0))
    segs = (
        segs.with_columns(power_w=power_expr, _dur=dur)
        .with_columns(
            energy_j=pl.col("power_w") * pl.col("_dur"),
            exec_idle_s=pl.when(is_busy).then(pl.col("_phi") * pl.col("_dur")).otherwise(0.0),
            exec_idle_j=pl.when(is_busy).then(waiting_w * pl.col("_phi") * pl.col("_dur")).otherwise(0.0),
        )
    )
    per_state = [
        agg
        for s in STATES
        for agg in (
            pl.col("_dur").filter(pl.col("state") == s).sum().alias(f"{s}_s"),
            pl.col("energy_j").filter(pl.col("state") == s).sum().alias(f"{s}_j"),
        )
    ]
    by_inst = segs.group_by("instance").agg(
        *per_state, pl.col("exec_idle_s").sum(), pl.col("exec_idle_j").sum(), pl.col("energy_j").sum()
    )
    by_inst = inst.select("instance", "pool", "gpu", "model", "tp", "n_gpus").join(
        by_inst, on="instance", how="left"
    )
    by_inst = by_inst.with_columns(pl.selectors.ends_with("_s", "_j").fill_null(0.0)).join(
        _request_counts(result, "instance"), on="instance", how="left"
    )
    kv = hierarchy_energy(result)  # the KV hierarchy's host memory, SSDs, store and network (empty: none)
    store_j = 0.0
    if kv.height:
        per = kv.filter(pl.col("instance") >= 0).select(
            pl.col("instance").cast(inst.schema["instance"]), "kv_j"
        )
        by_inst = (
            by_inst.join(per, on="instance", how="left")
            .with_columns(pl.col("kv_j").fill_null(0.0))
            .with_columns(energy_j=pl.col("energy_j") + pl.col("kv_j"))
        )
        store_j = float(kv.filter(pl.col("instance") < 0)["kv_j"].sum())
    sums = [
        c for c in by_inst.columns if c.endswith(("_s", "_j")) or c in ("requests", "output_tokens", "n_gpus")
    ]
    by_pool = by_inst.group_by("pool").agg(pl.col(sums).sum(), pl.len().alias("instances")).sort("pool")
    fleet = by_inst.select(pl.col(sums).sum(), pl.len().alias("instances"))
    if store_j:  # the shared store belongs to the fleet, not to a pool
        fleet = fleet.with_columns(energy_j=pl.col("energy_j") + store_j, kv_j=pl.col("kv_j") + store_j)
    tables = [_derived(t, pue) for t in (by_inst.sort("instance"), by_pool, fleet)]
    if check:
        _check_power_range(tables[0])
    by_instance, by_pool_table, fleet_table = tables
    segments = segs.drop(pl.selectors.starts_with("_"))
    return EnergyReport(segments, by_instance, by_pool_table, fleet_table, pue=pue)


#: Headroom above a GPU's TDP that a fitted power curve may reach (H100-SXM's fit peaks 1 % above 700 W).
TDP_HEADROOM = 1.05


def _check_power_range(by_inst: pl.DataFrame) -> None:
    """Raise :class:`InvariantError` for an instance whose power or energy per token is impossible.

    That is, its mean power lies outside its GPUs' range, or its energy per output token is not a finite
    positive number although it made tokens.
    """
    for row in by_inst.iter_rows(named=True):
        powered = row["busy_s"] + row["idle_s"] + row["starting_s"]
        if powered > 0:
            base = str(row["gpu"]).split("-MIG-")[0]  # a MIG slice: its GPU's TDP times its share (n_gpus)
            try:
                tdp = gpu_facts(base).tdp_w
            except HardwareError:  # a GPU outside the catalog (custom power= curves): no TDP to check against
                tdp = math.inf
            limit = TDP_HEADROOM * tdp * float(row["n_gpus"])
            mean = row["energy_j"] / powered
            if not 0.0 <= mean <= limit:
                raise InvariantError(
                    f"instance {row['instance']} ({row['gpu']}, {row['n_gpus']:g} GPUs) drew {mean:.6g} W on "
                    f"average while powered, outside 0..{limit:.6g} W (TDP x {TDP_HEADROOM})"
                )
        jpt = row["j_per_output_token"]
        if row["output_tokens"] and not (jpt is not None and math.isfinite(jpt) and jpt > 0):
            raise InvariantError(f"instance {row['instance']}: energy per output token is {jpt!r}")


def _request_counts(result: SimResult, key: str) -> pl.DataFrame:
    req = result.requests
    if req.height == 0 or key not in req.columns:
        return pl.DataFrame(
            schema={key: result.instances.schema[key], "requests": pl.Int64, "output_tokens": pl.Int64}
        )
    done = req.filter(pl.col("finish_s").is_not_null() & ~pl.col("rejected").fill_null(False))
    return (
        done.group_by(key)
        .agg(pl.len().cast(pl.Int64).alias("requests"), pl.col("output_tokens").cast(pl.Int64).sum())
        .with_columns(pl.col(key).cast(result.instances.schema[key]))
    )


def _derived(t: pl.DataFrame, pue: float) -> pl.DataFrame:
    """Add kWh, facility kWh, shares and per-request/per-token energy to a table of sums."""
    safe = lambda c: pl.when(pl.col(c) > 0).then(pl.col(c)).otherwise(None)  # noqa: E731
    return t.with_columns(pl.col("requests", "output_tokens").fill_null(0)).with_columns(
        it_kwh=pl.col("energy_j") / J_PER_KWH,
        facility_kwh=pl.col("energy_j") * pue / J_PER_KWH,
        exec_idle_time_share=pl.col("exec_idle_s") / safe("busy_s"),
        exec_idle_energy_share=pl.col("exec_idle_j") / safe("busy_j"),
        j_per_request=pl.col("energy_j") / safe("requests"),
        j_per_output_token=pl.col("energy_j") / safe("output_tokens"),
    )


def energy_timeseries(report: EnergyReport, bin_s: float = 3600.0, *, by: str | None = None) -> pl.DataFrame:
    """Return the IT energy per time bin, for the fleet or per ``by`` column.

    Exact: segments are split at bin edges.

    Returns columns ``bin`` (index), ``start_s``, [``by``], ``energy_j``, ``mean_power_w``; the last bin ends
    at the end of the last segment.

    Parameters
    ----------
    report
        An :func:`energy` report.
    bin_s
        Bin width in seconds.
    by
        Segment column to split by (e.g. ``"pool"``), or ``None`` for the fleet.

    Returns
    -------
    polars.DataFrame
        One row per bin (and ``by`` value).
    """
    require_positive("bin_s", bin_s)
    seg = report.segments
    if seg.height == 0:
        return pl.DataFrame(
            schema={"bin": pl.Int64, "start_s": pl.Float64, "energy_j": pl.Float64, "mean_power_w": pl.Float64}
        )
    t_end = as_float(seg["end_s"].max())
    edges = np.append(np.arange(0.0, t_end, bin_s), t_end)  # the last bin ends at the last segment
    groups: Iterable[tuple[Any, pl.DataFrame]]
    groups = [(None, seg)] if by is None else seg.group_by(by, maintain_order=True)
    frames = []
    for key, g in groups:
        e = _cumulative_energy_at(
            g["start_s"].to_numpy(), g["end_s"].to_numpy(), g["power_w"].to_numpy(), edges
        )
        f = pl.DataFrame(
            {
                "bin": np.arange(edges.size - 1),
                "start_s": edges[:-1],
                "_len": np.diff(edges),
                "energy_j": np.diff(e),
            }
        )
        if by is not None:
            f = f.with_columns(pl.lit(key[0]).alias(by))
        frames.append(f)
    return pl.concat(frames).with_columns(mean_power_w=pl.col("energy_j") / pl.col("_len")).drop("_len")


def _cumulative_energy_at(start: np.ndarray, end: np.ndarray, power: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Cumulative energy at times ``at`` of a sum of rectangles (exact: piecewise linear between events)."""
    t = np.concatenate([start, end])
    d = np.concatenate([power, -power])
    order = np.argsort(t, kind="stable")
    t, d = t[order], d[order]
    level = np.cumsum(d)
    e = np.concatenate([[0.0], np.cumsum(level[:-1] * np.diff(t))])
    return np.interp(at, t, e, left=0.0, right=e[-1])
