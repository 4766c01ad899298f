"""Analytic models: Erlang-C (M/M/c), M/G/c approximations and an LLM-instance service-time model.

Everything is vectorised with numpy, so a screen of many fleet configurations is a few array operations.

Examples
--------
>>> from workbench.analytic import erlang_c, mgc_mean_wait, instance_service_model, instance_latency
>>> float(erlang_c(2, 0.5))
0.3333333333333333
>>> from workbench.hardware import RooflineModel
>>> svc = instance_service_model(RooflineModel("H100", "Llama-3.1-8B"), 1000, 200, batch_size=64)
>>> lat = instance_latency(svc, arrival_rate=0.5 * svc.capacity_rps)
>>> float(lat["rho"][0])
0.5
"""

from workbench.analytic.queueing import (
    erlang_b,
    erlang_c,
    mdc_mean_wait,
    mgc_mean_wait,
    mgc_wait_quantile,
    mmc_mean_wait,
    mmc_wait_cdf,
    mmc_wait_quantile,
)
from workbench.analytic.service import ServiceModel, instance_latency, instance_service_model

__all__ = [
    "ServiceModel",
    "erlang_b",
    "erlang_c",
    "instance_latency",
    "instance_service_model",
    "mdc_mean_wait",
    "mgc_mean_wait",
    "mgc_wait_quantile",
    "mmc_mean_wait",
    "mmc_wait_cdf",
    "mmc_wait_quantile",
]
