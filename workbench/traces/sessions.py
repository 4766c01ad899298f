"""Prefix models: which prompt blocks requests share (Mooncake hash convention).

One id per ``block_tokens`` prompt block; equal id = same prefix up to and including that block.
:class:`Sessions` builds multi-turn conversations whose later turns reuse the earlier turns' prefix blocks and
shared system prompts; :class:`PrefixReuse` resamples reuse depths and distances from a trace (what
:func:`~workbench.traces.transforms.fit` uses).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from workbench.config import require_positive, require_range
from workbench.errors import ConfigError, WorkloadError
from workbench.traces.schema import MAX_TOKENS, Trace


@dataclass(frozen=True, slots=True)
class Sessions:
    """Multi-turn sessions with prefix reuse.

    Each session has ``1 + Geometric`` turns with mean ``mean_turns``. Turn ``j``'s prompt is the whole
    conversation so far (system prompt + earlier user messages and answers) plus a new user message whose
    length is drawn from the generator's length model; its output length too. Turns of one session are spaced by
    exponential think times of mean ``think_s`` and keep their order. A share ``system_prompt_share`` of the
    sessions starts with one of ``n_system_prompts`` shared system prompts of ``system_prompt_tokens`` tokens.

    Prefix hashes follow the Mooncake convention: one id per ``block_tokens`` block of the prompt; a full block
    keeps its id in every later turn of the session; blocks entirely inside a shared system prompt carry that
    prompt's ids in every session using it; a partial last block gets a fresh id. Ids are numbered 0, 1, ... in
    order of first appearance. More turns and a larger system-prompt share raise the prefix-reuse ratio.
    """

    mean_turns: float = 3.0
    think_s: float = 60.0
    system_prompt_tokens: int = 0
    n_system_prompts: int = 1
    system_prompt_share: float = 0.0
    block_tokens: int = 512

    def __post_init__(self) -> None:
        require_range("mean_turns", self.mean_turns, 1.0, 1000.0)
        require_positive("think_s", self.think_s, allow_zero=True)
        require_positive("system_prompt_tokens", self.system_prompt_tokens, allow_zero=True)
        require_positive("n_system_prompts", self.n_system_prompts)
        require_range("system_prompt_share", self.system_prompt_share, 0.0, 1.0)
        require_positive("block_tokens", self.block_tokens)

    def build(
        self, rng: np.random.Generator, arrivals: np.ndarray, user: np.ndarray, output: np.ndarray
    ) -> dict[str, np.ndarray | list]:
        """Assign the ``n`` sorted arrivals to sessions; return session columns, prompts and prefix hashes."""
        n = arrivals.size
        turns = rng.geometric(1.0 / self.mean_turns, size=n)  # at most n sessions are needed
        ends = np.cumsum(turns)
        n_sessions = int(np.searchsorted(ends, n) + 1)
        turns = turns[:n_sessions]
        turns[-1] -= ends[n_sessions - 1] - n
        session = np.repeat(np.arange(n_sessions), turns)
        first = np.concatenate([[0], np.cumsum(turns)[:-1]])
        turn = np.arange(n) - np.repeat(first, turns)
        span = float(arrivals[-1] - arrivals[0]) if n > 1 else 1.0
        start = rng.uniform(0, span, n_sessions)
        gaps = np.where(turn > 0, rng.exponential(self.think_s, n), 0.0)
        key = np.repeat(start, turns) + _group_cumsum(gaps, first, turns)
        order = np.lexsort((turn, key))  # ranks -> arrival slots; turns keep their order
        shared = rng.random(n_sessions) < self.system_prompt_share
        sys_id = np.where(shared, rng.integers(0, self.n_system_prompts, n_sessions), -1)
        sys_len = np.where(shared, self.system_prompt_tokens, 0)
        # prompt_j = sys + sum_{i<=j} user_i + sum_{i<j} output_i   (context grows by each exchange)
        prev_out = np.where(turn > 0, np.roll(output, 1), 0)
        prompt = np.repeat(sys_len, turns) + _group_cumsum(user.astype(np.int64) + prev_out, first, turns)
        prompt = np.minimum(prompt, MAX_TOKENS).astype(np.int32)
        hashes = self._hashes(session, prompt, np.repeat(sys_id, turns), np.repeat(sys_len, turns))
        # rows are (session, turn)-ordered; put them into arrival order
        return {
            "arrival_s": arrivals,
            "session_id": session[order].astype(np.uint64),
            "turn": turn[order].astype(np.int32),
            "prompt_tokens": prompt[order],
            "output_tokens": output[order],
            "prefix_hashes": [hashes[i] for i in order],
        }

    def _hashes(self, session, prompt, sys_id, sys_len) -> list[np.ndarray]:
        b = self.block_tokens
        nblocks = -(-prompt.astype(np.int64) // b)
        row = np.repeat(np.arange(prompt.size), nblocks)
        blk = np.arange(row.size) - np.repeat(np.cumsum(nblocks) - nblocks, nblocks)
        full_end = (blk + 1) * b
        in_sys = (sys_id[row] >= 0) & (full_end <= sys_len[row])
        complete = full_end <= prompt[row]
        tag = np.where(in_sys, 1, np.where(complete, 2, 3)).astype(np.uint64)
        owner = np.where(in_sys, sys_id[row], np.where(complete, session[row], row)).astype(np.uint64)
        key = _mix(tag, owner, blk.astype(np.uint64))
        uniq, first_idx, inverse = np.unique(key, return_index=True, return_inverse=True)
        rank = np.empty(uniq.size, np.uint64)
        rank[np.argsort(first_idx, kind="stable")] = np.arange(uniq.size, dtype=np.uint64)
        ids = rank[inverse]
        return np.split(ids, np.cumsum(nblocks)[:-1])


@dataclass(frozen=True, slots=True, eq=False)
class PrefixReuse:
    """Shared prompt prefixes resampled from a trace: a request reuses the leading blocks of an earlier one.

    The model behind the Mooncake hash convention (equal id = same prefix up to and including that block): a
    request's first ``depth`` prompt blocks are those of an earlier request ``lag`` positions back, the rest are
    new. :meth:`from_trace` measures, for every request of a trace with prefix hashes, its prompt block count,
    ``depth`` (leading blocks whose hash was seen before) and ``lag`` (requests back to the latest earlier
    request holding that prefix). :meth:`build` gives each generated request the (depth, lag) of a random source
    request with the same block count (the nearest count present otherwise). When the request ``lag`` back does
    not exist or holds fewer than ``depth`` blocks, the lag is redrawn from the observed lags that fit (up to 32
    times); failing that, the request copies the latest longest earlier request and its depth is cut to that
    request's blocks. This keeps the prefix-reuse ratio, its dependence on prompt length and the reuse
    distances, but not a trend of reuse over time (a warming cache in the source). Sessions are not modelled (no
    ``session_id``/``turn``), and reuse of blocks that are not leading (other hash conventions) is not
    reproduced.

    Attributes
    ----------
    blocks
        Prompt blocks (``ceil(prompt_tokens / block_tokens)``) of each source request.
    depth
        Leading blocks of each source request that were seen in an earlier request (<= ``blocks``).
    lag
        Requests back to the latest earlier request holding that prefix (ignored where ``depth`` is 0).
    block_tokens
        Tokens per prefix block.
    """

    blocks: np.ndarray
    depth: np.ndarray
    lag: np.ndarray
    block_tokens: int = 512

    def __post_init__(self) -> None:
        require_positive("block_tokens", self.block_tokens)
        blocks, depth, lag = (np.asarray(getattr(self, k), np.int64) for k in ("blocks", "depth", "lag"))
        if blocks.ndim != 1 or blocks.size == 0 or depth.shape != blocks.shape or lag.shape != blocks.shape:
            raise ConfigError("PrefixReuse needs equal-length, non-empty blocks, depth and lag arrays")
        if np.any(blocks < 1) or np.any(depth < 0) or np.any(depth > blocks) or np.any((depth > 0) & (lag < 1)):
            raise ConfigError(
                "PrefixReuse needs blocks >= 1, 0 <= depth <= blocks, and lag >= 1 where depth > 0"
            )
        for k, v in (("blocks", blocks), ("depth", depth), ("lag", lag)):
            object.__setattr__(self, k, v)

    @classmethod
    def from_trace(cls, trace: Trace, block_tokens: int | None = None) -> PrefixReuse:
        """Measure block counts, reuse depths and reuse lags of a trace with ``prefix_hashes``.

        Parameters
        ----------
        trace
            Requests in arrival order; rows without hashes count as requests that reuse nothing.
        block_tokens
            Tokens per block (default: ``trace.prefix_block_tokens``).

        Returns
        -------
        PrefixReuse

        Raises
        ------
        WorkloadError
            When the trace has no prefix hashes or its block size is unknown.
        """
        block = block_tokens or trace.prefix_block_tokens
        df = trace.requests
        if block is None or not trace.has_prefix_hashes:
            raise WorkloadError(
                f"{trace.name!r} has no prefix hashes with a known block size (prefix_block_tokens)",
                field="prefix_hashes",
            )
        flat = (
            df.select(pl.col("prefix_hashes").alias("h"))
            .with_row_index("i")
            .explode("h")
            .drop_nulls("h")
            .with_columns(prev=pl.col("i").shift(1).over("h"))  # latest earlier row holding the same block
        )
        i = flat["i"].to_numpy().astype(np.int64)
        seen = flat["prev"].is_not_null().to_numpy()
        lag_flat = i - flat["prev"].fill_null(0).to_numpy().astype(np.int64)
        counts = np.bincount(i, minlength=df.height)
        first = np.concatenate([[0], np.cumsum(counts)[:-1]])
        # leading run of seen blocks: position of the first unseen block in each request (or its length)
        unseen_pos = np.where(seen, np.iinfo(np.int64).max, np.arange(i.size) - first[i])
        # one reduceat segment per row with hashes (a row without any has no segment: its start would be
        # i.size after trailing empty rows, out of reduceat's bounds)
        has = counts > 0
        depth = np.zeros(df.height, np.int64)
        if i.size:
            depth[has] = np.minimum(np.minimum.reduceat(unseen_pos, first[has]), counts[has])
        last = np.where(depth > 0, first + depth - 1, 0)
        lag = np.where(depth > 0, np.maximum(lag_flat[last] if i.size else 0, 1), 0)
        blocks = -(-df["prompt_tokens"].to_numpy().astype(np.int64) // block)
        return cls(blocks, np.minimum(depth, blocks), lag, block)

    @property
    def reuse_ratio(self) -> float:
        """Share of the source's prompt blocks that were reused (``sum(depth) / sum(blocks)``)."""
        return float(self.depth.sum() / self.blocks.sum())

    def build(
        self, rng: np.random.Generator, arrivals: np.ndarray, prompt: np.ndarray, output: np.ndarray
    ) -> dict[str, np.ndarray | list]:
        """Columns of ``n`` requests (arrival order) with prefix hashes drawn as described above.

        Parameters
        ----------
        rng
            Random stream of this model.
        arrivals, prompt, output
            Sorted arrival times and the sampled prompt and output lengths of the requests.

        Returns
        -------
        dict
            ``arrival_s``, ``prompt_tokens``, ``output_tokens`` (unchanged) and ``prefix_hashes`` (one id list
            per request, ids numbered 0, 1, ... in order of first appearance).
        """
        n = prompt.size
        nb = -(-prompt.astype(np.int64) // self.block_tokens)
        order = np.argsort(self.blocks, kind="stable")
        keys, starts, sizes = np.unique(self.blocks[order], return_index=True, return_counts=True)
        hi = np.minimum(np.searchsorted(keys, nb), keys.size - 1)
        lo = np.maximum(hi - 1, 0)
        pos = np.where(np.abs(keys[lo] - nb) <= np.abs(keys[hi] - nb), lo, hi)  # nearest count in the source
        src = order[starts[pos] + (rng.random(n) * sizes[pos]).astype(np.int64)]
        depth, lag = np.minimum(self.depth[src], nb), self.lag[src].copy()
        idx = np.arange(n)
        pool = np.sort(self.lag[self.depth > 0])
        fits = np.searchsorted(pool, idx, side="right")  # observed lags that reach back no further than 0
        parent = idx - lag
        ok = (depth == 0) | ((parent >= 0) & (nb[np.maximum(parent, 0)] >= depth))
        for _ in range(32):
            bad = np.flatnonzero(~ok & (fits > 0))
            if bad.size == 0:
                break
            parent[bad] = bad - pool[(rng.random(bad.size) * fits[bad]).astype(np.int64)]
            ok[bad] = nb[parent[bad]] >= depth[bad]
        # still no earlier request holding `depth` blocks: copy from the latest longest one, cut the depth
        longest = np.maximum.accumulate(np.where(nb == np.maximum.accumulate(nb), idx, 0))
        bad = ~ok
        parent[bad] = longest[np.maximum(idx[bad] - 1, 0)]
        depth = np.where(idx == 0, 0, np.minimum(depth, nb[parent]))
        return {
            "arrival_s": arrivals,
            "prompt_tokens": prompt,
            "output_tokens": output,
            "prefix_hashes": _chain_ids(nb, parent, depth),
        }


def _chain_ids(nb: np.ndarray, parent: np.ndarray, depth: np.ndarray) -> list[np.ndarray]:
    """Block ids when request ``i``'s first ``depth[i]`` blocks are those of request ``parent[i] < i``.

    Each block points at the block it copies; pointer jumping finds the original, and originals are numbered in
    order of first appearance.
    """
    off = np.concatenate([[0], np.cumsum(nb)])
    req = np.repeat(np.arange(nb.size), nb)
    j = np.arange(off[-1]) - off[req]
    ptr = np.arange(off[-1])
    copy = j < depth[req]
    ptr[copy] = off[parent[req[copy]]] + j[copy]
    while True:
        nxt = ptr[ptr]
        if np.array_equal(nxt, ptr):
            break
        ptr = nxt
    ids = np.unique(ptr, return_inverse=True)[1].astype(np.uint64)
    return np.split(ids, off[1:-1])


def _group_cumsum(x: np.ndarray, first: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Cumulative sum of ``x`` restarting at each group (groups are consecutive runs)."""
    c = np.cumsum(x)
    base = np.repeat(c[first] - x[first], sizes)
    return c - base


def _mix(*parts: np.ndarray) -> np.ndarray:
    """64-bit hash (splitmix64 rounds) of equal-length uint64 arrays."""
    with np.errstate(over="ignore"):
        h = np.zeros_like(parts[0], dtype=np.uint64)
        for p in parts:
            h = (h ^ p) + np.uint64(0x9E3779B97F4A7C15)
            h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            h = h ^ (h >> np.uint64(31))
    return h
