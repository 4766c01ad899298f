"""Length models: prompt and output token counts of generated requests.

Small frozen objects behind the :class:`LengthModel` protocol: :class:`Fixed`, :class:`LogNormal` (fit by
moments of the logs), :class:`Empirical` (resample rows of a table), :class:`Pmf` (independent probability mass
functions, as ServeGen publishes them), :class:`TotalTokenCdf` (an empirical CDF of prompt + output tokens, as
inference-fleet-sim publishes its workloads).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from workbench import datasets
from workbench.config import require_positive, require_range
from workbench.errors import ConfigError, WorkloadError
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
        """Return the (prompt, output) table of ``trace``'s requests."""
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


#: Share of a request's total tokens that inference-fleet-sim gives the prompt (``CdfWorkload.l_in_frac``).
IFS_PROMPT_SHARE = 0.8


@dataclass(frozen=True, slots=True, eq=False)
class TotalTokenCdf:
    """Lengths from an empirical CDF of *total* tokens per request, split into prompt and output.

    This reads the workload CDFs of inference-fleet-sim (vllm-project/semantic-router,
    ``fleet_sim/workload/synthetic.py``, ``CdfWorkload``) and samples them the way that tool does:

    1. draw ``u`` uniform in [0, 1) and take the first breakpoint ``i`` with ``u <= cumulative[i]``;
    2. draw the total uniformly among the whole numbers ``lo .. hi`` (both included), where ``lo`` is the
       previous breakpoint (1 for the first) and ``hi = max(lo, tokens[i])``; when ``u`` is above the last
       cumulative fraction (a CDF that stops short of 1) the total is the last breakpoint;
    3. split: ``prompt = max(1, floor(prompt_share * total))`` and ``output = max(1, total - prompt)``, with
       ``prompt_share = 0.8`` as in that tool (so a total of 1 becomes 1 + 1 tokens).

    Prompt and output are therefore fully dependent (output = 20 % of the total, rounded up), and the total
    is uniform inside each bin. inference-fleet-sim also tags each request with a random category (prose 60 %,
    code 25 %, RAG 15 %) that only its semantic router reads; it is not reproduced here.

    Attributes
    ----------
    tokens
        Breakpoints: total tokens, increasing integers >= 1.
    cumulative
        Cumulative fraction of requests at or below each breakpoint: non-decreasing, in [0, 1].
    prompt_share
        Share of the total given to the prompt (``l_in_frac`` in inference-fleet-sim).
    source
        Where the CDF came from (file or dataset name), for messages and ``Trace.source``.

    Examples
    --------
    >>> from workbench.traces import Poisson, Synthetic, TotalTokenCdf
    >>> gen = Synthetic(Poisson(2.0), TotalTokenCdf.from_json("ifs_lmsys_cdf"))
    >>> len(gen.generate(n=100, seed=0))
    100
    """

    tokens: np.ndarray
    cumulative: np.ndarray
    prompt_share: float = IFS_PROMPT_SHARE
    source: str = ""

    def __post_init__(self) -> None:
        where = self.source or None
        t = np.asarray(self.tokens)
        f = np.asarray(self.cumulative, dtype=float)
        if t.ndim != 1 or t.size == 0 or f.shape != t.shape:
            raise WorkloadError("a CDF needs equal-length, non-empty tokens and cumulative arrays", file=where)
        for i, (x, p) in enumerate(zip(t.tolist(), f.tolist(), strict=True), start=1):
            if isinstance(x, bool) or not float(x).is_integer() or not 1 <= x <= MAX_TOKENS:
                raise WorkloadError(
                    f"a breakpoint must be a whole number of tokens in 1..{MAX_TOKENS:,}, got {x!r}",
                    file=where,
                    field="tokens",
                    row=i,
                )
            if not math.isfinite(p) or not 0.0 <= p <= 1.0:
                raise WorkloadError(
                    f"a cumulative fraction must be in [0, 1], got {p!r}", file=where, field="cumulative", row=i
                )
        t = t.astype(np.int64)
        for values, field, rule, bad in (
            (t, "tokens", "breakpoints must increase", np.diff(t) <= 0),
            (f, "cumulative", "cumulative fractions must not decrease", np.diff(f) < 0),
        ):
            if bad.any():
                i = int(np.argmax(bad))
                got = f"got {values[i]} then {values[i + 1]}"
                raise WorkloadError(f"{rule}, {got}", file=where, field=field, row=i + 2)
        if f[-1] <= 0:
            raise WorkloadError(
                "the CDF holds no probability (last fraction 0)", file=where, field="cumulative"
            )
        require_range("prompt_share", self.prompt_share, 0.0, 1.0)
        object.__setattr__(self, "tokens", t)
        object.__setattr__(self, "cumulative", f)

    @classmethod
    def from_json(
        cls, source: str | Path, *, prompt_share: float = IFS_PROMPT_SHARE, allow_download: bool = True
    ) -> TotalTokenCdf:
        """Read an inference-fleet-sim CDF: a file path (read literally) or a dataset name (``ifs_lmsys_cdf``).

        Parameters
        ----------
        source
            A JSON file holding either a list of ``[total_tokens, cumulative_fraction]`` pairs or an object
            whose ``"cdf"`` key holds that list (other keys, such as ``"provenance"``, are ignored); or the name
            of a registered dataset of that kind (:func:`workbench.datasets.list`, kind ``cdf``).
        prompt_share
            Share of the total given to the prompt.
        allow_download
            For a dataset name: fetch a missing file (``False``: never touch the network).

        Returns
        -------
        TotalTokenCdf

        Raises
        ------
        WorkloadError
            For a missing file, invalid JSON, or pairs that do not form a CDF (naming the pair, from 1).
        """
        path = Path(source)
        name = str(source)
        if isinstance(source, str) and path.suffix == "" and len(path.parts) == 1 and not path.exists():
            path = datasets.fetch(source, allow_download=allow_download)
        if not path.is_file():
            raise WorkloadError("file not found" if not path.exists() else "this is not a file", file=str(path))
        try:
            raw = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise WorkloadError(f"not valid JSON ({exc})", file=str(path)) from None
        pairs = raw.get("cdf") if isinstance(raw, dict) else raw
        if not isinstance(pairs, list) or not pairs:
            raise WorkloadError(
                "expected a JSON list of [total_tokens, cumulative_fraction] pairs, or an object with a "
                "'cdf' list",
                file=str(path),
                field="cdf",
            )
        for i, pair in enumerate(pairs, start=1):
            ok = isinstance(pair, list) and len(pair) == 2
            if not ok or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in pair):
                raise WorkloadError(
                    f"expected a [total_tokens, cumulative_fraction] pair of numbers, got {json.dumps(pair)}",
                    file=str(path),
                    field="cdf",
                    row=i,
                )
        tokens = [p[0] for p in pairs]
        fractions = [float(p[1]) for p in pairs]
        return cls(np.asarray(tokens, dtype=object), np.asarray(fractions), prompt_share, source=name)

    @property
    def mean_total_tokens(self) -> float:
        """Expected total tokens per request (before the split's rounding)."""
        lo = np.concatenate([[1], self.tokens[:-1]])
        hi = np.maximum(lo, self.tokens)
        mass = np.diff(np.concatenate([[0.0], self.cumulative]))
        return float((mass * (lo + hi) / 2).sum() + (1.0 - self.cumulative[-1]) * self.tokens[-1])

    def sample_total(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Total tokens of ``n`` requests (int64), drawn as described in the class docstring."""
        u = rng.random(n)
        i = np.searchsorted(self.cumulative, u, side="left")  # first breakpoint with u <= cumulative
        beyond = i >= self.tokens.size
        i = np.minimum(i, self.tokens.size - 1)
        lo = np.where(i == 0, 1, self.tokens[np.maximum(i - 1, 0)])
        hi = np.maximum(lo, self.tokens[i])
        total = rng.integers(lo, hi + 1)
        return np.where(beyond, self.tokens[-1], total)

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Prompt and output tokens: totals from the CDF, split ``prompt_share`` / rest.

        Parameters and returns: see :meth:`LengthModel.sample`.
        """
        total = self.sample_total(rng, n)
        prompt = np.maximum(1, np.floor(total * self.prompt_share)).astype(np.int64)
        output = np.maximum(1, total - prompt)
        return prompt.astype(np.int32), output.astype(np.int32)
