"""Settings -> engine numbers: vLLM's defaults, the KV block count from the roofline, and
vLLM's start-up checks as one-line errors."""
from __future__ import annotations

import math

import pytest

from varcas import roofline
from varcas.errors import VarcasError
from varcas.sim import SimConfig, resolve
from varcas.sim.config import BLOCK_SIZE, max_position_embeddings


def test_block_count_is_vllms_from_the_roofline_memory_model():
    setup = resolve(SimConfig(model="llama-2-7b", gpu="t4", quant="awq", max_num_seqs=8))
    hw, m = roofline.hardware("t4"), roofline.model("llama-2-7b", quant="awq")
    kv_token = 2 * 32 * 32 * 128 * 2   # K and V, 32 layers x 32 heads x 128 dims, fp16
    assert m.config.kv_bytes_per_token("fp16") == kv_token
    budget = 0.9 * hw.gpu.memory_bytes - m.weight_bytes
    assert setup.num_blocks == math.floor(budget / (BLOCK_SIZE * kv_token))
    assert setup.watermark_blocks == setup.num_blocks // 100
    assert (setup.max_model_len, setup.max_num_batched_tokens, setup.chunked_prefill) == (4096, 4096, False)
    assert setup.served_name == "llama-2-7b-awq"


def test_defaults_follow_the_model_and_chunked_prefill():
    assert max_position_embeddings("llama-3-8b") == 8192
    assert resolve(SimConfig(model="llama-3-8b", max_num_seqs=8)).max_model_len == 8192
    chunked = resolve(SimConfig(enable_chunked_prefill=True))
    assert chunked.max_num_batched_tokens == 2048 and chunked.max_num_seqs == 256
    custom = resolve(SimConfig(max_model_len=1024, max_num_batched_tokens=1500, served_model_name="m"))
    assert (custom.max_model_len, custom.max_num_batched_tokens, custom.served_name) == (1024, 1500, "m")


def test_what_if_knobs_reach_the_hardware_model():
    setup = resolve(SimConfig(gpu="a100-80gb", bw_efficiency=0.5, compute_efficiency=0.6, step_overhead_ms=0))
    assert (setup.hw.bw_efficiency, setup.hw.compute_efficiency, setup.hw.step_overhead_s) == (0.5, 0.6, 0.0)
    assert setup.params()["gpu"] == setup.hw.gpu.name and setup.params()["step_overhead_ms"] == 0.0
    bigger = resolve(SimConfig(gpu="a100-80gb"))
    assert bigger.num_blocks > 6 * resolve(SimConfig(gpu="t4")).num_blocks   # (72 - 3.9) / (14.4 - 3.9) GiB


@pytest.mark.parametrize("config, words", [
    (SimConfig(model="llama-2-70b", quant="fp16"), "nothing is left for the KV cache"),
    (SimConfig(max_model_len=100_000), "larger than the maximum number of tokens"),
    (SimConfig(max_num_batched_tokens=1024), "smaller than --max-model-len"),
    (SimConfig(max_num_seqs=512, enable_chunked_prefill=True, max_num_batched_tokens=256), "must be >= --max-num-seqs"),
    (SimConfig(max_num_seqs=0), "--max-num-seqs must be an integer >= 1"),
    (SimConfig(gpu="nope"), "unknown GPU"),
    (SimConfig(model="nope"), "unknown model"),
    (SimConfig(gpu_memory_utilization=1.5), "utilization must be in"),
])
def test_bad_settings_are_one_line_errors(config, words):
    with pytest.raises(VarcasError, match=words) as info:
        resolve(config)
    assert "\n" not in str(info.value)
