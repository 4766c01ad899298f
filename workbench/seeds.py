"""One seed convention: every random stream is named, and spawned by its name from one root SeedSequence.

A computation takes one seed (an integer, a :class:`numpy.random.SeedSequence`, or a :class:`Streams`) and
draws each of its random sources from a stream *named* for that source::

    streams = Streams(seed)
    arrivals = streams.rng("synthetic/arrivals")
    router = streams.rng("router/pool/short")

A stream's key is a function of its name only (a 128-bit hash of the name, see :func:`stream_key`), never of
the order in which streams are asked for or of how many there are, so adding a source (a pool, a router, a
client) never shifts another source's draws. Streams nest: ``streams.child("replication/3")`` is a
:class:`Streams` whose names are keyed below that child. There are no literal roots such as
``SeedSequence([seed, 7])`` and no fallback generators: code that needs randomness is handed a stream.

An integer name ``i`` is the ``i``-th positional child (``SeedSequence(seed).spawn(k)[i]``), for families
indexed by position (the ``i``-th load of a sweep). A few string names predate this module: they keep the
positional keys they had (:data:`FIXED_KEYS`), and three were second entropy words below an integer seed
(:data:`FIXED_WORDS`), so that every trace and result made before stays identical; no new name goes there.

Examples
--------
>>> s = Streams(7)
>>> a = s.rng("router/front").random()
>>> a == Streams(7).rng("router/front").random()  # same seed and name, same draws, in any order
True
>>> a == Streams(7).rng("router/decode").random()
False
>>> Streams(7).rng(0).random() == np.random.default_rng(np.random.SeedSequence(7).spawn(1)[0]).random()
True
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TypeAlias

import numpy as np

from workbench.errors import ConfigError

#: Names whose keys predate the convention: the positional spawns (or the root, ``()``) that their sources
#: used, kept so that traces and results made before stay identical. Frozen: new names are hashed.
FIXED_KEYS: Mapping[str, tuple[int, ...]] = {
    # traces.synthetic.Synthetic.generate: SeedSequence(seed).spawn(3)
    "synthetic/arrivals": (0,),
    "synthetic/lengths": (1,),
    "synthetic/sessions": (2,),
    # traces.transforms.with_arrivals: spawn(2)
    "resample/arrivals": (0,),
    "resample/rows": (1,),
    # sim.queueing.simulate_queue: spawn(2)
    "queue/arrivals": (0,),
    "queue/service": (1,),
    # widgets.instance.poisson_requests: spawn(2)
    "poisson/arrivals": (0,),
    "poisson/lengths": (1,),
    # planning.workload.at_qps and hardware.calibrate.holdout_split drew from the root itself
    "workload/arrivals": (),
    "calibrate/holdout": (),
}

#: Names whose streams predate the convention as second entropy words (``SeedSequence([seed, word])`` below an
#: integer seed), kept so that results made before stay identical. Frozen: new names are hashed.
FIXED_WORDS: Mapping[str, int] = {
    "workload/sample": 1,  # planning.workload: the analytic screen's length sample
    "failures/schedule": 7,  # whatif.reliability.failure_study: GPU and node failure times
    "measure/confirm": 0x6B65726E,  # sim.measure: the confirmation run's seed ("kern")
}


def stream_key(name: str | int | tuple[int, ...]) -> tuple[int, ...]:
    """Return the spawn key of stream ``name`` below a root.

    A string is hashed (BLAKE2b, 128 bits, as four 32-bit words), unless it is one of :data:`FIXED_KEYS`; an
    integer ``i >= 0`` is the positional child ``(i,)``; a tuple of 32-bit words is taken as the key itself.

    Parameters
    ----------
    name
        Stream name, positional index or spawn key.


    Returns
    -------
    tuple of int
        The spawn key (32-bit words).

    Raises
    ------
    ConfigError
        For an empty name, a negative integer, or anything else.
    """
    if isinstance(name, str):
        if not name:
            raise ConfigError("a random stream needs a non-empty name")
        fixed = FIXED_KEYS.get(name)
        if fixed is not None:
            return fixed
        digest = hashlib.blake2b(name.encode(), digest_size=16).digest()
        return tuple(int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4))
    if isinstance(name, (int, np.integer)) and not isinstance(name, bool) and name >= 0:
        return (int(name),)
    if isinstance(name, tuple) and all(isinstance(w, int) and 0 <= w < 2**32 for w in name):
        return name
    raise ConfigError(f"a random stream's name must be a string or an integer >= 0, got {name!r}")


def root(seed: int | np.random.SeedSequence | Streams) -> np.random.SeedSequence:
    """Return the root :class:`~numpy.random.SeedSequence` of ``seed``.

    Parameters
    ----------
    seed
        Integer >= 0, SeedSequence or :class:`Streams`.


    Returns
    -------
    numpy.random.SeedSequence
        The root below which every named stream is spawned.

    Raises
    ------
    ConfigError
        For a seed that is not an integer >= 0, a SeedSequence or a :class:`Streams`.
    """
    if isinstance(seed, Streams):
        return seed.root
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0:
        return np.random.SeedSequence(int(seed))
    raise ConfigError(f"seed must be an integer >= 0 (or a SeedSequence), got {seed!r}")


class Streams:
    """Named, independent random streams spawned from one root seed (see the module docstring).

    Parameters
    ----------
    seed
        An integer >= 0, a :class:`numpy.random.SeedSequence` (e.g. a sweep point's), or another
        :class:`Streams` (the same root).
    """

    __slots__ = ("root",)

    def __init__(self, seed: int | np.random.SeedSequence | Streams = 0) -> None:
        self.root = root(seed)

    def sequence(self, name: str | int | tuple[int, ...]) -> np.random.SeedSequence:
        """Return the SeedSequence of stream ``name`` (a child of the root keyed by the name)."""
        r = self.root
        word = FIXED_WORDS.get(name) if isinstance(name, str) else None
        if word is not None and not r.spawn_key and isinstance(r.entropy, int):
            return np.random.SeedSequence([r.entropy, word], pool_size=r.pool_size)
        return np.random.SeedSequence(
            r.entropy, spawn_key=tuple(r.spawn_key) + stream_key(name), pool_size=r.pool_size
        )

    def rng(self, name: str | int | tuple[int, ...]) -> np.random.Generator:
        """Return a fresh generator of stream ``name``.

        Asking twice gives two generators with the same draws.
        """
        return np.random.default_rng(self.sequence(name))

    def child(self, name: str | int | tuple[int, ...]) -> Streams:
        """Return the streams below ``name`` (``child("a").rng("b")`` is independent of every stream here)."""
        return Streams(self.sequence(name))

    def integer(self, name: str | int | tuple[int, ...]) -> int:
        """Return a 64-bit integer seed drawn from stream ``name``, for interfaces that take an ``int``."""
        words = self.sequence(name).generate_state(2, np.uint32).astype(np.uint64)
        return int(words @ np.array([1, 2**32], dtype=np.uint64))

    def __repr__(self) -> str:
        key = f", spawn_key={tuple(self.root.spawn_key)}" if self.root.spawn_key else ""
        return f"Streams(entropy={self.root.entropy}{key})"


#: What :class:`Streams` accepts as a seed.
SeedLike: TypeAlias = "int | np.random.SeedSequence | Streams"


def rng(seed: int | np.random.SeedSequence | Streams, name: str | int | tuple[int, ...]) -> np.random.Generator:
    """``Streams(seed).rng(name)``: the generator of stream ``name`` below ``seed``.

    Parameters
    ----------
    seed
        Root seed (integer >= 0), SeedSequence or :class:`Streams`.
    name
        Stream name (or spawn key).

    Returns
    -------
    numpy.random.Generator
        A fresh generator of that stream; the same ``seed`` and ``name`` give the same draws.
    """
    return Streams(seed).rng(name)


__all__ = ["FIXED_KEYS", "FIXED_WORDS", "SeedLike", "Streams", "rng", "root", "stream_key"]
