"""Fleet simulation: topologies, rejections, disaggregation, heterogeneous and MIG pools, autoscaling."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from workbench.hardware import RooflineModel, model
from workbench.sim.autoscale import AutoscaleConfig
from workbench.sim.config import SchedulerConfig
from workbench.sim.fleet import compare, gpu_hours, instance_count, instance_stats, latency_cdf, simulate
from workbench.sim.topology import Fleet, Pool, monolithic
from workbench.traces import Fixed, LogNormal, Poisson, Synthetic, TimeVarying
from workbench.traces.synthetic import PiecewiseRate


def table(prompt, output, arrival=None, **cols) -> pl.DataFrame:
    n = len(prompt)
    return pl.DataFrame(
        {
            "request_id": np.arange(n, dtype=np.uint64),
            "arrival_s": np.zeros(n) if arrival is None else np.asarray(arrival, dtype=float),
            "prompt_tokens": pl.Series(prompt, dtype=pl.Int32),
            "output_tokens": pl.Series(output, dtype=pl.Int32),
            **cols,
        }
    )


def heavy_tailed(n=600, rate=12.0, seed=1):
    lengths = LogNormal(prompt_mu=6.5, prompt_sigma=1.2, output_mu=5.0, output_sigma=0.8)
    return Synthetic(arrivals=Poisson(rate), lengths=lengths).generate(n, seed=seed)


def test_monolithic_every_request_once_with_pool_and_instance():
    tr = heavy_tailed(300)
    res = simulate(tr, monolithic(4, router="jsq"))
    r = res.requests
    assert r.height == 300 and r["request_id"].to_list() == list(range(300))
    ok = r.filter(~pl.col("rejected"))
    assert ok["pool"].unique().to_list() == ["main"]
    assert sorted(ok["instance"].unique().to_list()) == [0, 1, 2, 3]
    assert (ok["finish_s"] >= ok["first_token_s"]).all() and (ok["ttft_s"] > 0).all()
    assert res.instances["pool"].to_list() == ["main"] * 4
    # GPU-hours: 4 instances powered for the whole run
    assert gpu_hours(res) == pytest.approx(4 * res.counters["makespan_s"] / 3600, rel=1e-9)


def test_rejections_are_listed_not_dropped():
    cap = 32768  # shorter of context and KV capacity decides; use a pool threshold
    fleet = Fleet(
        pools=(Pool("short", max_tokens=2048, instances=1), Pool("long", max_tokens=cap, instances=1)),
        router="length_pools",
    )
    res = simulate(table([100, 3000, 40000, 1500], [10, 10, 10, 1000]), fleet)
    r = res.requests
    assert r["pool"].to_list() == ["short", "long", None, "long"]  # 1500 + 1000 > 2048 goes long
    assert r["rejected"].to_list() == [False, False, True, False]
    assert "too long for every pool" in r["reject_reason"][2]
    assert res.counters["rejected"] == 1


def test_class_pools_with_fallback_and_rejection():
    classes = pl.Series(["chat", "code", "vision", None], dtype=pl.Utf8)
    fleet = Fleet(
        pools=(Pool("chat", classes=("chat",)), Pool("code", classes=("code",))), router="class_pools"
    )
    res = simulate(table([100] * 4, [5] * 4, request_class=classes), fleet)
    assert res.requests["pool"].to_list() == ["chat", "code", None, None]
    assert res.requests["reject_reason"][2].startswith("no pool for its class")
    fb = Fleet(pools=fleet.pools, router="class_pools", router_params={"fallback": "chat"})
    assert simulate(table([100] * 4, [5] * 4, request_class=classes), fb).requests["pool"].to_list() == [
        "chat", "code", "chat", "chat",
    ]  # fmt: skip


def test_disaggregated_single_request_timing():
    fleet = Fleet(
        pools=(Pool("p", role="prefill"), Pool("d", role="decode")),
        interconnect="ethernet",
    )
    res = simulate(table([4000], [50]), fleet)
    r = res.requests.row(0, named=True)
    perf = RooflineModel("H100", "Llama-3.1-8B")
    assert r["ttft_s"] == pytest.approx(perf.prefill_time(4000), rel=1e-6)
    assert (r["pool"], r["instance"], r["prefill_instance"]) == ("d", 1, 0)
    transfer = 4001 * model("Llama-3.1-8B").kv_bytes_per_token(1) / 12.5e9 + 30e-6
    # decode of 49 tokens on the decode instance starts after the transfer
    decode = sum(perf.decode_time(1, 4001 + k) for k in range(49))
    assert r["finish_s"] - r["first_token_s"] == pytest.approx(transfer + decode, rel=1e-3)


def test_disaggregated_vs_colocated_tradeoff():
    tr = Synthetic(arrivals=Poisson(6.0), lengths=Fixed(3000, 200)).generate(400, seed=3)
    colo = simulate(tr, monolithic(4))
    dis = simulate(
        tr, Fleet(pools=(Pool("p", role="prefill", instances=2), Pool("d", role="decode", instances=2)))
    )
    c, d = compare({"colocated": colo, "disaggregated": dis}).iter_rows(named=True)
    assert d["rejected"] == c["rejected"] == 0
    # decode pool free of prefill interference: lower TPOT
    assert d["tpot_p50_s"] < c["tpot_p50_s"]


def test_decode_admission_waits_for_kv_memory():
    # a decode instance with KV room for about one request at a time: requests wait in its queue
    sched = SchedulerConfig(max_num_seqs=8)
    fleet = Fleet(pools=(Pool("p", role="prefill", instances=2), Pool("d", role="decode", scheduler=sched)))
    tr = table([3000] * 6, [300] * 6)
    res = simulate(tr, fleet)
    assert res.requests["rejected"].sum() == 0
    assert res.counters["kv_peak_blocks"] <= res.instances["kv_capacity_blocks"].max()


def test_heterogeneous_pool_weighted_rr_follows_speed():
    fleet = Fleet(pools=(Pool("mix", gpu={"H100": 1, "A100-80GB": 1}, router="weighted_rr"),))
    tr = Synthetic(arrivals=Poisson(2.0), lengths=Fixed(1000, 20)).generate(300, seed=0)
    res = simulate(tr, fleet)
    counts = res.requests.group_by("instance").len().sort("instance")["len"].to_list()
    assert res.instances["gpu"].to_list() == ["H100", "A100-80GB"]
    h100 = RooflineModel("H100", "Llama-3.1-8B").prefill_time(2048)
    a100 = RooflineModel("A100-80GB", "Llama-3.1-8B").prefill_time(2048)
    assert counts[0] / counts[1] == pytest.approx(a100 / h100, rel=0.05)


def test_mig_instances_count_gpu_share():
    fleet = Fleet(pools=(Pool("mig", gpu="H100", mig="3g", instances=2),))
    res = simulate(table([500] * 4, [20] * 4), fleet)
    assert res.instances["gpu"].to_list() == ["H100-SXM-MIG-3g"] * 2
    assert res.instances["n_gpus"].to_list() == pytest.approx([3 / 7] * 2)
    full = simulate(table([500], [20]), monolithic(1)).requests["ttft_s"][0]
    sliced = simulate(table([500], [20]), fleet).requests["ttft_s"][0]
    assert sliced > 1.5 * full  # 3/7 of the compute


def test_same_seed_same_table_random_router():
    tr = heavy_tailed(200)
    a = simulate(tr, monolithic(3, router="p2c"), seed=5).requests
    b = simulate(tr, monolithic(3, router="p2c"), seed=5).requests
    c = simulate(tr, monolithic(3, router="p2c"), seed=6).requests
    assert a.equals(b)
    assert not a["instance"].equals(c["instance"])


def bursty(seed=0):
    profile = PiecewiseRate(edges_s=np.array([0.0, 60.0, 120.0, 180.0]), rates=np.array([1.0, 25.0, 1.0, 1.0]))
    return Synthetic(arrivals=TimeVarying(profile, cv=2.0), lengths=Fixed(2000, 200)).generate(
        duration_s=300.0, seed=seed
    )


@pytest.mark.parametrize("policy", ["kpa", "saturation", "delayed_off", "threshold"])
def test_autoscalers_scale_up_for_a_burst_and_save_gpu_hours(policy):
    tr = bursty()
    auto = AutoscaleConfig(policy=policy, min_instances=1, max_instances=6, setup_delay_s=20, idle_timeout_s=20,
                           target_concurrency=8, up_threshold=8, down_threshold=1)  # fmt: skip
    res = simulate(tr, Fleet(pools=(Pool("a", instances=1, autoscale=auto),)))
    static = simulate(tr, monolithic(6))
    assert res.requests["rejected"].sum() == 0
    assert res.counters["cold_starts"] >= 1
    tl = res.counters["timeline"]
    assert tl["instances"].max() > 1 and tl["instances"].max() <= 6
    assert gpu_hours(res) < gpu_hours(static)
    counts = instance_count(res)
    assert counts["instances"].max() == tl["instances"].max()
    assert counts["instances"][:-1].min() >= 1 and counts["instances"][-1] == 0  # all off at the end


def test_scale_from_zero_holds_requests_until_cold_start():
    auto = AutoscaleConfig(policy="kpa", min_instances=0, max_instances=2, setup_delay_s=30)
    res = simulate(
        table([100, 100], [5, 5], arrival=[1.0, 2.0]), Fleet(pools=(Pool("z", instances=0, autoscale=auto),))
    )
    r = res.requests
    assert r["rejected"].sum() == 0
    assert (r["first_token_s"] > 30.0).all()  # waited for the cold start (first tick at t = 2 s)
    assert res.counters["cold_starts"] == 1


def test_analysis_helpers_shapes():
    tr = heavy_tailed(150)
    results = {p: simulate(tr, monolithic(2, router=p)) for p in ("jsq", "round_robin")}
    cdf = latency_cdf(results, points=11)
    assert cdf.height == 2 * 2 * 11 and set(cdf["policy"]) == {"jsq", "round_robin"}
    stats = instance_stats(results)
    per_policy = stats.group_by("policy").agg(pl.col("requests").sum())["requests"].to_list()
    assert stats.height == 4 and per_policy == [150, 150]
    table_ = compare(results, load="x1")
    assert table_.columns[:3] == ["policy", "load", "ttft_p50_s"]
    assert not math.isnan(table_["gpu_hours"][0])


def test_mooncake_lmetric_far_ahead_of_round_robin(shared_traces):
    """Seed-paper direction (LMetric, arXiv 2603.15202): on Mooncake with prefix caching, LMetric's TTFT is far
    below round robin's; checked on the first 1,500 requests at 2x speed on 8 instances."""
    from workbench.traces import load, rescale

    tr = rescale(load(shared_traces / "mooncake_synthetic_trace.jsonl"), 2.0)
    tr = tr.with_requests(tr.requests.head(1500))
    res = {p: simulate(tr, monolithic(8, router=p)) for p in ("round_robin", "lmetric", "jsq")}
    t = compare(res).sort("policy")
    rr, lm, jsq = (
        t.filter(pl.col("policy") == p).row(0, named=True) for p in ("round_robin", "lmetric", "jsq")
    )
    assert lm["ttft_p50_s"] < 0.3 * rr["ttft_p50_s"]
    assert lm["ttft_p99_s"] < rr["ttft_p99_s"]
    assert lm["ttft_p50_s"] < jsq["ttft_p50_s"]
    assert lm["hit_rate"] > 2 * rr["hit_rate"]


