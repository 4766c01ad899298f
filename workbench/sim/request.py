"""The in-flight request object of the simulator (one per trace row, created at arrival).

Compiled core: ``setup.py`` builds this module with Cython, typed by ``request.pxd`` beside it (a new
attribute or method of its classes is declared there too); the ``.py`` file stays the pure-Python
implementation (:mod:`workbench._pure` chooses, ``tests/test_compiled_core.py`` checks both agree).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

NAN = math.nan


class Request:
    """A request moving through the simulator (also the plain request the routers' tests build).

    The fields a router reads (:class:`workbench.sim.routing.RouteRequest`) and the lifecycle times the result
    table reports, then the scheduler's bookkeeping of the instance holding it (named, not private: an
    instance's parts read them, and audits and tests check them).

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
    prefill_target, prefill_done
        Tokens to prefill in this attempt (prompt + generated, for a recompute) and those done (cache hits
        included).
    prefix_refs, prefix_cacheable
        Leading prefix-cache entries it references / that may be cached (its full prompt blocks).
    kv_blocks
        Private KV blocks it holds.
    queued_hit_tokens
        Prefix-cache hit tokens estimated when it was queued (:attr:`Instance.queued_prefill_tokens`).
    decode_seq, decode_offset, decode_residue
        While decoding: its entry in the decode set's finish heap (-1: not decoding), ``iteration -
        generated``, and the residue class of its block growth (:class:`~workbench.sim.instance.DecodeSet`).
    """

    __slots__ = (
        "admitted_s",
        "arrival_s",
        "cached_tokens",
        "decode_offset",
        "decode_residue",
        "decode_seq",
        "finish_s",
        "first_token_s",
        "generated",
        "index",
        "instance",
        "kv_blocks",
        "kv_ready",
        "output_tokens",
        "preemptions",
        "prefill_done",
        "prefill_target",
        "prefix_cacheable",
        "prefix_hashes",
        "prefix_refs",
        "prompt_tokens",
        "queued_hit_tokens",
        "request_class",
        "request_id",
        "retries",
        "session_id",
    )

    def __init__(
        self,
        index: int = 0,
        request_id: int = 0,
        arrival_s: float = 0.0,
        prompt_tokens: int = 1,
        output_tokens: int = 1,
        prefix_hashes: Sequence[int] | None = None,
        session_id: int | None = None,
        request_class: str | None = None,
    ) -> None:
        self._setup(index, request_id, arrival_s, prompt_tokens, output_tokens, prefix_hashes, session_id,
                    request_class)  # fmt: skip

    def _setup(
        self,
        index: int,
        request_id: int,
        arrival_s: float,
        prompt_tokens: int,
        output_tokens: int,
        prefix_hashes: Sequence[int] | None,
        session_id: int | None,
        request_class: str | None,
    ) -> None:
        """Every field's first value (:meth:`__init__`'s body, shared with :func:`new_request`)."""
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
        self.prefill_target = 0
        self.prefill_done = 0
        self.prefix_refs = 0
        self.prefix_cacheable = 0
        self.kv_blocks = 0
        self.queued_hit_tokens = 0
        self.decode_seq = -1
        self.decode_offset = 0
        self.decode_residue = 0

    def __repr__(self) -> str:
        return (
            f"Request(index={self.index}, prompt={self.prompt_tokens}, output={self.output_tokens}, "
            f"generated={self.generated}, instance={self.instance})"
        )


def new_request(
    index: int, request_id: int, arrival_s: float, prompt_tokens: int, output_tokens: int
) -> Request:
    """Return ``Request(index, request_id, arrival_s, prompt_tokens, output_tokens)`` made without ``__init__``.

    The compiled core allocates it directly, skipping ``__init__``'s argument parsing: the simulator makes one
    per arrival.
    """
    req = Request.__new__(Request)
    req._setup(index, request_id, arrival_s, prompt_tokens, output_tokens, None, None, None)
    return req
