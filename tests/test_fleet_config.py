"""Fleet description: construction, TOML loading, MIG slices and one clear error per bad input."""

from __future__ import annotations

import pytest

from workbench.errors import ConfigError, HardwareError
from workbench.sim.autoscale import AutoscaleConfig
from workbench.sim.topology import Fleet, Pool, instance_gpu, monolithic

TOML = """
router = "length_pools"
interconnect = "nvlink"

[[pools]]
name = "short"
gpu = "H100"
instances = 3
max_tokens = 8192
router = "lmetric"
scheduler = { max_num_seqs = 128 }

[[pools]]
name = "long"
gpu = { "H100" = 1, "A100-80GB" = 2 }
autoscale = { policy = "kpa", min_instances = 1, max_instances = 6, setup_delay_s = 30 }
"""


def test_fleet_from_toml(tmp_path):
    path = tmp_path / "fleet.toml"
    path.write_text(TOML)
    fleet = Fleet.from_toml(path)
    short, long_ = fleet.pools
    assert (short.name, short.instances, short.max_tokens, short.router) == ("short", 3, 8192, "lmetric")
    assert short.scheduler.max_num_seqs == 128
    assert long_.instances == 3 and long_.gpu_list() == ["H100", "A100-80GB", "A100-80GB"]
    assert long_.autoscale == AutoscaleConfig(policy="kpa", min_instances=1, max_instances=6, setup_delay_s=30)
    assert fleet.n_gpus == 6.0
    assert fleet.link == (450e9, 2e-6)
    assert not fleet.disaggregated


