"""One registry of workload presets.

The named workloads that the explorers, the app, ``make figures``, the CLI and the notebooks offer.

A :class:`Preset` turns a seed (and optionally a request count) into a :class:`~workbench.traces.Trace`.
Presets that read a registered dataset are available when it is local (:func:`available`); generator presets
always are. Add one with :func:`register`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from workbench.errors import ConfigError
from workbench.traces.schema import Trace

if TYPE_CHECKING:
    from workbench.traces.arrivals import ArrivalProcess
    from workbench.traces.sessions import PrefixReuse, Sessions


@dataclass(frozen=True, slots=True)
class Preset:
    """A named workload.

    Attributes
    ----------
    name
        Registry key (``poisson``, ``azure_code`` ...).
    description
        One line for menus.
    build
        ``build(seed, n)`` returns the trace; ``n`` (requests) may be ``None`` for the preset's own size.
    datasets
        Registered datasets it reads (empty for pure generators).
    drawable
        ``build(seed, n)`` draws ``n`` fresh requests for any ``n`` (a generator): the measurement kernel
        (:mod:`workbench.sim.measure`) may then draw as many as a verdict needs (:meth:`workload`).
    """

    name: str
    description: str
    build: Callable[[int, int | None], Trace]
    datasets: tuple[str, ...] = ()
    drawable: bool = False

    def generate(self, seed: int = 0, n: int | None = None) -> Trace:
        """Return the preset's trace for ``seed`` (first ``n`` requests when given)."""
        trace = self.build(seed, n)
        return trace if n is None or len(trace) <= n else trace.with_requests(trace.requests.head(n))

    def workload(self, seed: int = 0) -> object:
        """Return what a sizing question should measure on.

        The preset itself when :attr:`drawable` (a generator the kernel draws from at any length and seed), else
        its trace (finite).
        """
        if self.drawable:
            return self
        # a registered preset's trace comes from the cache of :func:`generate` (an explorer switching back to it
        # is instant); another Preset object of the same name is built afresh
        return generate(self.name, seed) if PRESETS.get(self.name) is self else self.generate(seed)


#: Presets by name, in menu order.
PRESETS: dict[str, Preset] = {}

#: Seconds of traffic of the generator presets of the workload explorer.
EXPLORER_DURATION_S = 1800.0


def register(preset: Preset) -> Preset:
    """Add ``preset`` to :data:`PRESETS` (a name already taken raises :class:`ConfigError`)."""
    if preset.name in PRESETS:
        raise ConfigError(f"workload preset {preset.name!r} is already registered")
    PRESETS[preset.name] = preset
    return preset


def get(name: str) -> Preset:
    """Return the preset called ``name`` (one :class:`ConfigError` listing the names when unknown)."""
    from workbench.config import require_choice

    return PRESETS[require_choice("workload", name, tuple(PRESETS), what="workload preset")]


def generate(name: str, seed: int = 0, n: int | None = None) -> Trace:
    """Shorthand for ``get(name).generate(seed, n)``.

    The last 16 traces are kept (a preset is a pure function of its seed, and a :class:`Trace` is immutable), so
    an explorer switching back is instant.
    """
    return _generate(get(name).name, seed, n)


@lru_cache(maxsize=16)
def _generate(name: str, seed: int, n: int | None) -> Trace:
    return PRESETS[name].generate(seed, n)


def available() -> list[str]:
    """Names of the presets whose datasets are local (all generator presets)."""
    import polars as pl

    from workbench import datasets

    local = set(datasets.list().filter(pl.col("local"))["name"])
    return [p.name for p in PRESETS.values() if set(p.datasets) <= local]


# ------------------------------------------------------------------------------------------------ presets
def _explorer_lengths():
    from workbench import traces

    return traces.LogNormal(prompt_mu=6.5, prompt_sigma=1.0, output_mu=5.0, output_sigma=0.8, rho=0.2)


def _explorer(
    arrivals: Callable[[], ArrivalProcess],
    sessions: Callable[[], Sessions | PrefixReuse] | None = None,
    *,
    label: str,
):
    """Return a generator preset of the workload explorer: 30 minutes of traffic at about 2 req/s."""

    def build(seed: int, n: int | None) -> Trace:
        from workbench import traces

        gen = traces.Synthetic(arrivals(), _explorer_lengths(), sessions() if sessions else None, name=label)
        return gen.generate(duration_s=EXPLORER_DURATION_S, seed=seed)

    return build


def _dataset(name: str) -> Callable[[int, int | None], Trace]:
    def build(seed: int, n: int | None) -> Trace:
        from workbench import traces

        return traces.load(name, allow_download=False)

    return build


def _poisson(seed: int, n: int | None) -> Trace:
    from workbench.traces import LogNormal, Poisson, Synthetic

    gen = Synthetic(Poisson(10.0), LogNormal(math.log(800), 1.0, math.log(150), 0.8), name="poisson-lognormal")
    return gen.generate(n=4000 if n is None else n, seed=seed)


def _servegen(seed: int, n: int | None) -> Trace:
    from workbench.traces import ServeGenMix

    return ServeGenMix.from_datasets(top_clients=20).generate(duration_s=60.0, seed=seed)


def _servegen_mid(seed: int, n: int | None) -> Trace:
    from workbench.traces import ServeGenMix

    mix = ServeGenMix.from_datasets(
        model="m-mid", start_s=72_000, end_s=73_800, top_clients=10, rate_scale=0.01
    )
    return mix.generate(seed=seed)


def _register_defaults() -> None:
    from workbench import traces

    sg = ("servegen_windows", "servegen_length_pdfs")
    for preset in (
        Preset("poisson", "synthetic Poisson arrivals (10 req/s), log-normal lengths", _poisson, drawable=True),
        Preset("azure_code", "Azure LLM inference trace 2023, code (bursty arrivals)", _dataset("azure_code"),
               ("azure_code",)),
        Preset("mooncake_synthetic", "Mooncake (Kimi) synthetic trace with 512-token prefix blocks",
               _dataset("mooncake_synthetic"), ("mooncake_synthetic",)),
        Preset("servegen", "ServeGen-style client mix (m-large, 20 busiest clients, 60 s)", _servegen, sg),
        Preset("servegen_mid", "ServeGen m-mid, top 10 clients at 1% rate, 20:00-20:30", _servegen_mid, sg),
        Preset("chat_poisson", "generator: Poisson, 2 req/s, 30 min",
               _explorer(lambda: traces.Poisson(2.0), label="poisson")),
        Preset("chat_bursty", "generator: bursty Weibull, CV 3, 30 min",
               _explorer(lambda: traces.Renewal(2.0, 3.0, "weibull"), label="bursty")),
        Preset("chat_diurnal", "generator: diurnal (30-min period)",
               _explorer(lambda: traces.TimeVarying(traces.Diurnal(2.0, amplitude=0.9, period_s=1800.0,
                                                                   peak_s=900.0)), label="diurnal")),
        Preset("chat_sessions", "generator: chat sessions + shared system prompts",
               _explorer(lambda: traces.Poisson(2.0), lambda: traces.Sessions(
                   mean_turns=4.0, think_s=60.0, system_prompt_tokens=1536, n_system_prompts=4,
                   system_prompt_share=0.6), label="sessions")),
    ):  # fmt: skip
        register(preset)


_register_defaults()
