"""Hardware: GPUs, models, memory budgets and performance models.

The GPU table, the model zoo, the memory budget and the performance models (roofline, calibrated, measured
table, Vidur's operator tables, named calibrations of a user's benchmark).

Examples
--------
>>> from workbench.hardware import gpu, model, kv_capacity_tokens, RooflineModel
>>> kv_capacity_tokens("H100", "Llama-3.1-8B") > 400_000
True
>>> perf = RooflineModel("H100", "Llama-3.1-8B")
>>> perf.prefill_time(1024) < perf.prefill_time(2048)
True
"""

from workbench.hardware.calibrate import (
    calibrated_roofline,
    evaluate,
    fit_roofline,
    fit_splitwise,
    holdout_split,
    splitwise_profile,
)
from workbench.hardware.calibrated import (
    CalibratedModel,
    calibrated_model,
    calibration_domain,
    performance_model,
    performance_models,
    saved_calibrations,
    token_budget,
)
from workbench.hardware.catalog import GPU, ModelSpec, gpu, list_gpus, list_models, model
from workbench.hardware.memory import (
    ACTIVATION_RESERVE_GB,
    kv_capacity_tokens,
    min_tensor_parallel,
    weights_per_gpu_gb,
)
from workbench.hardware.perf import (
    Batch,
    ClockedPerf,
    DecodeRunMixin,
    IterationTimeModel,
    PerformanceModel,
    as_performance_model,
    clocked,
)
from workbench.hardware.roofline import RooflineModel
from workbench.hardware.table import TablePerformanceModel
from workbench.hardware.vidur import VidurProfile

__all__ = [
    "ACTIVATION_RESERVE_GB",
    "GPU",
    "Batch",
    "CalibratedModel",
    "ClockedPerf",
    "DecodeRunMixin",
    "IterationTimeModel",
    "ModelSpec",
    "PerformanceModel",
    "RooflineModel",
    "TablePerformanceModel",
    "VidurProfile",
    "as_performance_model",
    "calibrated_model",
    "calibrated_roofline",
    "calibration_domain",
    "clocked",
    "evaluate",
    "fit_roofline",
    "fit_splitwise",
    "gpu",
    "holdout_split",
    "kv_capacity_tokens",
    "list_gpus",
    "list_models",
    "min_tensor_parallel",
    "model",
    "performance_model",
    "performance_models",
    "saved_calibrations",
    "splitwise_profile",
    "token_budget",
    "weights_per_gpu_gb",
]
