"""Issue 14: one rule for over-long prompts in both simulators, every rejection reported, and the invariant
check on every simulation result (each rule shown able to fail)."""

from __future__ import annotations

import dataclasses
import math
import warnings

import polars as pl
import pytest

from workbench import sim
from workbench.errors import InvariantError
from workbench.power import energy
from workbench.power.curves import LogisticPower
from workbench.power.energy import InstancePower
from workbench.sim import fleet
from workbench.sim.engine import PRIO_CONTROL
from workbench.sim.invariants import RejectionWarning, check_result
from workbench.sim.metrics import summarize, summary
from workbench.sim.topology import Fleet, Pool, monolithic


def table(prompts, outputs=None, arrival=None) -> pl.DataFrame:
    n = len(prompts)
    return pl.DataFrame(
        {
            "request_id": pl.Series(range(n), dtype=pl.UInt64),
            "arrival_s": [0.1 * i for i in range(n)] if arrival is None else arrival,
            "prompt_tokens": pl.Series(prompts, dtype=pl.Int32),
            "output_tokens": pl.Series(outputs or [10] * n, dtype=pl.Int32),
        }
    )


# ------------------------------------------------------------------------------------ one rule for long prompts
@pytest.mark.parametrize(
    ("gpu", "prompt", "kind"),
    [("H100", 200_000, "longer than the model's context"), ("L4", 100_000, "longer than the KV cache")],
)
def test_over_long_prompts_follow_one_rule_in_both_simulators(gpu, prompt, kind):
    reqs = table([prompt, 100, 500])
    runs = {}
    for name, run in (
        ("sim", lambda: sim.simulate(reqs, sim.InstanceConfig(gpu=gpu))),
        ("fleet", lambda: fleet.simulate(reqs, monolithic(1, gpu=gpu))),
    ):
        with pytest.warns(RejectionWarning, match=rf"1 of 3 requests rejected: 1 {kind}$"):
            runs[name] = run()
    for res in runs.values():
        r = res.requests
        assert r["rejected"].to_list() == [True, False, False]
        assert r["reject_reason"][0].startswith(f"{kind}: {prompt}+10 tokens")
        assert (
            summary(res)["reject_reasons"][0] == f"1 {kind}" and summarize(res)["reject_reasons"] == f"1 {kind}"
        )
    # the same requests served, with the same latencies
    assert runs["sim"].requests["ttft_s"].to_list()[1:] == pytest.approx(
        runs["fleet"].requests["ttft_s"].to_list()[1:]
    )


def test_no_rejection_no_warning_and_a_null_reason_column():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = sim.simulate(table([100, 200]))
    assert summary(res)["reject_reasons"][0] is None and summarize(res)["reject_reasons"] is None


# ------------------------------------------------------------------------------------------------- invariants
def test_epoch_times_handed_straight_to_the_simulator_are_caught():
    epoch = table([100, 200, 300], arrival=[1.7e9, 1.7e9 + 1, 1.7e9 + 2])
    with pytest.raises(InvariantError, match=r"first request arrives at 1\.7e\+09 s.*Unix epoch"):
        sim.simulate(epoch)
    with pytest.raises(InvariantError, match="Unix epoch"):
        fleet.simulate(epoch, 1)
    assert sim.simulate(epoch, check=False).requests["finish_s"].is_not_null().all()  # the switch


def _broken(result, **changes):
    return dataclasses.replace(result, **changes)


@pytest.mark.parametrize(
    ("breaks", "words"),
    [
        (lambda r: r.with_columns(request_id=pl.lit(0, dtype=pl.UInt64)), "a request id appears twice"),
        (
            lambda r: r.with_columns(finish_s=pl.lit(None, dtype=pl.Float64)),
            "a request is neither served nor rejected",
        ),
        (lambda r: r.with_columns(rejected=pl.lit(True)), "a rejected request has a finish time"),
        (
            lambda r: r.with_columns(rejected=pl.lit(True), finish_s=pl.lit(None, dtype=pl.Float64)),
            "a rejected request has no reason",
        ),
        (lambda r: r.with_columns(first_token_s=pl.col("first_token_s") + 100), "times are out of order"),
        (lambda r: r.with_columns(ttft_s=pl.lit(float("nan"))), "the summary table has NaN"),
    ],
)
def test_each_request_rule_can_fail(breaks, words):
    res = sim.simulate(table([100, 200, 300]))
    check_result(res, 3)
    with pytest.raises(InvariantError, match=words):
        check_result(_broken(res, requests=breaks(res.requests)), 3)
    with pytest.raises(InvariantError, match="3 requests went in but 2 rows came out"):
        check_result(_broken(res, requests=res.requests.head(2)), 3)


def test_segments_rule_can_fail():
    res = sim.simulate(table([100, 200, 300]))
    seg = res.segments
    with pytest.raises(InvariantError, match="overlap"):
        check_result(_broken(res, segments=pl.concat([seg, seg.head(1)])))
    with pytest.raises(InvariantError, match="ends before it starts"):
        check_result(_broken(res, segments=seg.with_columns(end_s=pl.col("start_s") - 1)))


def test_a_failure_while_busy_no_longer_counts_idle_time_twice():
    """Found by the segment rule: a failure mid-step wrote an idle segment over the busy ones before it."""
    reqs = table([800] * 40, [50] * 40, arrival=[0.01 * i for i in range(40)])
    s = sim.Simulation()
    a = s.add_instance(sim.InstanceConfig())
    s.add_instance(sim.InstanceConfig())
    s.engine.schedule(0.2, PRIO_CONTROL, lambda inst, now: s.fail_instance(inst, repair_s=0.5), a)
    res = s.run(reqs)  # checked: segments consecutive
    mine = res.segments.filter(pl.col("instance") == 0).sort("start_s")
    assert mine["start_s"][1:].to_list() == pytest.approx(mine["end_s"][:-1].to_list())


def test_all_rejected_summaries_have_nulls_not_nan():
    with pytest.warns(RejectionWarning, match="2 of 2 requests rejected"):
        res = sim.simulate(table([300_000, 300_000]))
    row = summary(res).row(0, named=True)
    assert row["prefix_hit_rate"] is None and row["rejected"] == 2
    assert not any(isinstance(v, float) and math.isnan(v) for v in row.values())
    assert summarize(res)["hit_rate"] is None and summarize(res)["gpu_hours"] is None


def test_energy_per_instance_stays_within_the_gpus_power_range():
    res = fleet.simulate(table([500] * 20), Fleet(pools=(Pool("a", instances=2),)))
    report = energy(res)
    assert (report.by_instance["j_per_output_token"] > 0).all()
    # a power curve ten times the H100's 700 W TDP is outside its physical range: caught
    hot = InstancePower(LogisticPower(7_000.0, 7_000.0, 1.0, 1.0), 1_430.0, 1.0)
    with pytest.raises(InvariantError, match=r"drew .* W on average while powered, outside 0\.\.735 W"):
        energy(res, power={0: hot, 1: hot})
    energy(res, power={0: hot, 1: hot}, check=False)  # the switch