def test_mig_slice_scales_compute_and_memory():
    g = instance_gpu("H100", "3g")
    full = instance_gpu("H100", None)
    assert g.memory_gb == pytest.approx(full.memory_gb / 2)
    assert g.bf16_tflops == pytest.approx(full.bf16_tflops * 3 / 7)
    pool = Pool("mig", gpu="A100-80GB", mig="3g", instances=2)
    assert pool.gpus_per_instance == pytest.approx(3 / 7)
    assert Fleet(pools=(pool,)).n_gpus == pytest.approx(6 / 7)
    with pytest.raises(ConfigError, match="L4 does not support MIG"):
        instance_gpu("L4", "1g")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"pools": (Pool("a"),), "router": "lmetrc"},
            r"^fleet.router: unknown router 'lmetrc'; choose one of: .*jsq",
        ),
        ({"pools": (Pool("a"), Pool("a"))}, r"duplicate pool name\(s\) \['a'\]"),
        ({"pools": ()}, "at least one pool"),
        (
            {"pools": (Pool("a", max_tokens=4096), Pool("b", max_tokens=4096)), "router": "length_pools"},
            r"inconsistent pool thresholds: max_tokens \[4096\]",
        ),
        (
            {"pools": (Pool("a"), Pool("b"), Pool("c", max_tokens=10)), "router": "length_pools"},
            r"inconsistent pool thresholds.*missing on \['a', 'b'\]",
        ),
        (
            {"pools": (Pool("a", max_tokens=10_000_000),), "router": "length_pools"},
            r"pools\[0\] \('a'\).max_tokens: inconsistent pool threshold 10000000",
        ),
        ({"pools": (Pool("a", role="prefill"),)}, "a prefill pool needs a decode pool"),
        (
            {
                "pools": (Pool("a", classes=("x",)),),
                "router": "class_pools",
                "router_params": {"fallback": "z"},
            },
            r"fallback: unknown pool 'z'; choose one of: a",
        ),
        ({"pools": (Pool("a"),), "link_latency_s": -1.0}, "fleet.link_latency_s must be a finite number >= 0"),
        (
            {"pools": (Pool("a"),), "interconnect": "carrier-pigeon"},
            r"^fleet.interconnect: unknown interconnect 'carrier-pigeon'; choose one of: ethernet",
        ),
    ],
)
def test_fleet_errors_name_the_field(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        Fleet(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"instances": -1}, r"pool 'p'.instances: must be an integer >= 0, got -1"),
        ({"tp": 0}, r"pool 'p'.tp: must be a positive integer"),
        ({"router": "nope"}, r"^pool 'p'.router: unknown router 'nope'; choose one of: .*lmetric"),
        ({"router": "length_pools"}, r"pool 'p'.router: 'length_pools' chooses pools"),
        ({"mig": "5g"}, r"^pool 'p'.mig: unknown MIG profile '5g'; choose one of: 1g, 2g, 3g, 4g, 7g"),
        ({"mig": "1g", "tp": 2}, "MIG slices run with tp = 1"),
        ({"role": "both-ish"}, r"^pool 'p'.role: unknown role 'both-ish'; choose one of: both, decode"),
        ({"gpu": {"H100": -2}}, r"pool 'p'.gpu\['H100'\]: instance count must be an integer >= 0"),
        ({"scheduler": {"max_num_seqs": 0}}, r"pool 'p'.scheduler: expected a SchedulerConfig, got \{'max_"),
        ({"accuracy": 1.5}, r"pool 'p'.accuracy must be in \[0.0, 1.0\]"),
        ({"instances": 9, "autoscale": AutoscaleConfig(max_instances=8)}, r"initial count 9 outside .*\[1, 8"),
        ({"instances": 0}, r"pool 'p'.instances: a pool without an autoscaler needs at least 1 instance"),
        ({"gpu": {"H100": 0}}, r"pool 'p'.instances: a pool without an autoscaler needs at least 1 instance"),
    ],
)
def test_pool_errors_name_the_field(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        Pool("p", **kwargs)


def test_unknown_model_names_the_pool_field():
    with pytest.raises(HardwareError, match=r"^pools\[1\] \('b'\).model: unknown model 'Llama-9'; known: .*8B"):
        Fleet(pools=(Pool("a"), Pool("b", model="Llama-9")))


def test_threshold_checked_against_the_largest_gpu_of_a_mix():
    mix = {"A100-40GB": 1, "H100": 1}  # Llama-3.1-70B tp4: A100-40GB holds about 15k tokens, H100 about 487k
    pool = Pool("m", gpu=mix, model="Llama-3.1-70B", tp=4, max_tokens=60_000)
    Fleet(pools=(pool, Pool("long", model="Llama-3.1-70B", tp=4)), router="length_pools")  # valid
    with pytest.raises(ConfigError, match=r"pools\[0\] \('m'\).max_tokens: .*largest instance holds \(H100:"):
        Fleet(pools=(Pool("m", gpu=mix, model="Llama-3.1-70B", tp=4, max_tokens=200_000),))


def test_model_that_does_not_fit_its_gpu():
    with pytest.raises(HardwareError, match=r"pools\[0\] \('big'\).gpu: .*Llama-3.1-70B"):
        Fleet(pools=(Pool("big", gpu="L4", model="Llama-3.1-70B"),))
    with pytest.raises(HardwareError, match=r"pools\[0\] \('m'\).gpu"):
        Fleet(pools=(Pool("m", gpu="H100", mig="1g", model="Llama-3.1-8B"),))  # 10 GiB slice < 16 GB weights


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"setup_delay_s": -5}, "autoscale.setup_delay_s must be a finite number >= 0"),
        ({"min_instances": -1}, "autoscale.min_instances must be an integer >= 0"),
        ({"max_instances": 0}, "autoscale.max_instances"),
        ({"policy": "magic"}, r"unknown autoscale.policy 'magic'; choose one of: delayed_off, kpa"),
        ({"down_threshold": 20, "up_threshold": 10}, "down_threshold"),
        ({"idle_timeout_s": -1}, "autoscale.idle_timeout_s"),
    ],
)
def test_autoscale_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        AutoscaleConfig(**kwargs)


def test_unknown_toml_key_and_pool_lookup(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[[pools]]\nname = "a"\ngpus = 3\n')
    with pytest.raises(
        ConfigError, match=r"pools\[0\]: .*unknown field\(s\) \['gpus'\].*valid fields: name, gpu"
    ):
        Fleet.from_toml(path)
    with pytest.raises(ConfigError, match="unknown pool 'b'; choose one of: main"):
        monolithic(2).pool("b")