def test_summary_hit_rate_does_not_overflow_int32():
    from workbench.sim.fleet import summarize
    from workbench.sim.result import REQUEST_SCHEMA, SimResult

    n = 30_000  # 30,000 x 100,000 prompt tokens > 2**31
    req = pl.DataFrame(
        {
            "request_id": np.arange(n), "arrival_s": np.zeros(n), "admitted_s": np.zeros(n),
            "first_token_s": np.ones(n), "finish_s": np.ones(n) * 2, "ttft_s": np.ones(n), "tpot_s": np.ones(n),
            "e2e_s": np.ones(n) * 2, "queue_s": np.zeros(n), "prompt_tokens": np.full(n, 100_000),
            "output_tokens": np.full(n, 2), "cached_tokens": np.full(n, 50_000), "preemptions": np.zeros(n),
            "instance": np.zeros(n), "pool": ["a"] * n, "rejected": [False] * n, "reject_reason": [None] * n,
        }
    ).cast(REQUEST_SCHEMA)  # fmt: skip
    res = SimResult(requests=req, segments=pl.DataFrame(), instances=pl.DataFrame())
    assert summarize(res)["hit_rate"] == pytest.approx(0.5)


def test_length_pools_without_output_route_by_prompt_within_real_capacity():
    # short pool on an L4 (38,035 KV tokens for Llama-3.1-8B), long pool on an H100 (context 131,072)
    pools = (Pool("short", gpu="L4", max_tokens=2048), Pool("long"))
    by_prompt = Fleet(pools=pools, router="length_pools", router_params={"include_output": False})
    res = simulate(table([2000, 1000, 3000, 200_000], [500, 50_000, 10, 10]), by_prompt)
    r = res.requests
    # 2000 + 500: the prompt is under the threshold, the output is not counted -> short;
    # 1000 + 50,000 is under the threshold by prompt but no L4 instance holds 51,000 tokens -> long
    assert r["pool"].to_list() == ["short", "long", "long", None]
    assert r["reject_reason"][3] == "too long for every pool (200000+10 tokens)"
    with_output = Fleet(pools=pools, router="length_pools")
    assert simulate(table([2000], [500]), with_output).requests["pool"].to_list() == ["long"]


