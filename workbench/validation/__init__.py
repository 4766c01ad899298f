"""The models checked against real measurements (the ML.ENERGY v3 serving runs) and against Vidur.

- :mod:`workbench.validation.mlenergy`: every ML.ENERGY v3 run simulated as a new user would
  (:func:`simulate_mlenergy_run`), the error table per GPU x architecture (:func:`mlenergy_errors`,
  :func:`validation_summary`) and corrections to the roofline learned out of fold, grouped by model
  (:func:`held_out_errors`).
- :mod:`workbench.validation.vidur`: Vidur's requests replayed with its operator tables
  (:class:`~workbench.hardware.vidur.VidurProfile`) and its vLLM scheduler (:func:`vidur_scheduler`), TTFT /
  TPOT / E2E percentiles side by side (:func:`compare_with_vidur`).
- :mod:`workbench.validation.vllm_bench`: a user's ``vllm bench serve`` result read
  (:func:`read_vllm_benchmark`), replayed (:func:`simulate_benchmark`) and turned into a named, domain-checked
  :class:`~workbench.hardware.CalibratedModel` (:func:`calibrate_vllm`).

This layer sits above the simulator and the power model (it runs the simulator) and below planning.
"""

from workbench.validation.mlenergy import (
    CORRECTION_PARAMS,
    TASK_REQUESTS,
    RunSteps,
    build_validation_table,
    fit_corrections,
    held_out_errors,
    load_validation_table,
    mlenergy_errors,
    mlenergy_requests,
    predict_runs,
    record_all,
    record_steps,
    simulate_mlenergy_run,
    step_itl,
    validation_summary,
)
from workbench.validation.vidur import (
    compare_with_vidur,
    load_vidur_runs,
    read_vidur_metrics,
    simulate_like_vidur,
    vidur_scheduler,
    vidur_tpot,
)
from workbench.validation.vllm_bench import (
    VllmBenchmark,
    calibrate_vllm,
    read_vllm_benchmark,
    simulate_benchmark,
    write_vllm_benchmark,
)

__all__ = [
    "CORRECTION_PARAMS",
    "TASK_REQUESTS",
    "RunSteps",
    "VllmBenchmark",
    "build_validation_table",
    "calibrate_vllm",
    "compare_with_vidur",
    "fit_corrections",
    "held_out_errors",
    "load_validation_table",
    "load_vidur_runs",
    "mlenergy_errors",
    "mlenergy_requests",
    "predict_runs",
    "read_vidur_metrics",
    "read_vllm_benchmark",
    "record_all",
    "record_steps",
    "simulate_benchmark",
    "simulate_like_vidur",
    "simulate_mlenergy_run",
    "step_itl",
    "validation_summary",
    "vidur_scheduler",
    "vidur_tpot",
    "write_vllm_benchmark",
]
