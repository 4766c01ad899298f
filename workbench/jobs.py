"""Jobs described by config files: what ``workbench run`` and ``workbench sweep`` execute.

:func:`run_fleet` simulates a trace through a fleet read from TOML (see ``examples/fleet.toml``);
:class:`SweepSpec` reads a sweep file (``examples/sweep.toml``): a base fleet, a trace and a grid of
overrides, run through :func:`workbench.experiments.sweep` (parallel with ``jobs``, resumable with a cache
folder, on a Dask cluster with ``dask``). A sweep file::

    [sweep]
    fleet = "fleet.toml"       # base fleet, relative to this file
    trace = "azure_code"       # dataset name or trace file
    requests = 2000            # the first N requests (optional)
    seed = 0
    ttft_slo = 2.0             # optional SLO for attainment and goodput
    tpot_slo = 0.1

    [grid]                     # every combination is one point
    rate_scale = [1.0, 2.0]    # trace speed-up
    "pools.main.instances" = [2, 4]      # dotted path into the fleet: pool by name (or index), field
    "pools.main.router" = ["jsq", "round_robin"]
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import polars as pl

from workbench.config import read_toml
from workbench.errors import ConfigError
from workbench.sim.topology import Fleet
from workbench.traces.schema import Trace

#: Columns of the summary that ``workbench run`` and ``workbench sweep`` print.
SUMMARY_COLUMNS = ("requests", "rejected", "ttft_p50_s", "ttft_p99_s", "tpot_p50_s", "tpot_p99_s", "e2e_p99_s",
                   "throughput_tok_s", "slo_attainment", "goodput_req_s", "utilization")  # fmt: skip
#: Grid keys that act on the trace rather than the fleet.
TRACE_KEYS = ("rate_scale",)


@lru_cache(maxsize=4)
def _trace(source: str, requests: int | None) -> Trace:
    from workbench import traces

    trace = traces.load(source)
    return trace if requests is None else trace.with_requests(trace.requests.head(requests))


def load_trace(source: str, requests: int | None = None, rate_scale: float = 1.0) -> Trace:
    """Load the trace ``source`` (file path or dataset name), cut and sped up.

    Its first ``requests`` rows, sped up ``rate_scale`` times; loaded once per process.

    Parameters
    ----------
    source
        File path or registered dataset name.
    requests
        Keep the first ``requests`` rows (``None``: all).
    rate_scale
        Speed-up of the arrivals (:func:`workbench.traces.rescale`).

    Returns
    -------
    Trace
        The trace to sweep over.
    """
    from workbench import traces

    trace = _trace(str(source), requests)
    return traces.rescale(trace, rate_scale) if rate_scale != 1.0 else trace


def run_fleet(
    fleet: Fleet,
    trace: Trace,
    *,
    seed: int = 0,
    ttft_slo: float | None = None,
    tpot_slo: float | None = None,
    progress: bool | None = None,
):
    """Simulate ``trace`` through ``fleet``.

    Return the result and its one-row summary (with SLO attainment when targets are given).

    Parameters
    ----------
    fleet
        The fleet to simulate.
    trace
        The workload.
    seed
        Root seed of the simulation.
    ttft_slo, tpot_slo
        Latency targets in seconds for the attainment columns (``None``: none).
    progress
        Progress bar (``None``: in a terminal or a notebook).

    Returns
    -------
    tuple of (SimResult, polars.DataFrame)
        The simulation result and its summary row.
    """
    from workbench.sim import fleet as fleet_sim
    from workbench.sim import summary

    result = fleet_sim.simulate(trace, fleet, seed=seed, progress=progress)
    return result, summary(result, ttft_slo=ttft_slo, tpot_slo=tpot_slo)


def apply_override(fleet: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """Return a copy of the fleet dict with ``key`` set to ``value``.

    ``key`` is a dotted path such as ``"router"``, ``"pools.main.instances"`` or ``"pools.0.tp"``; an unknown
    pool or a malformed key raises :class:`ConfigError` naming it.

    Parameters
    ----------
    fleet
        A fleet dict as read from TOML (left unchanged).
    key
        Dotted path of the field.
    value
        Its new value.

    Returns
    -------
    dict
        The changed copy.
    """
    out = copy.deepcopy(fleet)
    parts = key.split(".")
    if parts[0] != "pools":
        if len(parts) != 1:
            raise ConfigError(f"[grid] {key!r}: use a fleet field ('router') or 'pools.<name>.<field>'")
        out[key] = value
        return out
    if len(parts) != 3:
        raise ConfigError(f"[grid] {key!r}: expected 'pools.<name or index>.<field>'")
    pools = out.get("pools", [])
    names = [p.get("name") for p in pools]
    if parts[1] in names:
        index = names.index(parts[1])
    elif parts[1].isdigit() and int(parts[1]) < len(pools):
        index = int(parts[1])
    else:
        raise ConfigError(f"[grid] {key!r}: no pool {parts[1]!r}; pools: {', '.join(map(str, names))}")
    pools[index][parts[2]] = value
    return out


@dataclass(frozen=True)
class FleetPoint:
    """The run function of a fleet sweep: ``point(config, seed)`` simulates one grid point, returns its summary.

    Module-level and plain (picklable, fingerprintable) so that the sweep can run it in worker processes, on
    Dask, and cache it.
    """

    fleet: dict[str, Any]
    trace: str
    requests: int | None = None
    ttft_slo: float | None = None
    tpot_slo: float | None = None

    def __call__(self, config: dict[str, Any], seed: int) -> pl.DataFrame:
        """Simulate the fleet with ``config``'s values set (trace keys change the trace); return its summary."""
        data = self.fleet
        for key, value in config.items():
            if key not in TRACE_KEYS:
                data = apply_override(data, key, value)
        trace = load_trace(self.trace, self.requests, float(config.get("rate_scale", 1.0)))
        _, table = run_fleet(Fleet.from_dict(data), trace, seed=seed, ttft_slo=self.ttft_slo,
                             tpot_slo=self.tpot_slo, progress=False)  # fmt: skip
        return table.select([c for c in SUMMARY_COLUMNS if c in table.columns])


