"""A straightforward per-iteration simulator of one instance: the baseline and oracle of the fast engine.

It loops over every batch iteration and, inside it, over every running sequence (O(batch) Python work per
iteration, no event skipping, no heap), with the same scheduling rules as :class:`~workbench.sim.Instance`
for a single ``decode_first`` instance without prefix caching: chunked or whole-prompt prefill, FCFS
admission when KV blocks are free (with the watermark), blocks allocated one token ahead, and preemption by
recompute of the youngest running request when decode growth runs out of blocks. Tests check that the
engine reproduces its timings; ``benchmarks/bench_sim.py`` times it as the naive baseline.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import polars as pl

from workbench.errors import ConfigError
from workbench.hardware.perf import Batch
from workbench.sim.config import InstanceConfig


class _Seq:
    __slots__ = ("arrival", "blocks", "done", "first", "gen", "index", "out", "preempt", "prompt", "ptok")

    def __init__(self, index: int, arrival: float, prompt: int, out: int) -> None:
        self.index, self.arrival, self.prompt, self.out = index, arrival, prompt, out
        self.gen = self.done = self.ptok = self.blocks = self.preempt = 0
        self.first = math.nan


def simulate_reference(requests: pl.DataFrame, config: InstanceConfig) -> pl.DataFrame:
    """Per-iteration simulation of ``requests`` on one instance; returns ``first_token_s``, ``finish_s``,
    ``preemptions`` per request (trace order; ``finish_s`` null when rejected)."""
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
    first = [math.nan] * n
    finish = [math.nan] * n
    preempt = [0] * n
    waiting: deque[_Seq] = deque()
    running: list[_Seq] = []  # admission order
    free = capacity
    now = 0.0
    nxt = 0
    while nxt < n or waiting or running:
        idle = not waiting and not running
        if idle:  # jump to the next arrival; it starts a step on its own (like the engine)
            now = max(now, arrival[nxt])
        while nxt < n and (arrival[nxt] < now or (idle and nxt < n and arrival[nxt] == now)):
            q = _Seq(nxt, arrival[nxt], prompt[nxt], output[nxt])
            nxt += 1
            too_long = not s.chunked_prefill and q.prompt > s.max_num_batched_tokens
            if q.prompt + q.out <= capacity * bs and not too_long:  # else rejected (finish stays null)
                waiting.append(q)
            if idle:
                break
        if not waiting and not running:
            continue
        decoding = [q for q in running if q.done >= q.ptok]
        # decode growth: a sequence whose tokens fill its blocks needs one more; preempt the youngest if short
        while decoding:
            need = sum(1 for q in decoding if (q.prompt + q.gen) % bs == 0)
            if need <= free:
                for q in decoding:
                    if (q.prompt + q.gen) % bs == 0:
                        q.blocks += 1
                free -= need
                break
            victim = running.pop()
            free += victim.blocks
            victim.blocks = victim.done = 0
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
            if not s.chunked_prefill and ptok > budget and (items or ptok <= s.max_num_batched_tokens):
                break
            need = -(-(ptok + 1) // bs)
            if need > free - (watermark if running else 0):
                break
            waiting.popleft()
            free -= need
            q.blocks, q.ptok, q.done = need, ptok, 0
            running.append(q)
            c = min(ptok, budget, chunk) if s.chunked_prefill else ptok
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
        for q in decoding:  # one token each
            q.gen += 1
            if q.gen >= q.out:
                ended.append(q)
        for q, c in items:
            q.done += c
            if q.done >= q.ptok:
                if math.isnan(q.first):
                    q.first = now
                q.gen += 1
                if q.gen >= q.out:
                    ended.append(q)
        for q in ended:
            running.remove(q)
            free += q.blocks
            first[q.index], finish[q.index], preempt[q.index] = q.first, now, q.preempt
    return pl.DataFrame(
        {
            "first_token_s": np.asarray(first),
            "finish_s": np.asarray(finish),
            "preemptions": np.asarray(preempt, dtype=np.int32),
        }
    ).with_columns(pl.col("first_token_s", "finish_s").fill_nan(None))
