"""Autoscaling: instance lifecycle and scaling policies.

An instance goes ``off -> starting`` (for ``setup_delay_s``, the cold start) ``-> on -> draining`` (no new
requests; it turns off when its last request finishes). Every ``interval_s`` the fleet simulator shows the
pool's state to the pool's policy (a :class:`PoolObservation`) and gets back the desired instance count
(on + starting); it starts instances, or drains the least loaded ones (idle longest first).

Policies (registered under short names, see :func:`get_scaler`):

``static``
    Keep the configured count.
``kpa``
    Knative Pod Autoscaler: desired = ceil(average concurrency / (target_concurrency x target_utilization))
    over a stable window (60 s) and a panic window (6 s); the pool panics when the panic desired count is
    >= ``panic_threshold`` (2) x the ready count, and while panicking (until a stable window passes without
    the condition) it never scales down.
``saturation``
    Scale up by one when every on instance is saturated (KV utilisation >= ``kv_threshold`` or
    ``queue_threshold`` waiting requests); drain instances idle for ``idle_timeout_s``.
``delayed_off``
    Start instances when requests wait and no on instance has spare concurrency; turn an instance off only
    after it has been idle for ``idle_timeout_s`` (tau) (Gandhi et al.; analysed by Carlsson & Eager).
``threshold``
    Hysteresis on the load per instance (outstanding / (on + starting)): start one above ``up_threshold``,
    drain one below ``down_threshold`` (the threshold policy studied with delayed-off by Carlsson & Eager,
    arXiv 2507.19667).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from workbench.config import require_choice, require_positive, require_range
from workbench.errors import ConfigError

SCALERS = ("static", "kpa", "saturation", "delayed_off", "threshold")


@dataclass(frozen=True, slots=True)
class AutoscaleConfig:
    """Autoscaler of one pool (all times in seconds).

    Parameters
    ----------
    policy
        One of :data:`SCALERS`.
    min_instances, max_instances
        Bounds of the instance count (on + starting).
    setup_delay_s
        Cold-start time from off to on (loading weights, warming up).
    interval_s
        Decision period.
    target_concurrency, target_utilization
        KPA target outstanding requests per instance and the fraction of it to aim at; ``delayed_off``
        uses ``target_concurrency`` as an instance's spare capacity.
    stable_window_s, panic_window_s, panic_threshold
        KPA windows and panic trigger (desired / ready).
    kv_threshold, queue_threshold
        Saturation triggers.
    idle_timeout_s
        Idle time before an instance is turned off (tau of delayed-off; also used by ``saturation``).
    up_threshold, down_threshold
        ``threshold`` policy bounds on outstanding requests per instance.
    """

    policy: str = "static"
    min_instances: int = 1
    max_instances: int = 8
    setup_delay_s: float = 60.0
    interval_s: float = 2.0
    target_concurrency: float = 16.0
    target_utilization: float = 0.7
    stable_window_s: float = 60.0
    panic_window_s: float = 6.0
    panic_threshold: float = 2.0
    kv_threshold: float = 0.8
    queue_threshold: int = 5
    idle_timeout_s: float = 60.0
    up_threshold: float = 16.0
    down_threshold: float = 4.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "policy", require_choice("autoscale.policy", self.policy, SCALERS))
        for name in ("min_instances", "max_instances"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"autoscale.{name} must be an integer >= 0, got {value!r}")
        if self.max_instances < max(self.min_instances, 1):
            raise ConfigError(
                f"autoscale.max_instances ({self.max_instances}) must be >= max(1, min_instances "
                f"({self.min_instances}))"
            )
        for name in ("setup_delay_s", "idle_timeout_s"):
            require_positive(f"autoscale.{name}", getattr(self, name), allow_zero=True)
        for name in ("interval_s", "target_concurrency", "stable_window_s", "panic_window_s", "panic_threshold",
                     "queue_threshold", "up_threshold"):  # fmt: skip
            require_positive(f"autoscale.{name}", getattr(self, name))
        require_positive("autoscale.down_threshold", self.down_threshold, allow_zero=True)
        require_range("autoscale.target_utilization", self.target_utilization, 1e-9, 1.0)
        require_range("autoscale.kv_threshold", self.kv_threshold, 0.0, 1.0)
        if self.panic_window_s > self.stable_window_s:
            raise ConfigError(
                f"autoscale.panic_window_s ({self.panic_window_s}) must be <= stable_window_s "
                f"({self.stable_window_s})"
            )
        if self.down_threshold >= self.up_threshold:
            raise ConfigError(
                f"autoscale.down_threshold ({self.down_threshold}) must be < up_threshold ({self.up_threshold})"
            )


@dataclass(frozen=True, slots=True)
class PoolObservation:
    """What a scaling policy sees at a decision.

    Arrays are over the pool's ``on`` instances (not starting, not draining).
    """

    now: float
    n_on: int
    n_starting: int
    outstanding: np.ndarray
    waiting: np.ndarray
    kv_utilization: np.ndarray
    idle_since: np.ndarray  # time the instance last became idle; +inf while it has work

    @property
    def current(self) -> int:
        """Instances on or starting."""
        return self.n_on + self.n_starting


class Scaler(Protocol):
    """A scaling policy: desired instance count (on + starting) from an observation."""

    name: str

    def desired(self, obs: PoolObservation) -> int:
        """Return the desired instance count (on + starting) of the pool observed in ``obs``."""
        ...


class Static:
    """Keep the current count."""

    name = "static"

    def __init__(self, cfg: AutoscaleConfig) -> None:
        self.cfg = cfg

    def desired(self, obs: PoolObservation) -> int:
        return obs.current


def _idle_expired(obs: PoolObservation, tau: float) -> int:
    """Count the on instances idle for at least ``tau`` seconds."""
    return int(np.count_nonzero(obs.now - obs.idle_since >= tau))


class KPA(Static):
    """Knative Pod Autoscaler with stable and panic windows."""

    name = "kpa"

    def __init__(self, cfg: AutoscaleConfig) -> None:
        super().__init__(cfg)
        self._samples: deque[tuple[float, float]] = deque()
        self._panic_until = -math.inf
        self._last = 0

    def _avg(self, now: float, window: float) -> float:
        vals = [c for t, c in self._samples if t > now - window]
        return sum(vals) / len(vals) if vals else 0.0

    def desired(self, obs: PoolObservation) -> int:
        cfg, now = self.cfg, obs.now
        self._samples.append((now, float(obs.outstanding.sum())))
        while self._samples and self._samples[0][0] <= now - cfg.stable_window_s:
            self._samples.popleft()
        per = cfg.target_concurrency * cfg.target_utilization
        stable = math.ceil(self._avg(now, cfg.stable_window_s) / per - 1e-9)
        panic = math.ceil(self._avg(now, cfg.panic_window_s) / per - 1e-9)
        ready = max(obs.n_on, 1)
        if panic >= cfg.panic_threshold * ready:
            self._panic_until = now + cfg.stable_window_s
        if now < self._panic_until:
            want = max(panic, stable, self._last)  # never scale down while panicking
        else:
            want = stable
        self._last = want
        return want


class Saturation(Static):
    """Add one instance when every on instance is saturated; drain instances idle for ``idle_timeout_s``."""

    name = "saturation"

    def desired(self, obs: PoolObservation) -> int:
        cfg = self.cfg
        if obs.n_on == 0:
            return max(obs.current, 1) if obs.n_starting == 0 else obs.current
        saturated = (obs.kv_utilization >= cfg.kv_threshold) | (obs.waiting >= cfg.queue_threshold)
        if saturated.all() and obs.n_starting == 0:
            return obs.current + 1
        return obs.current - _idle_expired(obs, cfg.idle_timeout_s)


class DelayedOff(Static):
    """Start instances for waiting work when no instance has spare concurrency; off after tau idle seconds."""

    name = "delayed_off"

    def desired(self, obs: PoolObservation) -> int:
        cfg = self.cfg
        waiting = int(obs.waiting.sum())
        spare = (obs.outstanding < cfg.target_concurrency).any() if obs.n_on else False
        if waiting and not spare:
            need = math.ceil(waiting / cfg.target_concurrency)
            return obs.n_on + max(obs.n_starting, need)
        if obs.n_on == 0 and obs.n_starting == 0 and waiting:
            return 1
        return obs.current - _idle_expired(obs, cfg.idle_timeout_s)


class Threshold(Static):
    """Hysteresis on outstanding requests per instance (on + starting)."""

    name = "threshold"

    def desired(self, obs: PoolObservation) -> int:
        cfg = self.cfg
        load = float(obs.outstanding.sum()) / max(obs.current, 1)
        if load > cfg.up_threshold or (obs.current == 0 and obs.outstanding.sum() > 0):
            return obs.current + 1
        if load < cfg.down_threshold and obs.n_starting == 0:
            return obs.current - 1
        return obs.current


_SCALER_CLASSES = {cls.name: cls for cls in (Static, KPA, Saturation, DelayedOff, Threshold)}


def get_scaler(cfg: AutoscaleConfig) -> Scaler:
    """Return the policy object for ``cfg.policy`` (fresh state)."""
    return _SCALER_CLASSES[cfg.policy](cfg)


def clamp(cfg: AutoscaleConfig, want: int) -> int:
    """Bound a desired count to ``[min_instances, max_instances]``."""
    return max(cfg.min_instances, min(cfg.max_instances, int(want)))


def drain_order(outstanding: np.ndarray, idle_since: np.ndarray) -> np.ndarray:
    """Positions in the order to drain: fewest outstanding first, then idle longest, then lowest position."""
    return np.lexsort((np.arange(outstanding.size), idle_since, outstanding))


__all__ = ["SCALERS", "AutoscaleConfig", "PoolObservation", "Scaler", "clamp", "drain_order", "get_scaler"]
