"""Sensitivity of TCO and cost per token: Sobol indices (SALib), Monte Carlo, elasticities, tornado.

Every study takes a *model function* ``f(params) -> y`` where ``params`` maps names to equal-length numpy
arrays and ``y`` is an array (vectorised, so thousands of samples cost one call). :func:`tco_model` builds one
from :class:`workbench.tco.TcoInputs`; :func:`ishigami` is the analytic test function (Ishigami & Homma
1990) whose Sobol indices are known. Randomness comes from one integer seed (or SeedSequence).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict

import numpy as np
import polars as pl

from workbench.config import require_int, require_positive
from workbench.errors import ConfigError
from workbench.seeds import Streams, root
from workbench.tco import TcoInputs, tco_arrays

Model = Callable[[Mapping[str, np.ndarray]], np.ndarray]

#: Published Sobol indices of Ishigami (a=7, b=0.1): first order and total.
ISHIGAMI_S1 = {"x1": 0.3139, "x2": 0.4424, "x3": 0.0}
ISHIGAMI_ST = {"x1": 0.5576, "x2": 0.4424, "x3": 0.2437}


def ishigami(p: Mapping[str, np.ndarray], a: float = 7.0, b: float = 0.1) -> np.ndarray:
    """Ishigami function on x1, x2, x3 in [-pi, pi]."""
    x1, x2, x3 = (np.asarray(p[k], float) for k in ("x1", "x2", "x3"))
    return np.sin(x1) + a * np.sin(x2) ** 2 + b * x3**4 * np.sin(x1)


ISHIGAMI_BOUNDS = {k: (-math.pi, math.pi) for k in ("x1", "x2", "x3")}


def _seed(seed: int | np.random.SeedSequence) -> int:
    return int(root(seed).generate_state(1)[0])


def _check_bounds(bounds: Mapping[str, tuple[float, float]]) -> None:
    if not bounds:
        raise ConfigError("bounds must name at least one parameter")
    for name, (lo, hi) in bounds.items():
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ConfigError(f"bounds[{name!r}] must be finite with low < high, got ({lo}, {hi})")


def sobol(
    model: Model,
    bounds: Mapping[str, tuple[float, float]],
    *,
    n: int = 1024,
    seed: int | np.random.SeedSequence = 0,
) -> pl.DataFrame:
    """First-order (S1) and total (ST) Sobol indices with 95 % bootstrap half-widths, uniform inputs.

    ``n`` is the Saltelli base sample (a power of 2); the model is evaluated ``n x (d + 2)`` times.
    """
    from SALib.analyze import sobol as sobol_analyze
    from SALib.sample import sobol as sobol_sample

    _check_bounds(bounds)
    n = require_int("n", n)
    if n & (n - 1):
        raise ConfigError(f"n must be a power of 2 for Sobol sampling, got {n}")
    names = list(bounds)
    problem = {"num_vars": len(names), "names": names, "bounds": [list(bounds[k]) for k in names]}
    s = _seed(seed)
    x = sobol_sample.sample(problem, n, calc_second_order=False, seed=s)
    y = np.asarray(model({k: x[:, i] for i, k in enumerate(names)}), float)
    if not np.isfinite(y).all():
        raise ConfigError("the model returned non-finite values inside the bounds; narrow the bounds")
    res = sobol_analyze.analyze(problem, y, calc_second_order=False, seed=s, print_to_console=False)
    return pl.DataFrame(
        {"param": names, "S1": res["S1"], "S1_conf": res["S1_conf"], "ST": res["ST"], "ST_conf": res["ST_conf"]}
    )


def monte_carlo(
    model: Model, dists: Mapping[str, tuple], *, n: int = 10_000, seed: int | np.random.SeedSequence = 0
) -> pl.DataFrame:
    """Sample inputs and evaluate the model; returns the samples and an ``output`` column.

    Each distribution is a tuple: ``("uniform", lo, hi)``, ``("triangular", lo, mode, hi)``,
    ``("normal", mean, sd)`` or ``("lognormal", median, sigma)``. Each input gets its own stream (the k-th
    input's stream of :class:`workbench.seeds.Streams`), so appending an input does not change the others'
    draws.
    """
    n = require_int("n", n)
    streams = Streams(seed)  # the k-th input's stream
    gens = [streams.rng(k) for k in range(len(dists))]
    samples = {name: _draw(name, spec, g, n) for (name, spec), g in zip(dists.items(), gens, strict=True)}
    return pl.DataFrame(samples).with_columns(output=pl.Series(np.asarray(model(samples), float)))


def _draw(name: str, spec: tuple, g: np.random.Generator, n: int) -> np.ndarray:
    kind, *args = spec
    draws = {
        "uniform": (2, lambda: g.uniform(args[0], args[1], n)),
        "triangular": (3, lambda: g.triangular(args[0], args[1], args[2], n)),
        "normal": (2, lambda: g.normal(args[0], args[1], n)),
        "lognormal": (2, lambda: args[0] * np.exp(g.normal(0.0, args[1], n))),
    }
    if kind not in draws or len(args) != draws[kind][0]:
        raise ConfigError(
            f"distribution for {name!r} must be one of uniform/triangular/normal/lognormal with "
            f"its parameters, got {spec!r}"
        )
    return draws[kind][1]()


def summarise(mc: pl.DataFrame, column: str = "output") -> pl.DataFrame:
    """Mean, standard deviation and 5/50/95 % quantiles of a Monte Carlo column."""
    c = pl.col(column)
    return mc.select(
        mean=c.mean(), std=c.std(), p05=c.quantile(0.05), p50=c.quantile(0.5), p95=c.quantile(0.95)
    )


def elasticities(model: Model, base: Mapping[str, float], *, rel_step: float = 0.01) -> pl.DataFrame:
    """Elasticity (dy/y) / (dx/x) of the model at ``base`` by central differences, per parameter."""
    require_positive("rel_step", rel_step)
    y0 = float(np.asarray(model({k: np.array([v]) for k, v in base.items()}))[0])
    rows = []
    for name, x in base.items():
        if x == 0:
            rows.append((name, math.nan))
            continue
        ys = []
        for sign in (1, -1):
            p = {k: np.array([v]) for k, v in base.items()}
            p[name] = np.array([x * (1 + sign * rel_step)])
            ys.append(float(np.asarray(model(p))[0]))
        rows.append((name, (ys[0] - ys[1]) / (2 * rel_step) / y0))
    return pl.DataFrame(rows, schema=["param", "elasticity"], orient="row").sort(
        pl.col("elasticity").abs(), descending=True, nulls_last=True
    )


def tornado(model: Model, base: Mapping[str, float], ranges: Mapping[str, tuple[float, float]]) -> pl.DataFrame:
    """One-at-a-time swings: the output with each parameter at its low and high value, largest swing first."""
    y0 = float(np.asarray(model({k: np.array([v]) for k, v in base.items()}))[0])
    rows = []
    for name, (lo, hi) in ranges.items():
        if name not in base:
            raise ConfigError(f"tornado range for unknown parameter {name!r}; known: {', '.join(base)}")
        out = []
        for v in (lo, hi):
            p = {k: np.array([x]) for k, x in base.items()}
            p[name] = np.array([v])
            out.append(float(np.asarray(model(p))[0]))
        rows.append((name, lo, hi, out[0], out[1], abs(out[1] - out[0]), y0))
    cols = ["param", "low", "high", "y_low", "y_high", "swing", "y_base"]
    return pl.DataFrame(rows, schema=cols, orient="row").sort("swing", descending=True)


#: Inputs studied by default, with relative (x base) or absolute ranges.
TCO_PARAMS = ("electricity_usd_per_kwh", "pue", "utilisation", "gpu_price_usd", "lifetime_years", "gpu_busy_w")


def tco_model(inputs: TcoInputs, output: str = "usd_per_mtok") -> Model:
    """Return a vectorised model of one TCO output around ``inputs``.

    The output is any key of :func:`workbench.tco.tco_arrays`.
    """
    base = asdict(inputs)
    base["cloud_elastic"] = float(base["cloud_elastic"])
    probe = tco_arrays({**base, "n_nodes": inputs.n_nodes})
    if output not in probe:
        raise ConfigError(f"unknown TCO output {output!r}; choose one of: {', '.join(sorted(probe))}")

    def model(p: Mapping[str, np.ndarray]) -> np.ndarray:
        unknown = set(p) - set(base)
        if unknown:
            raise ConfigError(f"unknown TCO input(s) {sorted(unknown)}")
        merged = {**base, **p}
        merged["n_nodes"] = np.ceil(np.asarray(merged["n_gpus"], float) / np.asarray(merged["gpus_per_node"]))
        return np.asarray(tco_arrays(merged)[output], float)

    return model


def tco_bounds(
    inputs: TcoInputs, *, spread: float = 0.25, max_power_w: float = math.inf
) -> dict[str, tuple[float, float]]:
    """Default ranges of :data:`TCO_PARAMS` around ``inputs``.

    +-spread for prices and busy power (power capped at ``max_power_w``, e.g. the TDP), PUE 1.1-1.6 (Google 2023
    to the 2023 industry average), utilisation 0.3-0.9, lifetime 3-7 years.
    """
    e, p, w = inputs.electricity_usd_per_kwh, inputs.gpu_price_usd, inputs.gpu_busy_w
    return {
        "electricity_usd_per_kwh": (e * (1 - spread), e * (1 + spread)),
        "pue": (1.1, 1.6),
        "utilisation": (0.3, 0.9),
        "gpu_price_usd": (p * (1 - spread), p * (1 + spread)),
        "lifetime_years": (3.0, 7.0),
        "gpu_busy_w": (max(w * (1 - spread), inputs.gpu_idle_w), min(w * (1 + spread), max(max_power_w, w))),
    }
