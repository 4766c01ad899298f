"""Which instances cache each prefix block: the index behind a vectorised prefix match.

A cache-aware router asks, for every decision, how many leading prompt blocks of the request each candidate
has cached. Walking every instance's cache is O(N) Python steps per decision; :class:`PrefixIndex` keeps,
for each prefix-block hash cached anywhere in a group of instances (a pool), a row of a boolean matrix over
the instances, updated by hooks where an instance's cache gains or loses an entry. A match is then a few
numpy calls whatever the number of instances: gather the rows of the request's hashes (up to the first one
no instance holds, followed by the all-false row 0) and take, per instance, the position of the first
``False`` (``argmin`` down each column).

An instance in a decode run evicts lazily (see :mod:`workbench.sim.instance`): it tells the index, with
:meth:`PrefixIndex.defer`, from when an eviction may be due, and a reader calls :meth:`PrefixIndex.settle`
with the current time before :meth:`PrefixIndex.match`, so the rows are those of a per-iteration loop.
"""

from __future__ import annotations

from heapq import heappop, heappush
from itertools import count, repeat
from typing import Protocol, cast

import numpy as np


class TrackedCache(Protocol):
    """What the index needs of an instance's prefix cache: its entries and its hook."""

    entries: dict[int, object]
    index: PrefixIndex | None


class CachingInstance(Protocol):
    """What the index needs of an instance.

    Its id, its prefix cache, and its lazy evictions (none due before ``evict_at``; ``settle(now)`` makes those
    due by ``now``).
    """

    index: int
    prefix: TrackedCache
    evict_at: float

    def settle(self, now: float) -> None: ...


class PrefixIndex:
    """Prefix-block hash -> row of a boolean matrix over the tracked instances (exact, kept by hooks).

    An instance joins with :meth:`track`, which records what its cache holds and sets its cache's ``index``
    so that it calls :meth:`add` for every new cache entry, :meth:`remove` for every evicted one and
    :meth:`clear` when its cache is dropped (a failure). Rows of hashes no instance holds any more are
    reused. Memory: one byte per (cached distinct hash, tracked instance).
    """

    __slots__ = ("_col", "_count", "_free", "_hash", "_m", "_row", "_seq", "due", "ncols")

    def __init__(self) -> None:
        #: instance id -> column
        self._col: dict[int, int] = {}
        self.ncols = 0
        # row 0 is never given to a hash: all False, it ends every gathered column (see match)
        self._m = np.zeros((64, 0), dtype=bool)
        self._row: dict[int, int] = {}
        self._hash: list[int | None] = [None] * 64
        self._count = [0] * 64  # instances holding each row's hash
        self._free = list(range(63, 0, -1))
        #: heap of (time, tie-break, instance): instances whose lazy evictions may be due from that time on
        #: (a reader may test ``due and due[0][0] <= now`` before calling :meth:`settle`)
        self.due: list[tuple[float, int, CachingInstance]] = []
        self._seq = count()

    def __len__(self) -> int:
        """Distinct hashes cached by at least one tracked instance."""
        return len(self._row)

    def columns(self, ids) -> np.ndarray:
        """Columns of the instances with ids ``ids`` (all tracked)."""
        col = self._col
        return np.fromiter((col[i] for i in ids), dtype=np.int64)

    def track(self, inst: CachingInstance) -> None:
        """Add a column for ``inst`` (its cache as it is now) and hook the instance to this index."""
        if inst.index in self._col:
            raise ValueError(f"instance {inst.index} is already tracked")
        c = self.ncols
        self._col[inst.index] = c
        self.ncols = c + 1
        m = np.zeros((self._m.shape[0], c + 1), dtype=bool)
        m[:, :c] = self._m
        self._m = m
        for h in inst.prefix.entries:
            self.add(h, inst.index)
        inst.prefix.index = self
        if inst.evict_at < float("inf"):  # tracked in the middle of a decode run that evicts lazily
            self.defer(inst, inst.evict_at)

    def _grow(self) -> None:
        n = self._m.shape[0]
        self._m = np.concatenate([self._m, np.zeros_like(self._m)])
        self._hash.extend([None] * n)
        self._count.extend([0] * n)
        self._free.extend(range(2 * n - 1, n - 1, -1))

    def add(self, h: int, inst_id: int) -> None:
        """Instance ``inst_id`` now caches block ``h`` (it did not before)."""
        r = self._row.get(h)
        if r is None:
            if not self._free:
                self._grow()
            r = self._free.pop()
            self._row[h] = r
            self._hash[r] = h
        self._m[r, self._col[inst_id]] = True
        self._count[r] += 1

    def remove(self, h: int, inst_id: int) -> None:
        """Instance ``inst_id`` no longer caches block ``h`` (it did)."""
        r = self._row[h]
        self._m[r, self._col[inst_id]] = False
        self._release(r)

    def _release(self, r: int) -> None:
        left = self._count[r] - 1
        self._count[r] = left
        if not left:
            del self._row[cast(int, self._hash[r])]
            self._hash[r] = None
            self._free.append(r)

    def clear(self, inst_id: int) -> None:
        """Instance ``inst_id`` dropped its whole cache."""
        c = self._col[inst_id]
        held = np.flatnonzero(self._m[:, c])
        self._m[held, c] = False
        for r in held.tolist():
            self._release(r)

    def defer(self, inst: CachingInstance, at: float) -> None:
        """``inst`` evicts nothing before time ``at``; :meth:`settle` asks it from then on."""
        heappush(self.due, (at, next(self._seq), inst))

    def settle(self, now: float) -> None:
        """Have every instance with evictions due by ``now`` make them (call before :meth:`match`)."""
        due = self.due
        ready = []
        while due and due[0][0] <= now:
            ready.append(heappop(due)[2])
        for inst in ready:  # taken off first: one still owing blocks defers itself (to a later time) again
            inst.settle(now)

    def holds(self, inst_id: int) -> set[int]:
        """Return the hashes the index records for instance ``inst_id`` (for audits and tests)."""
        rows = np.flatnonzero(self._m[:, self._col[inst_id]]).tolist()
        return {cast(int, self._hash[r]) for r in rows}

    def match(self, hashes, limit: int, cols: np.ndarray | None) -> np.ndarray:
        """Leading blocks of ``hashes[:limit]`` each instance caches (``cols``; ``None``: all, in column order).

        Exactly the per-instance walk (stop at the first block not cached), as int64 block counts.
        """
        rows = list(map(self._row.get, hashes[:limit] if len(hashes) > limit else hashes, repeat(0)))
        try:
            depth = rows.index(0)  # no instance holds this block: nobody matches beyond it
        except ValueError:
            rows.append(0)
        else:
            if not depth:
                return np.zeros(self.ncols if cols is None else len(cols), dtype=np.int64)
            del rows[depth + 1 :]
        sub = self._m.take(rows, axis=0)
        if cols is not None:
            sub = sub.take(cols, axis=1)
        return sub.argmin(axis=0)


__all__ = ["PrefixIndex"]
