"""Fleet description: named pools of instances behind a router, loadable from TOML.

A :class:`Fleet` holds :class:`Pool` s. Each pool runs one model on one or several GPU types (a heterogeneous
pool), optionally on MIG slices, with its own in-pool router, scheduler parameters and instance count or
autoscaler. The fleet's router chooses a pool (``length_pools``, ``class_pools``, ``multi_objective`` or any
load router applied to per-instance pool load). Pools with ``role = "prefill"`` and ``role = "decode"`` form a
disaggregated topology: the KV cache of a finished prefill moves over the fleet's interconnect in
``kv_bytes / bandwidth + latency`` seconds.

Examples
--------
>>> fleet = Fleet(pools=(Pool("short", max_tokens=4096, instances=3), Pool("long", instances=1)),
...               router="length_pools")
>>> [p.name for p in fleet.pools], fleet.n_gpus
(['short', 'long'], 4.0)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.config import from_dict, load_toml, require_choice, require_positive, require_range
from workbench.errors import ConfigError, HardwareError, WorkbenchError
from workbench.sim.autoscale import AutoscaleConfig
from workbench.sim.config import ROLES, SchedulerConfig
from workbench.sim.kvtiers import KVHierarchy
from workbench.sim.routing import POOL_ROUTERS, ROUTERS, check_router_name

#: MIG profiles of A100/H100-class GPUs: (share of compute = g/7, share of memory and bandwidth = slices/8).
MIG_PROFILES: dict[str, tuple[float, float]] = {
    "1g": (1 / 7, 1 / 8),
    "2g": (2 / 7, 2 / 8),
    "3g": (3 / 7, 4 / 8),
    "4g": (4 / 7, 4 / 8),
    "7g": (1.0, 1.0),
}
#: GPUs that support MIG (A100 and H100/H200 families; names as in ``data/gpus.csv``).
MIG_GPUS = ("A100-40GB-SXM", "A100-80GB-SXM", "H100-SXM", "H100-PCIe", "H200-SXM", "GH200")

#: KV-transfer links for disaggregated serving: (bandwidth GB/s one direction per GPU, latency s).
#: NVLink 4: 900 GB/s bidirectional; InfiniBand NDR 400 Gb/s and RoCE 200 Gb/s per GPU NIC; 100 GbE.
INTERCONNECTS: dict[str, tuple[float, float]] = {
    "nvlink": (450.0, 2e-6),
    "infiniband": (50.0, 5e-6),
    "roce": (25.0, 10e-6),
    "ethernet": (12.5, 30e-6),
}


#: Hint for a table given where a configuration object is expected (the dataclasses take typed values only).
_TABLES = "; tables of fields are converted by Fleet.from_dict / Fleet.from_toml (workbench.config.from_dict)"


def _fail(field_name: str, message: str) -> ConfigError:
    return ConfigError(f"{field_name}: {message}")


@dataclass(frozen=True, slots=True)
class Pool:
    """A group of identical-role instances behind one in-pool router.

    Parameters
    ----------
    name
        Unique pool name.
    gpu
        GPU type of every instance, or a mapping GPU type -> instance count for a heterogeneous pool
        (then ``instances`` must be left at its default or equal the sum).
    model
        Model served (name from ``data/models.csv``).
    tp
        Tensor-parallel degree (GPUs per instance).
    instances
        Instance count (the initial count when ``autoscale`` is set).
    mig
        MIG profile (``"1g"``, ``"2g"``, ``"3g"``, ``"4g"``, ``"7g"``): each instance runs on that slice of one
        GPU (share of compute and of memory); requires ``tp = 1``.
    router, router_params
        In-pool routing policy (a load or cache router) and its parameters.
    scheduler
        Instance scheduler parameters (a :class:`~workbench.sim.config.SchedulerConfig` or a dict of its
        fields: ``max_num_seqs``, ``prefix_caching``, ...).
    role
        ``"both"`` (prefill and decode), ``"prefill"`` or ``"decode"`` (disaggregation).
    max_tokens
        Length threshold for ``length_pools``: largest prompt (+ output) tokens this pool accepts.
    classes
        Request classes this pool serves (``class_pools``).
    accuracy
        Quality figure of the model variant (``multi_objective``), in [0, 1].
    autoscale
        Autoscaler of the pool (``None``: a static pool).
    perf
        Performance model of the pool's instances by name: ``"roofline"`` (default) or ``"calibrated:<name>"``
        (a saved calibration of this GPU, model and TP; :func:`workbench.hardware.performance_model`), or a
        :class:`~workbench.hardware.CalibratedModel` itself.
    """

    name: str
    gpu: str | dict[str, int] = "H100-SXM"
    model: str = "Llama-3.1-8B"
    tp: int = 1
    instances: int = 1
    mig: str | None = None
    router: str = "jsq"
    router_params: dict = field(default_factory=dict)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    role: str = "both"
    max_tokens: int | None = None
    classes: tuple[str, ...] = ()
    accuracy: float = 1.0
    autoscale: AutoscaleConfig | None = None
    perf: Any = "roofline"

    def __post_init__(self) -> None:
        where = f"pool {self.name!r}"
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"pool name must be a non-empty string, got {self.name!r}")
        if isinstance(self.gpu, dict):
            if not self.gpu:
                raise _fail(f"{where}.gpu", "the GPU mix is empty")
            for g, count in self.gpu.items():
                if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                    raise _fail(f"{where}.gpu[{g!r}]", f"instance count must be an integer >= 0, got {count!r}")
            total = sum(self.gpu.values())
            if self.instances not in (1, total):
                raise _fail(f"{where}.instances", f"{self.instances} differs from the GPU mix total {total}")
            object.__setattr__(self, "instances", total)
            object.__setattr__(self, "gpu", dict(self.gpu))
        if isinstance(self.instances, bool) or not isinstance(self.instances, int) or self.instances < 0:
            raise _fail(f"{where}.instances", f"must be an integer >= 0, got {self.instances!r}")
        if self.instances == 0 and self.autoscale is None:
            raise _fail(
                f"{where}.instances",
                "a pool without an autoscaler needs at least 1 instance, got 0 (give it instances >= 1, or an "
                "autoscaler with min_instances = 0 to let it scale to zero)",
            )
        if isinstance(self.tp, bool) or not isinstance(self.tp, int) or self.tp < 1:
            raise _fail(f"{where}.tp", f"must be a positive integer, got {self.tp!r}")
        object.__setattr__(self, "router", check_router_name(self.router, f"{where}.router"))
        if self.router in POOL_ROUTERS:
            valid = sorted(set(ROUTERS) - POOL_ROUTERS)
            raise _fail(f"{where}.router", f"{self.router!r} chooses pools; use one of: {', '.join(valid)}")
        object.__setattr__(self, "role", require_choice(f"{where}.role", self.role, ROLES, what="role"))
        if not isinstance(self.scheduler, SchedulerConfig):
            raise _fail(f"{where}.scheduler", f"expected a SchedulerConfig, got {self.scheduler!r}{_TABLES}")
        if self.mig is not None:
            mig = require_choice(f"{where}.mig", self.mig, tuple(MIG_PROFILES), what="MIG profile")
            object.__setattr__(self, "mig", mig)
            if self.tp != 1:
                raise _fail(f"{where}.mig", f"MIG slices run with tp = 1, got tp = {self.tp}")
        if self.max_tokens is not None:
            require_positive(f"{where}.max_tokens", self.max_tokens)
        require_range(f"{where}.accuracy", self.accuracy, 0.0, 1.0)
        if not isinstance(self.classes, tuple) or not all(isinstance(c, str) for c in self.classes):
            raise _fail(f"{where}.classes", f"expected a tuple of class names, got {self.classes!r}")
        from workbench.hardware import CalibratedModel

        if not isinstance(self.perf, str | CalibratedModel):
            raise _fail(f"{where}.perf", f"expected a performance-model name, got {self.perf!r}")
        if self.perf != "roofline":
            if self.mig is not None:
                raise _fail(f"{where}.perf", f"{self.perf!r} with a MIG slice: calibrations time whole GPUs")
            from workbench.hardware import performance_model

            for g in self.gpu_types():  # an unknown name or a calibration of another configuration fails here
                try:
                    performance_model(self.perf, g, self.model, self.tp)
                except WorkbenchError as exc:
                    raise _fail(f"{where}.perf", str(exc)) from exc
        if self.autoscale is not None and not isinstance(self.autoscale, AutoscaleConfig):
            raise _fail(f"{where}.autoscale", f"expected an AutoscaleConfig, got {self.autoscale!r}{_TABLES}")
        if self.autoscale is not None:
            a = self.autoscale
            if not a.min_instances <= self.instances <= a.max_instances:
                raise _fail(
                    f"{where}.instances",
                    f"initial count {self.instances} outside the autoscaler's "
                    f"[{a.min_instances}, {a.max_instances}]",
                )

    # ------------------------------------------------------------------ derived
    def gpu_list(self) -> list[str]:
        """GPU type of each of the pool's initial instances (in order)."""
        if isinstance(self.gpu, dict):
            return [g for g, count in self.gpu.items() for _ in range(count)]
        return [self.gpu] * self.instances

    def gpu_types(self) -> list[str]:
        """Distinct GPU types of the pool."""
        return list(self.gpu) if isinstance(self.gpu, dict) else [self.gpu]

    @property
    def gpus_per_instance(self) -> float:
        """GPUs one instance occupies: ``tp``, or the compute share of a MIG slice."""
        return MIG_PROFILES[self.mig][0] if self.mig else float(self.tp)

    @property
    def max_instances(self) -> int:
        """Largest instance count (the autoscaler's maximum, else the static count)."""
        return self.autoscale.max_instances if self.autoscale else self.instances


