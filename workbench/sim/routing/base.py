"""The routing protocol: what a router sees and what it returns.

A router picks one of ``n`` candidates (instances of a pool, or pools of a fleet) for each arriving request.
It sees the candidates through :class:`Candidates`, a set of numpy arrays indexed by candidate position, so
every policy is a vectorised O(N) (or O(log N)) expression instead of a Python loop over instances.
Ties always go to the lowest position, which makes every decision deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

#: Returned by a router that finds no candidate able to serve the request (the fleet records a rejection).
REJECT = -1


@runtime_checkable
class RouteRequest(Protocol):
    """The request fields a router may read (a trace row)."""

    request_id: int
    prompt_tokens: int
    output_tokens: int
    prefix_hashes: Sequence[int] | None
    session_id: int | None
    request_class: str | None


class Candidates(Protocol):
    """State of the candidates at one decision, as arrays indexed by candidate position.

    Attributes
    ----------
    ids
        Stable identifiers (instance ids); positions change when instances come and go, ids do not.
    outstanding
        Requests assigned and not finished (running + waiting).
    waiting
        Requests queued and not yet admitted to the running batch.
    running
        Running batch size (admitted, unfinished sequences).
    queued_prefill_tokens
        Prompt tokens still to prefill on the candidate (queued and partly prefilled requests, cache hits
        excluded).
    outstanding_tokens
        Prefill tokens still to compute plus decode tokens still to generate.
    kv_utilization
        Fraction of KV-cache blocks in use, in [0, 1].
    kv_blocks_used, free_kv_blocks
        KV-cache blocks in use and free.
    speed
        Relative serving speed (weight for weighted round robin); 1.0 for a homogeneous pool.
    kv_block_tokens
        Tokens per KV-cache block (for block-based costs): one number for the instances of a pool (they share
        its scheduler); for pool candidates (:class:`PoolCandidates`) an array, one block size per pool.
    """

    ids: np.ndarray
    outstanding: np.ndarray
    waiting: np.ndarray
    running: np.ndarray
    queued_prefill_tokens: np.ndarray
    outstanding_tokens: np.ndarray
    kv_utilization: np.ndarray
    kv_blocks_used: np.ndarray
    free_kv_blocks: np.ndarray
    speed: np.ndarray
    kv_block_tokens: int | np.ndarray

    def __len__(self) -> int: ...

    def prefix_match_tokens(self, request: RouteRequest) -> np.ndarray:
        """Prompt tokens of ``request`` found in each candidate's prefix cache (longest cached prefix)."""
        ...


class PoolCandidates(Candidates, Protocol):
    """Candidates that are pools (for fleet-level routers).

    The load arrays are pool totals, plus:

    Attributes
    ----------
    names
        Pool names.
    max_tokens
        Largest prompt (+ expected output) tokens a pool accepts (its length-routing threshold).
    classes
        Request classes each pool serves (empty set: any class).
    accuracy
        Quality figure of each pool's model variant (for ``multi_objective``).
    kv_block_tokens
        Each pool's KV-cache block size (an array, so block-based costs broadcast per pool).
    """

    names: tuple[str, ...]
    max_tokens: np.ndarray
    classes: tuple[frozenset[str], ...]
    accuracy: np.ndarray

    def expected_latency_s(self, request: RouteRequest) -> np.ndarray:
        """Return the expected end-to-end latency of ``request`` on each pool at the current load."""
        ...

    def expected_energy_j(self, request: RouteRequest) -> np.ndarray:
        """Return the expected energy of serving ``request`` on each pool."""
        ...


@runtime_checkable
class Router(Protocol):
    """A routing policy: a small object with one method.

    ``choose`` returns the position of the chosen candidate, or :data:`REJECT`; routers that can reject set
    ``reject_reason`` to a short text saying why.
    """

    name: str

    def choose(self, request: RouteRequest, view: Candidates, now: float) -> int:
        """Position of the candidate that serves ``request`` (or :data:`REJECT`)."""
        ...


