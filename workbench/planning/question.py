"""The question a planner answers, in one object.

Which workload, at what SLO, serving which model, priced how, from which seed, timed by which performance model.

:func:`~workbench.planning.size_fleet` and :func:`~workbench.whatif.plan_workload` take a :class:`Question`
in place of their loose parameters (which keep working)::

    q = Question(trace, SLO(ttft_s=1.0, tpot_s=0.05), model="Llama-3.1-8B", qps=20.0)
    size_fleet(q, candidate_grid(["H100", "A100"]))
    plan_workload("budget", 2e6, q, ["H100", "A100"])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from workbench.config import require_int
from workbench.errors import ConfigError
from workbench.hardware import CalibratedModel
from workbench.planning import screen
from workbench.planning.spec import SLO
from workbench.planning.workload import Workload, prepare_workload
from workbench.tco import CostBasis
from workbench.traces.schema import Trace

#: Model a question serves unless it names one.
DEFAULT_MODEL = "Llama-3.1-8B"


@dataclass(frozen=True, slots=True)
class Question:
    """What is asked: a workload at an SLO, serving a model, priced on a cost basis, from a seed.

    Validated once, here; every error names the field (``Question.slo``, ...).

    Attributes
    ----------
    workload
        A :class:`~workbench.traces.Trace`, a generator with ``.generate`` (e.g.
        :class:`~workbench.traces.synthetic.Synthetic`) or a prepared :class:`Workload`.
    slo
        Latency targets (:class:`SLO`).
    model
        Model served (a name of the model zoo; kept as given).
    cost
        Cost basis (:class:`~workbench.tco.CostBasis`; default ``CostBasis()``: cloud rent, site ``us-avg``).
    seed
        Seed of the length sample and of the measurement kernel's runs (>= 0).
    perf
        Performance model: ``"roofline"``, ``"calibrated:<name>"``, a
        :class:`~workbench.hardware.CalibratedModel` or a factory ``(gpu, model, tp) -> PerformanceModel``
        (see :func:`~workbench.planning.size_fleet`).
    qps
        Mean arrival rate the workload is scaled to (``None``: its own rate).
    """

    workload: Any
    slo: SLO
    model: str = DEFAULT_MODEL
    cost: CostBasis = field(default_factory=CostBasis)
    seed: int = 0
    perf: screen.PerfSpec = "roofline"
    qps: float | None = None

    def __post_init__(self) -> None:
        from workbench.hardware import model as model_spec

        w = self.workload
        if not (isinstance(w, Trace | Workload) or callable(getattr(w, "generate", None))):
            raise ConfigError(
                "Question.workload must be a Trace, a prepared Workload or a generator with .generate, "
                f"got {type(w).__name__}"
            )
        if not isinstance(self.slo, SLO):
            raise ConfigError(f"Question.slo must be an SLO, got {type(self.slo).__name__}")
        if not (isinstance(self.model, str) and self.model):
            raise ConfigError(f"Question.model must be a model name, got {self.model!r}")
        model_spec(self.model)  # unknown model -> HardwareError listing the known ones
        if not isinstance(self.cost, CostBasis):
            raise ConfigError(
                f"Question.cost must be a workbench.tco.CostBasis, got {type(self.cost).__name__}"
            )
        object.__setattr__(self, "seed", require_int("Question.seed", self.seed, low=0))
        if not (isinstance(self.perf, str | CalibratedModel) or callable(self.perf)):
            raise ConfigError(f"Question.perf must be a performance model name or factory, got {self.perf!r}")
        if isinstance(self.perf, str):
            screen.perf_factory(self.perf)  # an unknown calibration or a malformed spec fails here, once
        q = self.qps
        if q is not None and (
            isinstance(q, bool) or not (isinstance(q, int | float) and math.isfinite(q) and q > 0)
        ):
            raise ConfigError(
                f"Question.qps must be a finite number > 0 (requests per second) or None, got {q!r}"
            )

    def prepared(self) -> Workload:
        """Return the :class:`Workload` the question runs on.

        It is :func:`~workbench.planning.workload.prepare_workload` of :attr:`workload` at :attr:`qps`, drawn
        with :attr:`seed`.
        """
        return prepare_workload(self.workload, self.qps, seed=self.seed)


def ask(subject: Any, slo: Any, rest: Any, **loose: Any) -> tuple[Question, Any]:
    """Return the :class:`Question` of a call, and the argument after it.

    A function taking ``(workload, slo, rest, *, model=None, cost=None, ...)`` also takes ``(question, rest)``:
    with a :class:`Question` first, the next positional argument is ``rest`` and the loose keywords must be
    ``None`` (they live in the question); otherwise the loose arguments build the question (``None``: its
    default).
    """
    given = {k: v for k, v in loose.items() if v is not None}
    if isinstance(subject, Question):
        if given:
            raise ConfigError(f"{', '.join(sorted(given))}: give it in the Question, not beside it")
        if slo is not None and rest is not None:
            raise ConfigError("with a Question, pass only what follows it (the SLO is in the question)")
        return subject, rest if slo is None else slo
    if slo is None:
        raise ConfigError("slo is required (or pass a Question in place of the workload)")
    return Question(subject, slo, **given), rest
