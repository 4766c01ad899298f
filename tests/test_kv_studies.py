"""The KV hierarchy studies (workbench.studies.kv_hierarchy): pure runs, common random numbers, intervals."""

from __future__ import annotations

import dataclasses
import warnings

import pytest

from workbench.sim.invariants import RejectionWarning
from workbench.studies import kv_hierarchy as ks
from workbench.viz import kv as vkv


def test_runs_are_pure_and_replications_pair_on_seeds():
    arm = dataclasses.replace(ks.TIER_ARMS[2], requests=150)
    assert ks.tiers_run(arm, 5) == ks.tiers_run(arm, 5)
    assert ks.replication_seed(0, 1) == ks.replication_seed(0, 1) != ks.replication_seed(0, 2)
    arms = [dataclasses.replace(a, requests=150) for a in ks.TIER_ARMS[:2]]
    runs = ks.replicate(ks.tiers_run, arms, replications=2)
    assert runs.height == 4 and set(runs["arm"]) == {"gpu", "dram32"}
    table = ks.summary(runs, ks.TIER_METRICS)
    assert {"hit_rate", "hit_rate_lo", "hit_rate_hi"} <= set(table.columns)
    row = table.row(0, named=True)
    assert row["hit_rate_lo"] <= row["hit_rate"] <= row["hit_rate_hi"]
    shares = table.select("gpu_share", "dram_share", "ssd_share").sum_horizontal()
    assert shares.to_list() == pytest.approx(table["hit_rate"].to_list())
    diff = ks.versus(runs, "gpu", ["hit_rate"])
    assert diff["arm"].to_list() == ["dram32"] and diff["difference"][0] >= 0  # a tier never loses hits here
    spec = vkv.tier_shares(table).to_dict()
    assert spec["mark"]["type"] == "bar" and spec["encoding"]["y"]["field"] == "share"
    layers = vkv.mean_with_interval(table, "ttft_mean_s").to_dict()["layer"]
    assert [layer["mark"]["type"] for layer in layers] == ["point", "errorbar"]


def test_a_run_reports_its_rejections_in_its_row_not_one_warning_per_run():
    arm = dataclasses.replace(ks.TIER_ARMS[2], requests=150)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RejectionWarning)
        row = ks.tiers_run(arm, 5)
    # this sample of the Mooncake twin has one prompt longer than Llama-3.1-8B's 131,072-token context
    assert row["rejected"] == 1
    assert "rejected" in ks.TIER_METRICS and "rejected" in ks.PD_METRICS


def test_pd_store_and_agentic_runs_report_their_metrics():
    pd = ks.pd_run(dataclasses.replace(ks.PD_ARMS[0], requests=120, prefill=2, decode=1), 1)
    assert set(pd) == set(ks.PD_METRICS) and pd["transfer_mean_s"] > 0
    store = ks.store_run(dataclasses.replace(ks.STORE_ARMS[2], requests=150), 1)
    assert set(ks.STORE_METRICS) <= set(store) and store["store_share"] > 0
    agentic = ks.agentic_run(dataclasses.replace(ks.AGENTIC_ARMS[1], sessions=10), 1)
    assert set(agentic) == set(ks.AGENTIC_METRICS)