@pytest.mark.parametrize("mix", [{"H100": 2, "A100-40GB": 1}, {"A100-40GB": 1, "H100": 2}])
def test_heterogeneous_pool_serves_what_its_largest_instance_holds(mix):
    # Llama-3.1-70B on tp4: an A100-40GB instance holds about 15,000 KV tokens, an H100 one about 487,000
    fleet = Fleet(pools=(Pool("m", gpu=mix, model="Llama-3.1-70B", tp=4, router="round_robin"),))
    res = simulate(table([20_000] * 6 + [500] * 6, [100] * 12, arrival=np.arange(12) * 0.5), fleet)
    r = res.requests
    assert not r["rejected"].any()
    small = res.instances.filter(pl.col("gpu") == "A100-40GB")["instance"][0]
    big = r.head(6)["instance"].to_list()
    assert small not in big and len(set(big)) == 2  # round robin over the two instances that hold them
    assert small in r.tail(6)["instance"].to_list()  # short requests use every instance


HETERO_AUTO = AutoscaleConfig(policy="kpa", min_instances=1, max_instances=3, setup_delay_s=5.0, interval_s=1.0,
                              target_concurrency=8.0)  # fmt: skip


def test_autoscaled_heterogeneous_pool_starts_the_off_member_a_long_request_needs():
    # members A10G, A10G, H100 (Llama-3.1-8B: 38,035 and 450,912 KV tokens); only the first A10G is on
    fleet = Fleet(pools=(Pool("m", gpu={"A10G": 2, "H100": 1}, instances=1, autoscale=HETERO_AUTO),))
    res = simulate(table([100, 60_000, 100], [10, 10, 10], arrival=[0.0, 0.5, 1.0]), fleet)
    r = res.requests
    assert not r["rejected"].any()
    h100 = res.instances.filter(pl.col("gpu") == "H100")["instance"][0]
    assert r["instance"][1] == h100 and r["instance"][0] != h100
    # held from 0.5 s until the first tick after it (1 s) started the H100, which took 5 s to come on
    assert r["admitted_s"][1] == pytest.approx(6.0)
    assert res.counters["cold_starts"] == 1  # the policy alone would not have scaled this load


