"""Routing policies, each a small object behind the :class:`Router` protocol, selectable by short name.

>>> from workbench.sim.routing import get_router
>>> router = get_router("lmetric")
>>> router.name
'lmetric'
"""

from __future__ import annotations

import inspect
from typing import TypeVar

import numpy as np

from workbench.config import require_choice
from workbench.errors import ConfigError
from workbench.sim.request import Request
from workbench.sim.routing.base import (
    REJECT,
    ArrayCandidates,
    Candidates,
    PoolCandidates,
    Router,
    RouteRequest,
)
from workbench.sim.routing.cache import (
    LLMD,
    Dynamo,
    LinearWeights,
    LMetric,
    PrefixAffinity,
    Session,
    SGLangCacheAware,
    VLLMv1,
)
from workbench.sim.routing.kvload import KVLoadAware
from workbench.sim.routing.load import (
    JIQ,
    JSQ,
    LeastTokens,
    Pack,
    PowerOfTwo,
    Random,
    RoundRobin,
    WeightedRoundRobin,
)
from workbench.sim.routing.pools import ClassPools, LengthPools, MultiObjective

#: Registered routers by short name.
#: A router class: anything with a ``name`` whose instances :class:`Router` describes.
_RouterClass = TypeVar("_RouterClass", bound="type[Router]")

ROUTERS: dict[str, type] = {
    cls.name: cls
    for cls in (
        RoundRobin,
        Random,
        JSQ,
        PowerOfTwo,
        LeastTokens,
        JIQ,
        WeightedRoundRobin,
        Pack,
        Session,
        PrefixAffinity,
        SGLangCacheAware,
        LLMD,
        Dynamo,
        VLLMv1,
        LMetric,
        KVLoadAware,
        LinearWeights,
        LengthPools,
        ClassPools,
        MultiObjective,
    )
}
#: Routers that choose among pools (need a :class:`PoolCandidates` view).
POOL_ROUTERS: frozenset[str] = frozenset({"length_pools", "class_pools", "multi_objective"})
#: Routers that read prefix-cache matches.
CACHE_ROUTERS: frozenset[str] = frozenset(
    {"prefix_affinity", "sglang_cache_aware", "llmd", "dynamo", "lmetric", "kv_aware", "linear_weights"}
)


def register(cls: _RouterClass) -> _RouterClass:
    """Register a router class under its ``name`` attribute (usable as a decorator).

    Parameters
    ----------
    cls
        A router class with a ``name`` class attribute.

    Returns
    -------
    type
        ``cls``.
    """
    ROUTERS[cls.name] = cls
    return cls


def check_router_name(name: str, field: str = "router") -> str:
    """Return the registered spelling of the router name ``name``.

    Case and surrounding spaces are ignored (see :func:`workbench.config.require_choice`); an unknown name
    raises a :class:`ConfigError` naming ``field``.

    The message reads ``<field>: unknown router 'x'; choose one of: ...`` (just ``unknown router 'x'; ...``
    for the default field).

    Parameters
    ----------
    name
        Router name as given.
    field
        Field named in the error.

    Returns
    -------
    str
        The name as registered in :data:`ROUTERS`.
    """
    return require_choice(field, name, tuple(ROUTERS), what=None if field == "router" else "router")


class _NoStream:
    """Stands in for a randomised router's stream when a router is built only to check its parameters."""

    def __getattr__(self, attr: str):
        raise RuntimeError("a router built by check_router() has no random stream")


def check_router(name: str, field: str = "router", **params) -> None:
    """Raise :class:`ConfigError` unless ``name`` is a registered router accepting ``params``.

    Nothing is drawn: a randomised router gets its stream where it is built for a run.

    Parameters
    ----------
    name
        Router name.
    field
        Field named in the error.
    **params
        Parameters given to the router.

    Raises
    ------
    ConfigError
        Unknown name, or unknown/invalid parameter.
    """
    check_router_name(name, field)
    get_router(name, rng=_NoStream(), **params)  # type: ignore[arg-type]


def get_router(name: str, *, rng: np.random.Generator | None = None, **params) -> Router:
    """Build the router registered as ``name`` with its parameters.

    Parameters
    ----------
    name
        Short name, e.g. ``"jsq"``, ``"lmetric"``, ``"sglang_cache_aware"``.
    rng
        Generator for randomised routers (``random``, ``p2c``, ``jiq``).
    **params
        Policy parameters (e.g. ``cache_threshold=0.5`` for ``sglang_cache_aware``).

    Returns
    -------
    Router
        A fresh router (its own state), ready for one run.

    Raises
    ------
    ConfigError
        Unknown name (lists the valid ones) or unknown/invalid parameter.
    """
    name = check_router_name(name)
    cls = ROUTERS[name]
    accepted = [p for p in inspect.signature(cls).parameters if p != "rng"]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ConfigError(
            f"unknown parameter(s) {unknown} for router {name!r}; valid: {', '.join(accepted) or 'none'}"
        )
    return cls(rng=rng, **params)


__all__ = [
    "CACHE_ROUTERS",
    "POOL_ROUTERS",
    "REJECT",
    "ROUTERS",
    "ArrayCandidates",
    "Candidates",
    "PoolCandidates",
    "Request",
    "RouteRequest",
    "Router",
    "check_router",
    "check_router_name",
    "get_router",
    "register",
]
