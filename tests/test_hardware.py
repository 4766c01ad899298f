"""GPU table, model zoo and memory budget."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.errors import ConfigError, HardwareError
from workbench.hardware import (
    GPU,
    ModelSpec,
    gpu,
    kv_capacity_tokens,
    list_gpus,
    list_models,
    min_tensor_parallel,
    model,
    weights_per_gpu_gb,
)
from workbench.hardware.catalog import GIB

REQUIRED_MODELS = [
    "Llama-3.1-8B",
    "Llama-3.1-70B",
    "Llama-2-7B",
    "Llama-2-70B",
    "Qwen2.5-32B",
    "Mixtral-8x7B",
    "Qwen3-235B-A22B",
]


def test_gpu_table_keeps_source_columns(shipped_data):
    table = list_gpus()
    assert {
        "gpu",
        "memory_gb",
        "mem_bw_tbps",
        "bf16_dense_tflops",
        "tdp_w",
        "spec_source",
        "gpus_per_node",
        "interconnect_bw_gbs",
        "interconnect_source",
    } <= set(table.columns)
    assert table["interconnect_source"].null_count() == 0
    source_csv = shipped_data.parent.parent / "shared" / "data" / "hardware" / "gpus.csv"
    if source_csv.exists():  # the shipped table extends the shared one without changing it
        source = pl.read_csv(source_csv)
        assert table.select(source.columns).equals(source)


def test_model_zoo_has_required_models_with_sources():
    table = list_models()
    assert set(REQUIRED_MODELS) <= set(table["model"])
    assert table["source"].str.contains("config.json").all()
    assert (table["kv_bytes_per_token"] > 0).all()


@pytest.mark.parametrize("name", [*REQUIRED_MODELS, "BLOOM-176B", "Qwen3-30B-A3B", "Llama-3.1-405B"])
def test_parameter_count_matches_cited_total(name):
    m = model(name)
    assert m.params / 1e9 == pytest.approx(m.total_params_b, rel=2e-3)
    assert m.active_params / 1e9 == pytest.approx(m.active_params_b, rel=2e-3)


#: The ML.ENERGY v3 zoo beyond the plain transformer; the cited totals of VL / Omni models include their vision
#: or audio encoders, which the zoo does not count (language model only).
ZOO = ["Qwen3-8B", "Qwen3-14B", "Qwen3-32B", "Qwen3-Coder-480B-A35B", "gemma-3-12b", "gemma-3-27b",
       "Llama-4-Scout-17B-16E", "Llama-4-Maverick-17B-128E", "Nemotron-Nano-12B-v2", "Nemotron-Nano-9B-v2",
       "gpt-oss-20b", "gpt-oss-120b", "DeepSeek-V3"]  # fmt: skip


@pytest.mark.parametrize("name", ZOO)
def test_zoo_parameter_counts_match_cited_totals(name):
    m = model(name)
    assert m.params / 1e9 == pytest.approx(m.total_params_b, rel=0.012), name


def test_every_mlenergy_model_resolves(shared_traces):
    runs = pl.read_csv(shared_traces / "mlenergy_leaderboard_v3_llm_runs.csv")
    names = {mid: model(mid).name for mid in runs["model_id"].unique()}
    assert len(names) == 34
    assert names["Qwen/Qwen3-235B-A22B-Thinking-2507-FP8"] == "Qwen3-235B-A22B-FP8"
    assert names["Qwen/Qwen3-Coder-30B-A3B-Instruct"] == "Qwen3-30B-A3B"
    assert names["deepseek-ai/DeepSeek-R1-0528"] == "DeepSeek-V3"
    assert names["nvidia/NVIDIA-Nemotron-Nano-12B-v2-VL-BF16"] == "Nemotron-Nano-12B-v2"


def test_architecture_facts():
    fp8 = model("Qwen3-235B-A22B-Instruct-2507-FP8")
    bf16 = model("Qwen3-235B-A22B")
    assert fp8.linear_weight_bytes == 1.0 and fp8.params == bf16.params
    assert fp8.weight_bytes < 0.51 * bf16.weight_bytes  # embeddings stay BF16
    ds = model("DeepSeek-V3")
    assert ds.is_mla and ds.kv_bytes_per_token(8) == ds.kv_bytes_per_token(1) == 61 * 576 * 2  # replicated
    assert ds.n_dense_mlp_layers == 3 and ds.n_moe_layers == 58
    oss = model("gpt-oss-120b")
    assert oss.kv_bytes_per_token() == oss.window_kv_bytes_per_token() == 18 * 2 * 8 * 64 * 2
    assert oss.weight_bytes / GIB == pytest.approx(60.7, abs=0.5)  # MXFP4 experts: the ~61 GiB checkpoint
    nemo = model("Nemotron-Nano-12B-v2")
    assert nemo.n_attention_layers == 6 and nemo.state_bytes_per_seq() == pytest.approx(148.9e6, rel=1e-3)
    # per-sequence state is reserved for max_num_seqs sequences; long windows count per token
    free = kv_capacity_tokens("H100", nemo)
    reserved = kv_capacity_tokens("H100", nemo, max_num_seqs=64)
    assert reserved == pytest.approx(free - 64 * nemo.state_bytes_per_seq() / 24576, abs=2)
    with pytest.raises(HardwareError, match="state of 512 sequences"):
        kv_capacity_tokens("H100", nemo, max_num_seqs=512)
    from workbench.hardware.memory import kv_budget_bytes

    assert kv_budget_bytes(model("gemma-3-12b"), 1) == (48 * 2 * 8 * 256 * 2, 0.0)  # 1024-token windows
    assert kv_budget_bytes(oss, 2) == (18 * 2 * 4 * 64 * 2, 128 * 18 * 2 * 4 * 64 * 2)  # 128: per sequence


def test_known_facts():
    h100 = gpu("H100-SXM")
    assert (h100.memory_gb, h100.mem_bw_tbps, h100.bf16_tflops, h100.tdp_w) == (80, 3.35, 989, 700)
    assert h100.gpus_per_node == 8 and h100.interconnect_bw_gbs == 900
    m = model("Llama-3.1-8B")
    assert (m.layers, m.hidden_size, m.kv_heads, m.head_dim) == (32, 4096, 8, 128)
    # K and V x 32 layers x 8 heads x 128 x 2 bytes
    assert m.kv_bytes_per_token() == 2 * 32 * 8 * 128 * 2 == 131072
    assert m.kv_bytes_per_token(tp=2) == 65536
    assert m.kv_bytes_per_token(kv_dtype_bytes=1) == 65536
    # fewer KV heads than GPUs: heads are replicated, not split below one per GPU
    q = model("Qwen3-235B-A22B")
    assert q.kv_heads == 4 and q.kv_bytes_per_token(tp=8) == q.kv_bytes_per_token(tp=4)
    mix = model("Mixtral-8x7B")
    assert mix.is_moe and (mix.experts, mix.active_experts) == (8, 2)


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("h100", "H100-SXM"),
        ("H100", "H100-SXM"),
        ("h100-80gb", "H100-SXM"),
        ("a100-80gb", "A100-80GB-SXM"),
        ("h200", "H200-SXM"),
        ("mi300x", "MI300X"),
    ],
)
def test_gpu_aliases(alias, name):
    assert gpu(alias).name == name


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("llama-3.1-8b", "Llama-3.1-8B"),
        ("llama2-70b", "Llama-2-70B"),
        ("meta-llama/Llama-2-7b-hf", "Llama-2-7B"),
        ("Meta-Llama-3-8B", "Llama-3-8B"),
        ("bloom-176b", "BLOOM-176B"),
        ("mixtral-8x7b", "Mixtral-8x7B"),
        ("google/gemma-3-27b-it", "gemma-3-27b"),
        ("openai/gpt-oss-20b", "gpt-oss-20b"),
        ("meta-llama/Llama-3.1-405B-Instruct-FP8", "Llama-3.1-405B-FP8"),
    ],
)
def test_model_aliases(alias, name):
    assert model(alias).name == name


def test_unknown_names_list_known():
    with pytest.raises(HardwareError, match=r"unknown gpu 'V100'.*H100-SXM"):
        gpu("V100")
    with pytest.raises(HardwareError, match=r"unknown model 'gpt-5'.*Llama-3.1-8B"):
        model("gpt-5")


def test_kv_capacity_formula():
    g, m = gpu("H100"), model("Llama-3.1-8B")
    expected = (80 * GIB * 0.9 - m.weight_bytes - 2.0 * GIB) // m.kv_bytes_per_token()
    assert kv_capacity_tokens(g, m) == expected
    assert 440_000 < expected < 470_000  # ~55 GiB of KV at 128 KiB/token
    # TP 2 halves the weights per GPU and the KV per token per GPU: more than twice the tokens
    assert kv_capacity_tokens(g, m, tp=2) > 2 * expected
    assert weights_per_gpu_gb(g, m, 2) == pytest.approx(m.weight_bytes / 2 / GIB)


def test_model_too_large_gives_numbers():
    with pytest.raises(HardwareError, match=r"Llama-3.1-70B does not fit on 1x H100-SXM.*weights 131.4 GiB"):
        kv_capacity_tokens("H100", "Llama-3.1-70B", tp=1)
    assert min_tensor_parallel("H100", "Llama-3.1-70B") == 2
    assert min_tensor_parallel("H200", "Llama-3.1-70B") == 2  # 131 GiB > 0.9 x 141 GiB
    assert min_tensor_parallel("B200", "Llama-3.1-70B") == 1
    with pytest.raises(HardwareError, match="does not fit"):
        min_tensor_parallel("L4", "Llama-3.1-405B")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"tp": 0}, "tp"),
        ({"tp": 16}, "gpus_per_node"),
        ({"tp": 3}, "attention_heads"),
        ({"memory_utilization": 0.0}, "memory_utilization"),
        ({"memory_utilization": 1.5}, "memory_utilization"),
        ({"activation_reserve_gb": -1.0}, "activation_reserve_gb"),
    ],
)
def test_bad_parameters(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        kv_capacity_tokens("H100", "Llama-3.1-8B", **kwargs)


def test_custom_specs_validated():
    with pytest.raises(ConfigError, match=r"GPU\.memory_gb"):
        GPU(name="x", memory_gb=0, mem_bw_tbps=1, bf16_tflops=1, tdp_w=1)
    with pytest.raises(ConfigError, match=r"ModelSpec\.layers"):
        ModelSpec(
            name="x",
            layers=-1,
            hidden_size=1,
            attention_heads=1,
            kv_heads=1,
            head_dim=1,
            intermediate_size=1,
            vocab_size=1,
        )
    tiny = ModelSpec(
        name="tiny",
        layers=2,
        hidden_size=64,
        attention_heads=4,
        kv_heads=2,
        head_dim=16,
        intermediate_size=128,
        vocab_size=100,
    )
    assert kv_capacity_tokens("L4", tiny) > 1e6


@settings(max_examples=40, deadline=None)
@given(util=st.floats(0.5, 1.0), reserve=st.floats(0.0, 8.0), tp=st.sampled_from([1, 2, 4, 8]))
def test_capacity_monotone(util, reserve, tp):
    base = kv_capacity_tokens("H100", "Llama-3.1-8B", tp, util, reserve)
    assert kv_capacity_tokens("H100", "Llama-3.1-8B", tp, min(1.0, util + 0.05), reserve) >= base
    assert kv_capacity_tokens("H100", "Llama-3.1-8B", tp, util, reserve + 1.0) <= base
    assert kv_capacity_tokens("H200", "Llama-3.1-8B", tp, util, reserve) > base
