"""KV-load-aware routing: loading as a stage, precise and approximate prefix indexes (routing.kvload)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from workbench.errors import ConfigError
from workbench.sim.fleet import simulate
from workbench.sim.kvtiers import KVHierarchy
from workbench.sim.request import Request
from workbench.sim.routing import CACHE_ROUTERS, get_router
from workbench.sim.topology import monolithic
from workbench.traces import Fixed, Poisson, Sessions, Synthetic


class _View:
    """A two-instance candidate view with given KV locations."""

    def __init__(self, gpu=(0, 0), below=(0, 0), load=(0.0, 0.0), queued=(0, 0), running=(0, 0)):
        self.ids = np.array([0, 1])
        self.queued_prefill_tokens = np.array(queued)
        self.running = np.array(running)
        self.prefix_block_tokens = 16
        self._kv = (np.array(gpu), np.array(below), np.array(load, dtype=float))

    def __len__(self):
        return 2

    def kv_load(self, request):
        return self._kv

    def prefix_match_tokens(self, request):
        return self._kv[0]


def _req(hashes=(1, 2, 3, 4), prompt=20_000):
    return Request(0, 0, 0.0, prompt, 10, prefix_hashes=list(hashes))


def test_a_fast_load_beats_recomputing_and_a_slow_one_does_not():
    router = get_router("kv_aware", prefill_tokens_per_s=20_000.0)
    # instance 1 holds 19,000 prompt tokens in DRAM: 0.05 s to load against 0.95 s to recompute them
    assert router.choose(_req(), _View(below=(0, 19_000), load=(0.0, 0.05)), 0.0) == 1
    # a 2 s load (say, from a congested store) loses to recomputing on the idle instance 0
    assert router.choose(_req(), _View(below=(0, 19_000), load=(0.0, 2.0)), 0.0) == 0
    # and a GPU hit needs no load at all
    assert router.choose(_req(), _View(gpu=(0, 19_000)), 0.0) == 1


def test_load_cost_is_weighed_with_the_queue_like_lmetric():
    router = get_router("kv_aware", prefill_tokens_per_s=10_000.0)
    # instance 1 has the prefix on its GPU but a long queue and a batch: (0 + (40k + 1k)/10k) x 5 = 20.5
    # instance 0 recomputes alone: 20k / 10k x 1 = 2
    view = _View(gpu=(0, 19_000), queued=(0, 40_000), running=(0, 4))
    assert router.choose(_req(), view, 0.0) == 0


def test_the_approximate_index_remembers_where_it_sent_prefixes_and_forgets_lru():
    empty, busy0 = _View(), _View(queued=(5_000, 0))
    long = list(range(100, 1300))  # 1,200 blocks of 16 tokens
    router = get_router("kv_aware", index="approximate", capacity_blocks=5_000)
    assert router.choose(_req(long, prompt=19_300), empty, 0.0) == 0  # nothing known: lowest position
    # it believes instance 0 holds 19,200 of the 19,300 tokens: (5,000 + 100) queued beats 19,300 on instance 1
    assert router.choose(_req(long, prompt=19_300), busy0, 0.0) == 0
    # with room for 6 blocks it kept only the prefix's tail, so the head does not match: instance 1
    router = get_router("kv_aware", index="approximate", capacity_blocks=6)
    router.choose(_req(long, prompt=19_300), empty, 0.0)
    assert router.choose(_req(long, prompt=19_300), busy0, 0.0) == 1


def test_registered_as_a_cache_router_with_checked_parameters():
    assert "kv_aware" in CACHE_ROUTERS
    with pytest.raises(ConfigError, match="unknown index"):
        get_router("kv_aware", index="psychic")


def test_in_a_fleet_the_view_exposes_load_costs_and_the_router_uses_them():
    trace = Synthetic(
        Poisson(4.0), Fixed(3000, 30), Sessions(mean_turns=6, think_s=10.0, block_tokens=512)
    ).generate(n=200, seed=4)
    fleet = dataclasses.replace(
        monolithic(3, router="kv_aware"), hierarchy=KVHierarchy(store={"capacity_gb": 64})
    )
    res = simulate(trace, fleet)
    q = res.requests
    assert q["store_hit_tokens"].sum() > 0 and not q["rejected"].any()
    approx = simulate(trace, dataclasses.replace(fleet, pools=(
        dataclasses.replace(fleet.pools[0], router_params={"index": "approximate"}),)))  # fmt: skip
    assert approx.requests.height == q.height
