"""Instance simulator: exact single-request timings, scheduler, KV and prefix cache, lifecycle hooks."""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl
import pytest

from workbench import traces
from workbench.errors import ConfigError, WorkloadError
from workbench.hardware.perf import Batch
from workbench.sim import (
    PRIO_CONTROL,
    InstanceConfig,
    LinearPerfModel,
    SchedulerConfig,
    SimConfig,
    Simulation,
    simulate,
)

PERF = LinearPerfModel(
    overhead_s=4e-3, prefill_s_per_token=6e-5, prefill_attn_s=1e-9, decode_s_per_seq=2e-4, decode_attn_s=2e-8
)


def frame(arrival, prompt, output, hashes=None) -> pl.DataFrame:
    n = len(arrival)
    data = {
        "request_id": pl.Series(range(n), dtype=pl.UInt64),
        "arrival_s": pl.Series(arrival, dtype=pl.Float64),
        "prompt_tokens": pl.Series(prompt, dtype=pl.Int32),
        "output_tokens": pl.Series(output, dtype=pl.Int32),
    }
    if hashes is not None:
        data["prefix_hashes"] = pl.Series(hashes, dtype=pl.List(pl.UInt64))
    return pl.DataFrame(data)


def cfg(kv=100_000, perf=PERF, **sched) -> InstanceConfig:
    return InstanceConfig(perf=perf, kv_capacity_tokens=kv, scheduler=SchedulerConfig(**sched))


