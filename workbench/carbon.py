"""Sites, operational and embodied carbon, water, and the Green-LLM lexicographic site choice.

A :class:`Site` joins a grid region (carbon intensity, electricity price) with a facility profile (PUE, WUE)
from ``data/sites.csv`` (sources per row in the file). Carbon intensity is a constant or an hourly profile
(repeated over the run). Operational carbon = facility energy (IT x PUE) x grid intensity; embodied carbon of
the GPUs is amortised linearly over their life; on-site water = IT energy x WUE, plus an optional off-site
factor (L per facility kWh, water used to generate the electricity; no default: none found, see README).
:func:`footprint` takes an energy total or an hourly series; :func:`footprint_of` takes a simulation
(``EnergyReport`` or ``SimResult``) and adds per-output-token intensities.

:func:`choose_site` is the Green-LLM rule (arXiv 2507.09942): among candidates within a water cap, keep those
whose cost is within a tolerance of the cheapest, then those whose carbon is within a tolerance of the lowest,
then take the lowest delay.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import polars as pl

from workbench._paths import data_path
from workbench.config import as_float, require_positive, require_pue, require_range
from workbench.errors import ConfigError
from workbench.power.energy import J_PER_KWH, EnergyReport, energy, energy_timeseries

#: EUR -> USD used for EUR-quoted electricity prices (the rate the hardware README uses).
USD_PER_EUR = 1.10
#: Facility profile that fills PUE/WUE when a grid region has none.
DEFAULT_FACILITY = "industry-average-2024"
@dataclass(frozen=True, slots=True)
class Site:
    """A place to run a fleet.

    Attributes
    ----------
    name
        Site id (region[+facility]).
    grid_gco2e_per_kwh
        Constant grid intensity (mean of the profile when one is given); NaN if unknown.
    pue
        Power usage effectiveness, >= 1.
    wue_l_per_kwh
        On-site water per IT kWh.
    electricity_usd_per_kwh
        Electricity price; NaN if unknown.
    offsite_water_l_per_kwh
        Water per facility kWh consumed off site (generation); 0 by default.
    carbon_profile
        Optional hourly intensities (gCO2e/kWh), repeated; hour 0 is the start of the run.
    """

    name: str
    grid_gco2e_per_kwh: float
    pue: float
    wue_l_per_kwh: float
    electricity_usd_per_kwh: float
    offsite_water_l_per_kwh: float = 0.0
    carbon_profile: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        require_pue(self.pue)
        require_positive("wue_l_per_kwh", self.wue_l_per_kwh, allow_zero=True)
        require_positive("offsite_water_l_per_kwh", self.offsite_water_l_per_kwh, allow_zero=True)
        for name in ("grid_gco2e_per_kwh", "electricity_usd_per_kwh"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and (math.isnan(v) or v >= 0) and not math.isinf(v)):
                raise ConfigError(f"{name} must be a number >= 0 (or NaN for unknown), got {v!r}")
        if self.carbon_profile is not None:
            prof = tuple(float(x) for x in self.carbon_profile)
            if not prof or any(not math.isfinite(x) or x < 0 for x in prof):
                raise ConfigError("carbon_profile must be a non-empty sequence of finite values >= 0")
            object.__setattr__(self, "carbon_profile", prof)
            object.__setattr__(self, "grid_gco2e_per_kwh", float(np.mean(prof)))

    def need(self, field: str) -> float:
        """Value of ``field``, or a ConfigError saying how to supply it when it is unknown."""
        value = getattr(self, field)
        if math.isnan(value):
            raise ConfigError(f"site {self.name!r} has no {field} in sites.csv; pass {field}=... to site()")
        return value


@functools.cache
def load_sites() -> pl.DataFrame:
    """Return the shipped site table ``data/sites.csv`` (with source columns)."""
    return pl.read_csv(data_path("sites.csv"), infer_schema_length=None)


def site_names() -> list[str]:
    """Site ids in the table."""
    return load_sites()["site_id"].to_list()


def _row(name: str) -> dict:
    table = load_sites().filter(pl.col("site_id") == name)
    if table.height == 0:
        raise ConfigError(f"unknown site {name!r}; choose one of: {', '.join(site_names())}")
    return table.row(0, named=True)


def _f(value: object) -> float:
    return math.nan if value is None else float(value)  # type: ignore[arg-type]


def site(name: str, *, facility: str | None = None, **overrides: Any) -> Site:
    """Build a :class:`Site` from table row ``name``; PUE/WUE it lacks come from ``facility``.

    ``facility`` defaults to the row's own values, then to :data:`DEFAULT_FACILITY`. EUR prices are converted
    at :data:`USD_PER_EUR`. Keyword ``overrides`` replace any field (e.g. ``electricity_usd_per_kwh=0.08``,
    ``carbon_profile=[...]``).
    """
    row = _row(name)
    fac = _row(facility or DEFAULT_FACILITY)
    price = _f(row["electricity_price"])
    if row["price_unit"] == "EUR/kWh":
        price *= USD_PER_EUR
    pue = _f(row["pue"]) if facility is None and row["pue"] is not None else _f(fac["pue"])
    wue = (
        _f(row["wue_l_per_kwh"])
        if facility is None and row["wue_l_per_kwh"] is not None
        else _f(fac["wue_l_per_kwh"])
    )
    out = Site(
        name=name if facility is None else f"{name}+{facility}",
        grid_gco2e_per_kwh=_f(row["grid_carbon_gco2e_per_kwh"]),
        pue=pue if not math.isnan(pue) else _f(_row(DEFAULT_FACILITY)["pue"]),
        wue_l_per_kwh=wue if not math.isnan(wue) else _f(_row(DEFAULT_FACILITY)["wue_l_per_kwh"]),
        electricity_usd_per_kwh=price,
    )
    fields = set(Site.__slots__)
    unknown = set(overrides) - fields
    if unknown:
        raise ConfigError(f"unknown Site field(s) {sorted(unknown)}; valid: {', '.join(sorted(fields))}")
    return replace(out, **overrides) if overrides else out


def diurnal_profile(mean: float, amplitude: float, *, low_hour: int = 13, hours: int = 24) -> tuple[float, ...]:
    """Return a synthetic cosine day of grid intensity (lowest at ``low_hour``, e.g. solar noon).

    For what-ifs only.
    """
    require_positive("mean", mean)
    require_range("amplitude", amplitude, 0.0, mean)
    h = np.arange(hours)
    return tuple((mean - amplitude * np.cos(2 * np.pi * (h - low_hour) / hours)).tolist())


def operational_carbon_kg(it_kwh: float | np.ndarray, site: Site, *, start_hour: int = 0) -> float:
    """Operational CO2e (kg) of IT energy: a total, or one value per hour when the site has a profile."""
    it = np.atleast_1d(np.asarray(it_kwh, dtype=float))
    if (it < 0).any():
        raise ConfigError("it_kwh must be >= 0")
    if site.carbon_profile is None or it.size == 1:
        intensity = site.need("grid_gco2e_per_kwh")
        return float(it.sum() * site.pue * intensity / 1000.0)
    prof = np.asarray(site.carbon_profile)
    hourly = prof[(start_hour + np.arange(it.size)) % prof.size]
    return float((it * site.pue * hourly).sum() / 1000.0)


def gco2e_per_1k_tokens(j_per_token: float | np.ndarray, site: Site) -> float | np.ndarray:
    """Return the operational gCO2e per 1,000 tokens of IT energy ``j_per_token`` (J) at ``site``.

    IT energy x PUE x the grid's mean intensity: the package's one carbon-per-token formula.
    """
    return j_per_token * 1000.0 * site.pue / J_PER_KWH * site.need("grid_gco2e_per_kwh")


def embodied_carbon_kg(n_gpus: float, hours: float, *, kg_per_gpu: float, lifetime_years: float) -> float:
    """Embodied CO2e (kg) of ``n_gpus`` amortised linearly over ``lifetime_years``, for ``hours`` of use."""
    require_positive("n_gpus", n_gpus, allow_zero=True)
    require_positive("hours", hours, allow_zero=True)
    require_positive("kg_per_gpu", kg_per_gpu, allow_zero=True)
    require_positive("lifetime_years", lifetime_years)
    return n_gpus * kg_per_gpu * hours / (lifetime_years * 8760.0)


def water_l(it_kwh: float, site: Site) -> tuple[float, float]:
    """(on-site, off-site) water in litres: IT kWh x WUE, and facility kWh x off-site factor."""
    require_positive("it_kwh", it_kwh, allow_zero=True)
    return it_kwh * site.wue_l_per_kwh, it_kwh * site.pue * site.offsite_water_l_per_kwh


def footprint(
    it_kwh: float | np.ndarray,
    site: Site,
    *,
    n_gpus: float = 0.0,
    hours: float | None = None,
    embodied_kg_per_gpu: float = 0.0,
    lifetime_years: float = 5.0,
    start_hour: int = 0,
) -> pl.DataFrame:
    """One-row table: IT and facility kWh, energy cost, operational/embodied/total CO2e and water.

    ``it_kwh`` is a total or an hourly series (then ``hours`` defaults to its length and an hourly carbon
    profile of the site applies hour by hour). Energy cost needs the site's electricity price.
    """
    series = np.atleast_1d(np.asarray(it_kwh, dtype=float))
    total = float(series.sum())
    hours = float(series.size if hours is None else hours)
    op = operational_carbon_kg(series, site, start_hour=start_hour)
    emb = embodied_carbon_kg(n_gpus, hours, kg_per_gpu=embodied_kg_per_gpu, lifetime_years=lifetime_years)
    on, off = water_l(total, site)
    price = site.electricity_usd_per_kwh
    return pl.DataFrame(
        {
            "site": [site.name],
            "it_kwh": [total],
            "facility_kwh": [total * site.pue],
            "energy_cost_usd": [total * site.pue * price],
            "operational_kgco2e": [op],
            "embodied_kgco2e": [emb],
            "total_kgco2e": [op + emb],
            "water_onsite_l": [on],
            "water_offsite_l": [off],
            "water_total_l": [on + off],
        }
    )


def footprint_of(
    run: object,
    site: Site,
    *,
    embodied_kg_per_gpu: float = 0.0,
    lifetime_years: float = 5.0,
    start_hour: int = 0,
) -> pl.DataFrame:
    """Carbon and water of a simulation at ``site``.

    :func:`footprint` of its hourly IT energy plus per-output-token intensities.

    Parameters
    ----------
    run
        A :class:`workbench.power.EnergyReport`, or a :class:`workbench.sim.result.SimResult` whose energy is
        computed with :func:`workbench.power.energy` (default power curves, no execution-idle).
    site
        Where the fleet runs. Its PUE makes the facility energy (a report's own ``pue`` is not used).
    embodied_kg_per_gpu, lifetime_years
        Embodied CO2e per GPU, amortised over its life for the simulated span.
    start_hour
        Hour of the site's carbon profile at simulation time 0.

    Returns
    -------
    pl.DataFrame
        The columns of :func:`footprint` plus ``hours`` (simulated span), ``output_tokens``, and the intensities
        ``kgco2e_per_mtok`` and ``water_l_per_mtok`` per million output tokens (as
        :func:`workbench.tco.lifetime_footprint`; NaN without tokens).
    """
    report = run if isinstance(run, EnergyReport) else energy(run, pue=site.pue)  # type: ignore[arg-type]
    hourly = energy_timeseries(report, 3600.0)
    it_kwh = hourly["energy_j"].to_numpy() / J_PER_KWH
    span_h = as_float(report.segments["end_s"].max() or 0.0) / 3600.0
    fleet = report.fleet.row(0, named=True)
    out = footprint(
        it_kwh,
        site,
        n_gpus=float(fleet["n_gpus"]),
        hours=span_h,
        embodied_kg_per_gpu=embodied_kg_per_gpu,
        lifetime_years=lifetime_years,
        start_hour=start_hour,
    )
    tokens = int(fleet["output_tokens"] or 0)
    return per_mtok(out.with_columns(hours=pl.lit(span_h), output_tokens=pl.lit(tokens)), tokens)


def per_mtok(footprint_table: pl.DataFrame, output_tokens: float) -> pl.DataFrame:
    """Return a :func:`footprint` table plus its intensities per million output tokens.

    The columns ``kgco2e_per_mtok`` and ``water_l_per_mtok`` are added.

    Both are NaN when ``output_tokens`` is not positive (no work to charge the footprint to).
    """
    scale = pl.lit(1e6 / output_tokens if output_tokens > 0 else math.nan)
    return footprint_table.with_columns(
        kgco2e_per_mtok=pl.col("total_kgco2e") * scale,
        water_l_per_mtok=pl.col("water_total_l") * scale,
    )


def compare_sites(
    it_kwh: float, sites: list[Site], *, delay_s: dict[str, float] | None = None, fixed_cost_usd: float = 0.0
) -> pl.DataFrame:
    """Candidate table for :func:`choose_site`: cost (energy + fixed), carbon, water and delay per site."""
    rows = []
    for s in sites:
        s.need("electricity_usd_per_kwh")
        s.need("grid_gco2e_per_kwh")
        rows.append(footprint(it_kwh, s).with_columns(delay_s=pl.lit((delay_s or {}).get(s.name, 0.0))))
    return (
        pl.concat(rows)
        .with_columns(cost_usd=pl.col("energy_cost_usd") + fixed_cost_usd)
        .rename({"site": "name", "total_kgco2e": "carbon_kg", "water_total_l": "water_l"})
    )


def choose_site(
    candidates: pl.DataFrame,
    *,
    cost_tol: float = 0.05,
    carbon_tol: float = 0.05,
    water_cap_l: float | None = None,
    cost: str = "cost_usd",
    carbon: str = "carbon_kg",
    delay: str = "delay_s",
    water: str = "water_l",
) -> pl.DataFrame:
    """Green-LLM lexicographic choice: cost, then carbon, then delay, each within a relative tolerance.

    Returns ``candidates`` with boolean columns ``water_ok``, ``cost_ok``, ``carbon_ok`` and ``chosen`` (one
    row true), sorted with the chosen row first. Raises ConfigError if no candidate meets the water cap.
    """
    require_positive("cost_tol", cost_tol, allow_zero=True)
    require_positive("carbon_tol", carbon_tol, allow_zero=True)
    missing = {cost, carbon, delay} - set(candidates.columns)
    if missing or (water_cap_l is not None and water not in candidates.columns):
        raise ConfigError(f"candidates lack column(s) {sorted(missing or {water})}")
    t = candidates.with_columns(
        water_ok=pl.lit(True) if water_cap_l is None else pl.col(water) <= water_cap_l
    ).with_row_index("_i")
    ok = t.filter("water_ok")
    if ok.height == 0:
        lowest = as_float(t[water].min())
        raise ConfigError(f"no candidate meets the water cap {water_cap_l} L (min {lowest} L)")
    best_cost = as_float(ok[cost].min())
    ok = ok.filter(pl.col(cost) <= best_cost * (1 + cost_tol) + 1e-12)
    cost_ids = set(ok["_i"])
    best_carbon = as_float(ok[carbon].min())
    ok = ok.filter(pl.col(carbon) <= best_carbon * (1 + carbon_tol) + 1e-12)
    carbon_ids = set(ok["_i"])
    chosen = ok.sort([delay, cost, carbon, "_i"])["_i"][0]
    return (
        t.with_columns(
            cost_ok=pl.col("_i").is_in(list(cost_ids)),
            carbon_ok=pl.col("_i").is_in(list(carbon_ids)),
            chosen=pl.col("_i") == chosen,
        )
        .sort(["chosen", cost], descending=[True, False])
        .drop("_i")
    )


# ------------------------------------------------------------------------ hourly grid intensity (EIA-930)
#: US balancing authorities of ``data/grid_carbon_eia930_2022.parquet``: (name, UTC offset of local standard
#: time in hours, time-zone group used for the delay table).
BALANCING_AUTHORITIES: dict[str, tuple[str, int, str]] = {
    "AZPS": ("Arizona Public Service", -7, "mountain"),
    "BPAT": ("Bonneville Power Administration", -8, "pacific"),
    "CISO": ("California ISO", -8, "pacific"),
    "ERCO": ("ERCOT (Texas)", -6, "central"),
    "MISO": ("Midcontinent ISO", -6, "central"),
    "NYIS": ("New York ISO", -5, "eastern"),
    "PJM": ("PJM Interconnection", -5, "eastern"),
    "SOCO": ("Southern Company", -5, "eastern"),
    "WAAT": ("EIA-930 WAAT (Pacific Northwest)", -8, "pacific"),
}


@functools.lru_cache(maxsize=1)
def hourly_intensity() -> pl.DataFrame:
    """Hourly average grid carbon intensity of nine US balancing authorities in 2022 (gCO2/kWh).

    Columns: ``timestamp`` (hour start, UTC) and one Float64 column per balancing authority
    (:data:`BALANCING_AUTHORITIES`); 8,760 rows. Hours the source has no data for are null (CISO 3, MISO 3,
    PJM 23) and stay null: a caller decides what a missing hour means (the allocation below treats the site
    as unavailable then). Source: EIA-930 via SustainDC (``data/README.md``).
    """
    table = pl.read_parquet(data_path("grid_carbon_eia930_2022.parquet"))
    return table.with_columns(pl.col("timestamp").str.to_datetime("%Y-%m-%d %H:%M:%S", time_zone="UTC"))


def allocate(
    demand: np.ndarray,
    capacity: np.ndarray,
    price: np.ndarray,
    intensity: np.ndarray,
    delay: np.ndarray,
    *,
    deferrable: np.ndarray | None = None,
    window: int = 24,
    order: tuple[str, ...] = ("cost", "carbon", "delay"),
    tolerances: tuple[float, ...] = (0.03, 0.0),
) -> dict[str, np.ndarray | float]:
    """Lexicographic allocation of hourly work to sites (Green-LLM, arXiv 2507.09942), by linear programming.

    Work is in energy units (kWh at the meter). Each hour's real-time ``demand`` must be served in that hour;
    each window of ``window`` hours may also hold ``deferrable`` work served at any hour of the window. Sites
    hold at most ``capacity`` per hour (0 where the site is unavailable). The objectives in ``order``
    (``"cost"`` = price x energy, ``"carbon"`` = intensity x energy, ``"delay"`` = delay x energy) are
    minimised one after the other; each one's optimum, relaxed by its tolerance (relative, in ``tolerances``
    order), constrains the next.

    Parameters
    ----------
    demand
        Real-time work per hour, shape ``(hours,)``.
    capacity, price, intensity, delay
        Per site and hour, shape ``(sites, hours)``: capacity, price per unit, carbon per unit, delay per unit.
    deferrable
        Work per window, shape ``(hours // window,)``; ``None`` for none.
    window
        Hours per deferral window.
    order
        Objectives, a permutation of a subset of ``("cost", "carbon", "delay")``.
    tolerances
        Relative slack of each objective but the last, in order.

    Returns
    -------
    dict
        ``real_time`` and ``deferred`` (``(sites, hours)`` allocations) and the totals ``cost``, ``carbon``,
        ``delay``.
    """
    from scipy.optimize import linprog
    from scipy.sparse import coo_matrix, vstack

    d = np.asarray(demand, dtype=float)
    cap, pr, ci, dl = (np.asarray(a, dtype=float) for a in (capacity, price, intensity, delay))
    sites, hours = cap.shape
    for name, a in (("price", pr), ("intensity", ci), ("delay", dl)):
        if a.shape != cap.shape:
            raise ConfigError(f"{name} has shape {a.shape}; capacity has {cap.shape}")
    if d.shape != (hours,):
        raise ConfigError(f"demand has shape {d.shape}; expected ({hours},)")
    windows = hours // window if deferrable is not None else 0
    dfr = np.zeros(0) if deferrable is None else np.asarray(deferrable, dtype=float)
    if deferrable is not None and (hours % window or dfr.shape != (windows,)):
        raise ConfigError(f"deferrable needs shape ({hours // window},) with hours a multiple of {window}")
    for name, a in (("demand", d), ("deferrable", dfr), ("capacity", cap)):
        if not np.all(np.isfinite(a)) or np.any(a < 0):
            raise ConfigError(f"{name} must be finite and >= 0")
    # unavailable site-hours (no data) cost nothing to skip: they get no capacity
    usable = np.isfinite(pr) & np.isfinite(ci) & np.isfinite(dl)
    cap = np.where(usable, cap, 0.0)
    pr, ci, dl = (np.where(usable, a, 0.0) for a in (pr, ci, dl))
    n = sites * hours
    nvar = n * (2 if windows else 1)
    col = np.arange(n).reshape(sites, hours)
    rows, cols = [], []
    for h in range(hours):  # real-time balance
        rows += [h] * sites
        cols += list(col[:, h])
    a_eq = [coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(hours, nvar))]
    b_eq = [d]
    if windows:
        r, c = [], []
        for w in range(windows):
            idx = col[:, w * window : (w + 1) * window].ravel() + n
            r += [w] * idx.size
            c += list(idx)
        a_eq.append(coo_matrix((np.ones(len(r)), (r, c)), shape=(windows, nvar)))
        b_eq.append(dfr)
        a_ub = coo_matrix((np.ones(2 * n), (np.tile(np.arange(n), 2), np.arange(2 * n))), shape=(n, nvar))
        b_ub = cap.ravel()
    else:
        a_ub, b_ub = None, None
    objectives = {"cost": pr.ravel(), "carbon": ci.ravel(), "delay": dl.ravel()}
    unknown = set(order) - set(objectives)
    if unknown or len(set(order)) != len(order):
        raise ConfigError(f"order must name distinct objectives among {tuple(objectives)}, got {order!r}")
    bounds = [(0.0, c) for c in cap.ravel()] * (2 if windows else 1)
    A_eq, B_eq = vstack(a_eq).tocsr(), np.concatenate(b_eq)
    extra_a: list = []
    extra_b: list[np.ndarray] = []
    x: np.ndarray | None = None
    for k, name in enumerate(order):
        coef = np.tile(objectives[name], 2 if windows else 1)
        ub_a = [a_ub] if a_ub is not None else []
        ub_b = [b_ub] if b_ub is not None else []
        A_ub = vstack(ub_a + extra_a).tocsr() if ub_a or extra_a else None
        B_ub = np.concatenate(ub_b + extra_b) if ub_b or extra_b else None
        res = linprog(coef, A_ub=A_ub, b_ub=B_ub, A_eq=A_eq, b_eq=B_eq, bounds=bounds, method="highs")
        if res.status != 0:
            raise ConfigError(f"allocation infeasible at objective {name!r} (capacity?): {res.message}")
        x = res.x
        if k < len(order) - 1:
            tol = tolerances[k] if k < len(tolerances) else 0.0
            extra_a.append(coo_matrix(coef.reshape(1, -1)))
            extra_b.append(np.array([res.fun * (1 + tol) + 1e-9 * max(1.0, abs(res.fun))]))
    assert x is not None  # order names at least one objective
    real = x[:n].reshape(sites, hours)
    deferred = x[n:].reshape(sites, hours) if windows else np.zeros_like(real)
    total = real + deferred
    return {
        "real_time": real,
        "deferred": deferred,
        "cost": float((pr * total).sum()),
        "carbon": float((ci * total).sum()),
        "delay": float((dl * total).sum()),
    }
