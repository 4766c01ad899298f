"""The KV hierarchy at run time: links, per-instance tiers, the shared store, loads and P/D transfers.

:func:`attach_hierarchy` builds a :class:`KVRuntime` when a simulation is given a
:class:`~workbench.sim.kvtiers.KVHierarchy` (``sim.simulate(..., hierarchy=)``, ``Fleet.hierarchy``); without
one nothing here runs and the simulator is exactly what it is without this module. The runtime plugs into
the simulator at three places, none of which costs anything when it is off:

* **the prefix cache**: each instance's :class:`~workbench.sim.kvcache.PrefixCache` is replaced by a
  :class:`TieredPrefixCache` whose eviction *demotes* the entry into the instance's first tier (a host-DRAM
  write over PCIe, device to host), cascading down its :class:`~workbench.sim.kvtiers.TierChain`; with a
  store written at prefill every entry an instance computes is also written to the store over its NIC;
* **routing** (:class:`LoadingRouter` wraps the simulation's router): a request routed to an instance looks up
  the prefix blocks the GPU lacks in that instance's tiers and in the store. Found blocks are *promoted*:

  - ``promotion = "overlap"``: the request waits while the blocks move (flows over PCIe, the SSD, the NIC and
    the store, contending with every other transfer), the instance keeps running its batch, and the request
    is queued when they have arrived, with the blocks in the GPU cache as prefix hits (vLLM v1's asynchronous
    KV connectors, SGLang HiCache, Dynamo's KV block manager, Mooncake);
  - ``promotion = "blocking"``: the request is queued at once; the iteration that admits it lasts its load
    time longer (the whole batch waits), as with vLLM v0 and LMCache's synchronous retrieve before the forward
    pass. The load is charged at the bandwidth share it would get at that moment among the flows in flight
    (a blocking load is not itself a flow).

  Loaded blocks enter the GPU cache unreferenced at the most recently used end; under heavy memory pressure an
  entry can be evicted again before its request is admitted (it is then recomputed, and counted in
  ``counters["kv_hierarchy"]["loaded_unused_entries"]``).
* **P/D transfers**: a finished prefill's KV moves to its decode instance as a flow over the two NICs (NVLink
  inside a node, :meth:`KVRuntime.transfer_kv`, used by the fleet controller).

Results: per request ``gpu_hit_tokens``, ``dram_hit_tokens``, ``ssd_hit_tokens``, ``store_hit_tokens`` (prompt
tokens served from each place, summing to ``cached_tokens``), ``kv_load_s`` (time spent waiting for loads,
overlap mode; charged to the admitting iteration in blocking mode) and ``kv_transfer_s`` (its P/D transfer);
``counters["kv_hierarchy"]`` holds the per-link table (bytes, busy time, dynamic energy), the per-tier table
(entries written, hit, evicted) and the configuration (for the energy and TCO of the hierarchy,
:mod:`workbench.power.kv`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from workbench.errors import ConfigError
from workbench.sim.engine import PRIO_ITERATION, SimulationError
from workbench.sim.kvcache import KVBlocks, PrefixCache, new_entry
from workbench.sim.kvtiers import KVHierarchy, KVStore, Tier, TierChain
from workbench.sim.links import Network

if TYPE_CHECKING:
    from workbench.sim.instance import Instance
    from workbench.sim.request import Request
    from workbench.sim.result import SimResult
    from workbench.sim.simulation import Simulation
    from workbench.sim.views import InstanceView

#: Tier code of the store in a load plan (local tiers are 0, 1, ... fastest first).
STORE = -1
#: Per-request columns the runtime adds to ``SimResult.requests``.
TIER_COLUMNS = (
    "gpu_hit_tokens", "dram_hit_tokens", "ssd_hit_tokens", "store_hit_tokens", "kv_load_s", "kv_transfer_s",
)  # fmt: skip
#: Returned by a router that holds a request (the simulation's ``DEFER``).
DEFER = -2
_LIVE = ("on", "draining")


class TieredPrefixCache(PrefixCache):
    """An instance's GPU prefix cache that knows the tiers below it.

    For the instance it behaves as :class:`~workbench.sim.kvcache.PrefixCache`, with two additions:

    * it tells :attr:`runtime` of each entry evicted (:meth:`KVRuntime.evicted`: demotion), computed
      (:meth:`KVRuntime.inserted`) and dropped by a failure (:meth:`KVRuntime.cleared`);
    * **staged** entries: blocks loaded from a lower tier for a request that is not admitted yet. They hold no
      GPU block while the request waits; a match walks on through them after the cached entries, and the
      admission that references them (:meth:`reference`) turns them into cached entries, taking their blocks
      then (the admission's block check counts them as blocks to take, see :meth:`match_unreferenced`). A
      staged entry that a match finds cut off from the cached chain (an earlier block was evicted) is dropped:
      no request can use it until that block is recomputed.
    """

    __slots__ = ("kv", "runtime", "staged")

    def __init__(self, entry_tokens: int, block_tokens: int, owner: int, runtime: KVRuntime, kv: KVBlocks):
        super().__init__(entry_tokens, block_tokens, owner)
        self.runtime = runtime
        self.kv = kv
        self.staged: set[int] = set()

    def match(self, hashes: Sequence[int], limit: int) -> int:
        n = super().match(hashes, limit)
        staged = self.staged
        while n < limit and hashes[n] in staged:
            n += 1
        return n

    def match_unreferenced(self, hashes: Sequence[int], limit: int) -> tuple[int, int]:
        n, unreferenced = super().match_unreferenced(hashes, limit)
        staged = self.staged
        if not staged:
            return n, unreferenced
        m = n
        while m < limit and hashes[m] in staged:
            m += 1
        if m < limit and m == n:  # staged entries beyond a gap in the chain are unreachable: drop them
            for h in hashes[m + 1 : limit]:
                staged.discard(h)
        # staged entries need blocks when referenced: count them like unreferenced entries (not available)
        return m, unreferenced + (m - n)

    def reference(self, hashes: Sequence[int], n: int) -> None:
        staged = self.staged
        entries = self.entries
        if not staged or not n or hashes[n - 1] in entries:
            super().reference(hashes, n)
            return
        # a match: cached entries, then staged ones; reference the cached ones first (so that the blocks the
        # staged ones take never come from them), then give each staged entry its blocks
        k = super().match(hashes, n)
        super().reference(hashes, k)
        kv = self.kv
        per = self.blocks_per_entry
        index = self.index
        for h in hashes[k:n]:
            staged.discard(h)
            while kv.free < per:  # the admission checked that evictable blocks cover these
                freed = self.evict_lru()
                if not freed:
                    raise SimulationError(f"instance {self.owner}: no block left for a loaded prefix entry")
                kv.free += freed
            kv.free -= per
            entries[h] = new_entry(h, 1)
            if index is not None:
                index.add(h, self.owner)

    def insert(self, hashes: Sequence[int], start: int, stop: int) -> int:
        entries = self.entries
        new = [h for h in hashes[start:stop] if h not in entries]
        duplicates = super().insert(hashes, start, stop)
        if new:
            self.staged.difference_update(new)
            self.runtime.inserted(self.owner, new)
        return duplicates

    def evict_lru(self) -> int:
        h = self.oldest()
        if h is None:
            return 0
        freed = super().evict_lru()
        self.runtime.evicted(self.owner, h)
        return freed

    def clear(self) -> None:
        super().clear()
        self.staged.clear()
        self.runtime.cleared(self.owner)


class _Side:
    """One instance's part of the hierarchy: its links, tier chain, entry size and node."""

    __slots__ = ("chain", "entry_bytes", "inst", "links", "node", "tier_names", "to_store")

    def __init__(self, inst: Instance, chain: TierChain, links: dict[str, int], entry_bytes: int, node: int,
                 names: tuple[str, ...]) -> None:  # fmt: skip
        self.inst = inst
        self.chain = chain
        self.links = links
        self.entry_bytes = entry_bytes
        self.node = node
        self.tier_names = names
        self.to_store: list[int] = []  # entries to write to the store at the end of the current event


class _Load:
    """A request waiting for its prefix blocks (overlap mode)."""

    __slots__ = ("codes", "gpu", "hashes", "pending", "req", "side", "start")

    def __init__(self, req: Request, side: _Side, gpu: int, hashes: list, codes: list[int], start: float):
        self.req = req
        self.side = side
        self.gpu = gpu  # leading blocks on the GPU at lookup
        self.hashes = hashes  # the blocks to load, in prompt order
        self.codes = codes  # tier code of each (STORE: the store)
        self.start = start
        self.pending = 0


class KVRuntime:
    """The hierarchy of one simulation (see module docstring).

    Parameters
    ----------
    sim
        The simulation (its engine clocks the flows).
    config
        What to build.
    kv_bytes_per_token
        ``kv_bytes_per_token(instance)``: KV bytes of one token of the instance's model on the whole instance.
    n_rows
        Trace rows (per-request accounting).
    """

    def __init__(
        self, sim: Simulation, config: KVHierarchy, kv_bytes_per_token: Callable[[Instance], int], n_rows: int
    ) -> None:
        self.sim = sim
        self.config = config
        self.kv_bytes_per_token = kv_bytes_per_token
        self.net = Network(sim.engine, contention=config.contention)
        self.sides: dict[int, _Side] = {}
        self.store: KVStore | None = None
        self.store_link = -1
        self._store_model: str | None = None
        self._store_writing: set[int] = set()
        self._gpus_placed = 0.0
        self.blocking = config.promotion == "blocking"
        # per request: leading GPU blocks at lookup, tier codes of the blocks loaded, load seconds
        self.gpu_blocks = np.zeros(n_rows, dtype=np.int64)
        self.loaded: dict[int, list[int]] = {}
        self.load_s = np.zeros(n_rows)
        self.transfer_s = np.zeros(n_rows)
        #: blocking mode: per instance, requests whose load is charged to the iteration that admits them
        self._charges: dict[int, list[tuple[Request, list, list[int], _Side]]] = {}
        self.loads = 0
        self.loaded_entries = 0
        self.pd_transfers = 0

    # ------------------------------------------------------------------ setup
    def attach(self, inst: Instance) -> None:
        """Give ``inst`` its links and tiers, and replace its prefix cache by a :class:`TieredPrefixCache`."""
        cfg = self.config
        gpus = float(inst.config.n_gpus or inst.config.tp)
        idx = inst.index
        node = int(self._gpus_placed // cfg.gpus_per_node)
        self._gpus_placed += gpus
        net = self.net
        links: dict[str, int] = {}

        def add(kind: str, spec) -> None:
            links[kind] = net.add_link(f"{idx}.{kind}", spec=spec, scale=gpus)

        add("nic_rx", cfg.nic)
        add("nic_tx", cfg.nic)
        add("nvlink_rx", cfg.nvlink)
        add("nvlink_tx", cfg.nvlink)
        old = inst.prefix
        if len(old):
            raise ConfigError(
                f"instance {idx}: attach the KV hierarchy before the run (its cache is not empty)"
            )
        entry_tokens = old.entry_tokens
        entry = entry_tokens * int(self.kv_bytes_per_token(inst)) if entry_tokens else 0
        tiers, names = [], []
        for name, spec in cfg.tier_specs():
            if name == "dram":
                add("pcie_h2d", spec.read_link)
                add("pcie_d2h", spec.write_link)
            else:
                add(f"{name}_read", spec.read_link)
                add(f"{name}_write", spec.write_link)
                if "pcie_h2d" not in links:
                    for via in spec.read_via:
                        add("pcie_h2d", via)
            tiers.append(Tier(name, cfg.entries(spec.capacity_gb, entry, gpus) if entry else 0, cfg.eviction))
            names.append(name)
        side = _Side(inst, TierChain(tiers), links, entry, node, tuple(names))
        side.chain.on_write = lambda level, h, side=side: self._tier_write(side, level)
        if cfg.store is not None:
            self._ensure_store(inst, entry)
            if cfg.store.write == "evict":
                side.chain.on_drop = lambda h, side=side: self._store_write(side, h)
        self.sides[idx] = side
        cache = TieredPrefixCache(entry_tokens, inst.kv.block_tokens, idx, self, inst.kv)
        cache.index = old.index
        inst.prefix = cache
        if self.blocking:
            inst.perf = _ChargedPerf(inst.perf, self, idx)
            self._charges[idx] = []

    def _ensure_store(self, inst: Instance, entry: int) -> None:
        store = self.config.store
        model = inst.config.model
        if self.store is None:
            self.store = KVStore(self.config.entries(store.capacity_gb, entry) if entry else 0, store.eviction)
            self.store_link = self.net.add_link("store", spec=store.link)
            self._store_model = model
        elif model != self._store_model:
            raise ConfigError(
                f"hierarchy.store: one store serves one model; instances serve {self._store_model!r} and "
                f"{model!r}"
            )

    # ------------------------------------------------------------------ paths
    def _read_path(self, side: _Side, code: int) -> tuple[int, ...]:
        links = side.links
        if code == STORE:
            return (self.store_link, links["nic_rx"])
        name = side.tier_names[code]
        if name == "dram":
            return (links["pcie_h2d"],)
        return (links[f"{name}_read"], links["pcie_h2d"])

    def _write_path(self, side: _Side, level: int) -> tuple[int, ...]:
        name = side.tier_names[level]
        return (side.links["pcie_d2h"],) if name == "dram" else (side.links[f"{name}_write"],)

    # ------------------------------------------------------------------ the GPU cache's events
    def evicted(self, inst_id: int, h: int) -> None:
        """Demote entry ``h``, just evicted from the GPU of ``inst_id``, down the instance's tiers."""
        side = self.sides[inst_id]
        if side.chain.tiers:
            side.chain.demote(h)
        elif self.store is not None and self.config.store.write == "evict":
            self._store_write(side, h)

    def inserted(self, inst_id: int, hashes: list[int]) -> None:
        """``inst_id`` computed new entries (written to the store when it is written at prefill)."""
        if self.store is not None and self.config.store.write == "prefill":
            side = self.sides[inst_id]
            for h in hashes:
                self._store_write(side, h)

    def cleared(self, inst_id: int) -> None:
        """``inst_id`` failed: its host memory and local disks are lost with it (and its pending charges)."""
        self.sides[inst_id].chain.clear()
        if inst_id in self._charges:
            self._charges[inst_id] = []

    def _tier_write(self, side: _Side, level: int) -> None:
        # a demotion is written in the background over a link that carries nothing else in this model (device
        # to host PCIe, the SSD's write side): its bytes and busy time are counted, no flow is needed
        self.net.account(side.entry_bytes, self._write_path(side, level))

    def _store_write(self, side: _Side, h: int) -> None:
        store = self.store
        if h in store or h in self._store_writing:
            return
        store.offered += 1
        self._store_writing.add(h)
        if not side.to_store:  # the entries of one event (a prefill's blocks) travel as one flow
            self.sim.engine.schedule(self.sim.engine.now, PRIO_ITERATION, self._flush_store, side)
        side.to_store.append(h)

    def _flush_store(self, side: _Side, now: float) -> None:
        batch = side.to_store
        side.to_store = []
        path = (side.links["nic_tx"], self.store_link)
        self.net.transfer(len(batch) * side.entry_bytes, path, self._stored, batch)

    def _stored(self, batch: list[int], now: float) -> None:
        writing = self._store_writing
        store = self.store
        for h in batch:
            writing.discard(h)
            store.put(h)

    # ------------------------------------------------------------------ lookups
    def plan(self, inst: Instance, req: Request) -> tuple[int, list[int]]:
        """Where ``req``'s prefix is for ``inst``.

        Leading blocks on its GPU, then the tier code of each next block found below it (:data:`STORE` for the
        store), up to the first block found nowhere.
        """
        hashes = req.prefix_hashes
        prefix = inst.prefix
        if not hashes or not prefix.entry_tokens:
            return 0, []
        limit = prefix.cacheable(hashes, req.prompt_tokens)
        g = inst.prefix_match_tokens(req) // prefix.entry_tokens
        tiers = [t.policy for t in self.sides[inst.index].chain.tiers]
        store = self.store.policy if self.store is not None else None
        codes: list[int] = []
        for b in range(g, limit):
            h = hashes[b]
            for code, tier in enumerate(tiers):
                if h in tier:
                    codes.append(code)
                    break
            else:
                if store is not None and h in store:
                    codes.append(STORE)
                else:
                    break
        return g, codes

    def load_estimate(self, inst: Instance, req: Request) -> tuple[int, int, float]:
        """(GPU hit tokens, tokens found below the GPU, expected load seconds at the current contention)."""
        g, codes = self.plan(inst, req)
        entry = inst.prefix.entry_tokens
        if not codes:
            return g * entry, 0, 0.0
        side = self.sides[inst.index]
        return g * entry, len(codes) * entry, self._estimate(side, codes)

    def _estimate(self, side: _Side, codes: list[int]) -> float:
        counts: dict[int, int] = {}
        for c in codes:
            counts[c] = counts.get(c, 0) + 1
        est = self.net.estimated_time
        return max(est(k * side.entry_bytes, self._read_path(side, c)) for c, k in counts.items())

    def view_loads(self, insts: Sequence[Instance], req: Request) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`load_estimate` over ``insts`` as three arrays (a router's candidate view)."""
        n = len(insts)
        gpu = np.zeros(n, dtype=np.int64)
        below = np.zeros(n, dtype=np.int64)
        load = np.zeros(n)
        if req.prefix_hashes:
            for k, inst in enumerate(insts):
                gpu[k], below[k], load[k] = self.load_estimate(inst, req)
        return gpu, below, load

    # ------------------------------------------------------------------ promotion
    def admit(self, inst: Instance, req: Request, now: float) -> bool:
        """Start promoting ``req``'s prefix blocks found below ``inst``'s GPU.

        ``False`` when there are none (queue it now). Overlap mode queues it when the loads arrive; blocking
        mode adopts the blocks now and queues it at once (the caller does), its load charged to the iteration
        that admits it.
        """
        if req.kv_ready:
            return False
        g, codes = self.plan(inst, req)
        if not codes:
            return False
        side = self.sides[inst.index]
        hashes = list(req.prefix_hashes[g : g + len(codes)])
        tiers = side.chain.tiers
        for h, c in zip(hashes, codes, strict=True):
            (self.store if c == STORE else tiers[c]).hit(h)
        self.loads += 1
        self.gpu_blocks[req.index] = g
        _refresh(inst.prefix, req.prefix_hashes[:g])  # the prefix it found on the GPU stays while it loads
        if self.blocking:
            inst.prefix.staged.update(hashes)
            self._charges[inst.index].append((req, g, codes, side))
            return False
        load = _Load(req, side, g, hashes, codes, now)
        counts: dict[int, int] = {}
        for c in codes:
            counts[c] = counts.get(c, 0) + 1
        req.instance = inst.index
        for c, k in counts.items():
            load.pending += 1
            self.net.transfer(k * side.entry_bytes, self._read_path(side, c), self._arrived, load)
        return True

    def _arrived(self, load: _Load, now: float) -> None:
        load.pending -= 1
        if load.pending:
            return
        inst = load.side.inst
        req = load.req
        self.load_s[req.index] += now - load.start
        if inst.state not in _LIVE:  # failed or turned off during the load: route it again
            req.instance = -1
            self.sim.route(req, now)
            return
        inst.prefix.staged.update(load.hashes)
        _refresh(inst.prefix, req.prefix_hashes[: load.gpu])
        self._record(req, load.codes)
        self.loaded_entries += len(load.codes)
        inst.enqueue(req, now)

    def _record(self, req: Request, codes: list[int]) -> None:
        if codes:
            self.loaded.setdefault(req.index, []).extend(codes)

    def charge(self, inst_id: int) -> float:
        """Return the load time to charge to the iteration that admits requests on ``inst_id`` (blocking mode).

        The longest load of the requests just admitted (their loads run together) for the blocks their admission
        used; the bytes are counted on the links.
        """
        pending = self._charges[inst_id]
        if not pending:
            return 0.0
        running = self.sides[inst_id].inst.running
        extra = 0.0
        keep = []
        for item in pending:
            req, g, codes, side = item
            if req not in running:
                keep.append(item)
                continue
            entry = side.inst.prefix.entry_tokens
            used = codes[: max(0, min(len(codes), req.cached_tokens // entry - g))]
            self._record(req, codes)
            if used:
                counts: dict[int, int] = {}
                for c in used:
                    counts[c] = counts.get(c, 0) + 1
                t = self._estimate(side, used)
                for c, k in counts.items():
                    self.net.account(k * side.entry_bytes, self._read_path(side, c))
                self.load_s[req.index] += t
                self.loaded_entries += len(used)
                extra = max(extra, t)
        self._charges[inst_id] = keep
        return extra

    # ------------------------------------------------------------------ P/D transfers
    def transfer_kv(self, req: Request, src: Instance, dst: Instance, size_bytes: float,
                    callback: Callable[[Request, float], None]) -> None:  # fmt: skip
        """Move ``size_bytes`` of KV from ``src`` to ``dst`` (NVLink inside a node, else the NICs).

        Call ``callback(req, t)`` on arrival.
        """
        a, b = self.sides[src.index], self.sides[dst.index]
        if a.node == b.node:
            path = (a.links["nvlink_tx"], b.links["nvlink_rx"])
        else:
            path = (a.links["nic_tx"], b.links["nic_rx"])
        self.pd_transfers += 1
        start = self.sim.engine.now
        transfer_s = self.transfer_s

        def arrived(req: Request, now: float) -> None:
            transfer_s[req.index] += now - start
            callback(req, now)

        self.net.transfer(size_bytes, path, arrived, req)

    # ------------------------------------------------------------------ results
    def columns(self, cached_tokens: np.ndarray, entry_tokens: np.ndarray) -> dict[str, np.ndarray]:
        """Return, per request, the prompt tokens served from each place.

        Those loaded and then used as hits; a loaded entry evicted before its request was admitted is recomputed
        and not counted.
        """
        n = cached_tokens.size
        out = {name: np.zeros(n, dtype=np.int64) for name in ("dram", "ssd", "store")}
        names = {}
        for side in self.sides.values():
            names = dict(enumerate(side.tier_names)) | {STORE: "store"}
            break
        self.unused_entries = 0
        for row, codes in self.loaded.items():
            e = int(entry_tokens[row])
            used = int(cached_tokens[row]) // e - int(self.gpu_blocks[row]) if e else 0
            used = max(0, min(used, len(codes)))
            self.unused_entries += len(codes) - used
            for c in codes[:used]:
                out[names[c]][row] += e
        gpu = cached_tokens - out["dram"] - out["ssd"] - out["store"]
        return {
            "gpu_hit_tokens": gpu,
            "dram_hit_tokens": out["dram"],
            "ssd_hit_tokens": out["ssd"],
            "store_hit_tokens": out["store"],
            "kv_load_s": self.load_s,
            "kv_transfer_s": self.transfer_s,
        }

    def counters(self) -> dict:
        """Link and tier tables and totals for ``SimResult.counters["kv_hierarchy"]``."""
        links = pl.DataFrame(self.net.stats(), schema={"link": pl.Utf8, "bandwidth_gbps": pl.Float64,
                             "bytes": pl.Float64, "busy_s": pl.Float64, "energy_j": pl.Float64})  # fmt: skip
        rows = []
        for idx, side in self.sides.items():
            for tier in side.chain.tiers:
                rows.append((idx, tier.name, tier.capacity, len(tier), tier.inserted, tier.hits, tier.evicted))
        if self.store is not None:
            s = self.store
            rows.append((-1, "store", s.capacity, len(s), s.inserted, s.hits, s.evicted))
        schema = {"instance": pl.Int64, "tier": pl.Utf8, "capacity_entries": pl.Int64, "entries": pl.Int64,
                  "inserted": pl.Int64, "hits": pl.Int64, "evicted": pl.Int64}  # fmt: skip
        return {
            "config": self.config,
            "links": links,
            "tiers": pl.DataFrame(rows, schema=schema, orient="row"),
            "loads": self.loads,
            "loaded_entries": self.loaded_entries,
            "loaded_unused_entries": getattr(self, "unused_entries", 0),
            "pd_transfers": self.pd_transfers,
            "nodes": int(-(-self._gpus_placed // self.config.gpus_per_node)),
        }


def _refresh(prefix: PrefixCache, hashes: Sequence[int]) -> None:
    """Move the unreferenced entries of a prefix ``hashes`` to the most recently used end, tail first."""
    for h in reversed(hashes):
        prefix.touch(h)


class _ChargedPerf:
    """Blocking promotion as a performance model.

    An instance's performance model whose prefill iterations last the load time of the requests they admit
    (:meth:`KVRuntime.charge`); everything else is the wrapped model's.
    """

    __slots__ = ("_inst", "_runtime", "base")

    def __init__(self, base, runtime: KVRuntime, inst_id: int) -> None:
        self.base = base
        self._runtime = runtime
        self._inst = inst_id

    def iteration_time(self, batch) -> float:
        return self.base.iteration_time(batch) + self._runtime.charge(self._inst)

    def __getattr__(self, name: str):
        return getattr(self.base, name)


class LoadingRouter:
    """Wraps the simulation's router.

    A request whose prefix lies below its instance's GPU is held while the blocks load (overlap mode), then
    queued (see module docstring).
    """

    def __init__(self, inner, runtime: KVRuntime) -> None:
        self.inner = inner
        self.runtime = runtime
        self.name = getattr(inner, "name", "router")

    @property
    def reject_reason(self) -> str:
        return getattr(self.inner, "reject_reason", "")

    def choose(self, request: Request, view: InstanceView, now: float) -> int:
        pos = self.inner.choose(request, view, now)
        if pos < 0 or request.kv_ready or not request.prefix_hashes:
            return pos
        inst = view.instances[pos]
        if (
            request.prompt_tokens + request.output_tokens > inst.fit_tokens
            or request.prompt_tokens > inst.max_prompt
        ):
            return pos  # the simulation rejects it
        return DEFER if self.runtime.admit(inst, request, now) else pos


def attach_hierarchy(sim: Simulation, hierarchy: KVHierarchy | None, n_rows: int) -> KVRuntime | None:
    """Build the runtime of ``hierarchy`` over every instance of ``sim`` and wrap its router.

    With ``hierarchy`` ``None`` nothing happens and ``None`` is returned. Call after the instances and the
    router are in place.
    """
    if hierarchy is None:
        return None
    if not isinstance(hierarchy, KVHierarchy):
        raise ConfigError(f"hierarchy must be a KVHierarchy (or None), got {type(hierarchy).__name__}")
    from workbench.hardware import model

    runtime = KVRuntime(sim, hierarchy, lambda inst: model(inst.config.model).kv_bytes_per_token(1), n_rows)
    for inst in sim.instances:
        runtime.attach(inst)
    sim.router = LoadingRouter(sim.router, runtime)
    return runtime


def finish_hierarchy(result: SimResult, runtime: KVRuntime | None, sim: Simulation | None = None) -> SimResult:
    """Add the hierarchy's per-request columns and counters to ``result`` (unchanged without a runtime)."""
    if runtime is None:
        return result
    from workbench.sim.result import SimResult

    req = result.requests
    cached = req["cached_tokens"].fill_null(0).to_numpy().astype(np.int64)
    entry_of = {i: side.inst.prefix.entry_tokens for i, side in runtime.sides.items()}
    inst = req["instance"].fill_null(-1).to_numpy()
    entry = np.array([entry_of.get(int(i), 0) for i in inst], dtype=np.int64)
    cols = runtime.columns(cached, entry)
    requests = req.with_columns(
        pl.Series(name, cols[name], pl.Float64 if name.endswith("_s") else pl.Int64) for name in TIER_COLUMNS
    )
    counters = dict(result.counters)
    counters["kv_hierarchy"] = runtime.counters()
    return SimResult(requests=requests, segments=result.segments, instances=result.instances, counters=counters)


__all__ = [
    "STORE",
    "TIER_COLUMNS",
    "KVRuntime",
    "LoadingRouter",
    "TieredPrefixCache",
    "attach_hierarchy",
    "finish_hierarchy",
]
