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

from collections import OrderedDict
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


class PrefixCache:
    """Prompt blocks shared by requests, named by the trace's ``prefix_hashes``.

    An entry holds ``blocks_per_entry`` KV blocks (``entry_tokens`` tokens, a multiple of the KV block size)
    and a reference count (requests using it); unreferenced entries sit in an LRU list and are evicted when
    blocks are needed. Requests release their entries tail first (as vLLM frees a sequence's blocks in
    reverse), so eviction shortens a cached chain from its end. When an :attr:`index` (a
    :class:`~workbench.sim.routing.prefix_index.PrefixIndex`) tracks the instance, it is told of every entry
    created, evicted or dropped.

    Attributes
    ----------
    entry_tokens
        Tokens per entry (0: caching off).
    blocks_per_entry
        KV blocks per entry.
    refs
        Hash -> requests referencing the entry (0 for an unreferenced, evictable entry).
    lru
        Unreferenced entries, least recently used first.
    index
        The prefix index told of changes (``None``: none).
    """

    __slots__ = ("blocks_per_entry", "entry_tokens", "index", "lru", "owner", "refs")

    def __init__(self, entry_tokens: int, block_tokens: int, owner: int) -> None:
        if entry_tokens and entry_tokens % block_tokens:
            raise ConfigError(
                f"prefix_block_tokens ({entry_tokens}) must be a multiple of block_size ({block_tokens}) for "
                "prefix caching; set scheduler.prefix_caching = false or change block_size"
            )
        self.entry_tokens = entry_tokens
        self.blocks_per_entry = entry_tokens // block_tokens if entry_tokens else 0
        self.refs: dict[int, int] = {}
        self.lru: OrderedDict[int, None] = OrderedDict()
        self.index: PrefixIndex | None = None
        #: the owning instance's id (for the index)
        self.owner = owner

    def __len__(self) -> int:
        """Entries cached (referenced or not)."""
        return len(self.refs)

    def __contains__(self, h: int) -> bool:
        return h in self.refs

    @property
    def evictable_blocks(self) -> int:
        """KV blocks held by unreferenced entries."""
        return len(self.lru) * self.blocks_per_entry

    def cacheable(self, hashes: Sequence[int], prompt_tokens: int) -> int:
        """Leading entries of a prompt that may be cached (never its last token: one is always computed)."""
        return min(len(hashes), (prompt_tokens - 1) // self.entry_tokens)

    def match(self, hashes: Sequence[int], limit: int) -> int:
        """Leading entries of ``hashes[:limit]`` cached now."""
        refs = self.refs
        n = 0
        while n < limit and hashes[n] in refs:
            n += 1
        return n

    def match_unreferenced(self, hashes: Sequence[int], limit: int) -> tuple[int, int]:
        """:meth:`match` and how many of the matched entries are unreferenced (their blocks count as
        evictable until the request references them)."""
        refs = self.refs
        lru = self.lru
        n = unreferenced = 0
        while n < limit:
            h = hashes[n]
            if h not in refs:
                break
            if h in lru:
                unreferenced += 1
            n += 1
        return n, unreferenced

    def reference(self, hashes: Sequence[int]) -> None:
        """A request uses the (cached) entries ``hashes``: take them off the LRU list when unreferenced."""
        refs = self.refs
        lru = self.lru
        for h in hashes:
            c = refs[h]
            if c == 0:
                del lru[h]
            refs[h] = c + 1

    def release(self, hashes: Sequence[int]) -> None:
        """A request stops using ``hashes``; entries nobody uses join the LRU list, tail first."""
        refs = self.refs
        lru = self.lru
        for i in range(len(hashes) - 1, -1, -1):  # (no reversed() iterator: a typed loop compiled)
            h = hashes[i]
            c = refs[h] - 1
            refs[h] = c
            if c == 0:
                lru[h] = None

    def insert(self, hashes: Sequence[int]) -> int:
        """A request computed the blocks ``hashes`` and references them as entries; returns how many were
        cached already (computed concurrently: the request's private copies are to be dropped)."""
        refs = self.refs
        lru = self.lru
        index = self.index
        duplicates = 0
        for h in hashes:
            c = refs.get(h)
            if c is None:
                refs[h] = 1  # the request's private blocks become the shared entry
                if index is not None:
                    index.add(h, self.owner)
            else:
                if c == 0:
                    del lru[h]
                refs[h] = c + 1
                duplicates += 1
        return duplicates

    def evict_lru(self) -> int:
        """Drop the least recently used unreferenced entry; returns the KV blocks it freed (0: none left)."""
        lru = self.lru
        if not lru:
            return 0
        h, _ = lru.popitem(last=False)
        del self.refs[h]
        if self.index is not None:
            self.index.remove(h, self.owner)
        return self.blocks_per_entry

    def clear(self) -> None:
        """Drop every entry (a failure)."""
        if self.index is not None:
            self.index.clear(self.owner)
        self.refs.clear()
        self.lru.clear()


__all__ = ["KVBlocks", "PrefixCache"]