def random_workload(n=400, rate=20.0, seed=0, hashes=False) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    arrival = np.cumsum(rng.exponential(1 / rate, n))
    prompt = rng.integers(1, 1500, n)
    output = rng.integers(1, 200, n)
    hs = None
    if hashes:
        hs = [[int(rng.integers(0, 3))] + [int(x) for x in rng.integers(3, 6, p // 64)] for p in prompt]
        hs = [h[: p // 64] for h, p in zip(hs, prompt, strict=True)]
    return frame(arrival.tolist(), prompt.tolist(), output.tolist(), hs)


@pytest.mark.parametrize("perf", [PERF, None], ids=["linear", "roofline"])
def test_single_request_ttft_tpot_equal_perf_model(perf):
    conf = InstanceConfig(perf=perf, scheduler=SchedulerConfig())
    model = conf.performance_model()
    prompt, output = 1000, 50
    res = simulate(frame([0.25], [prompt], [output]), conf)
    row = res.requests.row(0, named=True)
    prefill = model.iteration_time(Batch(prefill_tokens=prompt, prefill_context=prompt * prompt / 2))
    decode = model.decode_run_time(1, prompt, output - 1)
    assert row["ttft_s"] == pytest.approx(prefill, rel=1e-12)
    assert row["tpot_s"] == pytest.approx(decode / (output - 1), rel=1e-12)
    assert row["e2e_s"] == pytest.approx(prefill + decode, rel=1e-12)
    assert row["queue_s"] == 0.0
    seg = res.segments
    # idle until the arrival, then one busy segment (prefill and decode runs share batch size 1: merged)
    assert seg["state"].to_list() == ["idle", "busy"]
    assert seg["end_s"].to_list() == [0.25, pytest.approx(0.25 + prefill + decode, rel=1e-12)]
    assert seg["iterations"].sum() == output
    assert seg["prefill_tokens"].sum() == prompt


def test_event_skipping_matches_per_iteration_loop():
    reqs = random_workload(300, rate=30.0, seed=3, hashes=True)
    fast = simulate(reqs, cfg(kv=20_000, max_num_seqs=32))
    slow = simulate(reqs, cfg(kv=20_000, max_num_seqs=32, event_skipping=False))
    assert fast.counters["preemptions"] == slow.counters["preemptions"]
    for col in ("first_token_s", "finish_s", "admitted_s"):
        assert np.allclose(fast.requests[col].to_numpy(), slow.requests[col].to_numpy(), rtol=0, atol=1e-9)
    assert fast.counters["iterations"] == slow.counters["iterations"]
    assert fast.counters["events"] < 0.6 * slow.counters["events"]


def test_request_that_never_fits_is_rejected_not_hung():
    reqs = frame([0.0, 0.1, 0.2], [100, 50_000, 100], [10, 10, 10])
    res = simulate(reqs, cfg(kv=4_096))
    r = res.requests
    assert r["rejected"].to_list() == [False, True, False]
    assert "KV blocks" in r["reject_reason"][1]
    assert r["finish_s"].is_null().to_list() == [False, True, False]


def test_tiny_kv_preempts_and_finishes_everything():
    reqs = random_workload(200, rate=200.0, seed=1)
    res = simulate(reqs, cfg(kv=2_048, max_num_seqs=64))
    r = res.requests
    fits = (r["prompt_tokens"] + r["output_tokens"]) <= 2_048
    assert (r["rejected"] == ~fits).all()
    assert r.filter(~pl.col("rejected"))["finish_s"].is_not_null().all()
    assert res.counters["preemptions"] > 0
    assert res.counters["kv_peak_blocks"] <= 2_048 // 16
    assert res.counters["tokens_generated"] == r.filter(~pl.col("rejected"))["output_tokens"].sum()


def test_non_chunked_prompt_longer_than_budget_is_rejected():
    res = simulate(frame([0.0], [5_000], [5]), cfg(chunked_prefill=False, max_num_batched_tokens=4_096))
    assert res.requests["rejected"][0]
    assert "max_num_batched_tokens" in res.requests["reject_reason"][0]


def test_chunked_prefill_splits_long_prompt():
    res = simulate(frame([0.0], [2_000], [1]), cfg(max_num_batched_tokens=512))
    assert res.counters["iterations"] == 4  # 512 + 512 + 512 + 464 tokens
    no_chunk = simulate(frame([0.0], [2_000], [1]), cfg(max_num_batched_tokens=4_096, chunked_prefill=False))
    assert no_chunk.counters["iterations"] == 1


def test_prefill_first_stalls_decodes_decode_first_does_not():
    reqs = frame([0.0, 0.05], [200, 3_000], [200, 2])
    dec = simulate(reqs, cfg(priority="decode_first", max_num_batched_tokens=1024))
    pre = simulate(reqs, cfg(priority="prefill_first", max_num_batched_tokens=1024))
    # the long prompt gets its first token sooner when prefill goes first, the running decode finishes later
    assert pre.requests["ttft_s"][1] < dec.requests["ttft_s"][1]
    assert pre.requests["finish_s"][0] > dec.requests["finish_s"][0]


def test_prefix_cache_hits_skip_prefill_and_lru_evicts():
    shared = [1, 2, 3, 4]
    reqs = frame([0.0, 1.0, 2.0], [300, 300, 300], [2, 2, 2], [shared, shared, [9, 8, 7, 6]])
    # a bare frame has no trace block size: use a Simulation with 64-token hash blocks
    sim = Simulation(prefix_block_tokens=64)
    sim.add_instance(cfg(kv=100_000))
    res = sim.run(reqs)
    cached = res.requests["cached_tokens"].to_list()
    assert cached == [0, 256, 0]  # (300 - 1) // 64 = 4 whole blocks
    assert res.requests["ttft_s"][1] < res.requests["ttft_s"][0]
    # a cache too small to keep both prefixes evicts the least recently used one
    sim = Simulation(prefix_block_tokens=64)
    sim.add_instance(cfg(kv=560))  # 35 blocks: two cached prefixes of 16 blocks + 3 private blocks
    a, b, c = shared, [9, 8, 7, 6], [5, 5, 5, 5]
    reqs2 = frame([0.0, 1.0, 2.0, 3.0, 4.0], [300] * 5, [2] * 5, [a, b, c, b, a])
    res2 = sim.run(reqs2)
    # c evicts a (least recently used); b is still cached; a must then evict c and misses
    assert res2.requests["cached_tokens"].to_list() == [0, 0, 0, 256, 0]
    assert res2.counters["kv_peak_blocks"] <= 35


def test_prefix_block_must_align_with_kv_block():
    sim = Simulation(prefix_block_tokens=100)
    with pytest.raises(ConfigError, match="multiple of block_size"):
        sim.add_instance(cfg())


def test_round_robin_over_instances_and_instance_table():
    reqs = random_workload(40, rate=5.0, seed=2)
    res = simulate(reqs, SimConfig(instance=cfg(), n_instances=4))
    assert res.requests["instance"].to_list()[:8] == [0, 1, 2, 3, 0, 1, 2, 3]
    assert res.instances.height == 4
    assert res.instances["kv_capacity_blocks"].to_list() == [100_000 // 16] * 4
    assert set(res.segments["instance"].unique().to_list()) == {0, 1, 2, 3}


def test_failure_requeues_requests_elsewhere_and_counts_them():
    reqs = random_workload(100, rate=50.0, seed=4)
    sim = Simulation()
    a = sim.add_instance(cfg())
    sim.add_instance(cfg())
    sim.engine.schedule(0.5, PRIO_CONTROL, lambda inst, now: sim.fail_instance(inst, repair_s=1.0), a)
    res = sim.run(reqs)
    r = res.requests
    assert res.counters["failures"] == 1
    assert res.counters["retried"] == r["retries"].sum() > 0
    assert r["finish_s"].is_not_null().all()
    assert res.counters["tokens_generated"] == r["output_tokens"].sum()
    seg = res.segments.filter(pl.col("instance") == 0)
    off = seg.filter(pl.col("state") == "off")
    assert off.height >= 1 and off["start_s"][0] == pytest.approx(0.5)
    back = seg.filter(pl.col("state").is_in(["idle", "busy"]) & (pl.col("start_s") >= 0.5))
    assert back["start_s"].min() == pytest.approx(1.5)  # repaired after 1 s, serving again


def test_start_and_drain_lifecycle_segments():
    reqs = frame([0.0, 0.2, 3.0], [100, 100, 100], [20, 20, 20])
    sim = Simulation()
    a = sim.add_instance(cfg())
    b = sim.add_instance(cfg(), state="off")
    sim.engine.schedule(0.1, PRIO_CONTROL, lambda inst, now: sim.start_instance(inst, setup_s=0.5), b)
    sim.engine.schedule(1.0, PRIO_CONTROL, lambda inst, now: sim.drain_instance(inst), a)
    changes = []
    sim.on_state_change = lambda inst, old, new, now: changes.append((inst.index, old, new, round(now, 3)))
    res = sim.run(reqs)
    assert (1, "off", "starting", 0.1) in changes and (1, "starting", "on", 0.6) in changes
    assert (0, "on", "draining", 1.0) in changes and (0, "draining", "off", 1.0) in changes
    assert res.requests["instance"].to_list() == [0, 0, 1]  # b was not on at 0.2
    seg1 = res.segments.filter(pl.col("instance") == 1)
    assert seg1["state"].to_list()[:3] == ["off", "starting", "idle"]
    # segments of each instance tile time without gaps or overlaps
    for _, g in res.segments.group_by("instance"):
        g = g.sort("start_s")
        assert (g["start_s"].shift(-1) - g["end_s"]).drop_nulls().abs().max() < 1e-12


def transfer_after_prefill(sim, prefill, delay_s=0.002):
    """An ``on_finish`` hook: requests leaving ``prefill`` with tokens still to generate are resubmitted,
    ``kv_ready``, ``delay_s`` later (the KV transfer of a P/D pair)."""

    def handoff(req, inst, now):
        if inst is prefill and req.generated < req.output_tokens:
            req.kv_ready = True
            sim.submit(req, at=now + delay_s)
            return True
        return False

    return handoff


def test_prefill_decode_handoff_through_on_finish_hook():
    reqs = frame([0.0, 0.01], [500, 400], [30, 1])
    sim = Simulation()
    prefill = sim.add_instance(InstanceConfig(perf=PERF, kv_capacity_tokens=50_000, role="prefill", pool="p"))
    decode = sim.add_instance(InstanceConfig(perf=PERF, kv_capacity_tokens=50_000, role="decode", pool="d"))

    class ByRole:
        def choose(self, request, view, now):
            want = "d" if request.kv_ready else "p"
            return next(i for i, inst in enumerate(view.instances) if inst.pool == want)

    sim.router = ByRole()

    sim.on_finish = transfer_after_prefill(sim, prefill)
    res = sim.run(reqs)
    r = res.requests
    assert r["instance"].to_list() == [decode.index, prefill.index]
    assert r["pool"].to_list() == ["d", "p"]
    prefill_t = PERF.iteration_time(Batch(prefill_tokens=500, prefill_context=500 * 250))
    assert r["ttft_s"][0] == pytest.approx(prefill_t)
    decode_t = PERF.decode_run_time(1, 500, 29)
    assert r["e2e_s"][0] == pytest.approx(prefill_t + 0.002 + decode_t)
    assert res.counters["tokens_generated"] == 31


def test_transferred_request_preempted_on_decode_instance_recomputes_there():
    reqs = frame([0.0, 0.001], [320, 320], [200, 200])
    sim = Simulation()
    sim.audit = True  # recounts queued prefill tokens before every step
    prefill = sim.add_instance(InstanceConfig(perf=PERF, kv_capacity_tokens=50_000, role="prefill", pool="p"))
    # 48 blocks: both transferred requests fit (21 blocks each) but cannot both grow to 33 blocks
    decode = sim.add_instance(InstanceConfig(perf=PERF, kv_capacity_tokens=48 * 16, role="decode", pool="d"))

    class ByRole:
        def choose(self, request, view, now):
            return decode.index if request.kv_ready else prefill.index

    sim.router = ByRole()
    sim.on_finish = transfer_after_prefill(sim, prefill)
    res = sim.run(reqs)
    assert res.requests["preemptions"].to_list() == [0, 1]
    assert res.requests["instance"].to_list() == [decode.index, decode.index]
    assert decode.n_preemptions == 1 and decode.queued_prefill_tokens == 0
    # the youngest lost its transferred KV and prefilled prompt + generated tokens on the decode instance
    assert 320 < decode.prefix_query_tokens < 520 and prefill.prefix_query_tokens == 640
    assert res.counters["tokens_generated"] == 400  # every output token generated once


def test_prefill_role_without_hook_is_an_error():
    sim = Simulation()
    sim.add_instance(InstanceConfig(perf=PERF, kv_capacity_tokens=50_000, role="prefill"))
    with pytest.raises(ConfigError, match="on_finish"):
        sim.run(frame([0.0], [10], [2]))


def test_bad_inputs_name_the_field():
    with pytest.raises(ConfigError, match="max_num_batched_tokens"):
        SchedulerConfig(max_num_seqs=512, max_num_batched_tokens=256)
    with pytest.raises(ConfigError, match="role"):
        InstanceConfig(role="both_ways")
    with pytest.raises(ConfigError, match="n_instances"):
        SimConfig(n_instances=0)
    with pytest.raises(WorkloadError, match="arrival_s"):
        simulate(frame([1.0, 0.0], [10, 10], [2, 2]), cfg())
    with pytest.raises(WorkloadError, match="output_tokens"):
        simulate(frame([0.0], [10], [0]), cfg())


def test_preemption_takes_the_youngest_and_recomputes():
    # 10 blocks: A (60 + 80 tokens, up to 9 blocks) and B (30 + 60, up to 6) cannot both grow to the end
    reqs = frame([0.0, 0.001], [60, 30], [80, 60])
    res = simulate(reqs, cfg(kv=160))
    r = res.requests
    assert r["preemptions"].to_list()[0] == 0 and r["preemptions"].to_list()[1] >= 1
    assert res.counters["preemptions"] == r["preemptions"].sum()
    assert res.counters["tokens_generated"] == 140  # recompute does not regenerate tokens
    assert r["finish_s"][0] < r["finish_s"][1]


def test_sim_config_loads_from_toml(tmp_path):
    from workbench.config import load_toml

    path = tmp_path / "sim.toml"
    path.write_text(
        'n_instances = 2\n[instance]\ngpu = "H100"\nmodel = "Llama-3.1-8B"\n'
        "[instance.scheduler]\nmax_num_seqs = 64\nchunked_prefill = false\n"
    )
    conf = load_toml(SimConfig, path)
    assert conf.n_instances == 2 and conf.instance.scheduler.max_num_seqs == 64
    assert conf.instance.scheduler.chunked_prefill is False
    path.write_text("[instance.scheduler]\nmax_seqs = 64\n")
    with pytest.raises(ConfigError, match="max_seqs"):
        load_toml(SimConfig, path)


def test_negative_iteration_time_is_an_error_not_time_travel():
    from workbench.sim import SimulationError

    bad = LinearPerfModel(overhead_s=0.0, prefill_s_per_token=0.0, decode_s_per_seq=0.0)
    object.__setattr__(bad, "overhead_s", -1.0)  # bypass validation to mimic a broken user model
    with pytest.raises(SimulationError, match="iteration time"):
        simulate(frame([0.0], [10], [3]), cfg(perf=bad))


class UserModel:
    """The smallest pluggable performance model: ``iteration_time`` only (same numbers as ``PERF``)."""

    def iteration_time(self, batch: Batch) -> float:
        if batch.prefill_tokens + batch.decode_seqs == 0:
            return 0.0
        return (
            4e-3
            + 6e-5 * batch.prefill_tokens
            + 1e-9 * batch.prefill_context
            + 2e-4 * batch.decode_seqs
            + 2e-8 * batch.decode_context
        )


def test_user_model_with_only_iteration_time_plugs_in():
    from workbench.sim.reference import simulate_reference

    reqs = random_workload(120, rate=30.0, seed=7)
    user = simulate(reqs, cfg(kv=8_000, perf=UserModel(), max_num_seqs=16)).requests
    slow = simulate(reqs, cfg(kv=8_000, perf=UserModel(), max_num_seqs=16, event_skipping=False)).requests
    closed = simulate(reqs, cfg(kv=8_000, max_num_seqs=16)).requests  # PERF: the same model in closed form
    ref = simulate_reference(reqs, cfg(kv=8_000, perf=UserModel(), max_num_seqs=16))
    assert user["preemptions"].sum() > 0  # tight enough to preempt and cut runs
    for other in (slow, closed, ref):
        for col in ("first_token_s", "finish_s"):
            assert np.allclose(user[col].to_numpy(), other[col].to_numpy(), rtol=0, atol=1e-9), col


def test_perf_without_iteration_time_is_a_config_error():
    class Table:
        def time(self, batch):
            return 0.01

    with pytest.raises(ConfigError, match=r"perf must have an iteration_time\(batch\) method.*got Table"):
        cfg(perf=Table())


def sample(sim, inst, times, *names):
    """Schedule control events reading ``inst``'s attributes ``names`` at ``times``; returns the samples."""
    out = []

    def read(_, now):
        out.append((now, *(getattr(inst, n) for n in names)))

    for t in times:
        sim.engine.schedule(t, PRIO_CONTROL, read)
    return out


def test_queued_prefill_tokens_exclude_cache_hits_and_reconcile_at_admission():
    A = list(range(100, 110))  # 10 hash blocks of 16 tokens; 9 cacheable for a 160-token prompt
    # r0 fills the only sequence slot for ~0.3 s; r1 (shares A) and r2 (no prefix) queue behind it
    reqs = frame([0.0, 0.05, 0.06], [160, 160, 100], [60, 2, 2], [A, A, [7]])
    sim = Simulation(prefix_block_tokens=16)
    sim.audit = True  # the audit recounts both router counters before every step
    inst = sim.add_instance(cfg(kv=100 * 16, max_num_seqs=1, watermark=0.0))
    seen = sample(sim, inst, [0.001, 0.055, 0.07], "queued_prefill_tokens", "outstanding_decode_tokens")
    res = sim.run(reqs)
    # r0 mid-prefill counts its whole prompt; r1 counts 160 - 144 cached tokens; r2 its 100 tokens
    assert [q for _, q, _ in seen] == [160, 16, 16 + 100]
    assert [d for *_, d in seen] == [60, 59 + 2, 59 + 2 + 2]  # r0 has 1 token when r1 arrives
    assert res.requests["cached_tokens"].to_list() == [0, 144, 0]
    assert inst.queued_prefill_tokens == 0 and inst.outstanding_decode_tokens == 0


def test_queued_prefill_estimate_is_corrected_when_the_cache_changes_before_admission():
    A = list(range(100, 110))
    # 20 blocks: r0 leaves A's 9 blocks cached; r1 (17 tokens, 250 out) holds the only sequence slot and
    # grows from 2 to 17 blocks, evicting 6 of A's; r2 (shares A) queues early, expecting all 9 hits
    reqs = frame([0.0, 0.0, 0.05], [160, 17, 160], [2, 250, 2], [A, [7], A])
    sim = Simulation(prefix_block_tokens=16)
    sim.audit = True
    inst = sim.add_instance(cfg(kv=20 * 16, max_num_seqs=1, watermark=0.0))
    seen = sample(sim, inst, np.arange(0.06, 1.5, 0.002).tolist(), "queued_prefill_tokens")
    res = sim.run(reqs)
    assert res.requests["cached_tokens"].to_list() == [0, 0, 3 * 16]
    changes = [q for i, (_, q) in enumerate(seen) if i == 0 or q != seen[i - 1][1]]
    # queued: 160 - 144 estimated; at admission the 3 hits it really gets: 112 still to prefill; then done
    assert changes == [16, 112, 0]
    assert inst.queued_prefill_tokens == 0


def remaining_output(inst) -> int:
    """Recount of what ``outstanding_decode_tokens`` keeps in O(1)."""
    return sum(r.output_tokens - inst.generated(r) for r in [*inst.waiting, *inst.running])


@pytest.mark.parametrize("skipping", [True, False])
def test_outstanding_decode_tokens_count_down_with_generation(skipping):
    reqs = frame([0.0, 0.2, 0.25], [300, 50, 700], [120, 40, 80])
    sim = Simulation()
    inst = sim.add_instance(cfg(event_skipping=skipping))
    seen = []
    for t in np.arange(0.005, 1.2, 0.01):
        sim.engine.schedule(
            float(t),
            PRIO_CONTROL,
            lambda _, now: seen.append((now, inst.outstanding_decode_tokens, remaining_output(inst))),
        )
    sim.run(reqs)
    assert all(v == recount for _, v, recount in seen)
    values = [v for _, v, _ in seen]
    assert values[0] == 120 and values[-1] == 0
    assert max(values) < 120 + 40 + 80
    # never goes up except when a request arrives
    for (t0, a, _), (t1, b, _) in itertools.pairwise(seen):
        arrived = sum(o for at, o in ((0.2, 40), (0.25, 80)) if t0 < at <= t1)
        assert b <= a + arrived
    if not skipping:  # one event per iteration: the count at t is exactly the tokens not generated by t
        ttft = PERF.iteration_time(Batch(prefill_tokens=300, prefill_context=300 * 150))
        t, v, _ = seen[10]
        assert v == 120 - 1 - PERF.decode_iterations_within(1, 300, t - ttft)
        assert v < 120 - 1


def test_progress_bar_reports_requests_and_leaves_results_unchanged(capsys):
    reqs = random_workload(3_000, rate=200.0, seed=5)
    quiet = simulate(reqs, cfg(), progress=False)
    assert capsys.readouterr().err == ""
    shown = simulate(reqs, cfg(), progress=True)
    err = capsys.readouterr().err
    assert "simulating" in err and "3000/3000" in err and "simulated" in err
    assert shown.requests.equals(quiet.requests)
    simulate(reqs, cfg())  # auto: not interactive under pytest (stderr captured), so quiet
    assert capsys.readouterr().err == ""


def test_progress_auto_needs_an_interactive_session_and_a_long_trace(monkeypatch):
    from workbench.sim import simulation

    monkeypatch.setattr(simulation, "_interactive", lambda: False)
    assert simulation._progress_bar(10**7, None) is None
    monkeypatch.setattr(simulation, "_interactive", lambda: True)
    assert simulation._progress_bar(simulation.PROGRESS_MIN_REQUESTS - 1, None) is None
    bar = simulation._progress_bar(simulation.PROGRESS_MIN_REQUESTS, None)
    try:
        assert bar.total == simulation.PROGRESS_MIN_REQUESTS and bar.delay == 1.0  # appears after 1 s only
    finally:
        bar.close()
    assert simulation._progress_bar(5, False) is None


@pytest.mark.parametrize(
    ("change", "field", "row"),
    [
        (lambda d: d.drop("output_tokens", "prompt_tokens"), "prompt_tokens", None),
        (
            lambda d: d.with_columns(pl.Series("prompt_tokens", [10, None, 10, 10], dtype=pl.Int32)),
            "prompt_tokens",
            2,
        ),
        (
            lambda d: d.with_columns(pl.Series("output_tokens", [2, 2, 2, 0], dtype=pl.Int32)),
            "output_tokens",
            4,
        ),
        (lambda d: d.with_columns(pl.Series("output_tokens", [2.0, 2.5, 2.0, 2.0])), "output_tokens", 2),
        (lambda d: d.with_columns(pl.Series("output_tokens", ["2", "2", "2", "2"])), "output_tokens", None),
        (lambda d: d.with_columns(pl.Series("arrival_s", [0.0, 0.2, 0.1, 0.3])), "arrival_s", 3),
        (lambda d: d.with_columns(pl.Series("arrival_s", [0.0, 0.1, float("nan"), 0.3])), "arrival_s", 3),
        (lambda d: d.with_columns(pl.Series("arrival_s", [-1.0, 0.1, 0.2, 0.3])), "arrival_s", 1),
        (lambda d: d.with_columns(pl.Series("request_id", [0, 1, -5, 3])), "request_id", 3),
    ],
)
def test_bad_workload_names_the_field_and_first_bad_row(change, field, row):
    good = frame([0.0, 0.1, 0.2, 0.3], [10] * 4, [2] * 4)
    with pytest.raises(WorkloadError) as info:
        simulate(change(good), cfg())
    assert info.value.field == field and info.value.row == row
    assert f"field {field!r}" in str(info.value)


def test_a_table_without_request_ids_is_numbered_like_a_trace():
    good = frame([0.0, 0.1], [10, 20], [2, 3])
    assert simulate(good.drop("request_id"), cfg()).requests.equals(simulate(good, cfg()).requests)


def test_integral_float_token_counts_are_accepted_and_other_objects_rejected():
    good = frame([0.0, 0.1], [10, 20], [2, 3])
    floats = good.with_columns(pl.col("prompt_tokens", "output_tokens").cast(pl.Float64))
    assert simulate(floats, cfg()).requests.equals(simulate(good, cfg()).requests)
    with pytest.raises(WorkloadError, match="Trace or a polars DataFrame"):
        simulate(good.to_dicts(), cfg())


def test_bad_rows_are_numbered_as_trace_validation_numbers_them():
    bad = pl.DataFrame({"arrival_s": [0.0, 1.0], "prompt_tokens": [5, 0], "output_tokens": [1, 1]})
    with pytest.raises(WorkloadError) as sim_err:
        simulate(bad.with_columns(request_id=pl.Series([0, 1], dtype=pl.UInt64)), cfg())
    with pytest.raises(WorkloadError) as trace_err:
        traces.validate(bad)
    assert sim_err.value.row == trace_err.value.row == 2
    assert "got 0 (field 'prompt_tokens', row 2)" in str(sim_err.value)
    with pytest.raises(WorkloadError, match=r"non-decreasing: 0.1 s after 0.2 s .*'arrival_s', row 3\)"):
        simulate(frame([0.0, 0.2, 0.1], [10] * 3, [2] * 3), cfg())


def test_simulation_run_accepts_a_trace_and_rejects_other_objects_before_starting():
    trace = traces.Synthetic(traces.Poisson(5.0), traces.Fixed(50, 5)).generate(20, seed=1)
    sim = Simulation()
    sim.add_instance(cfg())
    res = sim.run(trace, progress=True)
    assert res.requests.height == 20 and res.requests["finish_s"].is_not_null().all()
    for other in ({"a": 1}, trace.requests.to_dicts()):
        sim = Simulation()
        sim.add_instance(cfg())
        with pytest.raises(WorkloadError, match="must be a Trace or a polars DataFrame, got"):
            sim.run(other, progress=True)
    hashed = traces.Synthetic(
        traces.Poisson(5.0), traces.Fixed(600, 5), traces.Sessions(block_tokens=512)
    ).generate(20, seed=1)
    sim = Simulation()  # built without the trace's block size: its caches would ignore the hashes
    sim.add_instance(cfg())
    with pytest.raises(ConfigError, match="prefix_block_tokens is 512 but the simulation's is None"):
        sim.run(hashed)
    sim = Simulation(prefix_block_tokens=512)
    sim.add_instance(cfg())
    assert sim.run(hashed).counters["prefix_query_tokens"] > 0
