"""The fleet's prefix index: exact against each instance's own cache walk, through evictions, failures and
autoscaling; results of cache-aware routers unchanged by it; no index for routers that never ask. The
instance view's vectorised load arrays are checked against the instances' properties on the way."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from workbench.sim.autoscale import AutoscaleConfig
from workbench.sim.engine import PRIO_CONTROL
from workbench.sim.fleet import simulate
from workbench.sim.routing import Request, get_router
from workbench.sim.routing.prefix_index import PrefixIndex
from workbench.sim.topology import Fleet, Pool, monolithic
from workbench.traces import LogNormal, Poisson, Sessions, Synthetic


def _inst(i, hashes=()):
    prefix = SimpleNamespace(entries=dict.fromkeys(hashes, 0), index=None)
    return SimpleNamespace(index=i, prefix=prefix, cache=prefix.entries, evict_at=float("inf"))


def _walk(cache, hashes, limit):
    n = 0
    while n < limit and hashes[n] in cache:
        n += 1
    return n


def test_index_matches_walk_through_adds_removes_and_clears():
    rng = np.random.default_rng(3)
    insts = [_inst(0, [1, 2]), _inst(1)]
    index = PrefixIndex()
    for inst in insts:
        index.track(inst)
    assert insts[0].prefix.index is index and len(index) == 2
    for step in range(3000):  # random edits (enough distinct hashes to grow the matrix), checked each time
        inst = insts[rng.integers(len(insts))]
        h = int(rng.integers(300))
        if step == 1500:
            insts.append(_inst(7, [5, 6]))  # an instance joins late, with a cache
            index.track(insts[-1])
        if step % 700 == 699:
            index.clear(inst.index)
            inst.cache.clear()
        elif h in inst.cache:
            del inst.cache[h]
            index.remove(h, inst.index)
        else:
            inst.cache[h] = 0
            index.add(h, inst.index)
        query = [int(x) for x in rng.integers(0, 40, size=int(rng.integers(1, 12)))]
        query[: len(query) // 2] = sorted(inst.cache)[: len(query) // 2]  # a leading run that often matches
        limit = int(rng.integers(0, len(query) + 1))
        want = [_walk(i.cache, query, limit) for i in insts]
        if limit:
            assert index.match(query, limit, None).tolist() == want
            assert index.match(query, limit, np.array([len(insts) - 1, 0])).tolist() == [want[-1], want[0]]
    assert len(index) == len(set().union(*(i.cache for i in insts)))  # rows of vanished hashes are freed
    assert all(index.holds(i.index) == set(i.cache) for i in insts)
    assert index._m.shape[0] > 64  # grew
    with pytest.raises(ValueError, match="already tracked"):
        index.track(insts[0])


class _Checker:
    """Checks the view at every decision (then routes as ``inner``).

    Its prefix match equals each instance's walk, for the view and for every pool member; its KV and token
    arrays equal the instances' own properties.
    """

    name = "checker"

    def __init__(self, ctl, inner="lmetric"):
        self.ctl = ctl
        self.inner = get_router(inner)
        self.decisions = self.matched = self.partial_views = 0

    def choose(self, request, view, now):
        got = view.prefix_match_tokens(request)
        assert got.tolist() == [inst.prefix_match_tokens(request) for inst in view.instances]
        for name in ("free_kv_blocks", "kv_blocks_used", "kv_utilization", "queued_prefill_tokens"):
            assert getattr(view, name).tolist() == [getattr(i, name) for i in view.instances], name
        want = [i.queued_prefill_tokens + i.outstanding_decode_tokens for i in view.instances]
        assert view.outstanding_tokens.tolist() == want
        index = view._index
        if index is not None and request.prefix_hashes:
            members = [self.ctl.sim.instances[i] for i in self.ctl.members[0]]
            block = members[0].prefix.entry_tokens
            limit = min(len(request.prefix_hashes), (request.prompt_tokens - 1) // block)
            if limit > 0:
                depth = index.match(request.prefix_hashes, limit, index.columns(i.index for i in members))
                assert (depth * block).tolist() == [i.prefix_match_tokens(request) for i in members]
            self.partial_views += index.ncols != view._full
        self.decisions += 1
        self.matched += int(got.any())
        return self.inner.choose(request, view, now)


def _sessions_trace(n, rate, seed):
    sessions = Sessions(mean_turns=3.0, think_s=5.0, system_prompt_tokens=1024, n_system_prompts=8,
                        system_prompt_share=0.6, block_tokens=512)  # fmt: skip
    lengths = LogNormal(prompt_mu=8.0, prompt_sigma=0.7, output_mu=4.0, output_sigma=0.5)
    return Synthetic(arrivals=Poisson(rate), lengths=lengths, sessions=sessions).generate(n, seed=seed)


class _CountingIndex(PrefixIndex):
    """A prefix index that counts the evictions and cache drops it is told of."""

    def __init__(self):
        super().__init__()
        self.removed = self.cleared = 0

    def remove(self, h, inst_id):
        self.removed += 1
        super().remove(h, inst_id)

    def clear(self, inst_id):
        self.cleared += 1
        super().clear(inst_id)


def test_index_exact_under_eviction_failures_and_autoscaling():
    tr = _sessions_trace(900, 25.0, seed=4)
    auto = AutoscaleConfig(policy="kpa", min_instances=2, max_instances=5, setup_delay_s=5.0, interval_s=1.0,
                           target_concurrency=3.0)  # fmt: skip
    # a mixed pool (small A10G caches evict; long requests fit only some instances: partial views)
    fleet = Fleet(pools=(Pool("p", gpu={"A10G": 3, "H100": 2}, instances=5, autoscale=auto),))
    box = {}

    def setup(sim, ctl):
        box["checker"] = ctl.inner[0] = _Checker(ctl)
        box["ctl"] = ctl
        ctl.prefix_indexes[0] = index = _CountingIndex()
        for inst in sim.instances:
            index.track(inst)
            inst.audit_steps = True  # the audit compares the index with the cache at every step
        for at, k, repair in ((8.0, 0, 3.0), (20.0, 1, 2.0)):
            fail = lambda i, t, r=repair: sim.fail_instance(i, r)  # noqa: E731
            sim.engine.schedule(at, PRIO_CONTROL, fail, sim.instances[k])

    res = simulate(tr, fleet, setup=setup)
    checker, ctl = box["checker"], box["ctl"]
    index = ctl.prefix_indexes[0]
    assert index.ncols == 5 and index.removed > 100 and index.cleared == 2
    assert checker.decisions > 800 and checker.matched > 200 and checker.partial_views > 100
    c = res.counters
    assert c["failures"] == 2 and c["cold_starts"] >= 2 and c["retried"] > 0
    insts = ctl.sim.instances
    assert all(index.holds(i.index) == set(i.prefix.entries) for i in insts)
    assert res.requests["cached_tokens"].sum() > 0


@pytest.mark.parametrize("router", ["lmetric", "llmd", "dynamo", "sglang_cache_aware", "prefix_affinity"])
def test_cache_routers_results_do_not_depend_on_the_index(router):
    tr = _sessions_trace(500, 30.0, seed=5)
    fleet = monolithic(4, router=router, gpu="A10G")
    with_index = simulate(tr, fleet, record_segments=False)

    class Walk(PrefixIndex):
        """The per-instance walk behind the index's interface (the reference)."""

        def match(self, hashes, limit, cols):
            insts = [i for i in box["sim"].instances if i.index in self._col]
            out = np.array([_walk(i.prefix.entries, hashes, limit) for i in insts], dtype=np.int64)
            return out if cols is None else out[cols]

    box = {}

    def setup(sim, ctl):
        box["sim"] = sim
        ctl.prefix_indexes[0] = index = Walk()
        for inst in sim.instances:
            index.track(inst)

    walked = simulate(tr, fleet, record_segments=False, setup=setup)
    assert with_index.requests.equals(walked.requests)
    assert with_index.requests["cached_tokens"].sum() > 0


