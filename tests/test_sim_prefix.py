"""Prefix cache under tight KV memory: event skipping = per-iteration engine = reference loop.

Regression tests for three bugs (all seen on 20-block instances with 16-token hash blocks):

* a decode run allocated its blocks for all its iterations at its start, evicting cached prefixes that a
  per-iteration loop still held when a request arrived mid-run;
* a request arriving during a decode run that fitted only thanks to its prefix-cache hits did not cut the
  run, so it waited for the whole run to end;
* released prefixes entered the LRU list head first, so evicting one block killed the whole cached chain.

A decode run that grows past the free blocks stays one event and evicts lazily, in iteration order, when the
cache is read mid-run (the instance's prefix match, its prefix index) or the run is cut or ends: the tests
below read the cache between iterations and through a cache-aware router, and compare with no skipping.
"""

from __future__ import annotations

import signal

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.sim import PRIO_CONTROL, InstanceConfig, LinearPerfModel, SchedulerConfig, Simulation
from workbench.sim.reference import simulate_reference
from workbench.sim.routing import Request
from workbench.sim.routing.prefix_index import PrefixIndex

H = 16  # tokens per prefix hash block (= KV block: one cache entry holds one KV block)
A = [1000 + j for j in range(10)]  # a 10-block prompt prefix
PERF = LinearPerfModel()  # 5 ms + 0.05 ms/prefill token + 0.1 ms/decode sequence + 1e-8 s/context token
TIMES = ("admitted_s", "first_token_s", "finish_s")
ROUTED = (*TIMES, "cached_tokens", "preemptions", "instance")
FAMILIES = [[10_000 * f + j for j in range(12)] for f in range(3)]  # prefixes of the tight workloads below


def frame(arrival, prompt, output, hashes) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "request_id": pl.Series(range(len(arrival)), dtype=pl.UInt64),
            "arrival_s": pl.Series(arrival, dtype=pl.Float64),
            "prompt_tokens": pl.Series(prompt, dtype=pl.Int32),
            "output_tokens": pl.Series(output, dtype=pl.Int32),
            "prefix_hashes": pl.Series(hashes, dtype=pl.List(pl.UInt64)),
        }
    )


def config(kv_blocks=20, skipping=True, perf=PERF, **sched) -> InstanceConfig:
    sched = {"watermark": 0.0, **sched}
    return InstanceConfig(
        perf=perf,
        kv_capacity_tokens=kv_blocks * 16,
        scheduler=SchedulerConfig(event_skipping=skipping, **sched),
    )