def _zeros(n: int, dtype=np.int64) -> np.ndarray:
    return np.zeros(n, dtype=dtype)


@dataclass
class ArrayCandidates:
    """A :class:`Candidates` (and :class:`PoolCandidates`) built from plain arrays.

    Missing arrays default to zeros (``speed`` and ``accuracy`` to ones, ``max_tokens`` to unlimited).
    ``prefix_tokens`` maps a request id to the per-candidate cached prefix tokens; alternatively
    ``cached_hashes`` holds, per candidate, the set of cached prefix-block hashes, and the match is the
    longest run of leading request hashes present (times ``prefix_block_tokens``, capped at the prompt).
    """

    n: int
    ids: np.ndarray | None = None
    outstanding: np.ndarray | None = None
    waiting: np.ndarray | None = None
    running: np.ndarray | None = None
    queued_prefill_tokens: np.ndarray | None = None
    outstanding_tokens: np.ndarray | None = None
    kv_utilization: np.ndarray | None = None
    kv_blocks_used: np.ndarray | None = None
    free_kv_blocks: np.ndarray | None = None
    speed: np.ndarray | None = None
    kv_block_tokens: int | np.ndarray = 16
    cached_hashes: Sequence[set[int]] | None = None
    prefix_block_tokens: int = 16
    names: tuple[str, ...] = ()
    max_tokens: np.ndarray | None = None
    classes: tuple[frozenset[str], ...] = ()
    accuracy: np.ndarray | None = None
    latency_s: np.ndarray | None = None
    energy_j: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.n
        for name in (
            "outstanding",
            "waiting",
            "running",
            "queued_prefill_tokens",
            "outstanding_tokens",
            "kv_blocks_used",
            "free_kv_blocks",
        ):
            value = getattr(self, name)
            setattr(self, name, _zeros(n) if value is None else np.asarray(value, dtype=np.int64))
        self.ids = np.arange(n) if self.ids is None else np.asarray(self.ids, dtype=np.int64)
        self.kv_utilization = (
            _zeros(n, float) if self.kv_utilization is None else np.asarray(self.kv_utilization, dtype=float)
        )
        for name in ("speed", "accuracy"):
            value = getattr(self, name)
            setattr(self, name, np.ones(n) if value is None else np.asarray(value, dtype=float))
        if self.max_tokens is None:
            self.max_tokens = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
        self.max_tokens = np.asarray(self.max_tokens, dtype=np.int64)
        if not self.names:
            self.names = tuple(str(i) for i in range(n))
        if not self.classes:
            self.classes = tuple(frozenset() for _ in range(n))

    def __len__(self) -> int:
        return self.n

    def prefix_match_tokens(self, request: RouteRequest) -> np.ndarray:
        """Return the prefix tokens of ``request`` each candidate caches (zeros without ``cached_hashes``)."""
        out = _zeros(self.n)
        if self.cached_hashes is None or not request.prefix_hashes:
            return out
        for i, cached in enumerate(self.cached_hashes):
            k = 0
            for h in request.prefix_hashes:
                if h not in cached:
                    break
                k += 1
            out[i] = min(k * self.prefix_block_tokens, request.prompt_tokens)
        return out

    def expected_latency_s(self, request: RouteRequest) -> np.ndarray:
        """Return each candidate's expected latency of ``request`` (the given ``latency_s``; zeros without)."""
        return np.zeros(self.n) if self.latency_s is None else np.asarray(self.latency_s, dtype=float)

    def expected_energy_j(self, request: RouteRequest) -> np.ndarray:
        """Return each candidate's expected energy of ``request`` (the given ``energy_j``; zeros without)."""
        return np.zeros(self.n) if self.energy_j is None else np.asarray(self.energy_j, dtype=float)


def argmin_first(values: np.ndarray) -> int:
    """Position of the smallest value (the lowest position among ties)."""
    return int(np.asarray(values).argmin())


def argmax_first(values: np.ndarray) -> int:
    """Position of the largest value (the lowest position among ties)."""
    return int(np.asarray(values).argmax())
