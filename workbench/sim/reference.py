"""A straightforward per-iteration simulator of one instance: the baseline and oracle of the fast engine.

It loops over every batch iteration and, inside it, over every running sequence (O(batch) Python work per
iteration, no event skipping, no heap), with the same scheduling rules as :class:`~workbench.sim.Instance`
for a single ``decode_first`` instance: chunked or whole-prompt prefill, FCFS admission when KV blocks are
free (with the watermark), blocks allocated one token ahead, preemption by recompute of the youngest running
request when decode growth runs out of blocks, and (with ``prefix_block_tokens``) the prefix cache: leading
cached hash blocks referenced at admission, computed blocks inserted when the prefill completes, released
tail first into an LRU list whose head is evicted when blocks run out. Tests check that the engine
reproduces its timings; ``benchmarks/bench_sim.py`` times it as the naive baseline.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque

import numpy as np
import polars as pl

from workbench.errors import ConfigError
from workbench.hardware.perf import Batch
from workbench.sim.config import InstanceConfig


class _Seq:
    __slots__ = (
        "arrival",
        "blocks",
        "done",
        "first",
        "gen",
        "hashes",
        "index",
        "join",
        "ncache",
        "nref",
        "out",
        "preempt",
        "prompt",
        "ptok",
    )

    def __init__(self, index: int, arrival: float, prompt: int, out: int, hashes: list[int]) -> None:
        self.index, self.arrival, self.prompt, self.out, self.hashes = index, arrival, prompt, out, hashes
        self.gen = self.done = self.ptok = self.blocks = self.preempt = 0  # blocks: private KV blocks
        self.nref = self.ncache = self.join = 0
        self.first = math.nan


class _PrefixCache:
    """Reference counts of cached prompt blocks (``hb`` KV blocks each) and the LRU list of unused ones."""

    def __init__(self, hash_tokens: int, block_size: int) -> None:
        self.H = hash_tokens
        self.hb = hash_tokens // block_size if hash_tokens else 0
        self.refs: dict[int, int] = {}
        self.lru: OrderedDict[int, None] = OrderedDict()

    def match(self, q: _Seq) -> tuple[int, int, int]:
        """Leading cached blocks of ``q``, how many of them are unused (in the LRU), cacheable blocks."""
        if not self.H or not q.hashes:
            return 0, 0, 0
        limit = min(len(q.hashes), (q.prompt - 1) // self.H)
        n = unused = 0
        while n < limit and q.hashes[n] in self.refs:
            unused += self.refs[q.hashes[n]] == 0
            n += 1
        return n, unused, limit

    def reference(self, hashes: list[int]) -> None:
        for h in hashes:
            if self.refs[h] == 0:
                del self.lru[h]
            self.refs[h] += 1

    def release(self, hashes: list[int]) -> None:
        for h in reversed(hashes):  # tail first: eviction shortens a chain from its end
            self.refs[h] -= 1
            if self.refs[h] == 0:
                self.lru[h] = None

    def insert(self, q: _Seq) -> int:
        """Share ``q``'s computed cacheable blocks; returns the private blocks freed by duplicates."""
        freed = 0
        for h in q.hashes[q.nref : q.ncache]:
            if h in self.refs:  # computed concurrently by another request: keep one copy
                self.reference([h])
                freed += self.hb
            else:
                self.refs[h] = 1
            q.blocks -= self.hb
        q.nref = q.ncache
        return freed

    def evict(self) -> int:
        h, _ = self.lru.popitem(last=False)
        del self.refs[h]
        return self.hb