class LongestPrefix:
    """Routes to the instance with the longest cached prefix (then the fewest outstanding requests), read
    from a :class:`PrefixIndex` over the instances (``index=True``) or from each instance's own walk."""

    def __init__(self, sim, index):
        self.sim = sim
        self.index = PrefixIndex() if index else None

    def choose(self, req, view, now):
        instances = view.instances
        hashes = req.prefix_hashes
        limit = min(len(hashes), (req.prompt_tokens - 1) // instances[0].prefix.entry_tokens)
        if self.index is None:
            depth = [inst.prefix_match_tokens(req) for inst in instances]
        elif limit > 0:
            if not self.index.ncols:
                for inst in self.sim.instances:
                    self.index.track(inst)
            self.index.settle(now)
            depth = self.index.match(hashes, limit, self.index.columns(i.index for i in instances)).tolist()
        else:
            depth = [0] * len(instances)
        return min(range(len(instances)), key=lambda k: (-depth[k], instances[k].outstanding, k))


def engine(reqs, conf, n_instances=1, hash_tokens=H, router=None):
    sim = Simulation(seed=0, prefix_block_tokens=hash_tokens)
    sim.audit = True  # recount blocks, decode set and cache references before every step
    for _ in range(n_instances):
        sim.add_instance(conf)
    if router is not None:
        sim.router = LongestPrefix(sim, index=router == "index")
    return sim.run(reqs), sim


def three_ways(reqs, hash_tokens=H, **kw):
    """Requests table of the fast engine after checking it against no skipping and the reference loop."""
    fast, sim = engine(reqs, config(**kw), hash_tokens=hash_tokens)
    slow, _ = engine(reqs, config(skipping=False, **kw), hash_tokens=hash_tokens)
    ref = simulate_reference(reqs, config(**kw), prefix_block_tokens=hash_tokens)
    assert_same(fast.requests, slow.requests, (*TIMES, "cached_tokens", "preemptions"))
    assert_same(fast.requests, ref, ("first_token_s", "finish_s", "cached_tokens", "preemptions"))
    assert fast.counters["iterations"] == slow.counters["iterations"]
    return fast.requests, sim.instances[0]


def assert_same(a: pl.DataFrame, b: pl.DataFrame, cols) -> None:
    for col in cols:
        x, y = a[col].to_numpy(), b[col].to_numpy()
        if x.dtype.kind == "f":
            assert np.allclose(x, y, rtol=0, atol=1e-9, equal_nan=True), (col, x, y)
        else:
            assert (x == y).all(), (col, x, y)


def test_decode_run_does_not_evict_cached_prefix_ahead_of_time():
    # A leaves 9 cached blocks ((160 - 1) // 16); B's 250-token decode grows from 2 to 17 blocks, past the 9
    # free ones; C arrives at 0.5 s when B has grown by about 6: a per-iteration loop still holds all of A
    reqs = frame([0.0, 0.0, 0.5], [160, 17, 160], [2, 250, 2], [A, [7], A])
    r, _ = three_ways(reqs)
    assert r["cached_tokens"].to_list() == [0, 0, 144]
    assert r["ttft_s"][2] < r["ttft_s"][0]


def test_arrival_that_fits_thanks_to_cache_hits_cuts_the_decode_run():
    # request 1 needs 11 blocks, 2 after its 9 cached ones: it fits mid-run only with the hits counted
    reqs = frame([0.0, 0.05], [160, 160], [60, 2], [A, A])
    r, _ = three_ways(reqs)
    assert r["cached_tokens"].to_list() == [0, 144]
    # admitted at the end of the decode iteration in progress at 0.05 s, not after the 60-token run
    assert 0.05 < r["admitted_s"][1] < 0.05 + 2 * PERF.overhead_s
    assert r["ttft_s"][1] < 0.02


def test_eviction_shortens_a_cached_chain_from_its_tail():
    # B needs 13 of the 11 free blocks: two evictions; they must take A's last two blocks, so C still hits 7
    reqs = frame([0.0, 1.0, 2.0], [160, 200, 160], [2, 2, 2], [A, [7], A])
    r, inst = three_ways(reqs)
    assert r["cached_tokens"].to_list() == [0, 0, 112]
    # C re-inserted its recomputed blocks 7 and 8: A's whole chain (9 entries) and B's block are cached
    assert set(inst.prefix.entries) == set(A[:9]) | {7}
    assert inst.prefix.oldest() == 7  # B's block is the least recently used now


def probed(reqs, conf, queries, times, *, how, n_instances=1, hash_tokens=H, track_at=0.0):
    """Run ``reqs`` and read the cache at ``times`` (control events, after the iterations ending then): the
    leading blocks of each query cached by each instance, through its own walk (``how="walk"``) or through a
    :class:`PrefixIndex` over the instances tracked from ``track_at`` on (``how="index"``)."""
    sim = Simulation(seed=0, prefix_block_tokens=hash_tokens)
    sim.audit = True
    for _ in range(n_instances):
        sim.add_instance(conf)
    index = PrefixIndex()
    asks = [Request(prompt_tokens=10**6, prefix_hashes=q) for q in queries]
    seen = []

    def probe(_, now):
        if how == "walk":
            seen.append([[i.prefix_match_tokens(q) // hash_tokens for i in sim.instances] for q in asks])
            return
        if now < track_at:
            return
        if not index.ncols:  # tracked late: instances may be in the middle of a decode run
            for inst in sim.instances:
                index.track(inst)
        index.settle(now)
        seen.append([index.match(q, len(q), None).tolist() for q in queries])

    for t in times:
        sim.engine.schedule(float(t), PRIO_CONTROL, probe, None)
    res = sim.run(reqs)
    return seen, res, sim


@pytest.mark.parametrize("how", ["walk", "index"])
def test_decode_run_evicts_lazily_in_iteration_order(how):
    # A leaves 9 cached blocks, then B's 248-iteration decode run grows past the 9 free blocks by 6
    reqs = frame([0.0, 0.0], [160, 17], [2, 250], [A, [7]])
    times = np.linspace(0.05, 2.0, 40)
    fast, res, sim = probed(reqs, config(), [A], times, how=how, track_at=0.3)
    slow, ref, _ = probed(reqs, config(skipping=False), [A], times, how=how, track_at=0.3)
    assert fast == slow  # the cache as a per-iteration loop holds it at every probe
    depth = [row[0][0] for row in fast]
    assert depth[0] == 9 and depth[-1] == 3 and sorted(depth, reverse=True) == depth
    assert set(depth) == set(range(3, 10))  # six evictions, one at a time, tail first
    # 2 arrivals, the prefill step, A's last decode next to B's, and B's whole run as one event (it was
    # cut at each of its six evictions before); one event per iteration: 253
    assert res.counters["events"] - len(times) == 5 and ref.counters["events"] - len(times) == 253
    assert_same(res.requests, ref.requests, (*TIMES, "cached_tokens"))
    inst = sim.instances[0]
    assert (
        set(inst.prefix.entries) == set(A[:3]) | {7} and inst.kv.free == 16
    )  # B's blocks back, but its hashed one


def test_reference_loop_prefix_cache_matches_engine_on_a_busy_workload():
    rng = np.random.default_rng(5)
    n = 150
    groups = rng.integers(0, 3, n)
    prompt = rng.integers(40, 400, n)
    hashes = [[100 * int(g) + j for j in range(p // H)] for g, p in zip(groups, prompt, strict=True)]
    reqs = frame(
        np.cumsum(rng.exponential(0.05, n)).tolist(), prompt.tolist(), rng.integers(1, 120, n).tolist(), hashes
    )
    r, _ = three_ways(reqs, kv_blocks=120, max_num_seqs=12, max_num_batched_tokens=512, watermark=0.01)
    assert r["cached_tokens"].sum() > 0 and r["preemptions"].sum() > 0


@st.composite
def tight_prefix_workloads(draw):
    """Few long-output requests with shared prefixes, arriving during each other's decode runs, on an
    instance whose KV cache holds little more than the largest request."""
    n = draw(st.integers(2, 12))
    hash_tokens = draw(st.sampled_from([16, 32]))
    families = FAMILIES
    rows = []
    for _ in range(n):
        fam = families[draw(st.integers(0, 2))]
        shared = draw(st.integers(0, 8))
        own = draw(st.integers(0, 3))
        hashes = fam[:shared] + [draw(st.integers(10**6, 10**6 + 5)) for _ in range(own)]
        prompt = (shared + own) * hash_tokens + draw(st.integers(1, hash_tokens))
        rows.append((prompt, draw(st.integers(1, 300)), hashes))
    # mostly gaps shorter than a 300-token decode run (~1.5 s), some simultaneous
    gaps = [draw(st.sampled_from([0.0, 0.001]) | st.floats(0.0, 0.8)) for _ in range(n)]
    biggest = max(-(-(p + o) // 16) for p, o, _ in rows)
    kv_blocks = biggest + draw(st.integers(0, 24))
    max_seqs = draw(st.integers(1, 8))
    sched = {
        "max_num_seqs": max_seqs,
        "max_num_batched_tokens": draw(st.integers(max(max_seqs, 64), 1024)),
        "chunked_prefill": draw(st.booleans()),
        "prefill_chunk_tokens": draw(st.none() | st.integers(16, 256)),
        "priority": draw(st.sampled_from(["decode_first", "decode_first", "prefill_first"])),
        "watermark": draw(st.sampled_from([0.0, 0.01, 0.05])),
    }
    prompt, output, hashes = (list(col) for col in zip(*rows, strict=True))
    reqs = frame(np.cumsum(gaps).tolist(), prompt, output, hashes)
    return reqs, hash_tokens, kv_blocks, sched, draw(st.integers(1, 2))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tight_prefix_workloads(),
    st.lists(st.floats(0.0, 4.0), min_size=1, max_size=30),
    st.sampled_from(["walk", "index"]),
    st.floats(0.0, 2.0),
)
def test_cache_read_mid_run_equals_per_iteration_loop(case, times, how, track_at):
    reqs, hash_tokens, kv_blocks, sched, n_inst = case
    kw = {"how": how, "n_instances": n_inst, "hash_tokens": hash_tokens, "track_at": track_at}
    fast, _, _ = probed(reqs, config(kv_blocks, **sched), FAMILIES, sorted(times), **kw)
    slow, _, _ = probed(reqs, config(kv_blocks, skipping=False, **sched), FAMILIES, sorted(times), **kw)
    assert fast == slow


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tight_prefix_workloads())
def test_skipping_equals_per_iteration_under_tight_kv_with_prefixes(case):
    reqs, hash_tokens, kv_blocks, sched, n_inst = case
    fast, _ = engine(reqs, config(kv_blocks, **sched), n_inst, hash_tokens)
    slow, _ = engine(reqs, config(kv_blocks, skipping=False, **sched), n_inst, hash_tokens)
    assert_same(fast.requests, slow.requests, (*TIMES, "cached_tokens", "preemptions", "instance"))
    if n_inst > 1:  # routed by the cache as it is at each arrival, read through an index or each instance
        routed = [engine(reqs, config(kv_blocks, skipping=s, **sched), n_inst, hash_tokens, router=how)[0]
                  for s, how in ((True, "index"), (False, "index"), (True, "walk"))]  # fmt: skip
        for other in routed[1:]:
            assert_same(routed[0].requests, other.requests, ROUTED)
    for key in ("iterations", "preemptions", "prefix_hit_tokens", "tokens_generated"):
        assert fast.counters[key] == slow.counters[key], key
    if n_inst == 1 and sched["priority"] == "decode_first":  # the reference loop's scope
        too_long = (reqs["prompt_tokens"] > sched["max_num_batched_tokens"]).to_numpy()
        too_long &= not sched["chunked_prefill"]
        ref = simulate_reference(reqs, config(kv_blocks, **sched), prefix_block_tokens=hash_tokens)
        assert (ref["finish_s"].is_null().to_numpy() == too_long).all()
        assert_same(fast.requests, ref, ("first_token_s", "finish_s", "cached_tokens", "preemptions"))


def test_index_settle_inside_the_rounding_margin_returns():
    # an eviction is announced a hair (1e-9 relative) before the iteration that makes it starts; a reader at
    # a time inside that margin evicts nothing yet, and the instance must defer itself to a later time (it
    # deferred to the same time before, and PrefixIndex.settle looped on it forever: 1M-request runs hung)
    reqs = frame([0.0, 0.0], [160, 17], [2, 250], [A, [7]])
    sim = Simulation(seed=0, prefix_block_tokens=H)
    sim.add_instance(config())
    index = PrefixIndex()
    inst = sim.instances[0]
    announced = []

    def read_at_announcement(_, now):
        index.settle(now)  # must return
        assert not index.due or index.due[0][0] > now
        walk = inst.prefix_match_tokens(Request(prompt_tokens=10**6, prefix_hashes=A)) // H
        announced.append((now, inst.evict_at, index.match(A, len(A), None)[0], walk))

    def track(_, now):
        index.track(inst)
        assert inst.evict_at < float("inf")  # B's run borrows evictable blocks
        sim.engine.schedule(inst.evict_at, PRIO_CONTROL, read_at_announcement, None)

    sim.engine.schedule(0.3, PRIO_CONTROL, track, None)
    signal.signal(signal.SIGALRM, lambda *_: pytest.fail("PrefixIndex.settle did not return"))
    signal.alarm(20)
    try:
        sim.run(reqs)
    finally:
        signal.alarm(0)
    ((now, next_at, depth, walk),) = announced
    assert next_at > now and depth == walk == 9  # the first eviction is announced: none made inside the margin


def test_reference_loop_ends_when_the_last_arrival_is_rejected():
    # found by hypothesis: request 1 (65 tokens > max_num_batched_tokens 64, chunked prefill off) is rejected
    # on arrival after request 0 has finished; the loop then looked up arrival[n]
    reqs = frame([0.0, 0.0], [1, 65], [1, 1], [[], [0, 1, 2, 3]])
    conf = config(5, max_num_seqs=1, max_num_batched_tokens=64, chunked_prefill=False)
    ref = simulate_reference(reqs, conf, prefix_block_tokens=H)
    fast, _ = engine(reqs, conf)
    assert ref["finish_s"].is_null().to_list() == [False, True]
    assert_same(fast.requests, ref, ("first_token_s", "finish_s"))
