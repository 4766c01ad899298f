"""One seed convention (workbench.seeds): streams keyed by name, independent of order and of other streams."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.errors import ConfigError
from workbench.seeds import FIXED_KEYS, Streams, rng, root, stream_key


def draws(g: np.random.Generator) -> list[float]:
    return g.random(4).tolist()


def test_same_name_same_draws_in_any_order():
    a = Streams(11)
    first = {name: draws(a.rng(name)) for name in ("router/front", "router/decode", "x")}
    b = Streams(11)
    second = {name: draws(b.rng(name)) for name in ("x", "router/decode", "router/front")}
    assert first == second
    assert draws(rng(11, "x")) == first["x"]


def test_adding_a_source_never_shifts_another():
    # the stream of one pool does not depend on which other pools exist (the Simulation.rng() call-order bug)
    two = {p: draws(Streams(3).rng(f"router/pool/{p}")) for p in ("short", "long")}
    three = {p: draws(Streams(3).rng(f"router/pool/{p}")) for p in ("extra", "short", "long")}
    assert two["short"] == three["short"] and two["long"] == three["long"]


def test_names_seeds_and_children_are_independent():
    values = {
        "a@0": draws(Streams(0).rng("a")),
        "b@0": draws(Streams(0).rng("b")),
        "a@1": draws(Streams(1).rng("a")),
        "child a/a@0": draws(Streams(0).child("a").rng("a")),
        "0@0": draws(Streams(0).rng(0)),
    }
    flat = [tuple(v) for v in values.values()]
    assert len(set(flat)) == len(flat)
    # a child is a Streams whose root is the child's sequence
    assert draws(Streams(Streams(0).sequence("a")).rng("b")) == draws(Streams(0).child("a").rng("b"))


def test_positional_and_fixed_keys_reproduce_the_old_spawns():
    seed = 123
    old = [np.random.default_rng(s).random() for s in np.random.SeedSequence(seed).spawn(3)]
    s = Streams(seed)
    assert [s.rng(k).random() for k in range(3)] == old
    assert [s.rng(f"synthetic/{n}").random() for n in ("arrivals", "lengths", "sessions")] == old
    assert s.rng("workload/arrivals").random() == np.random.default_rng(np.random.SeedSequence(seed)).random()
    # below a SeedSequence (a sweep point's): its spawned children
    ss = np.random.SeedSequence(seed).spawn(2)[1]
    assert Streams(ss).rng(1).random() == np.random.default_rng(ss.spawn(2)[1]).random()
    assert all(len(k) <= 1 for k in FIXED_KEYS.values())


def test_hashed_keys_are_stable_and_long():
    key = stream_key("router/front")
    assert len(key) == 4 and all(0 <= w < 2**32 for w in key)
    # golden value: a change here changes every named stream's draws
    assert Streams(0).integer("router/front") == 13378423367246557374
    assert key == stream_key("router/front") and key != stream_key("router/decode")
    assert stream_key(5) == (5,) and stream_key((1, 2)) == (1, 2)


@pytest.mark.parametrize("bad", [-1, 1.5, "3", None, True])
def test_bad_seeds_are_named(bad):
    with pytest.raises(ConfigError, match="seed must be an integer >= 0"):
        root(bad)


@pytest.mark.parametrize("bad", ["", -2, 2.0, None, (2**32,)])
def test_bad_names_are_named(bad):
    with pytest.raises(ConfigError, match="stream"):
        Streams(0).rng(bad)
