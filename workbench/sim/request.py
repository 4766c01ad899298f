"""The in-flight request object of the simulator (one per trace row, created at arrival)."""

from __future__ import annotations

import math
from collections.abc import Sequence

NAN = math.nan


class Request:
    """A request moving through the simulator.

    The public fields are those a router reads (:class:`workbench.sim.routing.RouteRequest`) plus the
    lifecycle times the result table reports; the underscored fields are the scheduler's bookkeeping.

    Attributes
    ----------
    index
        Row of the request in the trace (the row of the result table).
    request_id, arrival_s, prompt_tokens, output_tokens, prefix_hashes, session_id, request_class
        From the trace.
    admitted_s, first_token_s, finish_s
        First admission to a running batch, first generated token, last token (``nan`` until known).
    generated
        Output tokens generated so far (exact between events; see :meth:`Instance.generated`).
    cached_tokens
        Prompt tokens served from the prefix cache at the last admission.
    preemptions, retries
        Times the request was preempted (recompute) / moved off a failed instance.
    kv_ready
        ``True`` when its KV cache was transferred (prefill/decode disaggregation): a decode instance admits it
        straight into the decode batch. Preempted there, it loses the transferred cache (``False`` again) and
        recomputes its prompt and generated tokens on that instance.
    instance
        Index of the instance holding it (-1 before routing).
    """

    __slots__ = (
        "_ctx_off",
        "_done",
        "_hseq",
        "_key",
        "_ncache",
        "_nref",
        "_priv",
        "_ptok",
        "_qhit",
        "admitted_s",
        "arrival_s",
        "cached_tokens",
        "finish_s",
        "first_token_s",
        "generated",
        "index",
        "instance",
        "kv_ready",
        "output_tokens",
        "preemptions",
        "prefix_hashes",
        "prompt_tokens",
        "request_class",
        "request_id",
        "retries",
        "session_id",
    )

    def __init__(
        self,
        index: int,
        request_id: int,
        arrival_s: float,
        prompt_tokens: int,
        output_tokens: int,
        prefix_hashes: Sequence[int] | None = None,
        session_id: int | None = None,
        request_class: str | None = None,
    ) -> None:
        self.index = index
        self.request_id = request_id
        self.arrival_s = arrival_s
        self.prompt_tokens = prompt_tokens
        self.output_tokens = output_tokens
        self.prefix_hashes = prefix_hashes
        self.session_id = session_id
        self.request_class = request_class
        self.admitted_s = NAN
        self.first_token_s = NAN
        self.finish_s = NAN
        self.generated = 0
        self.cached_tokens = 0
        self.preemptions = 0
        self.retries = 0
        self.kv_ready = False
        self.instance = -1
        self._ptok = 0  # tokens to prefill in this attempt (prompt + generated, for recompute)
        self._done = 0  # prefill tokens done in this attempt (cache hits included)
        self._nref = 0  # leading prefix-hash blocks referenced in the cache
        self._ncache = 0  # leading prefix-hash blocks that may be cached
        self._priv = 0  # private KV blocks held
        self._key = 0  # residue class of the private token count (decode block growth)
        self._hseq = -1  # sequence number of the live finish-heap entry (-1: not decoding)
        self._ctx_off = 0  # generated = G - _ctx_off while decoding
        self._qhit = 0  # prefix-cache hit tokens estimated when queued (Instance.queued_prefill_tokens)

    def __repr__(self) -> str:
        return (
            f"Request(index={self.index}, prompt={self.prompt_tokens}, output={self.output_tokens}, "
            f"generated={self.generated}, instance={self.instance})"
        )
