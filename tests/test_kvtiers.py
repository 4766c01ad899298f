"""KV tiers below the GPU and the remote store: data structures and configuration (workbench.sim.kvtiers)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.config import load_toml
from workbench.errors import ConfigError
from workbench.sim.kvtiers import (
    EVICTION_POLICIES,
    FIFO,
    LFU,
    LRU,
    TIERS,
    KVHierarchy,
    KVStore,
    StoreSpec,
    Tier,
    TierChain,
    eviction_policy,
    register_eviction_policy,
)


def test_lru_evicts_least_recently_used_and_fifo_ignores_hits():
    lru, fifo = Tier("a", 2, "lru"), Tier("b", 2, "fifo")
    for t in (lru, fifo):
        t.put(1)
        t.put(2)
        t.hit(1)
    assert lru.put(3) == (True, 2)  # 1 was touched
    assert fifo.put(3) == (True, 1)  # first in, first out
    assert lru.hits == fifo.hits == 1 and lru.evicted == fifo.evicted == 1


def test_lfu_evicts_the_least_used_then_the_least_recent():
    t = Tier("c", 3, "lfu")
    for k in (1, 2, 3):
        t.put(k)
    t.hit(1)
    t.hit(1)
    t.hit(3)
    assert t.put(4) == (True, 2)
    assert t.put(5) == (True, 4)  # 4 is used once, 1 three times, 3 twice


def test_put_of_a_present_entry_writes_nothing_and_capacity_zero_keeps_nothing():
    t = Tier("a", 1)
    assert t.put(7) == (True, None)
    assert t.put(7) == (False, None)
    assert t.inserted == 1
    z = Tier("z", 0)
    assert z.put(1) == (False, None) and len(z) == 0


def test_demotion_cascades_down_the_chain_and_off_its_end():
    dropped, writes = [], []
    chain = TierChain([Tier("dram", 2), Tier("ssd", 3)], on_write=lambda lvl, k: writes.append((lvl, k)),
                      on_drop=dropped.append)  # fmt: skip
    for h in range(6):
        chain.demote(h)
    assert [sorted(t.entries()) for t in chain.tiers] == [[4, 5], [1, 2, 3]]
    assert dropped == [0]
    assert writes.count((0, 5)) == 1 and (1, 0) in writes
    # inclusive tiers: demoting an entry the DRAM tier holds only refreshes it (no bytes written)
    n = len(writes)
    assert chain.demote(4) == 0 and len(writes) == n
    assert chain.locate(2) == 1 and chain.locate(99) == -1
    # a zero-capacity first tier passes entries straight to the next
    chain = TierChain([Tier("dram", 0), Tier("ssd", 1)])
    chain.demote("x")
    assert chain.locate("x") == 1


def test_store_is_a_tier():
    s = KVStore(2, "fifo")
    s.put(1)
    s.put(2)
    assert s.put(3) == (True, 1)
    assert s.name == "store"


def test_pluggable_policy_by_name():
    class MRU(LRU):
        name = "mru"

        def victim(self):
            return next(reversed(self._order))

    register_eviction_policy("mru", MRU)
    try:
        t = Tier("a", 2, "mru")
        t.put(1)
        t.put(2)
        assert t.put(3) == (True, 2)
        assert KVHierarchy(dram={}, eviction="mru").eviction == "mru"
    finally:
        del EVICTION_POLICIES["mru"]
    with pytest.raises(ConfigError, match="unknown eviction policy 'mru'"):
        eviction_policy("mru")
    with pytest.raises(ConfigError, match="does not implement"):
        register_eviction_policy("bad", object)


@settings(max_examples=50, deadline=None)
@given(ops=st.lists(st.tuples(st.sampled_from(["put", "hit"]), st.integers(0, 12)), max_size=80),
       cap=st.integers(1, 6), policy=st.sampled_from(["lru", "fifo", "lfu"]))  # fmt: skip
def test_a_tier_never_exceeds_its_capacity_and_counts_balance(ops, cap, policy):
    t = Tier("t", cap, policy)
    for op, key in ops:
        if op == "put":
            t.put(key)
        elif key in t:
            t.hit(key)
        assert len(t) <= cap
    assert t.inserted - t.evicted == len(t)


def test_policies_satisfy_the_protocol():
    from workbench.sim.kvtiers import EvictionPolicy

    for cls in (LRU, FIFO, LFU):
        assert isinstance(cls(), EvictionPolicy)


def test_default_tiers_cite_sources_and_fit_a_dgx_h100():
    assert TIERS["dram"].capacity_gb * 8 == pytest.approx(2048.0)  # 2 TB per 8-GPU node
    assert TIERS["ssd"].capacity_gb * 8 == pytest.approx(8 * 3840.0)
    for spec in TIERS.values():
        assert "datasheet" in spec.source


def test_hierarchy_config_overrides_defaults_and_names_bad_fields():
    h = KVHierarchy(dram={"capacity_gb": 64}, ssd=None, store={"capacity_gb": 100, "write": "evict"})
    assert h.tiers == ("dram",)
    assert h.dram.capacity_gb == 64 and h.dram.read_link == "pcie5_x16"
    assert isinstance(h.store, StoreSpec) and h.store.write == "evict"
    assert h.entries(64, 2**26) == int(64e9 // 2**26)
    assert KVHierarchy(dram={"capacity_gb": 0}).tiers == ()
    with pytest.raises(ConfigError, match=r"hierarchy\.dram: unknown field\(s\) \['size'\]"):
        KVHierarchy(dram={"size": 1})
    with pytest.raises(ConfigError, match="promotion: unknown promotion mode 'lazy'"):
        KVHierarchy(promotion="lazy")
    with pytest.raises(ConfigError, match=r"store\.write: unknown write policy"):
        KVHierarchy(store={"write": "never"})
    with pytest.raises(ConfigError, match="capacity_gb must be a finite number >= 0"):
        KVHierarchy(dram={"capacity_gb": -1})
    with pytest.raises(ConfigError, match=r"hierarchy: unknown field\(s\) \['tiers'\]"):
        KVHierarchy.from_dict({"tiers": ["dram"]})
    with pytest.raises(ConfigError, match="unknown link"):
        KVHierarchy(nic="smoke-signals")


def test_hierarchy_loads_from_toml(tmp_path):
    path = tmp_path / "h [1].toml"
    path.write_text(
        'promotion = "blocking"\neviction = "fifo"\n[dram]\ncapacity_gb = 128\n'
        "[ssd]\ncapacity_gb = 1000\n[store]\ncapacity_gb = 2048\n"
    )
    h = load_toml(KVHierarchy, path)
    assert h.tiers == ("dram", "ssd") and h.promotion == "blocking" and h.store.capacity_gb == 2048
