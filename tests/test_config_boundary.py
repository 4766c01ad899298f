"""The configuration boundary: nested from_dict, one TOML reader, one rule for names, zero instances, seeds.

Issue 14 item 6 (zero instances and bad seeds fail deep inside numpy on the old main), issue 15 (a nested
``from_dict`` that works with string annotations; one TOML path; one documented rule for names).
"""

from __future__ import annotations

import ast
import inspect
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pytest

import workbench
from workbench import config, sim, traces
from workbench.config import from_dict, load_toml, require_choice
from workbench.errors import ConfigError
from workbench.sim import fleet
from workbench.sim.autoscale import AutoscaleConfig
from workbench.sim.config import InstanceConfig, SchedulerConfig, SimConfig
from workbench.sim.topology import Fleet, Pool, monolithic


@dataclass(frozen=True)
class Inner:
    x: int = 1


@dataclass(frozen=True)
class Outer:
    inner: Inner = field(default_factory=Inner)
    maybe: Inner | None = None
    many: tuple[Inner, ...] = ()
    tags: tuple[str, ...] = ()


def test_from_dict_builds_nested_dataclasses_under_string_annotations():
    # this module uses `from __future__ import annotations`: every field type is a string
    assert isinstance(Outer.__dataclass_fields__["inner"].type, str)
    out = from_dict(Outer, {"inner": {"x": 2}, "maybe": {"x": 3}, "many": [{"x": 4}, {"x": 5}], "tags": ["a"]})
    assert out == Outer(Inner(2), Inner(3), (Inner(4), Inner(5)), ("a",))
    with pytest.raises(
        ConfigError, match=r"^many\[1\]: unknown field\(s\) \['y'\] for Inner; valid fields: x$"
    ):
        from_dict(Outer, {"many": [{"x": 1}, {"y": 2}]})
    with pytest.raises(ConfigError, match=r"^inner: expected a table of Inner fields, got int"):
        from_dict(Outer, {"inner": 5})


def test_fleet_toml_goes_through_the_one_reader(tmp_path):
    path = tmp_path / "fleet.toml"
    path.write_text(
        'router = "length_pools"\n'
        '[[pools]]\nname = "short"\ninstances = 2\nmax_tokens = 8192\nclasses = ["chat"]\n'
        "scheduler = { max_num_seqs = 64, block_size = 32 }\n"
        '[[pools]]\nname = "long"\n'
        '[pools.autoscale]\npolicy = "kpa"\nmin_instances = 1\nmax_instances = 4\n'
    )
    fleet_ = Fleet.from_toml(path)
    assert fleet_ == load_toml(Fleet, path) == from_dict(Fleet, Fleet_dict := _toml(path))
    short, long_ = fleet_.pools
    assert short.scheduler == SchedulerConfig(max_num_seqs=64, block_size=32) and short.classes == ("chat",)
    assert long_.autoscale == AutoscaleConfig(policy="kpa", min_instances=1, max_instances=4)
    assert Fleet.from_dict(Fleet_dict) == fleet_
    path.write_text("[[pools]]\nname = 'a'\nscheduler = { max_num_seqs = 0 }\n")
    with pytest.raises(ConfigError, match=r"^pools\[0\]\.scheduler: max_num_seqs must be an integer >= 1"):
        Fleet.from_toml(path)
    path.write_text("[[pools]]\nname = 'a'\n[pools.autoscale]\nmin_instance = 0\n")
    with pytest.raises(ConfigError, match=r"^pools\[0\]\.autoscale: unknown field\(s\) \['min_instance'\]"):
        Fleet.from_toml(path)
    path.write_text("[[pools]]\ninstances = 2\n")
    with pytest.raises(ConfigError, match=r"^pools\[0\]: missing field\(s\) \['name'\] for Pool"):
        Fleet.from_toml(path)
    path.write_text("[[pools]\n")
    with pytest.raises(ConfigError, match=r"cannot read fleet config .*fleet\.toml: Expected"):
        Fleet.from_toml(path)


def _toml(path: Path) -> dict:
    import tomllib

    return tomllib.loads(path.read_text())


def test_sim_config_from_a_table():
    conf = from_dict(
        SimConfig, {"n_instances": 2, "instance": {"gpu": "A100-80GB", "scheduler": {"block_size": 32}}}
    )
    assert conf == SimConfig(InstanceConfig(gpu="A100-80GB", scheduler=SchedulerConfig(block_size=32)), 2)


