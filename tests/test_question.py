"""The planner's question object (:class:`workbench.planning.Question`) and the two call forms it gives
``size_fleet`` and ``plan_workload``."""

from __future__ import annotations

import dataclasses

import pytest

from workbench.errors import ConfigError, HardwareError
from workbench.planning import SLO, Question, candidate_grid, size_fleet, workload
from workbench.tco import CostBasis
from workbench.traces import LogNormal, Poisson, Synthetic
from workbench.whatif import ModeCosts, plan_workload

GEN = Synthetic(arrivals=Poisson(5.0), lengths=LogNormal(6.5, 0.8, 5.0, 0.7))
TRACE = GEN.generate(500, seed=1)
SLO_ = SLO(2.0, 0.1)


@pytest.mark.parametrize(
    ("kwargs", "error", "field"),
    [
        ({"workload": 42}, ConfigError, r"Question\.workload must be a Trace"),
        ({"slo": (2.0, 0.1)}, ConfigError, r"Question\.slo must be an SLO"),
        ({"model": ""}, ConfigError, r"Question\.model"),
        ({"model": "Llama-9-9000B"}, HardwareError, "Llama-9-9000B"),
        ({"cost": ModeCosts()}, ConfigError, r"Question\.cost must be a workbench\.tco\.CostBasis"),
        ({"seed": -1}, ConfigError, r"Question\.seed"),
        ({"seed": 1.5}, ConfigError, r"Question\.seed"),
        ({"perf": 3}, ConfigError, r"Question\.perf"),
        ({"perf": "calibrated:no-such-calibration"}, Exception, "calibration"),
        ({"qps": 0.0}, ConfigError, r"Question\.qps"),
        ({"qps": True}, ConfigError, r"Question\.qps"),
        ({"qps": float("inf")}, ConfigError, r"Question\.qps"),
    ],
)
def test_validation_names_the_field(kwargs, error, field):
    args = {"workload": TRACE, "slo": SLO_, **kwargs}
    with pytest.raises(error, match=field):
        Question(**args)


def test_defaults_frozen_and_prepared():
    q = Question(TRACE, SLO_)
    assert (q.model, q.cost, q.seed, q.perf, q.qps) == ("Llama-3.1-8B", CostBasis(), 0, "roofline", None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        q.seed = 3  # type: ignore[misc]
    at10 = Question(GEN, SLO_, qps=10.0, seed=2)
    wl = at10.prepared()
    assert wl.qps == pytest.approx(10.0)
    # a prepared workload passes through; asking it for another rate is the loader's error
    assert Question(wl, SLO_).prepared() is wl
    with pytest.raises(ConfigError, match="already prepared"):
        Question(wl, SLO_, qps=20.0).prepared()


def test_size_fleet_takes_a_question():
    cands = candidate_grid(["H100", "A100"])
    q = Question(TRACE, SLO_, qps=10.0, seed=1, cost=CostBasis(usd_per_gpu_hr={"A100": 1.0}))
    asked = size_fleet(q, cands, check=0)
    loose = size_fleet(TRACE, SLO_, cands, qps=10.0, seed=1, cost=q.cost, check=0)
    assert asked.table.equals(loose.table) and asked.explanation == loose.explanation
    assert asked.table.filter(asked.table["gpu"] == "A100-80GB-SXM")["usd_per_hour"][0] == pytest.approx(
        asked.table.filter(asked.table["gpu"] == "A100-80GB-SXM")["instances"][0] * 1.0
    )
    assert size_fleet(q, candidates=cands, check=0).table.equals(asked.table)
    with pytest.raises(ConfigError, match="model, seed: give it in the Question"):
        size_fleet(q, cands, model="Llama-3.1-70B", seed=3, check=0)
    with pytest.raises(ConfigError, match="slo is required"):
        size_fleet(TRACE, candidates=cands, check=0)
    with pytest.raises(ConfigError, match="candidate list is empty"):
        size_fleet(q, [], check=0)


def test_plan_workload_takes_a_question():
    wl = workload(TRACE, 10.0, seed=1)
    basis = CostBasis(pue=1.2)
    q = Question(wl, SLO_, cost=basis)
    asked = plan_workload("count", 16, q, ["H100", "A100"], verify=False)
    loose = plan_workload("count", 16, wl, SLO_, ["H100", "A100"], costs=basis, verify=False)
    assert asked.equals(loose)
    # efficiency on top of the question's basis is allowed; another basis is not
    eta = plan_workload("count", 16, q, ["H100"], costs=ModeCosts(basis, eta_gpu=0.99), verify=False)
    assert eta["eta"][0] < 1.0
    with pytest.raises(ConfigError, match=r"costs: the cost basis is the Question's"):
        plan_workload("count", 16, q, ["H100"], costs=CostBasis(), verify=False)
    with pytest.raises(ConfigError, match="gpus is required"):
        plan_workload("count", 16, q, verify=False)
