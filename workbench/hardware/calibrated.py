"""Named performance models calibrated to a user's measurements, with the domain they were calibrated on.

A :class:`CalibratedModel` is a :class:`~workbench.hardware.RooflineModel` whose efficiency parameters were
fitted to one set of measurements (e.g. a vLLM benchmark run: :func:`workbench.validation.calibrate_vllm`),
together with a name, where the numbers came from, how well the fit reproduces them, and the **domain** the
measurements exercised: the largest decode batch, the most tokens in one iteration and the longest sequence
the replayed benchmark produced. A batch outside that domain raises :class:`~workbench.errors.HardwareError`
instead of extrapolating silently; :attr:`CalibratedModel.roofline` is the same parameters without the check,
for a user who accepts the extrapolation.

Models are saved as JSON (:meth:`CalibratedModel.save`) and loaded by name from a folder
(:func:`calibrated_model`: ``folder`` or ``$WORKBENCH_CALIBRATIONS``), or from a path.

Every planner, what-if tool and simulation config names its performance model the same way, and
:func:`performance_model` is the one place that turns the name into a model: ``"roofline"`` (the default) or
``"calibrated:<name>"`` (a saved calibration; it answers only for the GPU, model and tensor-parallel degree it
was measured on, and raises :class:`~workbench.errors.HardwareError` for any other).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import ConfigError, DatasetError, HardwareError
from workbench.hardware.perf import Batch
from workbench.hardware.roofline import RooflineModel

#: Environment variable naming the folder of saved calibrations.
CALIBRATIONS_ENV = "WORKBENCH_CALIBRATIONS"
_FORMAT = "workbench-calibrated-model/1"
#: Prefix of a calibrated model's name in a performance-model spec (``"calibrated:<name>"``).
CALIBRATED_PREFIX = "calibrated:"
#: The default performance-model spec.
ROOFLINE = "roofline"


@dataclass(frozen=True)
class Domain:
    """What a calibration's measurements exercised (per iteration / per sequence)."""

    max_decode_seqs: int
    max_tokens: int
    max_context: int

    def check(self, what: str, decode_seqs: int, tokens: int, context: float, name: str) -> None:
        """Raise :class:`HardwareError` when a batch leaves the domain."""
        if decode_seqs > self.max_decode_seqs or tokens > self.max_tokens or context > self.max_context:
            raise HardwareError(
                f"calibrated model {name!r}: {what} ({decode_seqs} decoding sequences, {tokens} tokens, "
                f"{context:.0f} tokens of context per sequence) is outside what its measurements exercised "
                f"(at most {self.max_decode_seqs} decoding sequences, {self.max_tokens} tokens per iteration, "
                f"{self.max_context} tokens per sequence). Benchmark the larger batch, or use "
                "CalibratedModel.roofline to extrapolate knowingly"
            )


