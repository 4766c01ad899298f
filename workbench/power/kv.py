"""Energy and cost of the KV hierarchy: host memory, local SSDs, the shared store and the bytes on the network.

A run with a :class:`~workbench.sim.kvtiers.KVHierarchy` records, in ``counters["kv_hierarchy"]``, its
configuration and the bytes and busy time of every link. From those:

* **host DRAM** of an instance draws ``idle_w_per_gb x capacity`` for as long as the instance is powered
  (segments not ``off``): the memory is provisioned whether it holds KV or not;
* a **local SSD** draws its idle power the same way, plus ``active_w`` per GPU's drive while it reads or
  writes (the busy time of its read and write links);
* the **store** draws ``idle_w_per_gb x capacity`` for the whole run;
* every **byte moved** costs the dynamic energy per byte of the links it crossed (PCIe, NIC, NVLink, NVMe,
  the store; :data:`~workbench.sim.links.LINKS`).

:func:`hierarchy_energy` gives the components per instance (and the store's, ``instance = -1``);
:func:`workbench.power.energy.energy` adds them to its report (column ``kv_j``, included in ``energy_j``).
:func:`hierarchy_capex` prices the provisioned host memory, SSDs and store for the TCO
(:class:`workbench.tco.TcoInputs` ``kv_capex_usd`` and ``kv_power_w``).
"""

from __future__ import annotations

import polars as pl

from workbench.errors import ConfigError
from workbench.sim.kvtiers import KVHierarchy
from workbench.sim.result import SimResult

#: Columns of :func:`hierarchy_energy`.
COMPONENTS = ("dram_j", "ssd_j", "store_j", "network_j")


def _link_table(links: pl.DataFrame) -> pl.DataFrame:
    """Split link names ``"<instance>.<kind>"`` (``"store"``: instance -1) into instance and kind."""
    parts = pl.col("link").str.split_exact(".", 1)
    return links.with_columns(
        pl.when(pl.col("link") == "store")
        .then(pl.lit(-1))
        .otherwise(parts.struct.field("field_0").cast(pl.Int64, strict=False))
        .alias("instance"),
        pl.when(pl.col("link") == "store")
        .then(pl.lit("store"))
        .otherwise(parts.struct.field("field_1"))
        .alias("kind"),
    )


def hierarchy_energy(result: SimResult) -> pl.DataFrame:
    """Energy (J) of the KV hierarchy of ``result``, per instance (the store as instance -1).

    Returns
    -------
    polars.DataFrame
        ``instance``, ``dram_j``, ``ssd_j``, ``store_j``, ``network_j``, ``kv_j`` (their sum); empty when the
        run had no hierarchy.

    Raises
    ------
    ConfigError
        When the result's hierarchy counters are incomplete.
    """
    schema = pl.Schema({"instance": pl.Int64, **{c: pl.Float64 for c in COMPONENTS}, "kv_j": pl.Float64})
    info = result.counters.get("kv_hierarchy")
    if info is None:
        return pl.DataFrame(schema=schema)
    config = info.get("config")
    links = info.get("links")
    if not isinstance(config, KVHierarchy) or not isinstance(links, pl.DataFrame):
        raise ConfigError("SimResult.counters['kv_hierarchy'] lacks its config or links table")
    seg = result.segments
    powered = (
        seg.filter(pl.col("state") != "off")
        .group_by("instance")
        .agg((pl.col("end_s") - pl.col("start_s")).sum().alias("powered_s"))
        .with_columns(pl.col("instance").cast(pl.Int64))
    )
    inst = result.instances.select(pl.col("instance").cast(pl.Int64), "n_gpus").join(
        powered, on="instance", how="left"
    )
    inst = inst.with_columns(pl.col("powered_s").fill_null(0.0))
    dram = config.dram_spec if "dram" in config.tiers else None
    ssd = config.ssd_spec if "ssd" in config.tiers else None
    table = _link_table(links)
    ssd_busy = (
        table.filter(pl.col("kind").is_in(["ssd_read", "ssd_write"]))
        .group_by("instance")
        .agg(pl.col("busy_s").sum().alias("ssd_busy_s"))
    )
    network = table.group_by("instance").agg(pl.col("energy_j").sum().alias("network_j"))
    gb = pl.col("n_gpus")
    per = inst.join(ssd_busy, on="instance", how="left").with_columns(
        (gb * dram.capacity_gb * dram.idle_w_per_gb * pl.col("powered_s") if dram else pl.lit(0.0)).alias(
            "dram_j"
        ),
        (
            gb * ssd.capacity_gb * ssd.idle_w_per_gb * pl.col("powered_s")
            + pl.col("ssd_busy_s").fill_null(0.0) * ssd.active_w
            if ssd
            else pl.lit(0.0)
        ).alias("ssd_j"),
        pl.lit(0.0).alias("store_j"),
    )
    rows = [per.select("instance", "dram_j", "ssd_j", "store_j")]
    store = config.store_spec
    if store is not None:
        makespan = float(result.counters.get("makespan_s", 0.0))
        store_j = store.capacity_gb * store.idle_w_per_gb * makespan
        rows.append(pl.DataFrame({"instance": [-1], "dram_j": [0.0], "ssd_j": [0.0], "store_j": [store_j]}))
    out = (
        pl.concat(rows, how="vertical_relaxed")
        .join(network, on="instance", how="left")
        .with_columns(pl.col("network_j").fill_null(0.0))
        .with_columns(pl.sum_horizontal(*COMPONENTS).alias("kv_j"))
    )
    return out.select(list(schema)).cast(schema).sort("instance")


def hierarchy_capex(hierarchy: KVHierarchy, n_gpus: float) -> dict[str, float]:
    """Purchase price and static power of the hierarchy of a fleet of ``n_gpus`` GPUs.

    Returns
    -------
    dict
        ``kv_capex_usd`` (host memory and SSDs per GPU, plus the store) and ``kv_power_w`` (their idle power),
        ready for :class:`workbench.tco.TcoInputs` (``TcoInputs(..., **hierarchy_capex(h, n))``).
    """
    usd = power = 0.0
    for _, spec in hierarchy.tier_specs():
        usd += spec.capacity_gb * spec.usd_per_gb * n_gpus
        power += spec.capacity_gb * spec.idle_w_per_gb * n_gpus
    store = hierarchy.store_spec
    if store is not None:
        usd += store.capacity_gb * store.usd_per_gb
        power += store.capacity_gb * store.idle_w_per_gb
    return {"kv_capex_usd": usd, "kv_power_w": power}


__all__ = ["COMPONENTS", "hierarchy_capex", "hierarchy_energy"]