def simulate_reference(
    requests: pl.DataFrame, config: InstanceConfig, *, prefix_block_tokens: int | None = None
) -> pl.DataFrame:
    """Per-iteration simulation of ``requests`` on one instance.

    Parameters
    ----------
    requests
        Trace rows (``arrival_s``, ``prompt_tokens``, ``output_tokens``, optional ``prefix_hashes``).
    config
        The instance (``decode_first``, role ``"both"``).
    prefix_block_tokens
        Tokens per ``prefix_hashes`` block; prefix caching is on when given, the scheduler's
        ``prefix_caching`` is set and the trace has hashes.

    Returns
    -------
    polars.DataFrame
        ``first_token_s``, ``finish_s``, ``preemptions`` and ``cached_tokens`` (at the last admission) per
        request, in trace order; ``finish_s`` is null when a request was rejected.
    """
    s = config.scheduler
    if s.priority != "decode_first" or config.role != "both":
        raise ConfigError("the reference loop covers decode_first instances of role 'both' only")
    perf = config.performance_model()
    bs = s.block_size
    capacity = config.kv_capacity() // bs
    watermark = int(s.watermark * capacity)
    chunk = s.prefill_chunk_tokens or s.max_num_batched_tokens
    arrival = requests["arrival_s"].to_list()
    prompt = requests["prompt_tokens"].to_list()
    output = requests["output_tokens"].to_list()
    n = len(arrival)
    use_cache = bool(prefix_block_tokens and s.prefix_caching and "prefix_hashes" in requests.columns)
    hashes = requests["prefix_hashes"].to_list() if use_cache else [None] * n
    cache = _PrefixCache((prefix_block_tokens or 0) if use_cache else 0, bs)
    if cache.H % bs:
        raise ConfigError(f"prefix_block_tokens ({cache.H}) must be a multiple of block_size ({bs})")
    hb = cache.hb
    joined = 0  # decode-set entry order: sequences finishing in the same iteration leave in this order
    first = [math.nan] * n
    finish = [math.nan] * n
    preempt = [0] * n
    cached = [0] * n
    waiting: deque[_Seq] = deque()
    running: list[_Seq] = []  # admission order
    free = capacity
    now = 0.0
    nxt = 0

    def arrive() -> None:
        nonlocal nxt
        q = _Seq(nxt, arrival[nxt], prompt[nxt], output[nxt], hashes[nxt] or [])
        nxt += 1
        too_long = not s.chunked_prefill and q.prompt > s.max_num_batched_tokens
        if q.prompt + q.out <= capacity * bs and not too_long:  # else rejected (finish stays null)
            waiting.append(q)

    while nxt < n or waiting or running:
        while nxt < n and arrival[nxt] < now:  # arrived during the last iteration: queued for the next
            arrive()
        if not waiting and not running:  # idle: the next arrival starts a step on its own (like the engine)
            if nxt == n:  # the last arrivals were all rejected
                break
            now = max(now, arrival[nxt])
            arrive()
            continue
        decoding = [q for q in running if q.done >= q.ptok]
        # decode growth: a sequence whose tokens fill its blocks needs one more; preempt the youngest if short
        while decoding:
            need = sum(1 for q in decoding if (q.prompt + q.gen) % bs == 0)
            if need <= free + len(cache.lru) * hb:
                for q in decoding:
                    if (q.prompt + q.gen) % bs == 0:
                        q.blocks += 1
                while need > free:
                    free += cache.evict()
                free -= need
                break
            victim = running.pop()
            free += victim.blocks
            cache.release(victim.hashes[: victim.nref])
            victim.blocks = victim.done = victim.nref = 0
            victim.preempt += 1
            waiting.appendleft(victim)
            decoding = [q for q in running if q.done >= q.ptok]
        budget = s.max_num_batched_tokens - len(decoding)
        items = []
        if s.chunked_prefill:
            for q in running:
                if q.done < q.ptok:
                    if budget <= 0:
                        break
                    c = min(q.ptok - q.done, budget, chunk)
                    items.append((q, c))
                    budget -= c
        while waiting and budget > 0 and len(running) < s.max_num_seqs:
            q = waiting[0]
            ptok = q.prompt + q.gen
            nmatch, unused, ncache = cache.match(q)
            hit = nmatch * cache.H
            todo = ptok - hit
            if not s.chunked_prefill and todo > budget and (items or todo <= s.max_num_batched_tokens):
                break
            need = -(-(ptok + 1 - hit) // bs)
            if need > free + (len(cache.lru) - unused) * hb - (watermark if running else 0):
                break
            waiting.popleft()
            cache.reference(q.hashes[:nmatch])
            while need > free:
                free += cache.evict()
            free -= need
            q.blocks, q.ptok, q.done, q.nref, q.ncache = need, ptok, hit, nmatch, ncache
            cached[q.index] = hit
            running.append(q)
            c = min(todo, budget, chunk) if s.chunked_prefill else todo
            items.append((q, c))
            budget -= c
        if not items and not decoding:
            raise RuntimeError("reference loop cannot schedule its waiting requests")
        ctx = sum(q.prompt + q.gen - 1 for q in decoding)
        P = sum(c for _, c in items)
        pctx = 0.0
        for q, c in items:
            pctx += c * (q.done + c * 0.5)
        now += perf.iteration_time(Batch(P, pctx, len(decoding), ctx))
        ended = []
        for q, c in items:
            q.done += c
            if q.done >= q.ptok:
                if math.isnan(q.first):
                    q.first = now
                q.gen += 1
                if q.ncache > q.nref:
                    free += cache.insert(q)
                if q.gen >= q.out:
                    ended.append(q)
                else:
                    q.join = joined
                    joined += 1
        done_decoding = []
        for q in decoding:  # one token each
            q.gen += 1
            if q.gen >= q.out:
                done_decoding.append(q)
        ended.extend(sorted(done_decoding, key=lambda q: q.join))
        for q in ended:
            running.remove(q)
            free += q.blocks
            cache.release(q.hashes[: q.nref])
            first[q.index], finish[q.index], preempt[q.index] = q.first, now, q.preempt
    return pl.DataFrame(
        {
            "first_token_s": np.asarray(first),
            "finish_s": np.asarray(finish),
            "preemptions": np.asarray(preempt, dtype=np.int32),
            "cached_tokens": np.asarray(cached, dtype=np.int32),
        }
    ).with_columns(pl.col("first_token_s", "finish_s").fill_nan(None))