@dataclass(frozen=True)
class CalibratedModel:
    """A roofline with fitted parameters, a name, a source and a domain (see the module docstring).

    Parameters
    ----------
    name
        Name to save and load it by (letters, digits, ``-``, ``_``, ``.``).
    gpu, model, tp
        The measured configuration (names as in the hardware catalog).
    params
        :class:`RooflineModel` keyword arguments fitted (e.g. ``mfu``, ``mbu``, ``overhead_s``).
    domain
        What the measurements exercised.
    source
        Where the measurements came from (file name, SHA-256, ...).
    fit
        Measured and reproduced metrics (``{metric: {"measured": .., "default": .., "calibrated": ..}}``).
    """

    name: str
    gpu: str
    model: str
    tp: int
    params: dict[str, float]
    domain: Domain
    source: dict[str, Any] = field(default_factory=dict)
    fit: dict[str, dict[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name or not all(c.isalnum() or c in "-_." for c in self.name):
            raise ConfigError(f"calibration name must be letters, digits, '-', '_' or '.'; got {self.name!r}")
        object.__setattr__(self, "_roofline", RooflineModel(self.gpu, self.model, self.tp, **self.params))

    @property
    def roofline(self) -> RooflineModel:
        """The fitted roofline without the domain check (extrapolates)."""
        return self._roofline  # type: ignore[attr-defined]

    def check_config(self, gpu: str, model: str, tp: int) -> None:
        """Raise :class:`HardwareError` unless ``gpu``/``model``/``tp`` is the measured configuration."""
        from workbench.hardware.catalog import gpu as gpu_spec
        from workbench.hardware.catalog import model as model_spec

        asked = (gpu_spec(gpu).name, model_spec(model).name, int(tp))
        if asked != (self.gpu, self.model, self.tp):
            raise HardwareError(
                f"calibrated model {self.name!r} was measured on {self.model} at TP {self.tp} on {self.gpu}; "
                f"it cannot time {asked[1]} at TP {asked[2]} on {asked[0]} (calibrate that configuration "
                "too, or use perf='roofline')"
            )

    @property
    def spec(self) -> str:
        """Its name as a performance-model spec: ``"calibrated:<name>"`` (see :func:`performance_model`)."""
        return f"{CALIBRATED_PREFIX}{self.name}"

    def __repr__(self) -> str:
        p = ", ".join(f"{k}={v:.3g}" for k, v in self.params.items())
        return f"CalibratedModel({self.name!r}: {self.model} on {self.tp}x {self.gpu}, {p})"

    # ------------------------------------------------------------------------------ PerformanceModel
    def iteration_time(self, batch: Batch) -> float:
        """Seconds for one iteration of ``batch`` (:class:`HardwareError` outside the domain)."""
        seqs = batch.decode_seqs
        context = batch.decode_context / seqs if seqs else 0.0
        t, pairs2 = batch.prefill_tokens, 2.0 * batch.prefill_context
        if t:  # whole prompts: their token-weighted mean length (a decode batch is checked at its mean context
            # too; sqrt(sum p^2), the bound on the longest, refused two prompts that each lie inside); one chunk
            # with context: where it ends
            context = max(context, pairs2 / t if pairs2 <= t * t else pairs2 / (2 * t) + t / 2)
        self.domain.check("a batch", seqs, batch.prefill_tokens + seqs, context, self.name)
        return self.roofline.iteration_time(batch)

    def decode_run_time(self, decode_seqs: int, decode_context: int, iterations: int) -> float:
        """Seconds for ``iterations`` decode iterations (domain checked at the run's last iteration)."""
        if iterations > 0 and decode_seqs > 0:
            last = decode_context / decode_seqs + iterations - 1
            self.domain.check("a decode run", decode_seqs, decode_seqs, last, self.name)
        return self.roofline.decode_run_time(decode_seqs, decode_context, iterations)

    def decode_iterations_within(self, decode_seqs: int, decode_context: int, duration: float) -> int:
        """Decode iterations that complete within ``duration`` (domain checked at the start)."""
        if decode_seqs > 0:
            self.domain.check("a decode run", decode_seqs, decode_seqs, decode_context / decode_seqs, self.name)
        return self.roofline.decode_iterations_within(decode_seqs, decode_context, duration)

    # ------------------------------------------------------------------------------ files
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (:func:`from_dict` reads it back)."""
        return {
            "format": _FORMAT,
            "name": self.name,
            "gpu": self.gpu,
            "model": self.model,
            "tp": self.tp,
            "params": dict(self.params),
            "domain": {
                "max_decode_seqs": self.domain.max_decode_seqs,
                "max_tokens": self.domain.max_tokens,
                "max_context": self.domain.max_context,
            },
            "source": dict(self.source),
            "fit": {k: dict(v) for k, v in self.fit.items()},
        }

    def save(self, folder: str | Path | None = None) -> Path:
        """Write ``<folder>/<name>.json`` (folder: ``$WORKBENCH_CALIBRATIONS``) and return its path."""
        path = _folder(folder) / f"{self.name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        return path


def from_dict(data: dict[str, Any], where: str = "calibration") -> CalibratedModel:
    """Return a :class:`CalibratedModel` from :meth:`CalibratedModel.to_dict` output."""
    if data.get("format") != _FORMAT:
        raise DatasetError(f"{where}: not a workbench calibrated model (format {data.get('format')!r})")
    try:
        dom = data["domain"]
        return CalibratedModel(
            name=str(data["name"]),
            gpu=str(data["gpu"]),
            model=str(data["model"]),
            tp=int(data["tp"]),
            params={str(k): float(v) for k, v in data["params"].items()},
            domain=Domain(int(dom["max_decode_seqs"]), int(dom["max_tokens"]), int(dom["max_context"])),
            source=dict(data.get("source", {})),
            fit={str(k): {str(a): float(b) for a, b in v.items()} for k, v in data.get("fit", {}).items()},
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"{where}: malformed calibrated model ({exc!r})") from exc


def _folder(folder: str | Path | None) -> Path:
    if folder is None:
        env = os.environ.get(CALIBRATIONS_ENV)
        if not env:
            raise ConfigError(f"no calibrations folder: pass folder= or set ${CALIBRATIONS_ENV}")
        folder = env
    return Path(folder)


def saved_calibrations(folder: str | Path | None = None) -> list[str]:
    """Return the sorted names of the saved calibrations: what ``perf="calibrated:<name>"`` may name.

    ``folder`` defaults to ``$WORKBENCH_CALIBRATIONS``; none when it is unset or missing.
    """
    if folder is None and not os.environ.get(CALIBRATIONS_ENV):
        return []
    path = _folder(folder)
    return sorted(p.stem for p in path.glob("*.json")) if path.is_dir() else []


def performance_models(folder: str | Path | None = None) -> list[str]:
    """Return every performance-model spec that can be named now (the explorers' menus).

    These are ``"roofline"`` and ``"calibrated:<name>"`` for each of :func:`saved_calibrations`.
    """
    return [ROOFLINE, *(CALIBRATED_PREFIX + name for name in saved_calibrations(folder))]


def calibrated_model(name: str | Path, folder: str | Path | None = None) -> CalibratedModel:
    """Load a saved calibration by name (``<folder>/<name>.json``) or from a ``.json`` path.

    Parameters
    ----------
    name
        Saved name, or a path ending in ``.json``.
    folder
        Folder of saved calibrations (default ``$WORKBENCH_CALIBRATIONS``).

    Returns
    -------
    CalibratedModel
        The calibration.

    Raises
    ------
    DatasetError
        No such file, or not JSON.
    """
    text = str(name)
    path = Path(text) if text.endswith(".json") else _folder(folder) / f"{text}.json"
    if not path.exists():
        have = saved_calibrations(path.parent)
        raise DatasetError(f"no calibrated model {text!r} in {path.parent} (saved: {have or 'none'})")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not JSON ({exc})") from exc
    return from_dict(data, str(path))


def performance_model(
    perf: str | CalibratedModel | None, gpu: str, model: str, tp: int = 1, *, folder: str | Path | None = None
) -> RooflineModel | CalibratedModel:
    """Resolve the performance model a spec names, for one configuration.

    This is the one resolution point of the package.

    Parameters
    ----------
    perf
        ``None`` or ``"roofline"``: :class:`RooflineModel` of ``gpu``/``model``/``tp`` with its defaults;
        ``"calibrated:<name>"``: the calibration saved as ``<name>`` (:func:`calibrated_model`; ``folder`` or
        ``$WORKBENCH_CALIBRATIONS``), or a :class:`CalibratedModel` itself.
    gpu, model, tp
        The configuration to time.

    Returns
    -------
    RooflineModel or CalibratedModel
        The model that times iterations of this configuration.

    Raises
    ------
    ConfigError
        ``perf`` is neither of the forms above.
    DatasetError
        No saved calibration of that name.
    HardwareError
        A calibration measured on another GPU, model or tensor-parallel degree.
    """
    if perf is None or perf == ROOFLINE:
        return RooflineModel(gpu, model, tp)
    if isinstance(perf, str):
        if not perf.startswith(CALIBRATED_PREFIX) or not perf[len(CALIBRATED_PREFIX) :]:
            raise ConfigError(f"perf must be {ROOFLINE!r} or '{CALIBRATED_PREFIX}<name>', got {perf!r}")
        perf = calibrated_model(perf[len(CALIBRATED_PREFIX) :], folder)
    if not isinstance(perf, CalibratedModel):
        raise ConfigError(
            f"perf must be {ROOFLINE!r}, '{CALIBRATED_PREFIX}<name>' or a CalibratedModel, "
            f"got {type(perf).__name__}"
        )
    perf.check_config(gpu, model, tp)
    return perf


def calibration_domain(perf: str | CalibratedModel | None, folder: str | Path | None = None) -> Domain | None:
    """Return the domain of the calibration a spec names (``None`` for the roofline).

    Parameters
    ----------
    perf
        ``None``, ``"roofline"``, ``"calibrated:<name>"`` or a :class:`CalibratedModel`.
    folder
        Folder of saved calibrations.

    Returns
    -------
    Domain or None
        What the calibration's benchmark exercised.
    """
    if perf is None or perf == ROOFLINE:
        return None
    if isinstance(perf, CalibratedModel):
        return perf.domain
    if isinstance(perf, str) and perf.startswith(CALIBRATED_PREFIX):
        return calibrated_model(perf[len(CALIBRATED_PREFIX) :], folder).domain
    raise ConfigError(f"perf must be {ROOFLINE!r} or '{CALIBRATED_PREFIX}<name>', got {perf!r}")


def token_budget(perf: str | CalibratedModel | None, max_num_seqs: int, default: int = 8192) -> int:
    """Return the tokens per iteration (``max_num_batched_tokens``) an instance of ``perf`` may batch.

    ``default``, or at most what a calibration's benchmark exercised; never below ``max_num_seqs``.

    Parameters
    ----------
    perf
        As :func:`calibration_domain`.
    max_num_seqs
        The instance's batch cap (sequences).
    default
        Budget without a calibration.

    Returns
    -------
    int
        Tokens per iteration.
    """
    dom = calibration_domain(perf)
    return max(default if dom is None else min(default, dom.max_tokens), int(max_num_seqs))


__all__ = [
    "CALIBRATED_PREFIX",
    "CALIBRATIONS_ENV",
    "ROOFLINE",
    "CalibratedModel",
    "Domain",
    "calibrated_model",
    "calibration_domain",
    "from_dict",
    "performance_model",
    "performance_models",
    "saved_calibrations",
    "token_budget",
]
