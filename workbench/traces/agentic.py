"""Closed-loop multi-turn and agentic workloads: the next call follows the previous answer.

In a chat or an agent loop a new LLM call is issued only after the previous answer has arrived and the user
has thought, or the tool has run. A trace replayed open-loop ignores that: its turns arrive at their logged
times however slow the answers are. A :class:`SessionWorkload` keeps the dependencies so that the simulator
can run it **closed-loop** (``workbench.sim.closed_loop``): each row belongs to a *step*; a step after the
first is released ``think_s`` seconds after every row of its parent step has finished; first steps arrive at
their ``arrival_s``. Its :attr:`SessionWorkload.trace` is the same workload laid out open-loop (arrivals
computed with a nominal response time), and :meth:`SessionWorkload.replay` turns a closed-loop run into the
open-loop trace it would have logged.

:class:`AgentSessions` generates such workloads:

* sessions start by an arrival process (:class:`~workbench.traces.synthetic.Poisson`,
  :class:`~workbench.traces.mmpp.MMPP` for bursts, ...);
* each session makes ``1 + Geometric`` steps (mean ``mean_steps``); a step's prompt is the whole conversation
  so far (an optional shared system prompt, every earlier message and answer) plus a new message (user turn or
  tool result) drawn from the length model, which also draws the answer's length;
* with probability ``fanout_prob`` a step after the first is a **fan-out**: ``fanout`` parallel calls (parallel
  tool calls, sub-agents) that share the conversation prefix, each with its own message; the next step waits
  for all of them (a join) and its conversation holds every branch's message and answer;
* think/tool times are exponential with mean ``think_s``.

Prefix hashes follow the Mooncake convention (one id per ``block_tokens`` prompt block, equal id = same prefix
up to that block, ids numbered in order of first appearance): full blocks of the conversation keep their id in
every later step of the session, the blocks of a fan-out branch's own message are its own, blocks inside a
shared system prompt carry that prompt's ids in every session using it.

Examples
--------
>>> from workbench.traces.synthetic import Poisson
>>> w = AgentSessions(Poisson(0.2), mean_steps=4, fanout_prob=0.3).generate(n_sessions=20, seed=1)
>>> len(w) == len(w.trace), int((w.parent < 0).sum()) == 20   # one first step per session
(True, True)
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from workbench.config import as_float, require_int, require_positive, require_range
from workbench.errors import ConfigError, WorkloadError
from workbench.seeds import SeedLike, Streams
from workbench.traces.schema import Trace
from workbench.traces.synthetic import (
    ArrivalProcess,
    LengthModel,
    LogNormal,
    Poisson,
    to_trace,
)

MAX_TOKENS = 2**31 - 1


@dataclass(frozen=True, slots=True, eq=False)
class SessionWorkload:
    """A workload whose rows depend on earlier rows (see module docstring).

    Attributes
    ----------
    trace
        The rows (canonical schema) laid out open-loop: a first step at its session's start, a later step at
        the nominal finish of its parent step plus its think time.
    step
        Per row, its step id; the rows of one step are issued together. Ids increase with the rows' order.
    parent
        Per row, the step whose completion releases it (-1: released at its ``arrival_s``).
    think_s
        Per row, seconds between the parent step's last answer and its release (0 for first steps).
    """

    trace: Trace
    step: np.ndarray
    parent: np.ndarray
    think_s: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.trace)
        step = np.asarray(self.step, dtype=np.int64)
        parent = np.asarray(self.parent, dtype=np.int64)
        think = np.asarray(self.think_s, dtype=np.float64)
        if step.shape != (n,) or parent.shape != (n,) or think.shape != (n,):
            raise WorkloadError(f"step, parent and think_s need one value per row ({n})", field="step")
        if n:
            bad = np.flatnonzero(parent >= step)
            if bad.size:
                raise WorkloadError(
                    f"a row's parent step must come before its own step, got parent {parent[bad[0]]} for step "
                    f"{step[bad[0]]}",
                    field="parent",
                    row=int(bad[0]) + 1,
                )
            bad = np.flatnonzero(~np.isfinite(think) | (think < 0))
            if bad.size:
                raise WorkloadError(
                    f"think times must be finite and >= 0, got {think[bad[0]]!r}",
                    field="think_s",
                    row=int(bad[0]) + 1,
                )
            # every row of a step shares its parent and think time
            order = np.argsort(step, kind="stable")
            s, p, th = step[order], parent[order], think[order]
            same = s[1:] == s[:-1]
            bad = np.flatnonzero(same & ((p[1:] != p[:-1]) | (th[1:] != th[:-1])))
            if bad.size:
                raise WorkloadError(
                    f"rows of step {s[bad[0]]} have different parents or think times",
                    field="parent",
                    row=int(order[bad[0] + 1]) + 1,
                )
            known = np.isin(parent[parent >= 0], step)
            if not known.all():
                missing = parent[parent >= 0][~known][0]
                raise WorkloadError(f"parent step {missing} has no rows", field="parent")
        object.__setattr__(self, "step", step)
        object.__setattr__(self, "parent", parent)
        object.__setattr__(self, "think_s", think)

    def __len__(self) -> int:
        return len(self.trace)

    @property
    def n_sessions(self) -> int:
        """Sessions (distinct ``session_id``; rows without one count as one session each)."""
        sid = self.trace.requests["session_id"]
        return int(sid.drop_nulls().n_unique() + sid.null_count())

    def open_loop(self) -> Trace:
        """Return the rows as an open-loop trace (nominal arrival times)."""
        return self.trace

    def replay(self, result) -> Trace:
        """Return the open-loop trace a closed-loop run logged: each row at the time it was released.

        Parameters
        ----------
        result
            A :class:`~workbench.sim.result.SimResult` of this workload run closed-loop (its ``arrival_s`` are
            the release times). Rows never released (their session was aborted) keep their nominal time.

        Returns
        -------
        Trace
            The same rows, re-sorted by the observed arrival times, ids renumbered in that order.
        """
        req = self.trace.requests
        observed = result.requests["arrival_s"]
        if observed.len() != req.height:
            raise WorkloadError(f"the result has {observed.len()} rows, the workload {req.height}")
        times = observed.fill_null(req["arrival_s"])
        rows = req.with_columns(times.alias("arrival_s")).sort("arrival_s", maintain_order=True)
        rows = rows.with_columns(pl.int_range(rows.height, dtype=pl.UInt64).alias("request_id"))
        return self.trace.with_requests(rows, name=f"{self.trace.name}_replay")


@dataclass(frozen=True, slots=True)
class AgentSessions:
    """Generator of closed-loop chat/agent sessions (see module docstring).

    Parameters
    ----------
    sessions
        Arrival process of session starts.
    mean_steps
        Mean LLM steps per session (1 + geometric, so at least one).
    think_s
        Mean think or tool time between a step's last answer and the next step (exponential); 0: none.
    fanout_prob
        Probability that a step after the first fans out into ``fanout`` parallel calls.
    fanout
        Parallel calls of a fan-out step.
    lengths
        Length model: its prompt length is each call's new message (user turn or tool result), its output the
        answer.
    system_prompt_tokens, n_system_prompts, system_prompt_share
        A share of the sessions starts with one of ``n_system_prompts`` shared system prompts.
    max_context_tokens
        A session ends before a step whose prompt would exceed this.
    nominal_ttft_s, nominal_tpot_s
        Response-time model that lays out :attr:`SessionWorkload.trace` open-loop: a call answers
        ``nominal_ttft_s + (output - 1) * nominal_tpot_s`` seconds after it is issued.
    block_tokens
        Tokens per prefix-hash block.
    name
        Trace name.
    """

    sessions: ArrivalProcess = field(default_factory=lambda: Poisson(0.5))
    mean_steps: float = 6.0
    think_s: float = 3.0
    fanout_prob: float = 0.0
    fanout: int = 4
    lengths: LengthModel = field(default_factory=lambda: LogNormal(math.log(300), 0.8, math.log(150), 0.7))
    system_prompt_tokens: int = 0
    n_system_prompts: int = 1
    system_prompt_share: float = 1.0
    max_context_tokens: int = 131_072
    nominal_ttft_s: float = 0.5
    nominal_tpot_s: float = 0.02
    block_tokens: int = 512
    name: str = "agentic"

    def __post_init__(self) -> None:
        require_range("mean_steps", self.mean_steps, 1.0, 10_000.0)
        require_positive("think_s", self.think_s, allow_zero=True)
        require_range("fanout_prob", self.fanout_prob, 0.0, 1.0)
        require_int("fanout", self.fanout)
        require_int("system_prompt_tokens", self.system_prompt_tokens, low=0)
        require_int("n_system_prompts", self.n_system_prompts)
        require_range("system_prompt_share", self.system_prompt_share, 0.0, 1.0)
        require_int("max_context_tokens", self.max_context_tokens, low=2)
        require_positive("nominal_ttft_s", self.nominal_ttft_s, allow_zero=True)
        require_positive("nominal_tpot_s", self.nominal_tpot_s, allow_zero=True)
        require_int("block_tokens", self.block_tokens)

    def generate(
        self, n_sessions: int | None = None, *, duration_s: float | None = None, seed: SeedLike = 0
    ) -> SessionWorkload:
        """Generate ``n_sessions`` sessions, or all sessions starting in ``[0, duration_s)``.

        Parameters
        ----------
        n_sessions
            Number of sessions; give this or ``duration_s``.
        duration_s
            Span in which sessions start (their later steps may run past it).
        seed
            Seed (int, SeedSequence or :class:`~workbench.seeds.Streams`): session starts, lengths and session
            structure draw from the streams ``agentic/starts``, ``agentic/lengths`` and ``agentic/sessions``.

        Returns
        -------
        SessionWorkload
            Rows in open-loop order; same seed, same workload.
        """
        if (n_sessions is None) == (duration_s is None):
            raise ConfigError("give exactly one of n_sessions or duration_s")
        if n_sessions is not None:
            require_int("n_sessions", n_sessions)
        streams = Streams(seed)
        r_arr, r_len, r_ses = (streams.rng(f"agentic/{name}") for name in ("starts", "lengths", "sessions"))
        starts = self.sessions.sample(r_arr, n=n_sessions, duration_s=duration_s)
        if starts.size == 0:
            raise WorkloadError(f"generator {self.name!r} produced no sessions; raise the rate or duration")
        cols = self._build(starts, r_len, r_ses)
        return _finish(cols, self.name, self.block_tokens, repr(self))

    def _build(self, starts: np.ndarray, r_len: np.random.Generator, r_ses: np.random.Generator) -> dict:
        n_ses = starts.size
        steps = r_ses.geometric(1.0 / self.mean_steps, n_ses)
        shared = r_ses.random(n_ses) < self.system_prompt_share
        sys_id = np.where(shared, r_ses.integers(0, self.n_system_prompts, n_ses), -1)
        sys_len = np.where(shared, self.system_prompt_tokens, 0)
        # draw a pool of lengths and of think times large enough for the worst case, used in order
        width_max = max(self.fanout, 1)
        need = int(steps.sum()) * width_max
        new_tok, out_tok = (np.asarray(a, dtype=np.int64) for a in self.lengths.sample(r_len, need))
        thinks = (
            r_ses.exponential(self.think_s, int(steps.sum())) if self.think_s > 0 else np.zeros(steps.sum())
        )
        fans = r_ses.random(int(steps.sum())) < self.fanout_prob
        rows: dict[str, list] = {k: [] for k in ("session", "t", "prompt", "output", "shared", "step", "parent",
                                                 "think", "turn", "sys_id", "sys_len")}  # fmt: skip
        k_len = k_step = 0
        step_id = 0
        ttft, tpot, limit = self.nominal_ttft_s, self.nominal_tpot_s, self.max_context_tokens
        for s in range(n_ses):
            context = int(sys_len[s])
            t = float(starts[s])
            parent = -1
            think = 0.0
            for j in range(int(steps[s])):
                width = self.fanout if (j > 0 and fans[k_step]) else 1
                if j > 0:
                    think = float(thinks[k_step])
                    t += think
                k_step += 1
                news = new_tok[k_len : k_len + width]
                outs = out_tok[k_len : k_len + width]
                k_len += width
                if context + int(news.max()) + int(outs.max()) > limit:
                    break
                done = t
                for b in range(width):
                    prompt = context + int(news[b])
                    rows["session"].append(s)
                    rows["t"].append(t)
                    rows["prompt"].append(prompt)
                    rows["output"].append(int(outs[b]))
                    rows["shared"].append(prompt if b == 0 else context)
                    rows["step"].append(step_id)
                    rows["parent"].append(parent)
                    rows["think"].append(think)
                    rows["turn"].append(j)
                    rows["sys_id"].append(int(sys_id[s]))
                    rows["sys_len"].append(int(sys_len[s]))
                    done = max(done, t + ttft + (int(outs[b]) - 1) * tpot)
                context += int(news.sum() + outs.sum())
                parent = step_id
                step_id += 1
                t = done
        return {k: np.asarray(v) for k, v in rows.items()}


def _block_ids(cols: dict, block: int) -> list[np.ndarray]:
    """Mooncake-convention prefix hashes of every row (rows in their final order)."""
    prompt = cols["prompt"].astype(np.int64)
    nblocks = -(-prompt // block)
    row = np.repeat(np.arange(prompt.size), nblocks)
    blk = np.arange(row.size) - np.repeat(np.cumsum(nblocks) - nblocks, nblocks)
    full_end = (blk + 1) * block
    sys_id, sys_len = cols["sys_id"][row], cols["sys_len"][row]
    in_sys = (sys_id >= 0) & (full_end <= sys_len)
    in_conv = ~in_sys & (full_end <= cols["shared"][row])
    tag = np.where(in_sys, 1, np.where(in_conv, 2, 3)).astype(np.uint64)
    owner = np.where(in_sys, sys_id, np.where(in_conv, cols["session"][row], row)).astype(np.uint64)
    if row.size and (int(owner.max()) >= 2**40 or int(blk.max()) >= 2**22):
        raise WorkloadError("too many sessions or blocks for the prefix-hash key")
    key = (tag << np.uint64(62)) | (owner << np.uint64(22)) | blk.astype(np.uint64)
    uniq, first_idx, inverse = np.unique(key, return_index=True, return_inverse=True)
    rank = np.empty(uniq.size, np.uint64)
    rank[np.argsort(first_idx, kind="stable")] = np.arange(uniq.size, dtype=np.uint64)
    return np.split(rank[inverse.ravel()], np.cumsum(nblocks)[:-1])


def _finish(cols: dict, name: str, block: int, generator: str) -> SessionWorkload:
    """Order rows open-loop, renumber steps in that order, hash, and wrap."""
    order = np.lexsort((cols["step"], cols["t"]))
    cols = {k: v[order] for k, v in cols.items()}
    # step ids in order of first appearance, so that parents (issued earlier) get smaller ids
    uniq, first = np.unique(cols["step"], return_index=True)
    new_id = np.empty(int(uniq.max()) + 1, dtype=np.int64)
    new_id[uniq[np.argsort(first, kind="stable")]] = np.arange(uniq.size)
    step = new_id[cols["step"]]
    parent = np.where(cols["parent"] >= 0, new_id[np.maximum(cols["parent"], 0)], -1)
    hashes = _block_ids(cols, block)
    trace = to_trace(
        {
            "arrival_s": cols["t"].astype(np.float64),
            "prompt_tokens": np.minimum(cols["prompt"], MAX_TOKENS).astype(np.int32),
            "output_tokens": cols["output"].astype(np.int32),
            "session_id": cols["session"].astype(np.uint64),
            "turn": cols["turn"].astype(np.int32),
            "prefix_hashes": hashes,
        },
        name=name,
        block_tokens=block,
        generator=generator,
    )
    return SessionWorkload(trace, step, parent, cols["think"].astype(np.float64))


def from_trace(trace: Trace, *, nominal_ttft_s: float = 0.5, nominal_tpot_s: float = 0.02) -> SessionWorkload:
    """Build a closed-loop workload from a trace with ``session_id`` and ``turn``.

    Each turn waits for the previous.

    The think time of a turn is its gap to the previous turn less that turn's nominal response time
    (``nominal_ttft_s + (output - 1) * nominal_tpot_s``), at least 0. Rows without a session are first steps.

    Raises
    ------
    WorkloadError
        When the trace has no ``session_id``.
    """
    require_positive("nominal_ttft_s", nominal_ttft_s, allow_zero=True)
    require_positive("nominal_tpot_s", nominal_tpot_s, allow_zero=True)
    req = trace.requests
    if req["session_id"].null_count() == req.height:
        raise WorkloadError("the trace has no session_id: nothing to close the loop on", field="session_id")
    n = req.height
    df = req.select(
        pl.int_range(n, dtype=pl.Int64).alias("row"),
        "session_id",
        pl.col("turn").fill_null(0),
        "arrival_s",
        "output_tokens",
    ).sort("session_id", "turn", "arrival_s", "row", nulls_last=True)
    sid = df["session_id"]
    same = (sid == sid.shift(1)).fill_null(False) & sid.is_not_null()
    rows = df["row"].to_numpy()
    prev_rows = df["row"].shift(1).fill_null(-1).to_numpy()
    gap = (df["arrival_s"] - df["arrival_s"].shift(1)).fill_null(0.0).to_numpy()
    prev_resp = (nominal_ttft_s + (df["output_tokens"].shift(1).fill_null(1) - 1) * nominal_tpot_s).to_numpy()
    parent = np.full(n, -1, dtype=np.int64)
    think = np.zeros(n)
    mask = same.to_numpy()
    parent[rows[mask]] = prev_rows[mask]
    think[rows[mask]] = np.maximum(gap[mask] - prev_resp[mask], 0.0)
    # a row's step is its row number; a parent row must come earlier, which holds for rows sorted by arrival
    step = np.arange(n, dtype=np.int64)
    bad = np.flatnonzero(parent >= step)
    if bad.size:
        raise WorkloadError(
            "a later turn arrives before an earlier turn of its session", field="turn", row=int(bad[0]) + 1
        )
    return SessionWorkload(trace, step, parent, think)


__all__ = ["AgentSessions", "SessionWorkload", "from_trace"]


def _common_prefix(chains: list[list[int]]) -> int:
    """Length of the longest prefix all ``chains`` share."""
    n = min(map(len, chains), default=0)
    for k in range(n):
        h = chains[0][k]
        if any(c[k] != h for c in chains):
            return k
    return n


def fit_sessions(trace: Trace):
    """Measure a sessions model and its new-message length model on a trace with sessions.

    Returns a :class:`~workbench.traces.sessions.Sessions` model and the length model: what
    :func:`workbench.traces.fit` uses to keep them.

    The mean turns per session (rows without a session count as one-turn sessions), the mean gap between
    consecutive turns of a session (the think time, answer included), shared system prompts (sessions whose
    first prompt starts with a prefix block that other sessions' first prompts start with: their share, how
    many distinct ones, and the whole blocks the most common one's sessions all share), and per turn the new
    message: the prompt less the previous turn's prompt and answer when the prompts carry the conversation
    (at least 1 token), the first prompt less the system prompt, paired with the turn's output.

    Returns
    -------
    tuple
        ``(Sessions, Empirical)``, or ``None`` when no session has two turns.
    """
    from workbench.traces.lengths import Empirical
    from workbench.traces.sessions import Sessions

    req = trace.requests
    if req["session_id"].null_count() == req.height:
        return None
    df = (
        req.select(
            "session_id",
            pl.col("turn").fill_null(0),
            "arrival_s",
            "prompt_tokens",
            "output_tokens",
            "prefix_hashes",
        )
        .with_row_index("row")
        .sort("session_id", "turn", "arrival_s", "row", nulls_last=True)
    )
    same = (pl.col("session_id") == pl.col("session_id").shift(1)).fill_null(False) & pl.col(
        "session_id"
    ).is_not_null()
    df = df.with_columns(
        same.alias("same"),
        (pl.col("arrival_s") - pl.col("arrival_s").shift(1)).alias("gap"),
        (pl.col("prompt_tokens") - pl.col("prompt_tokens").shift(1) - pl.col("output_tokens").shift(1)).alias(
            "new"
        ),
    )
    later = df.filter("same")
    if later.height == 0:
        return None
    n_sessions = req["session_id"].drop_nulls().n_unique() + req["session_id"].null_count()
    mean_turns = req.height / n_sessions
    think = as_float(later["gap"].mean())
    carries = as_float((later["new"] > 0).mean()) > 0.5  # prompts hold the conversation so far
    block = trace.prefix_block_tokens or 512
    firsts = df.filter(~pl.col("same"))["prefix_hashes"].to_list()
    heads = Counter(h[0] for h in firsts if h is not None and len(h))
    shared = {h: c for h, c in heads.items() if c >= 2}
    system, share = 0, 0.0
    if shared:
        top = max(shared, key=lambda h: (shared[h], -h))
        chains = [list(h) for h in firsts if h is not None and len(h) and h[0] == top]
        system = _common_prefix(chains) * block
        share = sum(shared.values()) / len(firsts)
    starts_shared = pl.col("prefix_hashes").list.first().is_in(list(shared)) if system else pl.lit(False)
    new = (
        pl.when(pl.col("same") & carries)
        .then(pl.max_horizontal(pl.col("new"), 1))
        .when(~pl.col("same") & starts_shared)
        .then(pl.max_horizontal(pl.col("prompt_tokens") - system, 1))
        .otherwise(pl.col("prompt_tokens"))
    )
    lengths = df.select(new.alias("new"), "output_tokens")
    model = Empirical(lengths["new"].to_numpy(), lengths["output_tokens"].to_numpy())
    sessions = Sessions(
        mean_turns=max(1.0, mean_turns),
        think_s=max(think, 0.0),
        system_prompt_tokens=system,
        n_system_prompts=max(1, len(shared)),
        system_prompt_share=min(share, 1.0) if system else 0.0,
        block_tokens=block,
    )
    return sessions, model