@dataclass(frozen=True)
class SweepSpec:
    """A fleet sweep read from TOML (module docstring): the base fleet, the trace and the grid."""

    fleet: dict[str, Any]
    trace: str
    grid: dict[str, list[Any]]
    requests: int | None = None
    seed: int = 0
    ttft_slo: float | None = None
    tpot_slo: float | None = None
    base_dir: Path = field(default=Path("."), compare=False)

    @classmethod
    def from_toml(cls, path: str | Path) -> SweepSpec:
        """Read and validate a sweep file.

        Every point's fleet is built once here, so a bad grid value fails before anything runs.
        """
        data = read_toml(path, "sweep config")
        unknown = sorted(set(data) - {"sweep", "grid"})
        if unknown:
            raise ConfigError(f"{path}: unknown table(s) {unknown}; valid: sweep, grid")
        head, grid = data.get("sweep", {}), data.get("grid", {})
        keys = ("fleet", "trace", "requests", "seed", "ttft_slo", "tpot_slo")
        bad = sorted(set(head) - set(keys))
        if bad:
            raise ConfigError(f"{path}: [sweep] unknown key(s) {bad}; valid keys: {', '.join(keys)}")
        for key in ("fleet", "trace"):
            if key not in head:
                raise ConfigError(f"{path}: [sweep] {key} is required")
        if not grid or not all(isinstance(v, list) and v for v in grid.values()):
            raise ConfigError(f"{path}: [grid] needs at least one key with a non-empty list of values")
        base = Path(path).resolve().parent
        fleet_path = Path(head["fleet"]) if Path(head["fleet"]).is_absolute() else base / head["fleet"]
        trace = Path(head["trace"]) if Path(head["trace"]).is_absolute() else base / head["trace"]
        spec = cls(
            fleet=read_toml(fleet_path, "fleet config"),
            trace=str(trace) if trace.exists() else str(head["trace"]),
            grid=dict(grid),
            requests=head.get("requests"),
            seed=head.get("seed", 0),
            ttft_slo=head.get("ttft_slo"),
            tpot_slo=head.get("tpot_slo"),
            base_dir=base,
        )
        spec.validate()
        return spec

    def configs(self) -> list[dict[str, Any]]:
        """Every combination of the grid values, in the file's key order."""
        keys = list(self.grid)
        return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*self.grid.values())]

    def validate(self) -> None:
        """Build every point's fleet once (one :class:`ConfigError` naming the point on a bad value)."""
        from workbench.config import require_int, require_positive

        require_int("seed", self.seed, low=0)
        if self.requests is not None:
            require_int("requests", self.requests)
        for config in self.configs():
            data = self.fleet
            for key, value in config.items():
                if key in TRACE_KEYS:
                    require_positive(key, value)
                else:
                    data = apply_override(data, key, value)
            try:
                Fleet.from_dict(data)
            except ConfigError as exc:
                raise type(exc)(f"grid point {config}: {exc}") from None

    def point(self) -> FleetPoint:
        """Return the run function of one point."""
        return FleetPoint(self.fleet, self.trace, self.requests, self.ttft_slo, self.tpot_slo)

    def run(
        self,
        *,
        jobs: int = 1,
        cache_dir: str | Path | None = None,
        dask: str | None = None,
        progress: bool | None = None,
    ) -> pl.DataFrame:
        """Run the grid (:func:`workbench.experiments.sweep`); ``dask`` is a scheduler address."""
        from workbench.experiments import sweep

        if dask is None:
            return sweep(self.configs(), self.point(), seed=self.seed, n_jobs=jobs, cache_dir=cache_dir,
                         progress=progress)  # fmt: skip
        try:
            from distributed import Client
        except ImportError as exc:  # pragma: no cover - dask is a dev/optional dependency
            raise ConfigError("--dask needs dask.distributed: pip install 'workbench[dask]'") from exc
        try:
            client = Client(dask, timeout="10s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise ConfigError(f"cannot connect to the Dask scheduler {dask!r}: {exc}") from None
        with client:
            return sweep(self.configs(), self.point(), seed=self.seed, n_jobs=-1, cache_dir=cache_dir,
                         backend="dask", progress=progress)  # fmt: skip


__all__ = ["SUMMARY_COLUMNS", "FleetPoint", "SweepSpec", "apply_override", "load_trace", "run_fleet"]
