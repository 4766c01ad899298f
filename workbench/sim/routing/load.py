"""Load-based routers: round robin, random, JSQ, power of two choices, least tokens, JIQ, weighted RR."""

from __future__ import annotations

import numpy as np

from workbench.config import require_positive
from workbench.errors import ConfigError
from workbench.sim.routing.base import Candidates, RouteRequest, argmax_first, argmin_first


class RouterBase:
    """Common constructor: the router's random stream (``None`` for a deterministic router).

    Randomised routers (``randomised = True``) require ``rng``, a generator of a named stream (e.g.
    ``Simulation.rng("router/...")`` or :func:`workbench.seeds.rng`); there is no fallback generator.
    """

    name = "base"
    reject_reason = ""
    #: The router draws random numbers (and so needs ``rng``).
    randomised = False

    def __init__(self, *, rng: np.random.Generator | None = None) -> None:
        if rng is None and self.randomised:
            raise ConfigError(
                f"router {self.name!r} draws random numbers: give it rng= (a named stream, e.g. "
                "workbench.seeds.rng(seed, 'router'))",
            )
        self.rng = rng

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class RoundRobin(RouterBase):
    """Cycle through the candidates in position order."""

    name = "round_robin"

    def __init__(self, *, rng: np.random.Generator | None = None) -> None:
        super().__init__(rng=rng)
        self._next = 0

    def choose(self, request: RouteRequest, view: Candidates, now: float) -> int:
        i = self._next % len(view)
        self._next = i + 1
        return i


class Random(RouterBase):
    """Uniformly random candidate (from the router's seeded generator)."""

    name = "random"
    randomised = True
    rng: np.random.Generator  # required of a randomised router (RouterBase.__init__)

    def choose(self, request: RouteRequest, view: Candidates, now: float) -> int:
        return int(self.rng.integers(len(view)))


class JSQ(RouterBase):
    """Join the shortest queue: fewest outstanding (running + waiting) requests."""

    name = "jsq"

    def choose(self, request: RouteRequest, view: Candidates, now: float) -> int:
        return argmin_first(view.outstanding)


class PowerOfTwo(RouterBase):
    """Power of two choices: sample two distinct candidates, keep the one with fewer outstanding requests."""

    name = "p2c"
    randomised = True
    rng: np.random.Generator  # required of a randomised router (RouterBase.__init__)

    def choose(self, request: RouteRequest, view: Candidates, now: float) -> int:
        n = len(view)
        if n == 1:
            return 0
        a, b = (int(x) for x in self.rng.choice(n, size=2, replace=False))
        a, b = min(a, b), max(a, b)
        return b if view.outstanding[b] < view.outstanding[a] else a


class LeastTokens(RouterBase):
    """Fewest outstanding tokens: prefill tokens still to compute + decode tokens still to generate."""

    name = "least_tokens"

    def choose(self, request: RouteRequest, view: Candidates, now: float) -> int:
        return argmin_first(view.outstanding_tokens)


class JIQ(RouterBase):
    """Join the idle queue: a random idle candidate (no outstanding request) if any, else a random one."""

    name = "jiq"
    randomised = True
    rng: np.random.Generator  # required of a randomised router (RouterBase.__init__)

    def choose(self, request: RouteRequest, view: Candidates, now: float) -> int:
        idle = np.flatnonzero(view.outstanding == 0)
        if idle.size:
            return int(idle[self.rng.integers(idle.size)])
        return int(self.rng.integers(len(view)))


class Pack(RouterBase):
    """Pack requests onto few candidates.

    The first (lowest position) with fewer than ``limit`` outstanding requests, else the one with fewest.

    A deliberately imbalanced policy: busy instances run larger batches (per-iteration costs spread over
    more tokens) and the others stay idle, the exposure-reducing mitigation of the execution-idle study.
    """

    name = "pack"

    def __init__(self, *, limit: int = 64, rng: np.random.Generator | None = None) -> None:
        super().__init__(rng=rng)
        require_positive("limit", limit)
        self.limit = limit

    def choose(self, request: RouteRequest, view: Candidates, now: float) -> int:
        room = np.flatnonzero(view.outstanding < self.limit)
        return int(room[0]) if room.size else argmin_first(view.outstanding)

class WeightedRoundRobin(RouterBase):
    """Smooth weighted round robin (nginx) with weights = candidate speed.

    Each decision adds every weight to its candidate's current value, picks the largest and subtracts the
    total weight from it; over a cycle each candidate is chosen in proportion to its weight, interleaved.
    Current values are kept per instance id, so adding or removing instances keeps the others' state.
    """

    name = "weighted_rr"

    def __init__(self, *, rng: np.random.Generator | None = None) -> None:
        super().__init__(rng=rng)
        self._ids: np.ndarray | None = None
        self._current = np.zeros(0)

    def choose(self, request: RouteRequest, view: Candidates, now: float) -> int:
        ids = view.ids
        if self._ids is None or not np.array_equal(self._ids, ids):
            old = (
                {} if self._ids is None else dict(zip(self._ids.tolist(), self._current.tolist(), strict=True))
            )
            self._current = np.array([old.get(i, 0.0) for i in ids.tolist()], dtype=float)
            self._ids = ids.copy()
        weights = np.asarray(view.speed, dtype=float)
        self._current += weights
        i = argmax_first(self._current)
        self._current[i] -= weights.sum()
        return i
