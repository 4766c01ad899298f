"""Unit and property tests of the routing policies on hand-built candidate states."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.errors import ConfigError
from workbench.sim.routing import REJECT, ROUTERS, ArrayCandidates, Request, Router, get_router

REQ = Request(request_id=7, prompt_tokens=1000, output_tokens=100, prefix_hashes=[1, 2, 3, 4])


def view(**kw) -> ArrayCandidates:
    n = len(next(iter(v for v in kw.values() if hasattr(v, "__len__"))))
    return ArrayCandidates(n=n, **kw)


def test_registry_names_and_protocol():
    assert set(ROUTERS) == {
        "round_robin", "random", "jsq", "p2c", "least_tokens", "jiq", "weighted_rr", "pack", "session",
        "prefix_affinity", "sglang_cache_aware", "llmd", "dynamo", "vllm_v1", "lmetric", "kv_aware",
        "linear_weights",
        "length_pools", "class_pools", "multi_objective",
    }  # fmt: skip
    for name in ROUTERS:
        assert isinstance(get_router(name, rng=np.random.default_rng(0)), Router)


def test_randomised_routers_need_a_stream():
    # no hidden fallback generator: a randomised router is handed its named stream
    for name in ("random", "p2c", "jiq"):
        with pytest.raises(ConfigError, match="rng="):
            get_router(name)
    assert get_router("jsq").rng is None


def test_unknown_router_lists_valid_names():
    with pytest.raises(ConfigError, match=r"unknown router 'lmetrc'.*jsq.*lmetric"):
        get_router("lmetrc")
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) \['bogus'\].*cache_threshold"):
        get_router("sglang_cache_aware", bogus=1)
    with pytest.raises(ConfigError, match="cache_threshold"):
        get_router("sglang_cache_aware", cache_threshold=1.5)
    with pytest.raises(ConfigError, match="batch"):
        get_router("lmetric", batch="queue")


def test_round_robin_cycles():
    r = get_router("round_robin")
    v = view(outstanding=[5, 0, 0])
    assert [r.choose(REQ, v, 0.0) for _ in range(7)] == [0, 1, 2, 0, 1, 2, 0]


def test_random_is_seeded_and_uniform():
    v = view(outstanding=[0] * 4)
    a = [get_router("random", rng=np.random.default_rng(3)).choose(REQ, v, 0) for _ in range(1)]
    r1, r2 = (
        get_router("random", rng=np.random.default_rng(3)),
        get_router("random", rng=np.random.default_rng(3)),
    )
    s1 = [r1.choose(REQ, v, 0) for _ in range(400)]
    assert s1 == [r2.choose(REQ, v, 0) for _ in range(400)]
    assert a[0] == s1[0]
    counts = np.bincount(s1, minlength=4)
    assert counts.min() > 70  # 100 expected each


def test_jsq_least_outstanding_lowest_index_on_ties():
    r = get_router("jsq")
    assert r.choose(REQ, view(outstanding=[3, 1, 1, 2]), 0) == 1
    assert r.choose(REQ, view(outstanding=[0, 0]), 0) == 0


def test_p2c_picks_less_loaded_of_two():
    r = get_router("p2c", rng=np.random.default_rng(0))
    # candidate 3 is idle, the others heavily loaded: whenever 3 is sampled it must win
    v = view(outstanding=[9, 9, 9, 0])
    picks = [r.choose(REQ, v, 0) for _ in range(300)]
    assert 0.4 < np.mean(np.array(picks) == 3) < 0.6  # 3 sampled in half of the pairs
    assert get_router("p2c", rng=np.random.default_rng(0)).choose(REQ, view(outstanding=[4, 1]), 0) == 1
    assert get_router("p2c", rng=np.random.default_rng(0)).choose(REQ, view(outstanding=[4]), 0) == 0


def test_least_tokens():
    assert (
        get_router("least_tokens").choose(REQ, view(outstanding=[0, 9, 9], outstanding_tokens=[900, 50, 60]), 0)
        == 1
    )


def test_jiq_prefers_idle():
    r = get_router("jiq", rng=np.random.default_rng(1))
    v = view(outstanding=[2, 0, 3, 0])
    assert {r.choose(REQ, v, 0) for _ in range(50)} == {1, 3}
    assert {r.choose(REQ, view(outstanding=[1, 2]), 0) for _ in range(50)} == {0, 1}


def test_weighted_rr_smooth_sequence():
    r = get_router("weighted_rr")
    v = view(outstanding=[0, 0, 0], speed=[5, 1, 1])
    # nginx smooth WRR with weights 5,1,1 gives a a b a c a a
    assert [r.choose(REQ, v, 0) for _ in range(7)] == [0, 0, 1, 0, 2, 0, 0]
    seq = [r.choose(REQ, view(outstanding=[0, 0], speed=[2.0, 1.0]), 0) for _ in range(300)]
    assert abs(np.mean(np.array(seq) == 0) - 2 / 3) < 0.01


def test_session_sticky_and_stable_under_scaling():
    r = get_router("session")
    v8 = view(outstanding=[0] * 8, ids=np.arange(8))
    reqs = [Request(request_id=k, session_id=k % 500) for k in range(2000)]
    first = [int(v8.ids[r.choose(q, v8, 0)]) for q in reqs]
    assert first[:500] == first[500:1000]  # same session -> same instance
    counts = np.bincount(first, minlength=8)
    assert counts.min() > 100  # spread over all instances
    v9 = view(outstanding=[0] * 9, ids=np.arange(9))
    after = [int(v9.ids[r.choose(q, v9, 0)]) for q in reqs[:500]]
    moved = [a != b for a, b in zip(first[:500], after, strict=True)]
    assert all(a == 8 for a, m in zip(after, moved, strict=True) if m)  # only moves to the new instance
    assert 0.03 < np.mean(moved) < 0.25  # about 1/9 move
    v7 = view(outstanding=[0] * 7, ids=np.array([0, 1, 2, 4, 5, 6, 7]))  # instance 3 removed
    after7 = [int(v7.ids[r.choose(q, v7, 0)]) for q in reqs[:500]]
    assert all(a == b for a, b in zip(first[:500], after7, strict=True) if a != 3)
    assert 3 not in after7 and 3 in first[:500]


def cached(*sets):
    return [set(s) for s in sets]


def test_prefix_affinity_longest_match_then_least_load():
    r = get_router("prefix_affinity")
    v = view(outstanding=[0, 5, 3], cached_hashes=cached([1], [1, 2, 3], [1, 2, 3, 9]), prefix_block_tokens=100)
    assert r.choose(REQ, v, 0) == 2  # equal 300-token match on 1 and 2; 2 has less load
    assert v.prefix_match_tokens(REQ).tolist() == [100, 300, 300]
    v2 = view(outstanding=[4, 0, 3], cached_hashes=cached([], [], []))
    assert r.choose(REQ, v2, 0) == 1


def test_sglang_cache_aware_three_branches():
    r = get_router("sglang_cache_aware")
    hashes = cached([1, 2, 3, 4], [], [])
    # imbalanced: 100 - 10 > 64 and 100 > 15 -> least loaded, even though 0 has the full match
    v = view(outstanding=[100, 10, 30], cached_hashes=hashes, prefix_block_tokens=250, free_kv_blocks=[0, 0, 9])
    assert r.choose(REQ, v, 0) == 1
    # balanced, match ratio 1.0 >= 0.3 -> cached instance
    v = view(outstanding=[50, 10, 30], cached_hashes=hashes, prefix_block_tokens=250, free_kv_blocks=[0, 0, 9])
    assert r.choose(REQ, v, 0) == 0
    # balanced, best match 250/1000 = 0.25 < 0.3 -> most free KV
    hashes = cached([1], [], [])
    v = view(outstanding=[50, 10, 30], cached_hashes=hashes, prefix_block_tokens=250, free_kv_blocks=[5, 1, 9])
    assert r.choose(REQ, v, 0) == 2
    # abs gap > 64 but max <= 1.5 min: still balanced
    v = view(outstanding=[200, 150, 180], cached_hashes=cached([1, 2], [], []), prefix_block_tokens=250)
    assert r.choose(REQ, v, 0) == 0


def test_llmd_weighted_scorers():
    r = get_router("llmd")
    # scores: queue (min-max on waiting), kv = 1 - util, prefix = match ratio
    # 0: q=1.0 (w=0), kv 0.1 -> 2*1 + 2*0.1 + 3*0 = 2.2
    # 1: q=0.0 (w=10), kv 0.9 -> 0 + 1.8 + 3*1.0 = 4.8
    # 2: q=0.5 (w=5), kv 0.5 -> 1 + 1 + 3*0.5 = 3.5
    v = view(waiting=[0, 10, 5], kv_utilization=[0.9, 0.1, 0.5], cached_hashes=cached([], [1, 2, 3, 4], [1, 2]),
             prefix_block_tokens=250)  # fmt: skip
    assert r.choose(REQ, v, 0) == 1
    assert get_router("llmd", prefix_weight=0).choose(REQ, v, 0) == 0  # 2 + 0.2 > 0 + 1.8, > 1 + 1


def test_dynamo_cost():
    r = get_router("dynamo")
    # cost = uncached prompt tokens / 16 + blocks used
    # 0: 1000/16 = 62.5 + 10 = 72.5 ; 1: (1000-500)/16 = 31.25 + 50 = 81.25 ; 2: 0 + 70 = 70
    v = view(
        kv_blocks_used=[10, 50, 70], cached_hashes=cached([], [1, 2], [1, 2, 3, 4]), prefix_block_tokens=250
    )
    assert r.choose(REQ, v, 0) == 2
    v = view(
        kv_blocks_used=[10, 50, 80], cached_hashes=cached([], [1, 2], [1, 2, 3, 4]), prefix_block_tokens=250
    )
    assert r.choose(REQ, v, 0) == 0


def test_vllm_v1_score():
    r = get_router("vllm_v1")
    # 4*w + r: 0 -> 4*2+0 = 8, 1 -> 4*0+7 = 7, 2 -> 4*1+5 = 9
    assert r.choose(REQ, view(waiting=[2, 0, 1], running=[0, 7, 5]), 0) == 1


def test_lmetric_score():
    r = get_router("lmetric")
    # P = queued + 1000 - match; score P * (running + 1)
    # 0: 1000 * (3 + 1) = 4000 ; 1: (2000 + 0) * (0 + 1) = 2000 ; 2: (500 + 500) * (1 + 1) = 2000 -> tie -> 1
    v = view(queued_prefill_tokens=[0, 2000, 500], running=[3, 0, 1], outstanding=[3, 9, 1],
             cached_hashes=cached([], [1, 2, 3, 4], [1, 2]), prefix_block_tokens=250)  # fmt: skip
    assert r.choose(REQ, v, 0) == 1
    # with B = running + waiting: 1 scores 2000 * 10 -> 2 wins
    assert get_router("lmetric", batch="outstanding").choose(REQ, v, 0) == 2
    # idle instances still distinguished by P (the +1)
    v = view(queued_prefill_tokens=[300, 100], running=[0, 0])
    assert r.choose(REQ, v, 0) == 1


def test_length_pools_threshold_and_reject():
    r = get_router("length_pools")
    v = view(outstanding=[0, 0], max_tokens=[8192, 2048], names=("long", "short"))
    assert r.choose(Request(prompt_tokens=1000, output_tokens=500), v, 0) == 1
    assert r.choose(Request(prompt_tokens=2000, output_tokens=500), v, 0) == 0  # 2500 > 2048
    assert get_router("length_pools", include_output=False).choose(
        Request(prompt_tokens=2000, output_tokens=500), v, 0) == 1  # fmt: skip
    assert r.choose(Request(prompt_tokens=9000, output_tokens=1), v, 0) == REJECT
    assert "too long" in r.reject_reason


def test_class_pools_routes_by_class_with_fallback():
    classes = (frozenset({"chat"}), frozenset({"code", "chat"}), frozenset({"batch"}))
    v = view(outstanding=[5, 2, 0], classes=classes, names=("a", "b", "c"))
    r = get_router("class_pools", fallback="c")
    assert r.choose(Request(request_class="chat"), v, 0) == 1  # a and b serve chat; b less loaded
    assert r.choose(Request(request_class="code"), v, 0) == 1
    assert r.choose(Request(request_class="vision"), v, 0) == 2  # fallback
    assert r.choose(Request(request_class=None), v, 0) == 2
    assert get_router("class_pools").choose(Request(request_class="vision"), v, 0) == REJECT


def test_multi_objective_filter_then_weighted_sum():
    v = view(outstanding=[0, 0, 0], accuracy=[0.9, 0.7, 0.8], latency_s=[2.0, 1.0, 1.0], energy_j=[100, 10, 50])
    # a_min 0.75 keeps 0 and 2: w=0.5 -> 0: .5*1 + .5*1 = 1.0 ; 2: .5*.5 + .5*.5 = 0.5 -> 2
    assert get_router("multi_objective", a_min=0.75, w=0.5).choose(REQ, v, 0) == 2
    # a_min 0 -> 1 is cheapest on both
    assert get_router("multi_objective", a_min=0.0, w=0.5).choose(REQ, v, 0) == 1
    # latency only among 0 and 2 with equal latency... w=1 on all -> tie 1 and 2 -> 1
    assert get_router("multi_objective", w=1.0).choose(REQ, v, 0) == 1
    assert get_router("multi_objective", a_min=0.95).choose(REQ, v, 0) == REJECT


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=1, max_size=12), st.integers(0, 2**32))
def test_every_router_returns_a_valid_position(loads, seed):
    n = len(loads)
    rng = np.random.default_rng(seed)
    v = view(outstanding=loads, waiting=loads, running=loads, queued_prefill_tokens=[x * 10 for x in loads],
             outstanding_tokens=loads, kv_utilization=rng.random(n), kv_blocks_used=loads, free_kv_blocks=loads,
             cached_hashes=[set(rng.integers(0, 5, 3).tolist()) for _ in range(n)], latency_s=rng.random(n),
             energy_j=rng.random(n))  # fmt: skip
    req = Request(
        request_id=seed, prompt_tokens=100, output_tokens=10, prefix_hashes=[0, 1, 2], session_id=seed
    )
    for name in ROUTERS:
        i = get_router(name, rng=np.random.default_rng(seed)).choose(req, v, 0.0)
        assert 0 <= i < n or (name == "class_pools" and i == REJECT)
    # JSQ really picks a minimum
    assert loads[get_router("jsq").choose(req, v, 0)] == min(loads)
