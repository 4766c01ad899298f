"""KV-cache tiers below the GPU (host DRAM, local SSD) and a shared remote KV store: configuration and state.

The GPU tier is the instance's own prefix cache (:mod:`workbench.sim.instance`: paged blocks, LRU of
unreferenced entries). This module adds what sits below it, in the shape NVIDIA Dynamo's KV block manager names
(G1 GPU, G2 host memory, G3 local SSD, G4 remote storage) and LMCache and Mooncake build:

* a :class:`Tier` holds whole prefix-cache entries (``prefix_block_tokens`` tokens of KV each) up to its
  capacity, ordered by a pluggable :class:`EvictionPolicy` (LRU by default, see :data:`EVICTION_POLICIES`);
* a :class:`TierChain` is one instance's tiers in order: an entry the GPU evicts is **demoted** into the first
  tier (written over PCIe), a tier that overflows demotes its victim into the next one, the last one drops it.
  Tiers are inclusive: loading an entry back into the GPU copies it, so a later eviction of the same entry only
  refreshes it;
* a :class:`KVStore` is one shared pool (Mooncake store, an LMCache remote backend) that every instance reaches
  over the network; instances write computed entries into it (at prefill, as Mooncake does, or on eviction from
  their last tier) and read them back over RDMA.

Capacities, bandwidths and latencies come from :class:`TierSpec` defaults with their public sources
(:data:`TIERS`); the links themselves are :class:`~workbench.sim.links.LinkSpec` s of
:mod:`workbench.sim.links`, where loads and writes compete for bandwidth. :class:`KVHierarchy` is the one
configuration object (TOML table ``[hierarchy]``) that switches all of it on; ``None`` (the default everywhere)
leaves the simulator exactly as without this module.

Examples
--------
>>> chain = TierChain([Tier("dram", 2), Tier("ssd", 3)])
>>> for h in range(6):
...     _ = chain.demote(h)
>>> [sorted(t.entries()) for t in chain.tiers]  # 0 fell off the end; 1-3 on SSD; 4, 5 in DRAM
[[4, 5], [1, 2, 3]]
>>> chain.locate(3)
1
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from typing import Protocol, cast, runtime_checkable

from workbench.config import require_choice, require_int, require_positive
from workbench.errors import ConfigError
from workbench.sim.links import LINKS, LinkSpec, link_spec

GIB = 2**30


# ---------------------------------------------------------------------------------------------- eviction
@runtime_checkable
class EvictionPolicy(Protocol):
    """Order of the entries of one tier: which one leaves when the tier is full.

    A policy sees every insertion, every hit (``touch``) and every removal, and names a victim on demand.
    """

    def insert(self, key: Hashable) -> None:
        """Record a new entry (not present)."""
        ...

    def touch(self, key: Hashable) -> None:
        """``key`` (present) was read or written again."""
        ...

    def remove(self, key: Hashable) -> None:
        """``key`` (present) leaves the tier."""
        ...

    def victim(self) -> Hashable:
        """Return the entry to evict next (the tier is not empty); it stays until :meth:`remove`."""
        ...

    def __contains__(self, key: object) -> bool: ...

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Hashable]: ...


class LRU:
    """Least recently used (inserted or touched) first."""

    name = "lru"
    __slots__ = ("_order",)

    def __init__(self) -> None:
        self._order: OrderedDict[Hashable, None] = OrderedDict()

    def insert(self, key: Hashable) -> None:
        self._order[key] = None

    def touch(self, key: Hashable) -> None:
        self._order.move_to_end(key)

    def remove(self, key: Hashable) -> None:
        del self._order[key]

    def victim(self) -> Hashable:
        return next(iter(self._order))

    def __contains__(self, key: object) -> bool:
        return key in self._order

    def __len__(self) -> int:
        return len(self._order)

    def __iter__(self) -> Iterator[Hashable]:
        return iter(self._order)


class FIFO(LRU):
    """First inserted first; hits do not reorder (what Mooncake's store offers besides LRU)."""

    name = "fifo"
    __slots__ = ()

    def touch(self, key: Hashable) -> None:
        return None


class LFU:
    """Least frequently used first (ties: least recently used); counts reset when an entry leaves."""

    name = "lfu"
    __slots__ = ("_count", "_order")

    def __init__(self) -> None:
        self._count: dict[Hashable, int] = {}
        self._order: OrderedDict[Hashable, None] = OrderedDict()

    def insert(self, key: Hashable) -> None:
        self._count[key] = 1
        self._order[key] = None

    def touch(self, key: Hashable) -> None:
        self._count[key] += 1
        self._order.move_to_end(key)

    def remove(self, key: Hashable) -> None:
        del self._count[key]
        del self._order[key]

    def victim(self) -> Hashable:
        count = self._count
        return min(self._order, key=count.__getitem__)  # O(n); min keeps the first (least recent) on ties

    def __contains__(self, key: object) -> bool:
        return key in self._count

    def __len__(self) -> int:
        return len(self._count)

    def __iter__(self) -> Iterator[Hashable]:
        return iter(self._order)


#: Eviction policies by name (add your own with :func:`register_eviction_policy`).
EVICTION_POLICIES: dict[str, Callable[[], EvictionPolicy]] = {"lru": LRU, "fifo": FIFO, "lfu": LFU}


def register_eviction_policy(name: str, factory: Callable[[], EvictionPolicy]) -> None:
    """Make ``factory()`` (an :class:`EvictionPolicy`) available as ``eviction = name`` in configurations."""
    if not isinstance(factory(), EvictionPolicy):
        raise ConfigError(f"eviction policy {name!r} does not implement insert/touch/remove/victim")
    EVICTION_POLICIES[name] = factory


def eviction_policy(name: str) -> EvictionPolicy:
    """Return a fresh policy object registered as ``name``."""
    return EVICTION_POLICIES[
        require_choice("eviction", name, tuple(EVICTION_POLICIES), what="eviction policy")
    ]()


# ---------------------------------------------------------------------------------------------- state
class Tier:
    """One tier's content: up to ``capacity`` entries (prefix-block hashes) ordered by an eviction policy.

    Attributes
    ----------
    name
        ``"dram"``, ``"ssd"``, ``"store"``, ...
    capacity
        Entries it holds (0: a tier that keeps nothing).
    inserted, hits, evicted
        Entries written, entries found by a lookup (loaded back), entries evicted.
    """

    __slots__ = ("capacity", "evicted", "hits", "inserted", "name", "policy")

    def __init__(self, name: str, capacity: int, policy: EvictionPolicy | str = "lru") -> None:
        self.name = name
        self.capacity = require_int(f"{name} capacity", capacity, low=0)
        self.policy = eviction_policy(policy) if isinstance(policy, str) else policy
        self.inserted = self.hits = self.evicted = 0

    def __contains__(self, key: object) -> bool:
        return key in self.policy

    def __len__(self) -> int:
        return len(self.policy)

    def entries(self) -> Iterator[Hashable]:
        """Return the entries, in the policy's order (victim first for LRU/FIFO)."""
        return iter(self.policy)

    def put(self, key: Hashable) -> tuple[bool, Hashable | None]:
        """Write ``key`` (refresh it if present); return (written, evicted entry or ``None``).

        ``written`` is ``False`` when the entry was already there (no bytes to move) or the tier has no room
        at all (capacity 0).
        """
        policy = self.policy
        if key in policy:
            policy.touch(key)
            return False, None
        if self.capacity == 0:
            return False, None
        out = None
        if len(policy) >= self.capacity:
            out = policy.victim()
            policy.remove(out)
            self.evicted += 1
        policy.insert(key)
        self.inserted += 1
        return True, out

    def hit(self, key: Hashable) -> None:
        """``key`` (present) was read back (counted; the policy sees a touch)."""
        self.policy.touch(key)
        self.hits += 1

    def discard(self, key: Hashable) -> None:
        """Drop ``key`` if present (not counted as an eviction)."""
        if key in self.policy:
            self.policy.remove(key)


class TierChain:
    """One instance's tiers below the GPU, fastest first, with demotion down the chain (see module docstring).

    Parameters
    ----------
    tiers
        The tiers in order (e.g. host DRAM, then local SSD).
    on_write
        Optional ``on_write(tier_position, key)`` for each entry written into a tier (the caller moves the
        bytes over the tier's write link).
    on_drop
        Optional ``on_drop(key)`` for each entry that falls off the last tier (e.g. written to a remote store).
    """

    __slots__ = ("on_drop", "on_write", "tiers")

    def __init__(
        self,
        tiers: list[Tier],
        on_write: Callable[[int, Hashable], None] | None = None,
        on_drop: Callable[[Hashable], None] | None = None,
    ) -> None:
        self.tiers = tiers
        self.on_write = on_write
        self.on_drop = on_drop

    def demote(self, key: Hashable, level: int = 0) -> int:
        """Put ``key`` into tier ``level`` and cascade its victims down; return entries written."""
        writes = 0
        tiers = self.tiers
        while key is not None:
            if level >= len(tiers):
                if self.on_drop is not None:
                    self.on_drop(key)
                return writes
            written, out = tiers[level].put(key)
            if written:
                writes += 1
                if self.on_write is not None:
                    self.on_write(level, key)
            elif tiers[level].capacity == 0:  # a tier that keeps nothing passes the entry on
                level += 1
                continue
            key = out
            level += 1
        return writes

    def locate(self, key: Hashable) -> int:
        """Position of the first tier holding ``key`` (-1: none)."""
        for pos, tier in enumerate(self.tiers):
            if key in tier:
                return pos
        return -1

    def clear(self) -> None:
        """Forget every entry.

        A failed node loses its host memory; callers that want SSD content to persist do not call this.
        """
        for tier in self.tiers:
            for key in list(tier.entries()):
                tier.discard(key)


class KVStore(Tier):
    """A shared remote KV store (Mooncake store, LMCache remote backend).

    One :class:`Tier` that every instance reads and writes over the network; ``writes`` counts the entries
    offered to it.
    """

    __slots__ = ("offered",)

    def __init__(self, capacity: int, policy: EvictionPolicy | str = "lru") -> None:
        super().__init__("store", capacity, policy)
        self.offered = 0


# ---------------------------------------------------------------------------------------------- configuration
@dataclass(frozen=True, slots=True)
class TierSpec:
    """A tier below the GPU: capacity per GPU, the links it is read and written over, its power and price.

    Parameters
    ----------
    capacity_gb
        Capacity per GPU of the instance in GB (1e9 bytes); 0 switches the tier off.
    read_link, write_link
        :data:`~workbench.sim.links.LINKS` names (or specs) of the path a load takes into the GPU and the one a
        demotion takes out of it; a load crosses ``read_via`` too (an SSD load also crosses PCIe).
    read_via
        Further links a load crosses (names), e.g. ``("pcie5_x16",)`` for an SSD.
    idle_w_per_gb, active_w
        Power: provisioned capacity draws ``idle_w_per_gb`` per GB all the time; ``active_w`` per device while
        it moves bytes (on top), for the energy report.
    usd_per_gb
        Purchase price per GB (TCO).
    source
        Where the numbers come from.
    """

    capacity_gb: float
    read_link: str | LinkSpec
    write_link: str | LinkSpec
    read_via: tuple[str, ...] = ()
    idle_w_per_gb: float = 0.0
    active_w: float = 0.0
    usd_per_gb: float = 0.0
    source: str = ""

    def __post_init__(self) -> None:
        require_positive("capacity_gb", self.capacity_gb, allow_zero=True)
        for name in ("idle_w_per_gb", "active_w", "usd_per_gb"):
            require_positive(name, getattr(self, name), allow_zero=True)
        link_spec(self.read_link)
        link_spec(self.write_link)
        object.__setattr__(self, "read_via", tuple(self.read_via))
        for via in self.read_via:
            link_spec(via)


#: Public figures for the tiers of a DGX H100-class node, per GPU (the node has 8 GPUs).
TIERS: dict[str, TierSpec] = {
    "dram": TierSpec(
        capacity_gb=256.0,
        read_link="pcie5_x16",
        write_link="pcie5_x16",
        idle_w_per_gb=0.1,
        usd_per_gb=4.0,
        source=(
            "NVIDIA DGX H100 datasheet: 2 TB system memory for 8 GPUs = 256 GB per GPU, reached over each "
            "GPU's PCIe 5.0 x16 host link; DDR5 RDIMM ~6-8 W per 64 GB module under load (~0.1 W/GB); ~$4/GB "
            "DDR5 RDIMM street price 2024-25"
        ),
    ),
    "ssd": TierSpec(
        capacity_gb=3840.0,
        read_link="nvme_gen4_read",
        write_link="nvme_gen4_write",
        read_via=("pcie5_x16",),
        idle_w_per_gb=5.0 / 3840.0,
        active_w=15.0,
        usd_per_gb=0.10,
        source=(
            "NVIDIA DGX H100 datasheet: 8 x 3.84 TB NVMe U.2 cache drives = 3.84 TB per GPU; Samsung PM1733 "
            "U.2 (PCIe 4.0): 6.4 GB/s read, 3.8 GB/s write, ~5 W idle / ~20 W active (taken: +15 W while "
            "moving bytes); ~$0.10/GB enterprise TLC NVMe 2024-25"
        ),
    ),
}


def _tier(value: TierSpec | dict | None, default: str) -> TierSpec | None:
    if value is None or isinstance(value, TierSpec):
        return value
    if isinstance(value, dict):
        base = dataclasses.asdict(TIERS[default])
        unknown = set(value) - set(base)
        if unknown:
            raise ConfigError(
                f"hierarchy.{default}: unknown field(s) {sorted(unknown)}; valid fields: {', '.join(base)}"
            )
        base.update(value)
        try:
            return TierSpec(**base)
        except ConfigError as exc:
            raise ConfigError(f"hierarchy.{default}: {exc}") from None
    raise ConfigError(f"hierarchy.{default}: expected a table of tier fields, got {value!r}")


PROMOTION_MODES = ("overlap", "blocking")
STORE_WRITES = ("prefill", "evict")


@dataclass(frozen=True, slots=True)
class StoreSpec:
    """The shared remote KV store.

    Parameters
    ----------
    capacity_gb
        Capacity of the whole store in GB.
    link
        Its aggregate bandwidth (a :data:`~workbench.sim.links.LINKS` name or spec): every load and write
        crosses it (and the instance's NIC).
    write
        ``"prefill"``: an instance writes each prefix block it computes (Mooncake: the prefill node saves its KV
        to the pool); ``"evict"``: only what falls off its last local tier (LMCache with a remote backend
        behind local ones).
    eviction
        Eviction policy name.
    idle_w_per_gb, usd_per_gb
        Power and price of the store's memory (DRAM pooled from serving nodes, by default).
    """

    capacity_gb: float = 4096.0
    link: str | LinkSpec = "mooncake_store"
    write: str = "prefill"
    eviction: str = "lru"
    idle_w_per_gb: float = 0.1
    usd_per_gb: float = 4.0

    def __post_init__(self) -> None:
        require_positive("hierarchy.store.capacity_gb", self.capacity_gb)
        link_spec(self.link)
        write = require_choice("hierarchy.store.write", self.write, STORE_WRITES, what="write policy")
        object.__setattr__(self, "write", write)
        evict = require_choice(
            "hierarchy.store.eviction", self.eviction, tuple(EVICTION_POLICIES), what="eviction policy"
        )
        object.__setattr__(self, "eviction", evict)
        require_positive("hierarchy.store.idle_w_per_gb", self.idle_w_per_gb, allow_zero=True)
        require_positive("hierarchy.store.usd_per_gb", self.usd_per_gb, allow_zero=True)


@dataclass(frozen=True, slots=True)
class KVHierarchy:
    """Switches on KV tiers, a remote store and contended links (``None`` anywhere: all off).

    Parameters
    ----------
    dram, ssd
        Host-memory and local-SSD tiers per GPU (a :class:`TierSpec`, a dict of fields overriding the
        :data:`TIERS` default, or ``None`` for no such tier).
    store
        The shared remote store (:class:`StoreSpec` or dict), or ``None``.
    eviction
        Eviction policy of the local tiers (name in :data:`EVICTION_POLICIES`).
    promotion
        How a load from a lower tier meets prefill:

        * ``"overlap"`` (default): the request waits for its load while the instance keeps running its batch,
          then is prefilled with the loaded blocks as cache hits. This is what vLLM v1 does with an
          asynchronous KV connector (requests in ``WAITING_FOR_REMOTE_KVS``; LMCache, NIXL, Mooncake),
          SGLang's HiCache (layer-wise overlap) and Dynamo's KV block manager;
        * ``"blocking"``: the instance stops stepping while a load runs, so the whole batch waits: vLLM v0 with
          LMCache's synchronous retrieve before the forward pass.
    nic, nvlink
        Link kinds (one per GPU) for network traffic (P/D transfers, store) and transfers inside a node.
    gpus_per_node
        GPUs per node: instances are packed onto nodes in order; a P/D transfer inside a node uses NVLink.
    contention
        ``True``: flows share links max-min fairly; ``False``: each flow sees its path alone
        (``latency + size / bandwidth``), the reference the contention studies compare against.
    """

    dram: TierSpec | dict | None = None
    ssd: TierSpec | dict | None = None
    store: StoreSpec | dict | None = None
    eviction: str = "lru"
    promotion: str = "overlap"
    nic: str | LinkSpec = "cx7_400g"
    nvlink: str | LinkSpec = "nvlink4"
    gpus_per_node: int = 8
    contention: bool = True
    tiers: tuple[str, ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "dram", _tier(self.dram, "dram"))
        object.__setattr__(self, "ssd", _tier(self.ssd, "ssd"))
        if isinstance(self.store, dict):
            try:
                object.__setattr__(self, "store", StoreSpec(**self.store))
            except TypeError as exc:
                raise ConfigError(f"hierarchy.store: {exc}") from None
        elif self.store is not None and not isinstance(self.store, StoreSpec):
            raise ConfigError(f"hierarchy.store: expected a table of store fields, got {self.store!r}")
        evict = require_choice(
            "hierarchy.eviction", self.eviction, tuple(EVICTION_POLICIES), what="eviction policy"
        )
        object.__setattr__(self, "eviction", evict)
        promo = require_choice("hierarchy.promotion", self.promotion, PROMOTION_MODES, what="promotion mode")
        object.__setattr__(self, "promotion", promo)
        link_spec(self.nic)
        link_spec(self.nvlink)
        require_int("hierarchy.gpus_per_node", self.gpus_per_node)
        if not isinstance(self.contention, bool):
            raise ConfigError(f"hierarchy.contention must be true or false, got {self.contention!r}")
        names = tuple(
            n for n in ("dram", "ssd") if getattr(self, n) is not None and getattr(self, n).capacity_gb
        )
        object.__setattr__(self, "tiers", names)

    @classmethod
    def from_dict(cls, data: dict) -> KVHierarchy:
        """Build from a TOML table (unknown keys are a clear error)."""
        valid = [f.name for f in dataclasses.fields(cls) if f.init]
        unknown = set(data) - set(valid)
        if unknown:
            raise ConfigError(
                f"hierarchy: unknown field(s) {sorted(unknown)}; valid fields: {', '.join(valid)}"
            )
        return cls(**data)

    # The fields take dicts too; ``__post_init__`` turns them into specs, which these typed views return.
    @property
    def dram_spec(self) -> TierSpec | None:
        """The host-memory tier per GPU, or ``None``."""
        return cast("TierSpec | None", self.dram)

    @property
    def ssd_spec(self) -> TierSpec | None:
        """The local-SSD tier per GPU, or ``None``."""
        return cast("TierSpec | None", self.ssd)

    @property
    def store_spec(self) -> StoreSpec | None:
        """The shared remote store, or ``None``."""
        return cast("StoreSpec | None", self.store)

    def tier_specs(self) -> list[tuple[str, TierSpec]]:
        """Return the local tiers that hold something, fastest first."""
        return [(n, getattr(self, n)) for n in self.tiers]

    def entries(self, capacity_gb: float, entry_bytes: int, gpus: float = 1.0) -> int:
        """Whole entries of ``entry_bytes`` in ``capacity_gb`` GB per GPU times ``gpus``."""
        if entry_bytes <= 0:
            return 0
        return int(capacity_gb * 1e9 * gpus // entry_bytes)


__all__ = [
    "EVICTION_POLICIES",
    "FIFO",
    "LFU",
    "LINKS",
    "LRU",
    "PROMOTION_MODES",
    "STORE_WRITES",
    "TIERS",
    "EvictionPolicy",
    "KVHierarchy",
    "KVStore",
    "StoreSpec",
    "Tier",
    "TierChain",
    "TierSpec",
    "eviction_policy",
    "register_eviction_policy",
]