def test_no_index_for_routers_that_do_not_ask():
    tr = _sessions_trace(200, 20.0, seed=6)
    box = {}
    simulate(tr, monolithic(3, router="jsq"), setup=lambda sim, ctl: box.setdefault("ctl", ctl))
    ctl = box["ctl"]
    assert ctl.prefix_indexes == [None]
    assert all(i.prefix.index is None for i in ctl.sim.instances)
    assert sum(len(i.prefix) for i in ctl.sim.instances) > 0
    # asked later, the index is built from the caches as they are
    view, matched = ctl.views[0], 0
    for r in tr.requests.iter_rows(named=True):
        req = Request(prompt_tokens=r["prompt_tokens"], prefix_hashes=r["prefix_hashes"])
        got = view.prefix_match_tokens(req).tolist()
        assert got == [i.prefix_match_tokens(req) for i in view.instances]
        matched += any(got)
    assert matched > 50 and all(i.prefix.index is ctl.prefix_indexes[0] for i in ctl.sim.instances)


def test_view_without_prefix_hashes_or_short_prompt_matches_nothing():
    tr = _sessions_trace(50, 20.0, seed=7)
    box = {}
    simulate(tr, monolithic(2, router="lmetric"), setup=lambda sim, ctl: box.setdefault("ctl", ctl))
    view = box["ctl"].views[0]
    assert view.prefix_match_tokens(Request(prompt_tokens=5000)).tolist() == [0, 0]
    first = tr.requests["prefix_hashes"][0].to_list()
    assert view.prefix_match_tokens(Request(prompt_tokens=512, prefix_hashes=first)).tolist() == [0, 0]
