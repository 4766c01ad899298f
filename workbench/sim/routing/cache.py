"""Cache- and state-aware routers with the published scoring rules.

Prefix matches are in tokens (``Candidates.prefix_match_tokens``); ties go to the lowest position.
"""

from __future__ import annotations

import bisect

import numpy as np

from workbench.config import require_choice, require_positive, require_range
from workbench.sim.routing.base import Candidates, RouteRequest, argmax_first, argmin_first
from workbench.sim.routing.load import RouterBase

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def mix64(x: np.ndarray | np.integer | int) -> np.ndarray:
    """SplitMix64 finaliser: a fast, well-spread, platform-independent 64-bit hash of integers."""
    z = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return z & _MASK64


class Session(RouterBase):
    """Consistent hashing of ``session_id`` on a ring with ``vnodes`` virtual nodes per instance.

    A session maps to the first virtual node clockwise from its hash. Adding or removing an instance moves
    only the sessions of that instance's arcs (stable under scaling). Requests without a session hash their
    request id. Cost per decision: O(log(N x vnodes)); the ring is rebuilt only when the instance set changes.
    """

    name = "session"

    def __init__(self, *, vnodes: int = 64, rng: np.random.Generator | None = None) -> None:
        super().__init__(rng=rng)
        require_positive("vnodes", vnodes)
        self.vnodes = int(vnodes)
        self._ids: tuple[int, ...] | None = None
        self._points: list[int] = []
        self._owner: list[int] = []
        self._pos: dict[int, int] = {}

    def _build(self, ids: tuple[int, ...]) -> None:
        inst = np.repeat(np.asarray(ids, dtype=np.uint64), self.vnodes)
        replica = np.tile(np.arange(self.vnodes, dtype=np.uint64), len(ids))
        with np.errstate(over="ignore"):
            points = mix64(mix64(inst) ^ (replica * np.uint64(0x632BE59BD9B4E019)))
        order = np.argsort(points, kind="stable")
        self._points = points[order].tolist()
        self._owner = inst[order].astype(np.int64).tolist()
        self._pos = {iid: k for k, iid in enumerate(ids)}
        self._ids = ids

    def choose(self, request: RouteRequest, view: Candidates, now: float) -> int:
        ids = tuple(view.ids.tolist())
        if ids != self._ids:
            self._build(ids)
        key = request.session_id if request.session_id is not None else request.request_id
        h = int(mix64(np.uint64(key) ^ np.uint64(0x5BD1E995)))
        k = bisect.bisect_left(self._points, h)
        return self._pos[self._owner[k % len(self._owner)]]


class PrefixAffinity(RouterBase):
    """Longest cached prefix match; fewest outstanding requests breaks ties."""

    name = "prefix_affinity"

    def choose(self, request: RouteRequest, view: Candidates, now: float) -> int:
        match = view.prefix_match_tokens(request)
        best = np.flatnonzero(match == match.max())
        return int(best[argmin_first(view.outstanding[best])])


class SGLangCacheAware(RouterBase):
    """SGLang router's cache-aware policy.

    If the load is imbalanced (max - min outstanding > ``balance_abs`` and max > ``balance_rel`` x min) pick
    the least loaded; else, if the best prefix-match ratio (matched / prompt tokens) >= ``cache_threshold``
    pick that instance; else the instance with the most free KV cache.
    """

    name = "sglang_cache_aware"

    def __init__(
        self,
        *,
        balance_abs: float = 64,
        balance_rel: float = 1.5,
        cache_threshold: float = 0.3,
        rng: np.random.Generator | None = None,
    ) -> None:
        super().__init__(rng=rng)
        require_positive("balance_abs", balance_abs, allow_zero=True)
        require_positive("balance_rel", balance_rel)
        require_range("cache_threshold", cache_threshold, 0.0, 1.0)
        self.balance_abs, self.balance_rel, self.cache_threshold = balance_abs, balance_rel, cache_threshold

    def choose(self, request: RouteRequest, view: Candidates, now: float) -> int:
        load = view.outstanding
        lo, hi = int(load.min()), int(load.max())
        if hi - lo > self.balance_abs and hi > self.balance_rel * lo:
            return argmin_first(load)
        match = view.prefix_match_tokens(request)
        best = argmax_first(match)
        if match[best] / max(request.prompt_tokens, 1) >= self.cache_threshold:
            return best
        return argmax_first(view.free_kv_blocks)


def _minmax_low_is_good(x: np.ndarray) -> np.ndarray:
    """Score in [0, 1]: 1 for the smallest value, 0 for the largest (all 1 when equal)."""
    lo, hi = x.min(), x.max()
    if hi == lo:
        return np.ones(x.shape)
    return (hi - x) / (hi - lo)