def test_request_held_for_a_failed_member_is_served_after_repair_or_rejected_at_the_end():
    from workbench.sim.engine import PRIO_CONTROL

    fleet = Fleet(pools=(Pool("m", gpu={"A10G": 1, "H100": 1}, instances=2),))
    reqs = table([100, 60_000], [10, 10], arrival=[0.0, 2.0])
    for repair, admitted in ((3.0, 4.0), (None, None)):

        def setup(sim, ctl, repair=repair):
            big = next(i for i in sim.instances if i.config.gpu == "H100")
            sim.engine.schedule(1.0, PRIO_CONTROL, lambda i, now: sim.fail_instance(i, repair), big)

        r = simulate(reqs, fleet, setup=setup).requests
        assert r["admitted_s"][1] == (pytest.approx(admitted) if admitted else None)
        assert r["rejected"].to_list() == [False, repair is None]
        if repair is None:  # nothing came back: recorded as rejected, with the reason, not lost
            assert r["reject_reason"][1] == (
                "no instance of pool 'm' that holds its 60010 tokens was on before the end of the simulation"
            )


def test_transferred_request_no_decode_instance_can_hold_is_rejected_not_held():
    fleet = Fleet(pools=(Pool("p", role="prefill", gpu="H100"), Pool("d", role="decode", gpu="A10G")))
    r = simulate(table([100, 60_000], [10, 10], arrival=[0.0, 0.5]), fleet).requests
    assert r["rejected"].to_list() == [False, True]
    assert r["reject_reason"][1] == (  # the instance rule's reason (2,377 blocks of 16 = 38,032 tokens)
        "longer than the KV cache: 60000+10 tokens need 3751 KV blocks, instance 1 holds 2377 [pool 'd']"
    )


