"""Trace chart builders, checked through their Vega-Lite specification (chart.to_dict())."""

from __future__ import annotations

import numpy as np
import pytest

from workbench import traces
from workbench.viz.traces import (
    CHARTS,
    iat_cdf_chart,
    length_cdf_chart,
    nice_bin,
    prefix_reuse_chart,
    rate_chart,
)


@pytest.fixture(scope="module")
def pair():
    real = traces.Synthetic(traces.Renewal(2.0, 2.0), traces.Fixed(300, 30), name="real").generate(
        n=600, seed=1
    )
    sess = traces.Synthetic(
        traces.Poisson(2.0), traces.LogNormal(6.0, 0.5, 4.0, 0.5), traces.Sessions(mean_turns=3.0), name="sess"
    ).generate(n=600, seed=2)
    return real, sess


def _values(spec):
    return next(iter(spec["datasets"].values()))


def test_rate_chart_values_sum_to_request_count(pair):
    real, _ = pair
    spec = rate_chart(real, bin_s=10.0).to_dict()
    assert spec["mark"]["type"] == "line"
    assert spec["encoding"]["x"]["title"] == "time (s)" and spec["encoding"]["y"]["title"] == "requests / s"
    rows = _values(spec)
    assert sum(r["rate_rps"] * 10.0 for r in rows) == pytest.approx(len(real))
    assert {r["trace"] for r in rows} == {"real"}


def test_length_cdf_chart(pair):
    spec = length_cdf_chart(list(pair)).to_dict()
    assert spec["facet"]["column"]["field"] == "length"
    assert spec["spec"]["encoding"]["x"]["scale"]["type"] == "log"
    rows = _values(spec)
    real_prompt = [r for r in rows if r["trace"] == "real" and r["length"] == "prompt tokens"]
    assert len(real_prompt) == 201 and {r["tokens"] for r in real_prompt} == {300.0}
    cdf = [r["cdf"] for r in real_prompt]
    assert cdf[0] == 0.0 and cdf[-1] == 1.0 and cdf == sorted(cdf)


def test_iat_chart_has_exponential_reference(pair):
    spec = iat_cdf_chart(list(pair)).to_dict()
    layers = spec["layer"]
    assert len(layers) == 2 and layers[1]["mark"]["strokeDash"] == [5, 4]
    ref = next(d for d in spec["datasets"].values() if d[0]["trace"].startswith("exponential"))
    x = np.array([r["x"] for r in ref])
    assert np.allclose([r["cdf"] for r in ref], 1 - np.exp(-x))


def test_prefix_reuse_chart(pair):
    real, sess = pair
    spec = prefix_reuse_chart([real, sess]).to_dict()
    rows = _values(spec)
    assert {r["trace"] for r in rows} == {"sess"}  # real has no hashes
    assert all(0.0 <= r["reuse"] <= 1.0 for r in rows)
    empty = prefix_reuse_chart(real).to_dict()
    assert "no prefix hashes" in empty["title"]


def test_registry_and_bins():
    assert set(CHARTS) == {"rate", "lengths", "interarrival", "prefix_reuse"}
    assert [nice_bin(x) for x in (0.3, 7, 57.3, 3000)] == [1.0, 10.0, 60.0, 3600.0]


def test_charts_without_plottable_data_are_empty_with_a_reason(pair):
    real, _ = pair
    lengths = real.with_requests(
        real.requests.with_columns(arrival_s=None), has_arrivals=False, name="lengths only"
    )
    tiny = real.with_requests(real.requests.head(2), name="tiny")
    spec = rate_chart(lengths).to_dict()
    assert "no arrival times" in spec["title"] and _values(spec) == []
    for items in (lengths, tiny, [lengths, tiny]):
        spec = iat_cdf_chart(items).to_dict()
        assert "no trace with 3 or more timed requests" in spec["title"]
        data = [d for d in spec["datasets"].values() if not d or not d[0]["trace"].startswith("exponential")]
        assert data == [[]]  # only the reference curve has points
    mixed = iat_cdf_chart([tiny, real]).to_dict()
    assert mixed["title"] == "Inter-arrival CDF vs exponential (dashed)"
    assert {r["trace"] for r in _values(rate_chart([lengths, real]).to_dict())} == {"real"}
    for build in CHARTS.values():  # every builder copes with a length-only table
        assert build(lengths).to_dict()