class LLMD(RouterBase):
    """llm-d inference scheduler: highest weighted sum of normalised scorers.

    Scorers (each in [0, 1]): queue = min-max normalised waiting requests (fewest -> 1); KV = 1 - KV
    utilisation; prefix = matched prompt tokens / prompt tokens. Default weights queue 2, KV 2, prefix 3.
    """

    name = "llmd"

    def __init__(
        self,
        *,
        queue_weight: float = 2.0,
        kv_weight: float = 2.0,
        prefix_weight: float = 3.0,
        rng: np.random.Generator | None = None,
    ) -> None:
        super().__init__(rng=rng)
        for field, value in (
            ("queue_weight", queue_weight),
            ("kv_weight", kv_weight),
            ("prefix_weight", prefix_weight),
        ):
            require_positive(field, value, allow_zero=True)
        self.weights = (queue_weight, kv_weight, prefix_weight)

    def choose(self, request: RouteRequest, view: Candidates, now: float) -> int:
        wq, wkv, wp = self.weights
        score = wq * _minmax_low_is_good(view.waiting) + wkv * (1.0 - view.kv_utilization)
        if wp:
            score = score + wp * view.prefix_match_tokens(request) / max(request.prompt_tokens, 1)
        return argmax_first(score)


class Dynamo(RouterBase):
    """NVIDIA Dynamo KV router: lowest ``overlap_weight`` x prefill blocks not cached + decode blocks in use."""

    name = "dynamo"

    def __init__(self, *, overlap_weight: float = 1.0, rng: np.random.Generator | None = None) -> None:
        super().__init__(rng=rng)
        require_positive("overlap_weight", overlap_weight, allow_zero=True)
        self.overlap_weight = overlap_weight

    def choose(self, request: RouteRequest, view: Candidates, now: float) -> int:
        uncached = request.prompt_tokens - view.prefix_match_tokens(request)
        cost = self.overlap_weight * uncached / view.kv_block_tokens + view.kv_blocks_used
        return argmin_first(cost)


class VLLMv1(RouterBase):
    """vLLM v1 production-stack score: argmin 4 x waiting + running."""

    name = "vllm_v1"

    def choose(self, request: RouteRequest, view: Candidates, now: float) -> int:
        return argmin_first(4 * view.waiting + view.running)


class LinearWeights(RouterBase):
    """Production linear-weights scheduler (Alibaba Bailian), the baseline of LMetric (arXiv 2603.15202).

    As ``bailian.rs`` in blitz-router: three min-max normalised scores in [0, 1], the prompt's prefix-cache
    hit share (higher is better), the requests on the instance (running + waiting, fewer is better) and its
    tokens (KV tokens held plus prefill tokens queued, fewer is better), weighted ``alpha`` / ``beta`` /
    ``gamma`` (0.7 / 0.15 / 0.15). ``sample=True`` draws the instance with probability proportional to its
    score (the published rule, from the router's seeded generator); ``False`` takes the best score.
    """

    name = "linear_weights"
    randomised = True
    rng: np.random.Generator  # required of a randomised router (RouterBase.__init__)

    def __init__(
        self,
        *,
        alpha: float = 0.7,
        beta: float = 0.15,
        gamma: float = 0.15,
        sample: bool = True,
        rng: np.random.Generator | None = None,
    ) -> None:
        super().__init__(rng=rng)
        for field, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
            require_positive(field, value, allow_zero=True)
        self.weights = (alpha, beta, gamma)
        self.sample = bool(sample)

    def choose(self, request: RouteRequest, view: Candidates, now: float) -> int:
        alpha, beta, gamma = self.weights
        hit = view.prefix_match_tokens(request) / max(request.prompt_tokens, 1)
        tokens = view.kv_blocks_used * view.kv_block_tokens + view.queued_prefill_tokens
        score = (
            alpha * _spread(-hit) + beta * _spread(view.outstanding) + gamma * _spread(tokens)
        )
        if not self.sample:
            return argmax_first(score)
        total = float(score.sum())
        if total <= 0.0:  # all candidates alike: a uniform draw
            return int(self.rng.integers(len(score)))
        pick = int(np.searchsorted(np.cumsum(score), self.rng.random() * total, side="right"))
        return min(pick, len(score) - 1)


def _spread(x: np.ndarray) -> np.ndarray:
    """Min-max score in [0, 1], 1 for the smallest value; all 0 when all values are equal (``bailian.rs``)."""
    lo, hi = x.min(), x.max()
    return (hi - x) / (hi - lo) if hi > lo else np.zeros(x.shape)

class LMetric(RouterBase):
    """LMetric (arXiv 2603.15202): argmin P_i x (B_i + 1).

    P_i = prefill tokens queued on i + this request's prompt tokens not in i's prefix cache.
    B_i = i's running batch size (``batch="running"``, the rule as the issue states it) or its running +
    waiting requests (``batch="outstanding"``, as ``bs`` in blitz-router's ``lmetric.rs``).
    """

    name = "lmetric"

    def __init__(self, *, batch: str = "running", rng: np.random.Generator | None = None) -> None:
        super().__init__(rng=rng)
        self.batch = require_choice("batch", batch, ("running", "outstanding"))

    def choose(self, request: RouteRequest, view: Candidates, now: float) -> int:
        p = view.queued_prefill_tokens + (request.prompt_tokens - view.prefix_match_tokens(request))
        b = view.running if self.batch == "running" else view.outstanding
        return argmin_first(p * (b + 1))