def test_heterogeneous_pool_estimate_is_order_free_and_between_its_gpus():
    from workbench.sim.routing import Request

    req = Request(prompt_tokens=2000, output_tokens=200)

    def estimate(gpu, **pool):
        box = {}
        fleet = Fleet(pools=(Pool("m", gpu=gpu, **pool),))
        simulate(table([10], [1]), fleet, setup=lambda _, c: box.update(c=c))
        return box["c"].estimate(0, req)

    h100, a100 = estimate("H100"), estimate("A100-80GB")
    ab, ba = estimate({"H100": 1, "A100-80GB": 1}), estimate({"A100-80GB": 1, "H100": 1})
    assert ab == pytest.approx(ba)
    for k in (0, 1):  # latency and energy: the mean of the two types
        assert ab[k] == pytest.approx((h100[k] + a100[k]) / 2)
    assert h100[0] < a100[0]
    # weighted by the live instances: with the A100 member off, the pool is its H100
    auto = AutoscaleConfig(policy="kpa", min_instances=1, max_instances=2)
    live_h100 = estimate({"H100": 1, "A100-80GB": 1}, instances=1, autoscale=auto)
    assert live_h100 == pytest.approx(h100)


def test_views_carry_each_pools_block_size():
    pools = (Pool("a", max_tokens=4096, scheduler=SchedulerConfig(block_size=32)), Pool("b"))
    box = {}
    fleet = Fleet(pools=pools, router="length_pools")
    simulate(table([10], [1]), fleet, setup=lambda _, c: box.setdefault("c", c))
    ctl = box["c"]
    assert [v.kv_block_tokens for v in ctl.views] == [32, 16]
    assert ctl.pool_view.kv_block_tokens.tolist() == [32, 16]


class _CheckingRouter:
    """Checks the view's vectorised prefix match against each instance's own walk at every decision."""

    name = "checking"

    def __init__(self):
        from workbench.sim.routing import get_router

        self.inner = get_router("lmetric")
        self.decisions = self.matched = 0

    def choose(self, request, view, now):
        got = view.prefix_match_tokens(request)
        assert got.tolist() == [inst.prefix_match_tokens(request) for inst in view.instances]
        self.decisions += 1
        self.matched += int(got.any())
        return self.inner.choose(request, view, now)


def test_view_prefix_match_equals_instance_walk():
    from workbench.traces import Sessions

    sessions = Sessions(mean_turns=3.0, think_s=5.0, system_prompt_tokens=1024, n_system_prompts=4,
                        system_prompt_share=0.6, block_tokens=512)  # fmt: skip
    lengths = LogNormal(prompt_mu=7.0, prompt_sigma=0.8, output_mu=4.0, output_sigma=0.5)
    tr = Synthetic(arrivals=Poisson(20.0), lengths=lengths, sessions=sessions).generate(600, seed=2)
    checker = _CheckingRouter()
    res = simulate(tr, monolithic(6), setup=lambda sim, ctl: ctl.inner.__setitem__(0, checker))
    assert checker.decisions == 600 and checker.matched > 100
    assert res.requests["cached_tokens"].sum() > 0


class _Recorder:
    """Always picks position 0 and records the view's outstanding tokens there."""

    name = "recorder"

    def __init__(self):
        self.seen = []

    def choose(self, request, view, now):
        self.seen.append(int(view.outstanding_tokens[0]))
        return 0


def test_least_tokens_load_counts_decode_tokens_still_to_generate():
    # one long decode on instance 0; short requests arriving every 2 s see its remaining output shrink
    rec = _Recorder()
    tr = table([100] + [10] * 4, [3000] + [1] * 4, arrival=[0.0, 2.0, 4.0, 6.0, 8.0])
    res = simulate(tr, monolithic(2), setup=lambda _, ctl: ctl.inner.__setitem__(0, rec))
    assert res.requests["instance"].to_list() == [0] * 5
    first, *later = rec.seen[1:]
    assert first <= 3000 and later == sorted(later, reverse=True) and len(set(later)) == len(later)
    assert later[-1] < 3000 - 100  # the long request generated well over 100 tokens by t = 6 s
