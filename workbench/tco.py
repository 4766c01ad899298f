"""Total cost of ownership of a GPU fleet (Wattlytics form), cost per token, and own-versus-cloud break-even.

With ``n`` GPUs in ``m = ceil(n / gpus_per_node)`` nodes, lifetime ``L`` years and ``h`` hours a year::

    capex = n x gpu_price + m x (server + infrastructure + facility) + software + kv_capex
    P_gpu = P_idle + u x (P_busy - P_idle)                      (power model at utilisation u)
    E/yr = PUE x (P_gpu x n + P_node x m + P_kv) x h / 1000                (facility kWh a year)
    opex/yr = e_price x E + maintenance x m + running - f_heat x heat_price x E
    TCO = capex + opex/yr x A,   A = L (no discounting) or (1 - (1 + r)^-L) / r  (net present value)

``running`` is Wattlytics' recurring per-system cost a year (depreciation + software subscriptions +
utilisation inefficiency) and the last term its heat-reuse credit: the share ``f_heat`` of the facility
energy sold back as heat at ``heat_price`` per kWh (Wattlytics nets it from the electricity price). Both are 0
by default.

Output tokens per year are ``u x tokens_per_s_per_gpu x n x 3600 h``; with a discount rate the tokens are
discounted the same way (a levelised cost). The cloud alternative rents the same GPUs on demand for
``cloud_usd_per_gpu_hr`` (all hours, or only busy hours when ``cloud_elastic``). ``break_even_years`` is the
time after which owning is cheaper than the cloud: ``inf`` when owning never pays back (the cloud costs no more
a year than running the own fleet), NaN when there is no cloud price. ``kv_capex`` and ``P_kv`` price a KV
hierarchy (host memory and SSDs beyond the node's base, a shared store;
:func:`workbench.power.kv.hierarchy_capex` gives both). Every formula works on numpy arrays too, which
:mod:`workbench.sensitivity` uses for Sobol and Monte Carlo studies.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from workbench._paths import DATA_DIR, data_path
from workbench.config import require_choice, require_int, require_positive, require_pue, require_range
from workbench.errors import ConfigError, HardwareError

#: Wattlytics defaults (main.js @336900e): 500 W node baseline, maintenance EUR 200/node/yr (x 1.10 USD/EUR).
NODE_POWER_W, MAINTENANCE_USD_PER_NODE_YEAR = 500.0, 220.0
#: Per-node capital cost without GPUs, APPROX, from Wattlytics' "Alex" preset (NHR@FAU A100 nodes, EUR x 1.10):
#: server EUR 73-78k per node including 8 A100 at EUR 7,264 leaves ~EUR 15-20k -> USD 20,000; infrastructure
#: (CDU + piping) EUR 15k/node -> USD 16,500; floor space 0.
SERVER_USD_PER_NODE, INFRA_USD_PER_NODE = 20_000.0, 16_500.0
#: Wattlytics' heat-reuse revenue default (main.js @336900e: EUR 0.01/kWh, x 1.10 USD/EUR); its reuse factor
#: defaults to 0, so the credit is 0 until a share of the heat is reused.
HEAT_REUSE_USD_PER_KWH = 0.011
#: Default utilisation (share of the hours the GPUs are busy) and lifetime of an owned fleet: Wattlytics'
#: lifetime (5 years, main.js @336900e) and the planning modes' 60 % utilisation.
UTILISATION, LIFETIME_YEARS = 0.6, 5.0
#: Default electricity price and PUE of :class:`TcoInputs`: the US industrial average 2023 (EIA, the
#: ``us-avg`` row of ``data/sites.csv``) and Wattlytics' PUE (an HPC centre's liquid-cooled hall).
ELECTRICITY_USD_PER_KWH, PUE = 0.0806, 1.2


#: Wattlytics' recurring per-system costs (USD a year): depreciation, software subscriptions, utilisation
#: inefficiency (the expected loss from under-utilisation).
RUNNING_COSTS = ("depreciation_usd_per_year", "subscription_usd_per_year", "inefficiency_usd_per_year")


@dataclass(frozen=True, slots=True)
class TcoInputs:
    """Inputs of :func:`tco` (USD, W, years). See the module docstring for the formulas."""

    n_gpus: int
    gpu_price_usd: float
    gpu_busy_w: float
    gpu_idle_w: float
    utilisation: float = UTILISATION
    tokens_per_s_per_gpu: float = 0.0
    electricity_usd_per_kwh: float = ELECTRICITY_USD_PER_KWH
    pue: float = PUE
    lifetime_years: float = LIFETIME_YEARS
    gpus_per_node: int = 8
    server_usd_per_node: float = SERVER_USD_PER_NODE
    infra_usd_per_node: float = INFRA_USD_PER_NODE
    facility_usd_per_node: float = 0.0
    software_usd: float = 0.0
    node_power_w: float = NODE_POWER_W
    maintenance_usd_per_node_year: float = MAINTENANCE_USD_PER_NODE_YEAR
    hours_per_year: float = 8760.0
    discount_rate: float = 0.0
    cloud_usd_per_gpu_hr: float = math.nan
    cloud_elastic: bool = False
    kv_capex_usd: float = 0.0
    kv_power_w: float = 0.0
    depreciation_usd_per_year: float = 0.0
    subscription_usd_per_year: float = 0.0
    inefficiency_usd_per_year: float = 0.0
    heat_reuse_usd_per_kwh: float = HEAT_REUSE_USD_PER_KWH
    heat_reuse_fraction: float = 0.0

    def __post_init__(self) -> None:
        for name in ("n_gpus", "gpus_per_node"):  # numpy integers are stored as Python ints
            object.__setattr__(self, name, require_int(name, getattr(self, name)))
        require_positive("lifetime_years", self.lifetime_years)
        require_pue(self.pue)
        require_range("utilisation", self.utilisation, 0.0, 1.0)
        require_range("hours_per_year", self.hours_per_year, 0.0, 8784.0)
        require_range("discount_rate", self.discount_rate, 0.0, 1.0)
        require_range("heat_reuse_fraction", self.heat_reuse_fraction, 0.0, 1.0)
        for name in (
            "gpu_price_usd",
            "gpu_busy_w",
            "gpu_idle_w",
            "tokens_per_s_per_gpu",
            "electricity_usd_per_kwh",
            "server_usd_per_node",
            "infra_usd_per_node",
            "facility_usd_per_node",
            "software_usd",
            "node_power_w",
            "maintenance_usd_per_node_year",
            "kv_capex_usd",
            "kv_power_w",
            *RUNNING_COSTS,
            "heat_reuse_usd_per_kwh",
        ):
            require_positive(name, getattr(self, name), allow_zero=True)
        if self.gpu_idle_w > self.gpu_busy_w:
            raise ConfigError(
                "gpu_idle_w must be <= gpu_busy_w (idle power above busy power), "
                f"got gpu_idle_w={self.gpu_idle_w} > gpu_busy_w={self.gpu_busy_w}"
            )
        if not (math.isnan(self.cloud_usd_per_gpu_hr) or self.cloud_usd_per_gpu_hr >= 0):
            raise ConfigError(f"cloud_usd_per_gpu_hr must be >= 0 (or NaN), got {self.cloud_usd_per_gpu_hr!r}")

    @property
    def n_nodes(self) -> int:
        """Nodes needed: ceil(n_gpus / gpus_per_node)."""
        return math.ceil(self.n_gpus / self.gpus_per_node)


def annuity(years: np.ndarray | float, rate: np.ndarray | float) -> np.ndarray | float:
    """Present value of 1 per year for ``years`` at ``rate`` (end-of-year payments); ``years`` when rate = 0."""
    years, rate = np.asarray(years, float), np.asarray(rate, float)
    safe = np.where(rate > 0, rate, 1.0)
    out = np.where(rate > 0, (1.0 - (1.0 + safe) ** -years) / safe, years)
    return float(out) if out.ndim == 0 else out


def tco_arrays(p: Mapping[str, np.ndarray | float]) -> dict[str, np.ndarray]:
    """Evaluate the TCO formulas on (broadcastable) arrays.

    ``p`` is keyed like the :class:`TcoInputs` fields plus ``n_nodes``; the result holds every component, the
    totals and the per-token figures of :func:`tco` as arrays of the broadcast shape.
    """
    a = {k: np.asarray(v, dtype=float) for k, v in p.items()}
    n, m, L = a["n_gpus"], a["n_nodes"], a["lifetime_years"]
    ann = annuity(L, a["discount_rate"])
    u = a["utilisation"]
    gpu_w = a["gpu_idle_w"] + u * (a["gpu_busy_w"] - a["gpu_idle_w"])
    it_kw = (gpu_w * n + a["node_power_w"] * m + a.get("kv_power_w", 0.0)) / 1000.0
    energy_kwh_yr = a["pue"] * it_kw * a["hours_per_year"]
    out = {
        "capex_gpu_usd": n * a["gpu_price_usd"],
        "capex_nodes_usd": m
        * (a["server_usd_per_node"] + a["infra_usd_per_node"] + a["facility_usd_per_node"]),
        "capex_software_usd": a["software_usd"] + 0.0 * n,
        "capex_kv_usd": a.get("kv_capex_usd", 0.0) + 0.0 * n,
        "opex_energy_usd": a["electricity_usd_per_kwh"] * energy_kwh_yr * ann,
        "opex_maintenance_usd": a["maintenance_usd_per_node_year"] * m * ann,
        "opex_running_usd": sum(a.get(k, 0.0) for k in RUNNING_COSTS) * ann + 0.0 * n,
        "opex_heat_reuse_usd": -a.get("heat_reuse_fraction", 0.0)
        * a.get("heat_reuse_usd_per_kwh", HEAT_REUSE_USD_PER_KWH)
        * energy_kwh_yr
        * ann,
        "gpu_power_w": gpu_w,
        "facility_kwh": energy_kwh_yr * L,
    }
    out["capex_usd"] = (
        out["capex_gpu_usd"] + out["capex_nodes_usd"] + out["capex_software_usd"] + out["capex_kv_usd"]
    )
    out["opex_usd"] = (
        out["opex_energy_usd"]
        + out["opex_maintenance_usd"]
        + out["opex_running_usd"]
        + out["opex_heat_reuse_usd"]
    )
    out["tco_usd"] = out["capex_usd"] + out["opex_usd"]
    tokens_yr = u * a["tokens_per_s_per_gpu"] * n * 3600.0 * a["hours_per_year"]
    out["output_tokens"] = tokens_yr * L
    disc_tokens = tokens_yr * ann
    with np.errstate(divide="ignore", invalid="ignore"):
        out["usd_per_mtok"] = np.where(disc_tokens > 0, out["tco_usd"] / disc_tokens * 1e6, np.nan)
        out["tokens_per_usd"] = disc_tokens / out["tco_usd"]
        cloud_hours = a["hours_per_year"] * np.where(a["cloud_elastic"] > 0, u, 1.0)
        cloud_yr = a["cloud_usd_per_gpu_hr"] * n * cloud_hours
        out["cloud_usd"] = cloud_yr * ann
        out["cloud_usd_per_mtok"] = np.where(disc_tokens > 0, out["cloud_usd"] / disc_tokens * 1e6, np.nan)
        opex_yr = out["opex_usd"] / ann
        need = out["capex_usd"] / (cloud_yr - opex_yr)  # annuity factor at which own == cloud
        r = a["discount_rate"]
        safe_r = np.where(r > 0, r, 1.0)
        years = np.where(r > 0, -np.log1p(-np.minimum(need * safe_r, 1.0)) / np.log1p(safe_r), need)
        never = np.where((cloud_yr > opex_yr) & np.isfinite(years), years, np.inf)
        out["break_even_years"] = np.where(np.isnan(cloud_yr), np.nan, never)
    return out


@dataclass(frozen=True)
class TcoResult:
    """TCO of a fleet: ``breakdown`` (component, usd, share) and one-row ``summary``."""

    inputs: TcoInputs
    breakdown: pl.DataFrame
    summary: pl.DataFrame

    def __getitem__(self, key: str) -> float:
        """Return the summary value ``key`` as a float, e.g. ``result["usd_per_mtok"]``."""
        return float(self.summary[key][0])


COMPONENTS = {
    "capex_gpu_usd": ("GPUs", "capex"),
    "capex_nodes_usd": ("servers, infrastructure, facility", "capex"),
    "capex_software_usd": ("software", "capex"),
    "capex_kv_usd": ("KV hierarchy (host memory, SSDs, store)", "capex"),
    "opex_energy_usd": ("electricity (x PUE)", "opex"),
    "opex_maintenance_usd": ("maintenance", "opex"),
    "opex_running_usd": ("running costs (depreciation, subscriptions, utilisation inefficiency)", "opex"),
    "opex_heat_reuse_usd": ("heat-reuse credit", "opex"),
}
#: Components shown in a breakdown only when they are not 0 (so a fleet without them keeps its table).
OPTIONAL_COMPONENTS = ("capex_kv_usd", "opex_running_usd", "opex_heat_reuse_usd")


def _as_arrays(inputs: TcoInputs) -> dict[str, float]:
    d = asdict(inputs)
    d["cloud_elastic"] = float(d["cloud_elastic"])
    d["n_nodes"] = inputs.n_nodes
    return d


def tco(inputs: TcoInputs) -> TcoResult:
    """Compute the TCO breakdown, cost per million output tokens, tokens per dollar, cloud cost and break-even.

    Parameters
    ----------
    inputs
        The fleet, its prices, power, utilisation and lifetime.

    Returns
    -------
    TcoResult
        ``breakdown`` (component, kind, usd, share; optional components only when not 0) and the one-row
        ``summary`` of every figure of :func:`tco_arrays` plus ``n_gpus`` and ``n_nodes``.
    """
    out = {k: float(v) for k, v in tco_arrays(_as_arrays(inputs)).items()}
    total = out["tco_usd"]
    parts = [k for k in COMPONENTS if k not in OPTIONAL_COMPONENTS or out[k] != 0]
    breakdown = pl.DataFrame(
        {
            "component": [COMPONENTS[k][0] for k in parts],
            "kind": [COMPONENTS[k][1] for k in parts],
            "usd": [out[k] for k in parts],
        }
    ).with_columns(share=pl.col("usd") / total if total > 0 else pl.lit(0.0))
    summary = pl.DataFrame({k: [v] for k, v in out.items()}).with_columns(
        n_gpus=pl.lit(inputs.n_gpus), n_nodes=pl.lit(inputs.n_nodes)
    )
    return TcoResult(inputs, breakdown, summary)


def break_even_utilisation(inputs: TcoInputs) -> float:
    """Utilisation above which owning is cheaper than elastic cloud (pay per busy GPU-hour); inf if never.

    Own TCO is affine in utilisation (``alpha + beta u``) and the elastic cloud bill linear (``gamma u``), so
    ``u* = alpha / (gamma - beta)``; values above 1 mean the cloud wins at any utilisation.

    Parameters
    ----------
    inputs
        The owned fleet; its ``cloud_usd_per_gpu_hr`` is the elastic rate (its ``utilisation`` is ignored).

    Returns
    -------
    float
        The break-even utilisation, ``inf`` when owning never wins.

    Raises
    ------
    ConfigError
        When ``inputs`` has no cloud price.
    """
    if math.isnan(inputs.cloud_usd_per_gpu_hr):
        raise ConfigError("break_even_utilisation needs cloud_usd_per_gpu_hr")
    base = replace(inputs, cloud_elastic=True)
    own0, own1 = (tco_arrays(_as_arrays(replace(base, utilisation=u)))["tco_usd"] for u in (0.0, 1.0))
    cloud1 = float(tco_arrays(_as_arrays(replace(base, utilisation=1.0)))["cloud_usd"])
    alpha, beta = float(own0), float(own1 - own0)
    return alpha / (cloud1 - beta) if cloud1 > beta else math.inf


def fleet_tco(
    gpu: str,
    n_gpus: int,
    *,
    utilisation: float = UTILISATION,
    batch: float = 64.0,
    model: str | None = None,
    tp: int = 1,
    site: object | None = None,
    tokens_per_s_per_gpu: float | None = None,
    **overrides: object,
) -> TcoResult:
    """TCO of ``n_gpus`` x ``gpu`` with prices from the GPU table and power from the power model.

    Busy power is the (GPU, model, TP) curve at ``batch``, idle power the loaded-idle power; a ``site``
    (:class:`workbench.carbon.Site`) supplies the electricity price and PUE. Throughput, when not given, is
    the ML.ENERGY per-GPU throughput of that model at that batch (:func:`throughput_per_gpu`), else 0.
    ``overrides`` replace any :class:`TcoInputs` field.

    Parameters
    ----------
    gpu
        GPU name of the GPU table (price, cloud rate, power).
    n_gpus
        GPUs in the fleet.
    utilisation
        Busy share of the fleet's hours.
    batch
        Concurrent sequences per instance at which busy power (and the measured throughput) is read.
    model, tp
        Model and tensor parallelism of the power curve and throughput; model ``None``: the GPU-level default
        power curve and no throughput.
    site
        A :class:`workbench.carbon.Site` giving the electricity price and PUE; ``None``: the
        :class:`TcoInputs` defaults.
    tokens_per_s_per_gpu
        Output throughput per GPU; ``None``: :func:`throughput_per_gpu`.
    **overrides
        Any :class:`TcoInputs` field.

    Returns
    -------
    TcoResult
        As :func:`tco`.

    Raises
    ------
    ConfigError
        On an unknown override, or a GPU without a purchase price (unless ``gpu_price_usd`` is given).
    """
    from workbench.power._facts import gpu_facts
    from workbench.power.energy import instance_power

    facts = gpu_facts(gpu)
    power = instance_power(gpu, model, tp)
    busy = float(power.curve(batch))
    if tokens_per_s_per_gpu is None:
        tokens_per_s_per_gpu = throughput_per_gpu(gpu, model, tp, batch) if model else 0.0
    kw: dict[str, object] = {
        "n_gpus": n_gpus,
        "gpu_price_usd": facts.price_usd,
        "gpu_busy_w": busy,
        "gpu_idle_w": power.idle_w,
        "utilisation": utilisation,
        "tokens_per_s_per_gpu": tokens_per_s_per_gpu,
        "cloud_usd_per_gpu_hr": facts.cloud_usd_per_gpu_hr
        if not math.isnan(facts.cloud_usd_per_gpu_hr)
        else facts.alt_cloud_usd_per_gpu_hr,
    }
    if site is not None:
        kw["electricity_usd_per_kwh"] = site.need("electricity_usd_per_kwh")  # type: ignore[attr-defined]
        kw["pue"] = site.pue  # type: ignore[attr-defined]
    valid = {f.name for f in fields(TcoInputs)}
    unknown = set(overrides) - valid
    if unknown:
        raise ConfigError(f"unknown TCO input(s) {sorted(unknown)}; valid: {', '.join(sorted(valid))}")
    kw.update(overrides)
    if isinstance(kw["gpu_price_usd"], float) and math.isnan(kw["gpu_price_usd"]):
        raise ConfigError(f"GPU {facts.name!r} has no purchase price in gpus.csv; pass gpu_price_usd=...")
    return tco(TcoInputs(**kw))  # type: ignore[arg-type]


#: How a :class:`CostBasis` prices a GPU-hour: rent on demand (``"cloud"``) or own (``"tco"``).
COST_KINDS: tuple[str, ...] = ("cloud", "tco")
#: Site of the default cost basis (grid carbon intensity; electricity price and PUE unless given).
SITE = "us-avg"
#: Costs and powers of :class:`CostBasis` (USD, W; each >= 0) passed on to :class:`TcoInputs` unchanged.
_BASIS_COSTS = (
    "server_usd_per_node",
    "infra_usd_per_node",
    "facility_usd_per_node",
    "software_usd",
    "node_power_w",
    "maintenance_usd_per_node_year",
    *RUNNING_COSTS,
    "heat_reuse_usd_per_kwh",
)
#: Fields of :class:`CostBasis` passed on to :class:`TcoInputs` unchanged.
_BASIS_TCO_FIELDS = ("utilisation", "lifetime_years", "discount_rate", *_BASIS_COSTS, "heat_reuse_fraction")


def _canonical_prices(owner: str, prices: dict[str, float]) -> dict[str, float]:
    """``prices`` keyed by canonical GPU name, each checked (> 0); two aliases of one GPU are an error."""
    from workbench.hardware import gpu

    if not isinstance(prices, dict):
        raise ConfigError(f"{owner} must be a dict of GPU name -> price, got {type(prices).__name__}")
    out: dict[str, float] = {}
    for name, price in prices.items():
        require_positive(f"{owner}[{name!r}]", price)
        canonical = gpu(name).name  # unknown GPU -> HardwareError listing the known ones
        if canonical in out:
            raise ConfigError(f"{owner} prices {canonical!r} twice (as {name!r} and another alias)")
        out[canonical] = float(price)
    return out


@functools.lru_cache(maxsize=64)
def _place(name: str, electricity_usd_per_kwh: float | None, pue: float | None):
    """:func:`workbench.carbon.site` ``name`` with the given price and PUE (``None``: the site's); cached."""
    from workbench.carbon import site

    over = {"electricity_usd_per_kwh": electricity_usd_per_kwh, "pue": pue}
    given: dict[str, Any] = {k: v for k, v in over.items() if v is not None}  # Site fields, not ``facility``
    return site(name, **given)


@dataclass(frozen=True, slots=True)
class CostBasis:
    """The one cost basis of the package: how a GPU-hour is priced and what owning a fleet costs.

    :func:`tco` takes the per-fleet :class:`TcoInputs` that :meth:`tco_inputs` builds from it; the planner
    (:mod:`workbench.planning`) prices GPU-hours with :func:`gpu_hour_usd`; the planning modes
    (:mod:`workbench.whatif`) cost whole fleets with it. Validated once, here; every error names the field.

    Attributes
    ----------
    kind
        How a GPU-hour is priced (:data:`COST_KINDS`): ``"cloud"`` is the on-demand rate of the GPU table,
        ``"tco"`` the TCO of owning one node over ``lifetime_years`` spread over its GPU-hours.
    site
        Site id of :mod:`workbench.carbon` (``data/sites.csv``): grid carbon intensity, and the electricity
        price and PUE where those are ``None``.
    utilisation
        Share of the hours the GPUs are busy (average power; tokens served). Default 0.6 (:data:`UTILISATION`).
    lifetime_years, discount_rate
        Amortisation period (default 5, Wattlytics') and discount rate (0: none).
    electricity_usd_per_kwh, pue
        Override the site's electricity price and PUE (``None``: the site's; ``us-avg``: 0.0806 USD/kWh,
        EIA 2023, and PUE 1.56, Uptime 2024).
    server_usd_per_node, infra_usd_per_node, facility_usd_per_node, software_usd
        Capital costs besides the GPUs (Wattlytics' "Alex" preset, see :data:`SERVER_USD_PER_NODE`).
    node_power_w, maintenance_usd_per_node_year
        Node baseline power and maintenance (Wattlytics defaults, :data:`NODE_POWER_W`).
    depreciation_usd_per_year, subscription_usd_per_year, inefficiency_usd_per_year
        Wattlytics' recurring per-system costs (USD a year; default 0): depreciation, software subscriptions
        and utilisation inefficiency. A per-system cost has no per-GPU-hour price: :func:`gpu_hour_usd`
        refuses them.
    heat_reuse_usd_per_kwh, heat_reuse_fraction
        Heat-reuse credit: the share of the facility energy reused as heat and what a kWh of it earns
        (Wattlytics: EUR 0.01/kWh, share 0 by default).
    gpu_price_usd
        Purchase price per GPU name (canonical or alias), overriding the GPU table.
    usd_per_gpu_hr
        GPU-hour price per GPU name, overriding either ``kind``.
    """

    kind: str = "cloud"
    site: str = SITE
    utilisation: float = UTILISATION
    lifetime_years: float = LIFETIME_YEARS
    discount_rate: float = 0.0
    electricity_usd_per_kwh: float | None = None
    pue: float | None = None
    server_usd_per_node: float = SERVER_USD_PER_NODE
    infra_usd_per_node: float = INFRA_USD_PER_NODE
    facility_usd_per_node: float = 0.0
    software_usd: float = 0.0
    node_power_w: float = NODE_POWER_W
    maintenance_usd_per_node_year: float = MAINTENANCE_USD_PER_NODE_YEAR
    depreciation_usd_per_year: float = 0.0
    subscription_usd_per_year: float = 0.0
    inefficiency_usd_per_year: float = 0.0
    heat_reuse_usd_per_kwh: float = HEAT_REUSE_USD_PER_KWH
    heat_reuse_fraction: float = 0.0
    gpu_price_usd: dict[str, float] = field(default_factory=dict)
    usd_per_gpu_hr: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from workbench.carbon import site_names

        object.__setattr__(self, "kind", require_choice("CostBasis.kind", self.kind, COST_KINDS))
        if self.site not in site_names():
            raise ConfigError(
                f"CostBasis.site: unknown site {self.site!r}; choose one of: {', '.join(site_names())}"
            )
        require_range("CostBasis.utilisation", self.utilisation, 0.0, 1.0)
        require_positive("CostBasis.lifetime_years", self.lifetime_years)
        require_range("CostBasis.discount_rate", self.discount_rate, 0.0, 1.0)
        require_range("CostBasis.heat_reuse_fraction", self.heat_reuse_fraction, 0.0, 1.0)
        if self.electricity_usd_per_kwh is not None:
            require_positive("CostBasis.electricity_usd_per_kwh", self.electricity_usd_per_kwh, allow_zero=True)
        if self.pue is not None:
            require_pue(self.pue, "CostBasis.pue")
        for name in _BASIS_COSTS:
            require_positive(f"CostBasis.{name}", getattr(self, name), allow_zero=True)
        for name in ("gpu_price_usd", "usd_per_gpu_hr"):
            object.__setattr__(self, name, _canonical_prices(f"CostBasis.{name}", getattr(self, name)))

    def __hash__(self) -> int:  # the dict fields are not hashable; hash their items
        values = [getattr(self, f.name) for f in fields(self)]
        return hash(tuple(tuple(sorted(v.items())) if isinstance(v, dict) else v for v in values))

    def place(self):
        """Return the :class:`workbench.carbon.Site` of :attr:`site` with this basis' electricity and PUE."""
        return _place(self.site, self.electricity_usd_per_kwh, self.pue)

    @property
    def facility_pue(self) -> float:
        """PUE in force: :attr:`pue`, else the site's."""
        return float(self.pue) if self.pue is not None else float(self.place().pue)

    @property
    def electricity(self) -> float:
        """Electricity price in force (USD/kWh): :attr:`electricity_usd_per_kwh`, else the site's."""
        if self.electricity_usd_per_kwh is not None:
            return float(self.electricity_usd_per_kwh)
        return float(self.place().need("electricity_usd_per_kwh"))

    @property
    def running_usd_per_year(self) -> float:
        """Recurring per-system costs a year (depreciation + subscriptions + utilisation inefficiency)."""
        return float(sum(getattr(self, k) for k in RUNNING_COSTS))

    def purchase_price_or_nan(self, gpu_name: str) -> float:
        """Purchase price of one GPU (override, else the GPU table), NaN when neither has one."""
        from workbench.hardware import gpu

        g = gpu(gpu_name)
        return float(self.gpu_price_usd.get(g.name, g.purchase_price_usd))

    def purchase_price(self, gpu_name: str) -> float:
        """Purchase price of one GPU (override, else the GPU table); an error when neither has one."""
        from workbench.hardware import gpu

        value = self.purchase_price_or_nan(gpu_name)
        if math.isnan(value):
            hint = self.price_hint(gpu_name)
            raise ConfigError(f"GPU {gpu(gpu_name).name!r} has no purchase price in gpus.csv; {hint}")
        return value

    @staticmethod
    def price_hint(gpu_name: str) -> str:
        """How to give a missing purchase price."""
        from workbench.hardware import gpu

        return f"pass CostBasis(gpu_price_usd={{{gpu(gpu_name).name!r}: ...}})"

    def tco_overrides(self) -> dict[str, object]:
        """Return the :class:`TcoInputs` fields this basis sets.

        That is all of them but the fleet's own: its GPUs, their power and their throughput.
        """
        out: dict[str, object] = {k: getattr(self, k) for k in _BASIS_TCO_FIELDS}
        out["electricity_usd_per_kwh"] = self.electricity
        out["pue"] = self.facility_pue
        return out

    def tco_inputs(
        self,
        gpu_name: str,
        n_gpus: int,
        *,
        busy_w: float,
        idle_w: float,
        tokens_per_s_per_gpu: float = 0.0,
        gpus_per_node: int | None = None,
    ) -> TcoInputs:
        """Return the :class:`TcoInputs` of ``n_gpus`` x ``gpu_name`` under this basis.

        The GPUs sit in nodes of ``gpus_per_node`` (default: the GPU table's node size).
        """
        from workbench.hardware import gpu

        return TcoInputs(
            n_gpus=n_gpus,
            gpu_price_usd=self.purchase_price(gpu_name),
            gpu_busy_w=busy_w,
            gpu_idle_w=idle_w,
            tokens_per_s_per_gpu=tokens_per_s_per_gpu,
            gpus_per_node=gpu(gpu_name).gpus_per_node if gpus_per_node is None else gpus_per_node,
            **self.tco_overrides(),  # type: ignore[arg-type]
        )


@functools.lru_cache(maxsize=512)
def gpu_hour_usd(gpu_name: str, basis: CostBasis, model: str | None = None, tp: int = 1) -> float:
    """Cost (USD) of one GPU-hour of ``gpu_name`` serving ``model`` at tensor parallelism ``tp`` of ``basis``.

    The package's one GPU-hour pricer. ``basis.usd_per_gpu_hr`` overrides either kind. ``"cloud"``: the
    on-demand rate of the GPU table (its second reference rate when the first is missing; the model does not
    change a rental price, so it may be ``None``). ``"tco"``: :func:`fleet_tco` of one node running ``model``
    at ``tp`` at the basis' utilisation (busy power from the power model of that model, so a model that draws
    more power costs more an hour), spread over the node's GPU-hours of its lifetime.

    Raises
    ------
    ConfigError
        When the GPU has no price of the kind asked for, or (``"tco"``) no model is given or the basis has
        per-system running costs, which have no per-GPU-hour share.

    Parameters
    ----------
    gpu_name
        GPU name (any alias of the GPU table).
    basis
        How to price it: :class:`CostBasis` kind ``"cloud"`` or ``"tco"``, and its overrides.
    model, tp
        Model and tensor parallelism whose power an owned GPU-hour pays for (``"tco"`` only).

    Returns
    -------
    float
        USD per GPU-hour.
    """
    from workbench.hardware import gpu

    g = gpu(gpu_name)
    if g.name in basis.usd_per_gpu_hr:
        return basis.usd_per_gpu_hr[g.name]
    if basis.kind == "cloud":
        price = g.cloud_usd_per_gpu_hr
        if math.isnan(price):
            from workbench.power._facts import gpu_facts

            price = gpu_facts(g.name).alt_cloud_usd_per_gpu_hr
        if math.isnan(price):
            hint = f"pass CostBasis(usd_per_gpu_hr={{{g.name!r}: ...}})"
            raise ConfigError(f"GPU {g.name!r} has no cloud price in gpus.csv; {hint}")
        return float(price)
    if model is None:
        raise ConfigError("an owned GPU-hour (CostBasis kind 'tco') prices the model's power: give model=...")
    if basis.running_usd_per_year > 0:
        raise ConfigError(
            f"CostBasis.{'/'.join(RUNNING_COSTS)} are per-system costs with no per-GPU-hour share; "
            "cost the whole fleet with workbench.tco.tco (or the planning modes) instead"
        )
    n = g.gpus_per_node
    over: dict[str, Any] = basis.tco_overrides()  # TcoInputs fields of mixed types
    over.pop("utilisation")
    if g.name in basis.gpu_price_usd:
        over["gpu_price_usd"] = basis.gpu_price_usd[g.name]
    result = fleet_tco(
        g.name, n, utilisation=basis.utilisation, model=model, tp=tp, tokens_per_s_per_gpu=0.0, **over
    )
    return result["tco_usd"] / (n * result.inputs.hours_per_year * basis.lifetime_years)


#: Shipped per-GPU throughput of the ML.ENERGY v3 runs (derived; rebuild with :func:`write_throughput_table`).
THROUGHPUT_FILE = "mlenergy_throughput.csv"
THROUGHPUT_COLUMNS = [
    "gpu",
    "model_id",
    "task",
    "num_gpus",
    "tensor_parallel",
    "expert_parallel",
    "max_num_seqs",
    "avg_batch_size",
    "output_tokens_per_s_per_gpu",
]


def build_throughput_table(runs: pl.DataFrame | None = None) -> pl.DataFrame:
    """Return the output tokens/s per GPU of every ML.ENERGY v3 run with its configuration.

    The rate is ``output_throughput_tokens_per_sec / num_gpus``; the table is the content of
    ``data/mlenergy_throughput.csv`` (``runs``: the ML.ENERGY runs, loaded when not given).
    """
    from workbench.power.fitting import load_runs

    runs = load_runs() if runs is None else runs
    return (
        runs.with_columns(
            output_tokens_per_s_per_gpu=pl.col("output_throughput_tokens_per_sec") / pl.col("num_gpus")
        )
        .select(THROUGHPUT_COLUMNS)
        .sort(THROUGHPUT_COLUMNS[:7])
    )


def write_throughput_table(path: str | Path | None = None) -> Path:
    """Rebuild the throughput table from the runs and write it (4 decimals) to ``path`` (default: ``data/``)."""
    path = Path(path or DATA_DIR / THROUGHPUT_FILE)
    table = build_throughput_table()
    table.with_columns(pl.col("avg_batch_size", "output_tokens_per_s_per_gpu").round(4)).write_csv(path)
    return path


@functools.cache
def load_throughput() -> pl.DataFrame:
    """Return the shipped throughput table (see :func:`build_throughput_table`); needs no shared data folder."""
    return pl.read_csv(data_path(THROUGHPUT_FILE))


def throughput_per_gpu(gpu: str, model: str | None, tp: int, batch: float, task: str | None = None) -> float:
    """Return the output tokens/s per GPU of ``model`` on ``gpu`` at ``batch`` from the ML.ENERGY table.

    Log-log interpolation over the matching runs of the shipped throughput table, clipped to the measured
    batch range; 0 when no run matches. Among tasks the one given, else chat first; the smallest GPU count
    with that TP.

    Parameters
    ----------
    gpu, model
        GPU and model names (``model`` ``None``: 0).
    tp
        Tensor parallelism of one instance.
    batch
        Concurrent sequences per instance.
    task
        ML.ENERGY task to prefer (default: chat first).

    Returns
    -------
    float
        Output tokens/s per GPU, 0 without a matching run.
    """
    from workbench.power._facts import resolve
    from workbench.power.curves import TASK_ORDER, matches_model

    if model is None:
        return 0.0
    runs = load_throughput().filter(pl.col("gpu") == resolve(gpu), pl.col("tensor_parallel") == tp)
    runs = runs.filter(
        pl.col("model_id").map_elements(lambda m: matches_model(m, model), return_dtype=pl.Boolean)
    )
    if task is not None:
        runs = runs.filter(pl.col("task") == task)
    if runs.height == 0:
        return 0.0
    best = min(runs["task"].unique(), key=lambda t: TASK_ORDER.index(t) if t in TASK_ORDER else 99)
    r = runs.filter(pl.col("task") == best, pl.col("num_gpus") == runs["num_gpus"].min()).sort("avg_batch_size")
    x = np.log(r["avg_batch_size"].to_numpy())
    y = np.log(r["output_tokens_per_s_per_gpu"].to_numpy())
    return float(np.exp(np.interp(np.log(max(batch, 1.0)), x, y)))


#: Request shape of the roofline throughput estimate: a chat-like request (prompt, output tokens).
ESTIMATE_REQUEST = (1024, 256)


def estimated_throughput_per_gpu(gpu: str, model: str, tp: int, batch: float) -> float:
    """Estimate the output tokens/s per GPU of ``model`` on ``gpu`` from the roofline performance model.

    This is the fallback for GPUs without an ML.ENERGY measurement.

    Continuous batching in steady state: ``batch`` sequences (fewer when the KV cache cannot hold that many
    requests of :data:`ESTIMATE_REQUEST`) each produce one token per iteration, and every iteration also
    prefills the prompts of the requests that replace the finished ones (``batch / output`` prompts). The
    output rate is ``batch / iteration time``, divided by ``tp``.

    Raises
    ------
    HardwareError
        When the model does not fit the GPU (or the KV cache holds not even one request).
    """
    from workbench.hardware import Batch, RooflineModel, kv_capacity_tokens

    prompt, output = ESTIMATE_REQUEST
    fits = kv_capacity_tokens(gpu, model, tp) // (prompt + output)
    if fits < 1:
        need = f"{prompt}+{output}-token request"
        raise HardwareError(f"{model} on {gpu} (tp {tp}): the KV cache holds not one {need}")
    seqs = max(1.0, min(float(batch), float(fits)))
    new = seqs / output  # prompts prefilled per iteration
    step = Batch(
        prefill_tokens=round(new * prompt),
        prefill_context=new * prompt * prompt / 2,
        decode_seqs=round(seqs),
        decode_context=round(seqs * (prompt + output / 2)),
    )
    return seqs / RooflineModel(gpu, model, tp).iteration_time(step) / tp


def throughput_with_source(gpu: str, model: str, tp: int, batch: float) -> tuple[float | None, str]:
    """Return the output tokens/s per GPU of ``model`` on ``gpu`` and where the number comes from.

    The ML.ENERGY measurement (:func:`throughput_per_gpu`) when there is one, else the roofline estimate
    (:func:`estimated_throughput_per_gpu`).

    Parameters
    ----------
    gpu, model
        GPU and model names.
    tp
        Tensor parallelism of one instance.
    batch
        Concurrent sequences per instance.

    Returns
    -------
    tokens_per_s : float or None
        Output tokens/s per GPU; ``None`` when neither source has a number.
    source : str
        ``"ML.ENERGY v3 measurement"``, the estimate's description, or the reason there is no number.
    """
    measured = throughput_per_gpu(gpu, model, tp, batch)
    if measured > 0:
        return measured, "ML.ENERGY v3 measurement"
    try:
        estimate = estimated_throughput_per_gpu(gpu, model, tp, batch)
    except HardwareError as exc:
        return None, f"not computed: {exc}"
    prompt, output = ESTIMATE_REQUEST
    return estimate, f"roofline estimate ({prompt}+{output}-token requests; no ML.ENERGY run for this GPU)"


def lifetime_footprint(result: TcoResult, site, *, embodied_kg_per_gpu: float = 0.0) -> pl.DataFrame:
    """Return the carbon and water of a TCO scenario over its lifetime at ``site``.

    Parameters
    ----------
    result
        The scenario (:func:`tco` or :func:`fleet_tco`): its facility energy, GPUs, hours and output tokens.
    site
        A :class:`workbench.carbon.Site` (grid carbon intensity, water use).
    embodied_kg_per_gpu
        Embodied carbon of one GPU (kg CO2e), spread over the lifetime.

    Returns
    -------
    polars.DataFrame
        The :func:`workbench.carbon.footprint` row with per-million-token intensities (cost, kg CO2e,
        litres) added by :func:`workbench.carbon.per_mtok`.
    """
    from workbench.carbon import footprint, per_mtok

    i = result.inputs
    it_kwh = result["facility_kwh"] / i.pue
    hours = i.hours_per_year * i.lifetime_years
    f = footprint(
        it_kwh,
        site,
        n_gpus=i.n_gpus,
        hours=hours,
        embodied_kg_per_gpu=embodied_kg_per_gpu,
        lifetime_years=i.lifetime_years,
    )
    return per_mtok(f.with_columns(usd_per_mtok=pl.lit(result["usd_per_mtok"])), result["output_tokens"])
