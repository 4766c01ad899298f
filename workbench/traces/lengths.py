"""Length models: prompt and output token counts of generated requests.

Small frozen objects behind the :class:`LengthModel` protocol: :class:`Fixed`, :class:`LogNormal` (fit by
moments of the logs), :class:`Empirical` (resample rows of a table), :class:`Pmf` (independent probability mass
functions, as ServeGen publishes them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from workbench.config import require_positive, require_range
from workbench.errors import ConfigError
from workbench.traces.schema import MAX_TOKENS, Trace


@runtime_checkable
class LengthModel(Protocol):
    """Prompt and output token counts (int32 arrays, >= 1) for ``n`` requests."""

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Prompt and output token counts of ``n`` requests.

        Parameters
        ----------
        rng
            The length stream (spawned from the generator's seed).
        n
            Number of requests.

        Returns
        -------
        tuple of numpy.ndarray
            ``(prompt_tokens, output_tokens)``, int32 arrays of length ``n``, values >= 1.
        """
        ...


def _tokens(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 1, MAX_TOKENS).astype(np.int32)


@dataclass(frozen=True, slots=True)
class Fixed:
    """Every request has the same prompt and output length."""

    prompt_tokens: int = 512
    output_tokens: int = 128

    def __post_init__(self) -> None:
        require_positive("prompt_tokens", self.prompt_tokens)
        require_positive("output_tokens", self.output_tokens)

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` copies of the fixed prompt and output lengths.

        Parameters and returns: see :meth:`LengthModel.sample`.
        """
        return np.full(n, self.prompt_tokens, np.int32), np.full(n, self.output_tokens, np.int32)


@dataclass(frozen=True, slots=True)
class LogNormal:
    """Log-normal prompt and output lengths (parameters of the natural logs) with correlation ``rho``."""

    prompt_mu: float
    prompt_sigma: float
    output_mu: float
    output_sigma: float
    rho: float = 0.0

    def __post_init__(self) -> None:
        require_positive("prompt_sigma", self.prompt_sigma, allow_zero=True)
        require_positive("output_sigma", self.output_sigma, allow_zero=True)
        require_range("rho", self.rho, -1.0, 1.0)

    @classmethod
    def fit(cls, prompt: np.ndarray, output: np.ndarray) -> LogNormal:
        """Maximum-likelihood fit (mean and std of the logs, correlation of the logs)."""
        lp, lo = np.log(np.asarray(prompt, float)), np.log(np.asarray(output, float))
        rho = float(np.corrcoef(lp, lo)[0, 1]) if lp.std() > 0 and lo.std() > 0 else 0.0
        return cls(float(lp.mean()), float(lp.std()), float(lo.mean()), float(lo.std()), rho)

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Correlated log-normal lengths, rounded to whole tokens (at least 1).

        Parameters and returns: see :meth:`LengthModel.sample`.
        """
        z1, z2 = rng.standard_normal(n), rng.standard_normal(n)
        z2 = self.rho * z1 + math.sqrt(1 - self.rho**2) * z2
        return (
            _tokens(np.exp(self.prompt_mu + self.prompt_sigma * z1)),
            _tokens(np.exp(self.output_mu + self.output_sigma * z2)),
        )


@dataclass(frozen=True, slots=True, eq=False)
class Empirical:
    """Resample (prompt, output) pairs of a table with replacement (keeps their joint distribution)."""

    prompt: np.ndarray
    output: np.ndarray

    def __post_init__(self) -> None:
        p, o = np.asarray(self.prompt, np.int32), np.asarray(self.output, np.int32)
        if p.size == 0 or p.shape != o.shape or p.min() < 1 or o.min() < 1:
            raise ConfigError("Empirical lengths need equal-length, non-empty arrays of tokens >= 1")
        object.__setattr__(self, "prompt", p)
        object.__setattr__(self, "output", o)

    @classmethod
    def from_trace(cls, trace: Trace) -> Empirical:
        return cls(trace.requests["prompt_tokens"].to_numpy(), trace.requests["output_tokens"].to_numpy())

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` (prompt, output) pairs drawn from the table with replacement.

        Parameters and returns: see :meth:`LengthModel.sample`.
        """
        idx = rng.integers(0, self.prompt.size, n)
        return self.prompt[idx], self.output[idx]


@dataclass(frozen=True, slots=True, eq=False)
class Pmf:
    """Independent prompt and output lengths drawn from probability mass functions (values, probabilities)."""

    prompt_values: np.ndarray
    prompt_probs: np.ndarray
    output_values: np.ndarray
    output_probs: np.ndarray

    def __post_init__(self) -> None:
        for name in ("prompt", "output"):
            v = np.asarray(getattr(self, f"{name}_values"), float)
            p = np.asarray(getattr(self, f"{name}_probs"), float)
            if v.size == 0 or v.shape != p.shape or np.any(p < 0) or p.sum() <= 0:
                raise ConfigError(f"{name} PMF must have matching non-empty values and probabilities >= 0")
            object.__setattr__(self, f"{name}_values", v)
            object.__setattr__(self, f"{name}_probs", p / p.sum())

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Prompt and output lengths drawn independently from their PMFs, rounded to whole tokens.

        Parameters and returns: see :meth:`LengthModel.sample`.
        """
        p = rng.choice(self.prompt_values, n, p=self.prompt_probs)
        o = rng.choice(self.output_values, n, p=self.output_probs)
        return _tokens(p), _tokens(o)
