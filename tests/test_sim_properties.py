"""Property tests of the instance simulator on random small workloads (hypothesis)."""

from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.sim import InstanceConfig, LinearPerfModel, SchedulerConfig, Simulation

PERF = LinearPerfModel(
    overhead_s=3e-3, prefill_s_per_token=4e-5, prefill_attn_s=2e-9, decode_s_per_seq=3e-4, decode_attn_s=1e-8
)
HASH_BLOCK = 32


@st.composite
def workloads(draw):
    n = draw(st.integers(1, 30))
    gaps = draw(st.lists(st.floats(0.0, 0.3), min_size=n, max_size=n))
    prompt = draw(st.lists(st.integers(1, 600), min_size=n, max_size=n))
    output = draw(st.lists(st.integers(1, 80), min_size=n, max_size=n))
    with_hashes = draw(st.booleans())
    hashes = None
    if with_hashes:  # a small alphabet so prefixes repeat across requests
        hashes = [
            draw(st.lists(st.integers(0, 3), min_size=p // HASH_BLOCK, max_size=p // HASH_BLOCK))
            for p in prompt
        ]
    max_seqs = draw(st.integers(1, 16))
    sched = SchedulerConfig(
        max_num_seqs=max_seqs,
        max_num_batched_tokens=draw(st.integers(max(max_seqs, 16), 1024)),
        chunked_prefill=draw(st.booleans()),
        prefill_chunk_tokens=draw(st.none() | st.integers(16, 512)),
        priority=draw(st.sampled_from(["decode_first", "prefill_first"])),
        watermark=draw(st.sampled_from([0.0, 0.01, 0.1])),
    )
    kv = draw(st.integers(4, 200)) * 16
    n_inst = draw(st.integers(1, 3))
    data = {
        "request_id": pl.Series(range(n), dtype=pl.UInt64),
        "arrival_s": pl.Series(np.cumsum(gaps), dtype=pl.Float64),
        "prompt_tokens": pl.Series(prompt, dtype=pl.Int32),
        "output_tokens": pl.Series(output, dtype=pl.Int32),
    }
    if hashes is not None:
        # cumulative ids: equal id at position j means equal prefix up to block j (Mooncake convention)
        data["prefix_hashes"] = pl.Series(
            [[hash(tuple(h[: j + 1])) % 2**63 for j in range(len(h))] for h in hashes], dtype=pl.List(pl.UInt64)
        )
    return pl.DataFrame(data), sched, kv, n_inst


def run(reqs, sched, kv, n_inst, *, skipping=True, seed=0):
    sim = Simulation(seed=seed, prefix_block_tokens=HASH_BLOCK)
    sim.audit = True  # recount KV blocks, decode set and cache references before every step
    conf = InstanceConfig(
        perf=PERF,
        kv_capacity_tokens=kv,
        scheduler=SchedulerConfig(**{**_fields(sched), "event_skipping": skipping}),
    )
    for _ in range(n_inst):
        sim.add_instance(conf)
    res = sim.run(reqs)
    for inst in sim.instances:  # all requests gone: only unreferenced cached blocks remain
        inst.audit()
        assert not inst.running and inst.kv.free + inst.prefix.evictable_blocks == inst.kv.capacity
        assert inst.prefix.unreferenced == len(inst.prefix.lru_order()) == len(inst.prefix)
    return res


def _fields(sched):
    return {f: getattr(sched, f) for f in sched.__slots__}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workloads())
def test_invariants(case):
    reqs, sched, kv, n_inst = case
    res = run(reqs, sched, kv, n_inst)
    r = res.requests
    # every request appears exactly once, in trace order
    assert r["request_id"].to_list() == reqs["request_id"].to_list()
    # rejected exactly when it can never run; everything else finished
    too_big = (r["prompt_tokens"] + r["output_tokens"]) > kv
    if not sched.chunked_prefill:
        too_big = too_big | (r["prompt_tokens"] > sched.max_num_batched_tokens)
    assert (r["rejected"] == too_big).all()
    ok = r.filter(~pl.col("rejected"))
    assert ok["finish_s"].is_not_null().all()
    # time never goes back along a request
    assert (ok["admitted_s"] >= ok["arrival_s"]).all()
    assert (ok["first_token_s"] > ok["admitted_s"]).all()
    assert (ok["finish_s"] >= ok["first_token_s"]).all()
    # tokens generated = tokens requested
    assert res.counters["tokens_generated"] == ok["output_tokens"].sum()
    # KV use never exceeds capacity
    cap = kv // 16
    assert res.counters["kv_peak_blocks"] <= cap
    assert (res.segments["kv_blocks_used"].max() or 0) <= cap
    # per-instance segments tile time: ordered, non-overlapping, contiguous
    seg = res.segments
    assert (seg["end_s"] >= seg["start_s"]).all()
    for _, g in seg.group_by("instance"):
        gap = (g["start_s"].shift(-1) - g["end_s"]).drop_nulls()
        assert gap.len() == 0 or gap.abs().max() < 1e-9
    # cached tokens never exceed the prompt
    assert (ok["cached_tokens"] < ok["prompt_tokens"]).all()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workloads())
def test_same_seed_identical_and_skipping_exact(case):
    reqs, sched, kv, n_inst = case
    a = run(reqs, sched, kv, n_inst, seed=3)
    b = run(reqs, sched, kv, n_inst, seed=3)
    assert a.requests.equals(b.requests)
    assert a.segments.equals(b.segments)
    slow = run(reqs, sched, kv, n_inst, skipping=False)
    for col in ("admitted_s", "first_token_s", "finish_s"):
        x, y = a.requests[col].to_numpy(), slow.requests[col].to_numpy()
        assert np.allclose(x, y, rtol=0, atol=1e-9, equal_nan=True), col
    assert a.counters["preemptions"] == slow.counters["preemptions"]
    assert a.counters["iterations"] == slow.counters["iterations"]
