"""Links with contention: shared bandwidth resources and flows that share them max-min fairly.

A :class:`Network` holds *links* (NVLink, PCIe, an RDMA NIC, an SSD, a remote KV store's aggregate bandwidth),
each a shared resource with a bandwidth (bytes per second, one direction) and a latency. A *flow* moves
``size`` bytes over a *path* (one or more links) and calls back when its last byte has arrived. Flows that run
at the same time share the links: the rates are the **max-min fair** allocation (progressive filling: raise
every flow's rate together until a link is full, freeze the flows through it, repeat), recomputed whenever a
flow starts or ends. On a single link this is processor sharing: ``n`` flows get ``bandwidth / n`` each.

Timing of a flow: its bytes leave at the allocated rate from its start; it is delivered ``latency`` seconds
after its last byte left, where ``latency`` is the sum of its links' latencies (a pipe, no store and forward).
Closed forms that follow (and that the tests check):

* one flow alone: ``latency + size / bandwidth``;
* ``n`` equal flows started together on one link: each ``latency + n x size / bandwidth``;
* a flow that starts while another is half done finishes, with it, as processor sharing says.

The network schedules its own events on the simulation :class:`~workbench.sim.engine.Engine` (one pending
rate-change event at a time, replaced when flows change), so it costs nothing while no flow is in flight.

Examples
--------
>>> from workbench.sim.engine import Engine
>>> eng = Engine()
>>> net = Network(eng)
>>> pcie = net.add_link("pcie", bandwidth_gbps=64.0, latency_s=0.0)
>>> done = []
>>> for _ in range(4):
...     _ = net.transfer(1.6e9, (pcie,), lambda flow, now: done.append(now))
>>> eng.run()
>>> [round(t, 9) for t in done]  # 4 x 1.6 GB / 64 GB/s
[0.1, 0.1, 0.1, 0.1]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from workbench.config import require_positive
from workbench.errors import ConfigError
from workbench.sim.engine import PRIO_ARRIVAL, PRIO_ITERATION, Engine, SimulationError

#: Bytes in one GB (links are specified in GB/s, decimal, as vendors quote them).
GB = 1e9


@dataclass(frozen=True, slots=True)
class LinkSpec:
    """Bandwidth (one direction), latency and energy per byte of a kind of link.

    Parameters
    ----------
    bandwidth_gbps
        Sustained bandwidth in GB/s (1e9 bytes per second) in one direction.
    latency_s
        Fixed latency added to every flow over the link (seconds).
    energy_nj_per_byte
        Dynamic energy per byte moved (nJ), for the energy report of the hierarchy.
    source
        Where the numbers come from.
    """

    bandwidth_gbps: float
    latency_s: float = 0.0
    energy_nj_per_byte: float = 0.0
    source: str = ""

    def __post_init__(self) -> None:
        require_positive("bandwidth_gbps", self.bandwidth_gbps)
        require_positive("latency_s", self.latency_s, allow_zero=True)
        require_positive("energy_nj_per_byte", self.energy_nj_per_byte, allow_zero=True)

    def transfer_time(self, size_bytes: float) -> float:
        """Seconds to move ``size_bytes`` over this link alone (``latency + size / bandwidth``)."""
        return self.latency_s + size_bytes / (self.bandwidth_gbps * GB)


#: Link kinds with public figures (one direction, per GPU unless said otherwise). Energy per byte is the
#: dynamic part only (idle power of NICs and drives belongs to the machine's base power).
LINKS: dict[str, LinkSpec] = {
    "nvlink4": LinkSpec(
        450.0, 2e-6, 0.01,
        "NVIDIA H100 SXM: NVLink 4, 900 GB/s bidirectional per GPU (18 links x 50 GB/s); latency a few us; "
        "energy ~1.3 pJ/bit class for on-package NVLink-C2C, taken as 10 pJ/B for board-level NVLink",
    ),
    "pcie5_x16": LinkSpec(
        64.0, 10e-6, 0.04,
        "PCI-SIG PCIe 5.0: 32 GT/s x 16 lanes, 128b/130b = 63 GB/s per direction (H100 SXM host interface); "
        "10 us per copy for a DMA launch (cudaMemcpyAsync); ~5 pJ/bit SerDes energy",
    ),
    "pcie4_x16": LinkSpec(
        32.0, 10e-6, 0.04,
        "PCI-SIG PCIe 4.0: 16 GT/s x 16 lanes = 31.5 GB/s per direction (A100 host interface)",
    ),
    "cx7_400g": LinkSpec(
        50.0, 5e-6, 0.5,
        "NVIDIA ConnectX-7 400 Gb/s InfiniBand NDR / RoCE, one per GPU in a DGX H100 (8 x 400 Gb/s); "
        "RDMA latency a few us; ~25 W at 400 Gb/s line rate = 0.5 nJ/B per NIC",
    ),
    "roce_200g": LinkSpec(25.0, 10e-6, 0.6, "200 Gb/s RoCE NIC (ConnectX-6 class), 25 GB/s"),
    "ethernet_100g": LinkSpec(12.5, 30e-6, 0.8, "100 GbE NIC with TCP, 12.5 GB/s"),
    "nvme_gen4_read": LinkSpec(
        6.4, 90e-6, 0.5,
        "Samsung PM1733 U.2 (PCIe 4.0 x4) datasheet: 6.4 GB/s sequential read; NVMe read latency ~90 us; "
        "~20 W active / ~40 GB/s-class mixed = 0.5 nJ/B taken for the dynamic energy",
    ),
    "nvme_gen4_write": LinkSpec(
        3.8, 30e-6, 1.0, "Samsung PM1733 U.2 datasheet: 3.8 GB/s sequential write",
    ),
    "mooncake_store": LinkSpec(
        190.0, 20e-6, 0.5,
        "Mooncake Transfer Engine: 190 GB/s over 8 x 400 Gb/s RoCE (87 GB/s over 4 x 200 Gb/s), aggregate "
        "bandwidth of one store node; store lookup + RDMA setup ~20 us",
    ),
}  # fmt: skip


def link_spec(name_or_spec: str | LinkSpec) -> LinkSpec:
    """Return a :class:`LinkSpec` from a name of :data:`LINKS` (or the spec itself)."""
    if isinstance(name_or_spec, LinkSpec):
        return name_or_spec
    spec = LINKS.get(name_or_spec)
    if spec is None:
        raise ConfigError(f"unknown link {name_or_spec!r}; choose one of: {', '.join(sorted(LINKS))}")
    return spec


class Flow:
    """A transfer in flight (created by :meth:`Network.transfer`).

    Attributes
    ----------
    size
        Bytes to move.
    remaining
        Bytes not yet sent (exact at the network's last update).
    path
        Link ids it crosses.
    rate
        Current rate in bytes per second (0 until it is allocated).
    start_s, sent_s, done_s
        Start, time its last byte left, delivery time (``nan`` until known).
    latency_s
        Sum of its links' latencies.
    """

    __slots__ = (
        "arg",
        "callback",
        "done_s",
        "latency_s",
        "path",
        "rate",
        "remaining",
        "sent_s",
        "size",
        "start_s",
    )

    def __init__(self, size: float, path: tuple[int, ...], latency_s: float, start_s: float, callback, arg):
        self.size = size
        self.remaining = size
        self.path = path
        self.latency_s = latency_s
        self.start_s = start_s
        self.sent_s = math.nan
        self.done_s = math.nan
        self.rate = 0.0
        self.callback = callback
        self.arg = arg

    def __repr__(self) -> str:
        return (
            f"Flow(size={self.size:.4g}, remaining={self.remaining:.4g}, rate={self.rate:.4g}, "
            f"path={self.path})"
        )


def max_min_rates(capacity: Sequence[float], paths: Sequence[Sequence[int]]) -> list[float]:
    """Max-min fair rates of flows over links (progressive filling).

    Parameters
    ----------
    capacity
        Capacity of each link (any unit per second).
    paths
        Per flow, the links it crosses (at least one each).

    Returns
    -------
    list of float
        The rate of each flow: no link carries more than its capacity, and no flow can get more without
        taking from a flow that has no more than it.

    Examples
    --------
    >>> max_min_rates([10.0, 4.0], [[0], [0, 1], [1]])  # flow 1 and 2 share link 1; flow 0 gets the rest
    [8.0, 2.0, 2.0]
    """
    n = len(paths)
    rates = [0.0] * n
    left = {}
    users: dict[int, list[int]] = {}
    for f, path in enumerate(paths):
        for link in path:
            users.setdefault(link, []).append(f)
            left[link] = capacity[link]
    count = {link: len(fs) for link, fs in users.items()}
    frozen = [False] * n
    active = n
    while active:
        # the bottleneck: the link whose remaining capacity per unfrozen flow is smallest (lowest id on ties)
        best = math.inf
        bottleneck = -1
        for link, c in count.items():
            if c:
                share = left[link] / c
                if share < best:
                    best, bottleneck = share, link
        best = max(best, 0.0)
        for f in users[bottleneck]:
            if frozen[f]:
                continue
            frozen[f] = True
            active -= 1
            rates[f] = best
            for link in paths[f]:
                left[link] -= best
                count[link] -= 1
    return rates


class Network:
    """Links and the flows in flight over them, on one engine clock (see module docstring).

    Parameters
    ----------
    engine
        The simulation engine whose clock and heap the network uses.
    contention
        ``False``: every flow runs at its path's bottleneck bandwidth as if alone (``latency + size /
        bandwidth``), the no-contention reference; bytes and busy time are still counted.

    Attributes
    ----------
    names, bandwidth, latency, energy_nj_per_byte
        Per link id: its name, bandwidth (bytes/s), latency (s), energy per byte (nJ).
    bytes_moved
        Per link id: bytes carried by completed and in-flight flows so far (exact at the last update).
    busy_s
        Per link id: time with at least one flow on the link.
    flows_done
        Flows delivered so far.
    """

    def __init__(self, engine: Engine, *, contention: bool = True) -> None:
        self.engine = engine
        self.contention = contention
        self.names: list[str] = []
        self.bandwidth: list[float] = []
        self.latency: list[float] = []
        self.energy_nj_per_byte: list[float] = []
        self.bytes_moved: list[float] = []
        self.busy_s: list[float] = []
        self._by_name: dict[str, int] = {}
        self._flows: dict[Flow, None] = {}  # in flight, in start order
        self._users: list[int] = []  # flows in flight per link
        self._t = 0.0  # time of the last update of ``remaining``
        self._version = 0
        self.flows_done = 0

    # ------------------------------------------------------------------ links
    def add_link(
        self,
        name: str,
        bandwidth_gbps: float | None = None,
        latency_s: float | None = None,
        *,
        spec: str | LinkSpec | None = None,
        scale: float = 1.0,
    ) -> int:
        """Add a link and return its id.

        Give ``bandwidth_gbps`` (GB/s) and ``latency_s``, or a ``spec`` (a :data:`LINKS` name or a
        :class:`LinkSpec`) whose bandwidth is multiplied by ``scale`` (e.g. the GPUs of a tensor-parallel
        instance, each with its own link); explicit values override the spec's.
        """
        if name in self._by_name:
            raise ConfigError(f"link {name!r} already exists")
        base = link_spec(spec) if spec is not None else None
        if bandwidth_gbps is None:
            if base is None:
                raise ConfigError(f"link {name!r}: give bandwidth_gbps or a spec")
            bandwidth_gbps = base.bandwidth_gbps * scale
        if latency_s is None:
            latency_s = base.latency_s if base is not None else 0.0
        require_positive(f"link {name!r} bandwidth_gbps", bandwidth_gbps)
        require_positive(f"link {name!r} latency_s", latency_s, allow_zero=True)
        link = len(self.names)
        self._by_name[name] = link
        self.names.append(name)
        self.bandwidth.append(float(bandwidth_gbps) * GB)
        self.latency.append(float(latency_s))
        self.energy_nj_per_byte.append(base.energy_nj_per_byte if base is not None else 0.0)
        self.bytes_moved.append(0.0)
        self.busy_s.append(0.0)
        self._users.append(0)
        return link

    def link(self, name: str) -> int:
        """Id of the link called ``name``."""
        try:
            return self._by_name[name]
        except KeyError:
            raise ConfigError(f"no link {name!r}; links: {', '.join(self.names)}") from None

    def __len__(self) -> int:
        return len(self.names)

    @property
    def in_flight(self) -> int:
        """Flows not yet fully sent."""
        return len(self._flows)

    def users(self, link: int) -> int:
        """Flows in flight over ``link``."""
        return self._users[link]

    # ------------------------------------------------------------------ estimates (routers)
    def uncontended_time(self, size_bytes: float, path: Sequence[int]) -> float:
        """``latency + size / bottleneck bandwidth`` of a flow alone on ``path``."""
        if not path:
            return 0.0
        bw = min(self.bandwidth[link] for link in path)
        return sum(self.latency[link] for link in path) + size_bytes / bw

    def estimated_time(self, size_bytes: float, path: Sequence[int]) -> float:
        """Transfer time of a new flow on ``path`` if the flows now in flight kept their share.

        The new flow's rate is taken as the smallest ``bandwidth / (users + 1)`` over its links (its fair share
        as the newest of ``users + 1`` flows); exact on one link for equal flows that end together.
        """
        if not path:
            return 0.0
        users = self._users
        rate = min(self.bandwidth[link] / (users[link] + 1) for link in path)
        return sum(self.latency[link] for link in path) + size_bytes / rate

    # ------------------------------------------------------------------ flows
    def transfer(
        self,
        size_bytes: float,
        path: Sequence[int],
        callback: Callable[[Any, float], None],
        arg: Any = None,
    ) -> Flow:
        """Start moving ``size_bytes`` over ``path`` now; ``callback(arg, t)`` at delivery.

        With ``arg=None`` the callback receives the :class:`Flow`. A flow with no bytes or an empty path is
        delivered after the path's latency.
        """
        if not (size_bytes >= 0.0 and math.isfinite(size_bytes)):
            raise SimulationError(f"flow size must be a finite number of bytes >= 0, got {size_bytes!r}")
        now = self.engine.now
        path = tuple(path)
        for link in path:
            if not 0 <= link < len(self.names):
                raise SimulationError(f"flow path has unknown link id {link!r}")
        latency = sum(self.latency[link] for link in path)
        flow = Flow(float(size_bytes), path, latency, now, callback, arg)
        if size_bytes == 0.0 or not path:
            flow.sent_s = now
            self._deliver(flow, now + latency)
            return flow
        if not self.contention:  # alone on its path: account for it and deliver
            bw = min(self.bandwidth[link] for link in path)
            flow.sent_s = now + size_bytes / bw
            for link in path:
                self.bytes_moved[link] += size_bytes
                self.busy_s[link] += size_bytes / bw
            flow.remaining = 0.0
            self._deliver(flow, flow.sent_s + latency)
            return flow
        self._advance(now)
        self._flows[flow] = None
        for link in path:
            self._users[link] += 1
        self._reallocate(now)
        return flow

    def account(self, size_bytes: float, path: Sequence[int]) -> None:
        """Count ``size_bytes`` moved over ``path`` without a flow.

        For background traffic that nothing waits for and that shares its links with nothing modelled (e.g.
        offloading writes device -> host); busy time grows by ``size / bandwidth`` per link.
        """
        for link in path:
            self.bytes_moved[link] += size_bytes
            self.busy_s[link] += size_bytes / self.bandwidth[link]

    def cancel(self, flow: Flow) -> None:
        """Stop ``flow`` now (it is never delivered); the others share its bandwidth from now on."""
        if flow not in self._flows:
            return
        now = self.engine.now
        self._advance(now)
        del self._flows[flow]
        for link in flow.path:
            self._users[link] -= 1
        self._reallocate(now)

    def _advance(self, now: float) -> None:
        """Bring every in-flight flow's ``remaining`` (and the link counters) to ``now``."""
        dt = now - self._t
        if dt > 0.0 and self._flows:
            moved = self.bytes_moved
            for flow in self._flows:
                sent = flow.rate * dt
                if sent > flow.remaining:
                    sent = flow.remaining
                flow.remaining -= sent
                for link in flow.path:
                    moved[link] += sent
            busy = self.busy_s
            for link, n in enumerate(self._users):
                if n:
                    busy[link] += dt
        self._t = now

    def _reallocate(self, now: float) -> None:
        """Recompute the rates and schedule the next completion (replacing the pending one)."""
        self._version += 1
        flows = self._flows
        if not flows:
            return
        rates = max_min_rates(self.bandwidth, [f.path for f in flows])
        first = math.inf
        for flow, rate in zip(flows, rates, strict=True):
            flow.rate = rate
            if rate > 0.0:
                t = flow.remaining / rate
                if t < first:
                    first = t
        if first == math.inf:
            raise SimulationError("flows in flight but none has a positive rate")
        self.engine.schedule(now + first, PRIO_ITERATION, self._on_rate_event, self._version)

    def _on_rate_event(self, version: int, now: float) -> None:
        if version != self._version:
            return
        self._advance(now)
        # done: flows with (nearly) nothing left; the tolerance absorbs the rounding of remaining/rate
        tol_t = 1e-12 * max(1.0, now)
        done = [f for f in self._flows if f.remaining <= f.rate * tol_t or f.remaining <= 1e-9 * f.size]
        if not done:  # rounding left the earliest one a hair short: it is the one this event was for
            done = [min(self._flows, key=lambda f: f.remaining / f.rate if f.rate > 0 else math.inf)]
        for flow in done:
            if flow.remaining > 0.0:  # count the last crumbs
                for link in flow.path:
                    self.bytes_moved[link] += flow.remaining
                flow.remaining = 0.0
            del self._flows[flow]
            for link in flow.path:
                self._users[link] -= 1
            flow.rate = 0.0
            flow.sent_s = now
            self._deliver(flow, now + flow.latency_s)
        self._reallocate(now)

    def _deliver(self, flow: Flow, at: float) -> None:
        self.engine.schedule(at, PRIO_ARRIVAL, self._delivered, flow)

    def _delivered(self, flow: Flow, now: float) -> None:
        flow.done_s = now
        self.flows_done += 1
        flow.callback(flow if flow.arg is None else flow.arg, now)

    # ------------------------------------------------------------------ reporting
    def stats(self) -> list[dict[str, float | str]]:
        """Per link: name, bandwidth (GB/s), bytes moved, busy seconds, energy (J) of the bytes moved."""
        self._advance(self.engine.now)
        return [
            {
                "link": name,
                "bandwidth_gbps": bw / GB,
                "bytes": moved,
                "busy_s": busy,
                "energy_j": moved * e * 1e-9,
            }
            for name, bw, moved, busy, e in zip(
                self.names, self.bandwidth, self.bytes_moved, self.busy_s, self.energy_nj_per_byte, strict=True
            )
        ]


__all__ = ["GB", "LINKS", "Flow", "LinkSpec", "Network", "link_spec", "max_min_rates"]
