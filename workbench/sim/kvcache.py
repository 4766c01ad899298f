# cython: wraparound=False
"""The KV memory of one instance: the paged block allocator and the prefix cache it shares blocks with.

:class:`KVBlocks` counts the instance's KV-cache blocks; :class:`PrefixCache` keeps the prompt blocks named by
``prefix_hashes`` that requests share (reference counts, an LRU list of unreferenced entries, eviction). An
:class:`~workbench.sim.instance.Instance` owns one of each; evicting a cache entry returns its blocks to the
allocator (:meth:`PrefixCache.evict_lru`). Both are plain state with O(1) operations (a match or a release
is O(matched blocks)); the scheduling rules that use them live in the instance.

A tiered cache (host memory, a remote store) would subclass :class:`PrefixCache`: eviction is one method
(:meth:`PrefixCache.evict_lru`, where a demotion to a lower tier would go) and a lookup is one method
(:meth:`PrefixCache.match`).

Compiled core: ``setup.py`` builds this module with Cython, typed by ``kvcache.pxd`` beside it (a new
attribute or method of its classes is declared there too); the ``.py`` file stays the pure-Python
implementation (:mod:`workbench._pure` chooses, ``tests/test_compiled_core.py`` checks both agree).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from workbench.errors import ConfigError

if TYPE_CHECKING:
    from workbench.sim.routing.prefix_index import PrefixIndex


class KVBlocks:
    """The paged KV-cache allocator of one instance.

    Attributes
    ----------
    block_tokens
        Tokens per KV block (the scheduler's ``block_size``).
    capacity
        Blocks in all.
    free
        Blocks not allocated. Negative while a decode run has reserved blocks that evictable prefix-cache
        entries still hold (the run evicts them lazily, see :mod:`workbench.sim.instance`).
    peak
        Most blocks in use at the start of a step so far.
    """

    __slots__ = ("block_tokens", "capacity", "free", "peak")

    def __init__(self, capacity_tokens: int, block_tokens: int) -> None:
        self.block_tokens = block_tokens
        self.capacity = capacity_tokens // block_tokens
        if self.capacity < 1:
            raise ConfigError(f"KV capacity of {capacity_tokens} tokens is less than one block")
        self.free = self.capacity
        self.peak = 0

    @property
    def used(self) -> int:
        """Blocks allocated (private blocks of requests and prefix-cache entries)."""
        return self.capacity - self.free

    def blocks_for(self, tokens: int) -> int:
        """Blocks that hold ``tokens`` tokens."""
        return -(-tokens // self.block_tokens)


class CacheEntry:
    """One prefix-cache entry: its hash, its reference count and, while unreferenced, its place in the LRU list.

    The LRU list is a doubly linked ring through the cache's sentinel entry (``None`` while referenced).
    """

    __slots__ = ("count", "hash", "newer", "older")

    count: int
    hash: int
    # the LRU neighbours while unreferenced (None, never read, while referenced)
    newer: CacheEntry
    older: CacheEntry

    def __init__(self, h: int, count: int) -> None:
        self.hash = h
        self.count = count
        self.newer = self.older = None  # type: ignore[assignment]


def new_entry(h: int, count: int) -> CacheEntry:
    """Return a new :class:`CacheEntry` off the LRU list.

    Made without ``__init__``'s argument parsing: the compiled core calls the type's allocator directly.
    """
    e = CacheEntry.__new__(CacheEntry)
    e.hash = h
    e.count = count
    e.newer = e.older = None  # type: ignore[assignment]
    return e


class PrefixCache:
    """Prompt blocks shared by requests, named by the trace's ``prefix_hashes``.

    An entry holds ``blocks_per_entry`` KV blocks (``entry_tokens`` tokens, a multiple of the KV block size)
    and a reference count (requests using it); unreferenced entries sit in an LRU list and are evicted when
    blocks are needed. Requests release their entries tail first (as vLLM frees a sequence's blocks in
    reverse), so eviction shortens a cached chain from its end. When an :attr:`index` (a
    :class:`~workbench.sim.routing.prefix_index.PrefixIndex`) tracks the instance, it is told of every entry
    created, evicted or dropped.

    The LRU list is a ring of :class:`CacheEntry` objects linked through a sentinel (no ``OrderedDict``: one
    dict lookup per hash, then typed field updates in the compiled core); :meth:`lru_order` lists it.

    Attributes
    ----------
    entry_tokens
        Tokens per entry (0: caching off).
    blocks_per_entry
        KV blocks per entry.
    entries
        Hash -> :class:`CacheEntry` (its reference count; 0 for an unreferenced, evictable entry).
    unreferenced
        Entries on the LRU list (unreferenced).
    index
        The prefix index told of changes (``None``: none).
    """

    __slots__ = ("_ring", "blocks_per_entry", "entries", "entry_tokens", "index", "owner", "unreferenced")

    def __init__(self, entry_tokens: int, block_tokens: int, owner: int) -> None:
        if entry_tokens and entry_tokens % block_tokens:
            raise ConfigError(
                f"prefix_block_tokens ({entry_tokens}) must be a multiple of block_size ({block_tokens}) for "
                "prefix caching; set scheduler.prefix_caching = false or change block_size"
            )
        self.entry_tokens = entry_tokens
        self.blocks_per_entry = entry_tokens // block_tokens if entry_tokens else 0
        self.entries: dict[int, CacheEntry] = {}
        self.unreferenced = 0
        ring = new_entry(-1, -1)  # sentinel: ring.newer is the least recently used entry, ring.older the most
        ring.newer = ring.older = ring
        self._ring = ring
        self.index: PrefixIndex | None = None
        #: the owning instance's id (for the index)
        self.owner = owner

    def __len__(self) -> int:
        """Entries cached (referenced or not)."""
        return len(self.entries)

    def __contains__(self, h: int) -> bool:
        return h in self.entries

    @property
    def evictable_blocks(self) -> int:
        """KV blocks held by unreferenced entries."""
        return self.unreferenced * self.blocks_per_entry

    def count(self, h: int) -> int:
        """Return how many requests reference entry ``h`` (0: unreferenced; -1: not cached)."""
        e = self.entries.get(h)
        return -1 if e is None else e.count

    def lru_order(self) -> list[int]:
        """Return the unreferenced entries' hashes, least recently used first."""
        ring = self._ring
        out = []
        e = ring.newer
        while e is not ring:
            out.append(e.hash)
            e = e.newer
        return out

    def oldest(self) -> int | None:
        """Return the least recently used unreferenced entry's hash (``None``: none)."""
        e = self._ring.newer
        return None if e is self._ring else e.hash

    def _link(self, e: CacheEntry) -> None:
        """Put unreferenced ``e`` at the most recently used end of the LRU list."""
        ring = self._ring
        last = ring.older
        e.older = last
        e.newer = ring
        last.newer = e
        ring.older = e
        self.unreferenced += 1

    def _unlink(self, e: CacheEntry) -> None:
        """Take ``e`` off the LRU list."""
        older = e.older
        newer = e.newer
        older.newer = newer
        newer.older = older
        e.older = e.newer = None  # type: ignore[assignment]
        self.unreferenced -= 1

    def touch(self, h: int) -> None:
        """Move entry ``h`` to the most recently used end if it is unreferenced (no-op otherwise)."""
        e = self.entries.get(h)
        if e is not None and e.count == 0:
            self._unlink(e)
            self._link(e)

    def cacheable(self, hashes: Sequence[int], prompt_tokens: int) -> int:
        """Leading entries of a prompt that may be cached (never its last token: one is always computed)."""
        return min(len(hashes), (prompt_tokens - 1) // self.entry_tokens)

    def match(self, hashes: Sequence[int], limit: int) -> int:
        """Leading entries of ``hashes[:limit]`` cached now."""
        entries = self.entries
        n = 0
        while n < limit and hashes[n] in entries:
            n += 1
        return n

    def match_unreferenced(self, hashes: Sequence[int], limit: int) -> tuple[int, int]:
        """Return :meth:`match` and how many of the matched entries are unreferenced.

        Unreferenced blocks count as evictable until the request references them.
        """
        entries = self.entries
        n = unreferenced = 0
        while n < limit:
            e = entries.get(hashes[n])
            if e is None:
                break
            if e.count == 0:
                unreferenced += 1
            n += 1
        return n, unreferenced

    def reference(self, hashes: Sequence[int], n: int) -> None:
        """Use the (cached) entries ``hashes[:n]`` for a request: unreferenced ones leave the LRU list."""
        entries = self.entries
        for i in range(n):
            e = entries[hashes[i]]
            if e.count == 0:
                self._unlink(e)
            e.count += 1

    def release(self, hashes: Sequence[int], n: int) -> None:
        """Release a request's ``hashes[:n]``; entries nobody uses join the LRU list, tail first."""
        entries = self.entries
        for i in range(n - 1, -1, -1):  # (no reversed() iterator: a typed loop compiled)
            e = entries[hashes[i]]
            e.count -= 1
            if e.count == 0:
                self._link(e)

    def insert(self, hashes: Sequence[int], start: int, stop: int) -> int:
        """Insert the blocks ``hashes[start:stop]`` a request computed, referenced by it, as entries.

        Return how many were cached already (computed concurrently: the request's private copies are to be
        dropped).
        """
        entries = self.entries
        index = self.index
        duplicates = 0
        for i in range(start, stop):
            h = hashes[i]
            e = entries.get(h)
            if e is None:
                entries[h] = new_entry(h, 1)  # the request's private blocks become the shared entry
                if index is not None:
                    if type(index) is PrefixHolders:  # the fleet's holders: a typed call in the compiled core
                        holders = index
                        holders.add(h, self.owner)
                    else:
                        index.add(h, self.owner)
            else:
                if e.count == 0:
                    self._unlink(e)
                e.count += 1
                duplicates += 1
        return duplicates

    def evict_lru(self) -> int:
        """Drop the least recently used unreferenced entry; returns the KV blocks it freed (0: none left)."""
        e = self._ring.newer
        if e is self._ring:
            return 0
        self._unlink(e)
        h = e.hash
        del self.entries[h]
        index = self.index
        if index is not None:
            if type(index) is PrefixHolders:  # as in insert
                holders = index
                holders.remove(h, self.owner)
            else:
                index.remove(h, self.owner)
        return self.blocks_per_entry

    def clear(self) -> None:
        """Drop every entry (a failure)."""
        if self.index is not None:
            self.index.clear(self.owner)
        for e in self.entries.values():  # break the ring's reference cycles
            e.newer = e.older = None  # type: ignore[assignment]
        self.entries.clear()
        ring = self._ring
        ring.newer = ring.older = ring
        self.unreferenced = 0


__all__ = ["CacheEntry", "KVBlocks", "PrefixCache", "new_entry"]


class PrefixHolders:
    """Hash -> ids of the instances whose prefix caches hold it.

    Kept exact by the caches' index hook (entries created, evicted, dropped). The fleet controller's compiled
    ``lmetric`` path reads it: one lookup of a request's first block per decision, then a walk of the holders'
    caches only, instead of one lookup per instance. An instance whose decode run may owe lazy evictions is
    settled and walked by that reader itself (:meth:`defer` needs to do nothing). The caches call it typed (no
    Python method call per entry).
    """

    __slots__ = ("of",)

    def __init__(self) -> None:
        #: hash -> the id of its one holder (most hashes: no set to allocate and look up) or a set of ids
        self.of: dict[int, int | set[int]] = {}

    def track(self, cache: PrefixCache) -> None:
        """Hold ``cache``'s entries (under its owner's id) and hook it."""
        for h in cache.entries:
            self.add(h, cache.owner)
        cache.index = self  # type: ignore[assignment]

    def add(self, h: int, owner: int) -> None:
        """Record that instance ``owner`` now caches block ``h``."""
        held = self.of.get(h)
        if held is None:
            self.of[h] = owner
        elif isinstance(held, int):
            if held != owner:
                self.of[h] = {held, owner}
        else:
            held.add(owner)

    def remove(self, h: int, owner: int) -> None:
        """Record that instance ``owner`` no longer caches block ``h``; unheld hashes are dropped."""
        held = self.of[h]
        if isinstance(held, int):
            if held == owner:
                del self.of[h]
        else:
            held.discard(owner)
            if len(held) == 1:
                self.of[h] = next(iter(held))

    def clear(self, owner: int) -> None:
        """Forget every block that instance ``owner`` caches (its cache was emptied)."""
        for h in self.holds(owner):
            self.remove(h, owner)

    def defer(self, inst: object, at: float) -> None:
        """Do nothing: a lazy eviction of ``inst`` is due at ``at``; the reader settles the instance first."""

    def holds(self, owner: int) -> set[int]:
        """Return the hashes held for instance ``owner`` (for audits and tests)."""
        return {h for h, held in self.of.items() if (held == owner if isinstance(held, int) else owner in held)}
