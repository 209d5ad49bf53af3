"""Model configs: exact parameter counts, KV bytes, weight bytes and config errors, by hand."""
import json

import pytest

from varcas.errors import VarcasError
from varcas.resources import data_path
from varcas.roofline import known_models, load_config, model, precision

SHIPPED = ["llama-2-13b", "llama-2-70b", "llama-2-7b", "llama-3-70b", "llama-3-8b",
           "mistral-7b", "mixtral-8x7b", "qwen2.5-7b"]


def test_all_issue_models_are_shipped():
    assert known_models() == SHIPPED


def test_llama_2_7b_parameters_from_its_config():
    c = load_config("llama-2-7b")
    h, inter, layers, vocab = 4096, 11008, 32, 32000
    per_layer = 2 * h + 4 * h * h + 3 * h * inter  # 2 RMSNorms, q/k/v/o (MHA), gate/up/down
    assert per_layer == 202_383_360
    assert c.params == vocab * h + layers * per_layer + h + vocab * h == 6_738_415_616
    assert c.embedding_params == 131_072_000


def test_gqa_parameter_count_llama_3_8b():
    h, kv_dim, inter, vocab = 4096, 8 * 128, 14336, 128256
    per_layer = 2 * h + h * (h + 2 * kv_dim) + h * h + 3 * h * inter
    assert load_config("llama-3-8b").params == 2 * vocab * h + 32 * per_layer + h == 8_030_261_248


def test_qwen_qkv_bias_is_counted():
    c = load_config("qwen2.5-7b")
    assert c.qkv_bias and not c.o_bias
    h, q = 3584, (28 + 2 * 4) * 128
    per_layer = 2 * h + h * q + q + h * h + 3 * h * 18944
    assert c.params == 2 * 152064 * h + 28 * per_layer + h == 7_615_616_512


def test_mixtral_counts_every_expert_and_the_router():
    c = load_config("mixtral-8x7b")
    assert (c.experts, c.top_k) == (8, 2)
    h = 4096
    per_layer = 2 * h + h * (h + 2 * 1024) + h * h + h * 8 + 8 * 3 * h * 14336
    assert c.params == 2 * 32000 * h + 32 * per_layer + h == 46_702_792_704


def test_kv_cache_bytes_per_token():
    c = load_config("llama-2-7b")
    assert c.kv_bytes_per_token("fp16") == 2 * 32 * 32 * 128 * 2 == 524_288
    assert c.kv_bytes_per_token("fp8") == 262_144
    assert load_config("llama-3-70b").kv_bytes_per_token("fp16") == 2 * 80 * 8 * 128 * 2


def test_awq_weight_bytes_count_group_scales_and_zeros():
    m = model("llama-2-7b", quant="awq")
    assert (m.precision.weights, m.precision.act, m.precision.kv, m.precision.group_size) == \
        ("int4", "fp16", "fp16", 128)
    linear = 32 * (4 * 4096 * 4096 + 3 * 4096 * 11008)
    groups = 32 * (4 * 4096 // 128 * 4096 + 2 * 4096 // 128 * 11008 + 11008 // 128 * 4096)
    assert groups == linear // 128
    sixteen_bit = 2 * 32000 * 4096 + 65 * 4096  # embedding, lm_head, 65 norms
    expected = linear // 2 + groups * (2 + 0.5) + 2 * sixteen_bit
    assert m.weight_bytes == expected == 3_889_307_648
    assert model("llama-2-7b", quant="fp16").weight_bytes == 2 * 6_738_415_616


def test_tied_embeddings_count_once(tmp_path):
    cfg = json.loads(data_path("models", "llama-2-7b.json").read_text())
    cfg["tie_word_embeddings"] = True
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    tied = load_config(str(tmp_path))
    assert tied.name == tmp_path.name
    assert tied.params == 6_738_415_616 - 32000 * 4096
    assert model(str(tmp_path), "fp16").weight_bytes == 2 * tied.params


def test_checkpoint_quantization_config_sets_the_default_precision(tmp_path):
    cfg = json.loads(data_path("models", "llama-2-7b.json").read_text())
    cfg["quantization_config"] = {"quant_method": "awq", "bits": 4, "group_size": 64, "zero_point": True}
    path = tmp_path / "awq.json"
    path.write_text(json.dumps(cfg))
    p = model(str(path)).precision
    assert (p.name, p.weights, p.group_size, p.act) == ("awq", "int4", 64, "fp16")
    assert model(str(path), "fp16").precision.weights == "fp16"


def test_precision_overrides():
    c = load_config("llama-3-8b")
    assert precision(c).act == "bf16"  # torch_dtype bfloat16
    p = precision(c, "fp8", kv="fp8")
    assert (p.weights, p.act, p.kv, p.base) == ("fp8", "fp8", "fp8", "bf16")
    w4 = precision(c, "fp16", weights="int4")
    assert (w4.weights, w4.act, w4.group_size, w4.name) == ("int4", "fp16", 128, "custom")


@pytest.mark.parametrize("missing", ["hidden_size", "num_hidden_layers", "num_attention_heads",
                                     "intermediate_size", "vocab_size"])
def test_missing_field_is_named(tmp_path, missing):
    cfg = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
           "intermediate_size": 128, "vocab_size": 100}
    del cfg[missing]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    with pytest.raises(VarcasError, match=f"missing '{missing}'"):
        load_config(str(path))


@pytest.mark.parametrize("patch, message", [
    ({"num_key_value_heads": 3}, "not a multiple"),
    ({"hidden_size": 66}, "missing 'head_dim'"),
    ({"num_local_experts": 4}, "missing 'num_experts_per_tok'"),
    ({"shared_expert_intermediate_size": 64}, "shared experts"),
    ({"vocab_size": "many"}, "'vocab_size' must be an integer"),
])
def test_bad_configs_are_one_line_errors(tmp_path, patch, message):
    cfg = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
           "intermediate_size": 128, "vocab_size": 100, **patch}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    with pytest.raises(VarcasError, match=message):
        load_config(str(path))


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(VarcasError) as err:
        load_config("llama-9b")
    assert "llama-2-7b" in str(err.value) and "mixtral-8x7b" in str(err.value)


def test_unknown_quant_and_attention():
    with pytest.raises(VarcasError, match="unknown --quant"):
        model("llama-2-7b", "nf4")
    with pytest.raises(VarcasError, match="attention must be"):
        model("llama-2-7b", attention="paged")
