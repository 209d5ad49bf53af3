"""The simulator's engine flags are one table: `varcas sim`'s parser, a sweep's --param strings
and spawn()'s keywords all reach the same SimConfig through it, and bad values are one line."""
from __future__ import annotations

from dataclasses import fields

import pytest
from hypothesis import given
from hypothesis import strategies as st

from varcas.errors import VarcasError
from varcas.sim import flags
from varcas.sim.config import SimConfig
from varcas.targets.sim_cli import build_parser

VALUES = {"model": "llama-3-8b", "gpu": "h100", "quant": "fp16", "scheduler": "v0", "max_num_seqs": 8,
          "max_num_batched_tokens": 4096,
          "enable_chunked_prefill": True, "gpu_memory_utilization": 0.8, "max_model_len": 2048,
          "served_model_name": "m", "gpu_file": "g.csv", "bw_efficiency": 0.7, "compute_efficiency": 0.5,
          "step_overhead_ms": 0.0}


def test_the_table_has_one_flag_per_setting():
    assert sorted(f.name for f in flags.ENGINE_FLAGS) == sorted(f.name for f in fields(SimConfig)) == sorted(VALUES)


def test_typed_values_strings_and_the_parser_give_the_same_config():
    typed = flags.config(VALUES)
    assert typed == SimConfig(**VALUES)
    assert flags.config({k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in VALUES.items()}) == typed
    assert flags.from_args(build_parser("varcas sim").parse_args(flags.argv(VALUES))) == typed


def test_defaults_are_simconfigs():
    assert flags.config({}) == SimConfig() == flags.from_args(build_parser("varcas sim").parse_args([]))


def test_a_switch_is_vllms_boolean_optional_flag():
    # chunked prefill is on by default (vLLM 0.32), so off must be sayable: --no-enable-chunked-prefill
    assert flags.argv({"enable_chunked_prefill": False, "max_num_seqs": 4}) == \
        ["--no-enable-chunked-prefill", "--max-num-seqs", "4"]
    assert flags.argv({"enable_chunked_prefill": "true"}) == ["--enable-chunked-prefill"]
    parser = build_parser("varcas sim")
    assert flags.from_args(parser.parse_args(["--no-enable-chunked-prefill"])) == SimConfig(enable_chunked_prefill=False)
    assert flags.from_args(parser.parse_args(["--enable-chunked-prefill"])) == SimConfig(enable_chunked_prefill=True)
    assert flags.from_args(parser.parse_args([])).enable_chunked_prefill is None   # vLLM's default, resolved later
    assert flags.config({"enable_chunked_prefill": "false"}) == SimConfig(enable_chunked_prefill=False)


def test_scheduler_v0_is_one_flag():
    parser = build_parser("varcas sim")
    assert flags.from_args(parser.parse_args(["--scheduler", "v0"])) == SimConfig(scheduler="v0")
    assert flags.argv({"scheduler": "v0"}) == ["--scheduler", "v0"]


@pytest.mark.parametrize("values, message", [
    ({"max_num_seqs": "abc"}, "--max-num-seqs: not an integer: 'abc'"),
    ({"max_num_seqs": 0}, "--max-num-seqs: must be an integer >= 1, got 0"),
    ({"max_num_seqs": "2.5"}, "--max-num-seqs: not an integer: '2.5'"),
    ({"max_num_seqs": True}, "--max-num-seqs: not a number: True"),
    ({"gpu_memory_utilization": "nan"}, "--gpu-memory-utilization: must be a positive finite number, got nan"),
    ({"bw_efficiency": -1}, "--bw-efficiency: must be a positive finite number, got -1"),
    ({"step_overhead_ms": -0.5}, "--step-overhead-ms: must be a non-negative finite number, got -0.5"),
    ({"enable_chunked_prefill": "yes"}, "--enable-chunked-prefill: values must be true or false, got yes"),
    ({"scheduler": "v2"}, "--scheduler: must be one of v1, v0, got v2"),
    ({"bogus": 1}, "the simulator has no setting 'bogus'"),
])
def test_bad_values_are_one_line(values, message):
    with pytest.raises(VarcasError) as err:
        flags.config(values)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


@given(st.integers(min_value=1, max_value=10**9))
def test_integers_round_trip_as_text(n):
    assert flags.config({"max_num_seqs": str(n)}).max_num_seqs == n