def instance_gpu(gpu_name: str, mig: str | None):
    """Return the GPU an instance sees: the catalog GPU, or a MIG slice of it.

    A slice has scaled compute, memory and bandwidth.
    """
    from workbench.hardware import gpu

    g = gpu(gpu_name)
    if mig is None:
        return g
    if g.name not in MIG_GPUS:
        raise ConfigError(f"mig: {g.name} does not support MIG; MIG GPUs: {', '.join(MIG_GPUS)}")
    compute, memory = MIG_PROFILES[mig]
    return dataclasses.replace(
        g,
        name=f"{g.name}-MIG-{mig}",
        memory_gb=g.memory_gb * memory,
        mem_bw_tbps=g.mem_bw_tbps * memory,
        bf16_tflops=g.bf16_tflops * compute,
        tdp_w=g.tdp_w * compute,
        idle_power_w=g.idle_power_w * compute,
        purchase_price_usd=g.purchase_price_usd * compute,
        cloud_usd_per_gpu_hr=g.cloud_usd_per_gpu_hr * compute,
    )


@dataclass(frozen=True, slots=True)
class Fleet:
    """Pools behind a front router, plus the KV-transfer link used by disaggregated pools.

    Parameters
    ----------
    pools
        The pools (at least one; unique names).
    router, router_params
        Front router choosing a pool: ``length_pools``, ``class_pools``, ``multi_objective``, or a load
        router (``jsq``, ...) applied to each pool's load per instance. Ignored with a single entry pool.
    decode_router
        Router choosing the decode instance for a finished prefill (disaggregation).
    interconnect
        KV-transfer link name (see :data:`INTERCONNECTS`), or override with ``link_bandwidth_gbs`` and
        ``link_latency_s``.
    hierarchy
        KV tiers below the GPU, a shared store and contended links
        (:class:`~workbench.sim.kvtiers.KVHierarchy`, or a dict of its fields: the ``[hierarchy]`` table in
        TOML); ``None``: off. With a hierarchy a P/D transfer is a flow over the NICs (NVLink inside a node)
        of ``hierarchy.nic`` instead of the fixed ``interconnect`` link.
    """

    pools: tuple[Pool, ...]
    router: str = "jsq"
    router_params: dict = field(default_factory=dict)
    decode_router: str = "jsq"
    interconnect: str = "infiniband"
    link_bandwidth_gbs: float | None = None
    link_latency_s: float | None = None
    hierarchy: KVHierarchy | dict | None = None

    def __post_init__(self) -> None:
        if isinstance(self.hierarchy, dict):
            object.__setattr__(self, "hierarchy", KVHierarchy.from_dict(self.hierarchy))
        elif self.hierarchy is not None and not isinstance(self.hierarchy, KVHierarchy):
            raise ConfigError(f"fleet.hierarchy: expected a table of hierarchy fields, got {self.hierarchy!r}")
        pools = self.pools
        if not isinstance(pools, tuple):
            raise ConfigError(f"fleet.pools: expected a tuple of Pool, got {type(pools).__name__}")
        bad = next((k for k, p in enumerate(pools) if not isinstance(p, Pool)), None)
        if bad is not None:
            raise ConfigError(f"pools[{bad}]: expected a Pool, got {pools[bad]!r}{_TABLES}")
        if not pools:
            raise ConfigError("fleet.pools: a fleet needs at least one pool")
        names = [p.name for p in pools]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError(f"fleet.pools: duplicate pool name(s) {dup}")
        object.__setattr__(self, "router", check_router_name(self.router, "fleet.router"))
        object.__setattr__(self, "decode_router", check_router_name(self.decode_router, "fleet.decode_router"))
        if self.decode_router in POOL_ROUTERS:
            raise ConfigError(f"fleet.decode_router: {self.decode_router!r} chooses pools, not instances")
        link = require_choice(
            "fleet.interconnect", self.interconnect, tuple(INTERCONNECTS), what="interconnect"
        )
        object.__setattr__(self, "interconnect", link)
        if self.link_bandwidth_gbs is not None:
            require_positive("fleet.link_bandwidth_gbs", self.link_bandwidth_gbs)
        if self.link_latency_s is not None:
            require_positive("fleet.link_latency_s", self.link_latency_s, allow_zero=True)
        roles = {p.role for p in pools}
        if "prefill" in roles and "decode" not in roles:
            raise ConfigError("fleet.pools: a prefill pool needs a decode pool (role = 'decode')")
        if "decode" in roles and "prefill" not in roles:
            raise ConfigError("fleet.pools: a decode pool needs a prefill pool (role = 'prefill')")
        entry = self.entry_pools
        if self.router == "length_pools":
            self._check_thresholds(entry)
        if self.router == "class_pools":
            fallback = self.router_params.get("fallback")
            if fallback is not None and fallback not in [p.name for p in entry]:
                raise ConfigError(
                    f"fleet.router_params.fallback: unknown pool {fallback!r}; "
                    f"choose one of: {', '.join(p.name for p in entry)}"
                )
            if not any(p.classes for p in entry) and fallback is None:
                raise ConfigError("fleet.pools: class_pools needs pools with 'classes' or a fallback pool")
        from workbench.sim.routing import check_router

        check_router(self.router, **self.router_params)  # validates the parameters
        for p in pools:
            check_router(p.router, **p.router_params)
        self._check_memory()

    @staticmethod
    def _check_thresholds(entry: tuple[Pool, ...]) -> None:
        missing = [p.name for p in entry if p.max_tokens is None]
        if len(entry) > 1 and len(missing) > 1:
            raise ConfigError(
                f"fleet.pools: inconsistent pool thresholds: length_pools needs max_tokens on every pool but "
                f"the longest; missing on {missing}"
            )
        limits = [p.max_tokens for p in entry if p.max_tokens is not None]
        dup = sorted({x for x in limits if limits.count(x) > 1})
        if dup:
            raise ConfigError(
                f"fleet.pools: inconsistent pool thresholds: max_tokens {dup} used by several pools"
            )

    def _check_memory(self) -> None:
        """Every pool's model fits each of its GPU types; a threshold fits the pool's largest instance."""
        from workbench.hardware import kv_capacity_tokens, model

        for k, p in enumerate(self.pools):
            try:
                m = model(p.model)
            except HardwareError as exc:
                raise HardwareError(f"pools[{k}] ({p.name!r}).model: {exc}") from None
            caps = {}
            for g in p.gpu_types():
                try:
                    caps[g] = kv_capacity_tokens(instance_gpu(g, p.mig), m, p.tp)
                except HardwareError as exc:
                    raise HardwareError(f"pools[{k}] ({p.name!r}).gpu: {exc}") from None
                except ConfigError as exc:
                    raise ConfigError(f"pools[{k}] ({p.name!r}): {exc}") from None
            g, cap = max(caps.items(), key=lambda item: item[1])
            if p.max_tokens is not None and p.max_tokens > min(cap, m.max_context):
                raise ConfigError(
                    f"pools[{k}] ({p.name!r}).max_tokens: inconsistent pool threshold {p.max_tokens} "
                    f"exceeds what its largest instance holds ({g}: KV capacity {cap} tokens, "
                    f"context {m.max_context})"
                )

    # ------------------------------------------------------------------ derived
    @property
    def entry_pools(self) -> tuple[Pool, ...]:
        """Pools that receive arrivals (all but the decode pools)."""
        return tuple(p for p in self.pools if p.role != "decode")

    @property
    def disaggregated(self) -> bool:
        """True when the fleet has prefill and decode pools."""
        return any(p.role == "prefill" for p in self.pools)

    @property
    def link(self) -> tuple[float, float]:
        """KV-transfer link as (bytes/s, latency s)."""
        bw, lat = INTERCONNECTS[self.interconnect]
        bw = self.link_bandwidth_gbs if self.link_bandwidth_gbs is not None else bw
        lat = self.link_latency_s if self.link_latency_s is not None else lat
        return bw * 1e9, lat

    @property
    def n_gpus(self) -> float:
        """GPUs of the initial instances (MIG slices count their compute share)."""
        return float(sum(p.instances * p.gpus_per_instance for p in self.pools))

    def pool(self, name: str) -> Pool:
        """Return the pool called ``name`` (error lists the valid names)."""
        for p in self.pools:
            if p.name == name:
                return p
        raise ConfigError(f"unknown pool {name!r}; choose one of: {', '.join(p.name for p in self.pools)}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fleet:
        """Build a fleet from a dict as read from TOML.

        The dict holds ``[[pools]]`` tables, ``[pools.autoscale]``, ``scheduler = {...}``; this is
        :func:`workbench.config.from_dict` on :class:`Fleet`.
        """
        if isinstance(data, Mapping) and "pools" in data and not isinstance(data["pools"], list | tuple):
            raise ConfigError("fleet.pools: expected a list of pool tables ([[pools]] in TOML)")
        return from_dict(cls, data)

    @classmethod
    def from_toml(cls, path: str | Path) -> Fleet:
        """Load a fleet from a TOML file (:func:`workbench.config.load_toml`, the one TOML reader)."""
        return load_toml(cls, path, "fleet config")


def monolithic(
    n: int, *, gpu: str = "H100-SXM", model: str = "Llama-3.1-8B", router: str = "jsq", **pool
) -> Fleet:
    """Return a single pool of ``n`` instances behind ``router``."""
    return Fleet(pools=(Pool("main", gpu=gpu, model=model, instances=n, router=router, **pool),))


__all__ = ["INTERCONNECTS", "MIG_GPUS", "MIG_PROFILES", "Fleet", "Pool", "instance_gpu", "monolithic"]