def test_dataclasses_take_typed_values_only():
    with pytest.raises(ConfigError, match=r"scheduler must be a SchedulerConfig, got dict.*from_dict"):
        InstanceConfig(scheduler={"block_size": 32})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"instance must be an InstanceConfig, got dict"):
        SimConfig(instance={"gpu": "H100"})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"pools\[0\]: expected a Pool, got \{'name': 'a'\}"):
        Fleet(pools=({"name": "a"},))  # type: ignore[arg-type]


def test_one_toml_reader_in_the_package():
    readers = []
    for path in Path(workbench.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in ("loads", "load")
                and getattr(node.value, "id", None) == "tomllib"
            ):
                readers.append(path.name)
    assert readers == ["config.py"]  # config.read_toml; load_toml, Fleet.from_toml, jobs and plans use it
    assert "tomllib" not in inspect.getsource(Fleet.from_toml)


# ------------------------------------------------------------------------------------------ one rule for names
def test_names_ignore_case_and_surrounding_spaces_and_keep_the_canonical_spelling():
    assert require_choice("router", " JSQ ", ("jsq", "lmetric")) == "jsq"
    pool = Pool("p", router=" LMetric", role="Prefill ", mig="3G")
    assert (pool.router, pool.role, pool.mig) == ("lmetric", "prefill", "3g")
    f = Fleet(pools=(Pool("a"),), router="JSQ", decode_router=" Round_Robin ", interconnect="NVLink")
    assert (f.router, f.decode_router, f.interconnect) == ("jsq", "round_robin", "nvlink")
    assert AutoscaleConfig(policy=" KPA").policy == "kpa"
    assert SchedulerConfig(priority="Decode_First").priority == "decode_first"
    # GPU and model names: the catalog's rule (also punctuation-insensitive, with aliases)
    assert workbench.hardware.gpu("h100 ").name == workbench.hardware.gpu("H100-SXM").name
    with pytest.raises(ConfigError, match=r"unknown router 'j s q'; choose one of"):
        Pool("p", router="j s q")
    assert "ignoring case" not in config.__doc__  # the rule is stated in words in the module docstring
    assert "without regard to case or surrounding" in config.__doc__


# ------------------------------------------------------------------------------------------- zero instances
REQS = pl.DataFrame(
    {"request_id": [0, 1], "arrival_s": [0.0, 0.1], "prompt_tokens": [100, 100], "output_tokens": [9, 9]}
)


@pytest.mark.parametrize("pool", [{"instances": 0}, {"gpu": {"H100": 0}}])
def test_a_static_pool_with_zero_instances_is_refused_at_the_boundary(tmp_path, pool):
    with pytest.raises(
        ConfigError, match=r"pool 'a'\.instances: a pool without an autoscaler needs at least 1"
    ):
        Pool("a", **pool)
    with pytest.raises(ConfigError, match="at least 1 instance"):
        monolithic(0)
    path = tmp_path / "zero.toml"
    path.write_text("[[pools]]\nname = 'a'\ninstances = 0\n")
    with pytest.raises(ConfigError, match=r"^pools\[0\]: pool 'a'\.instances: a pool without an autoscaler"):
        Fleet.from_toml(path)
    # an autoscaled pool may start at zero
    auto = AutoscaleConfig(policy="kpa", min_instances=0, max_instances=2, setup_delay_s=1)
    res = fleet.simulate(REQS, Fleet(pools=(Pool("z", instances=0, autoscale=auto),)))
    assert res.requests["finish_s"].is_not_null().all()


# ------------------------------------------------------------------------------------------------------- seeds
@pytest.mark.parametrize("seed", [-1, "abc", 1.5, True, None])
def test_bad_seeds_are_one_clear_error_at_every_entry(seed):
    gen = traces.Synthetic(traces.Poisson(1.0), traces.Fixed(10, 2))
    calls = [
        lambda: sim.simulate(REQS, seed=seed),
        lambda: fleet.simulate(REQS, monolithic(1), seed=seed),
        lambda: gen.generate(n=5, seed=seed),
        lambda: traces.attach_arrivals(gen.generate(n=5), traces.Poisson(1.0), seed=seed),
    ]
    for call in calls:
        with pytest.raises(ConfigError, match=r"seed must be an integer >= 0"):
            call()
