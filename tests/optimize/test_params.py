"""--param specs, the grid, configuration ids and the server command template."""
import pytest

from varcas.errors import VarcasError
from varcas.optimize.params import command_template, config_id, fill, grid, parse_param


def test_parse_param_keeps_values_as_written():
    assert parse_param("max_num_seqs=1,2,16") == ("max_num_seqs", ("1", "2", "16"))
    assert parse_param(" enable_chunked_prefill = true,false") == ("enable_chunked_prefill", ("true", "false"))


@pytest.mark.parametrize("text", ["max_num_seqs", "=1,2", "Max=1", "max_num_seqs=", "max_num_seqs=1,,2",
                                  "max_num_seqs=1,1", "x=a b", "x=../etc"])
def test_parse_param_rejects_bad_specs(text):
    with pytest.raises(VarcasError, match="--param"):
        parse_param(text)


def test_grid_is_the_cartesian_product_in_flag_order():
    specs = [("max_num_seqs", ("1", "8")), ("max_num_batched_tokens", ("2048", "4096", "8192"))]
    configs = grid(specs)
    assert len(configs) == 6
    assert configs[0] == {"max_num_seqs": "1", "max_num_batched_tokens": "2048"}
    assert configs[-1] == {"max_num_seqs": "8", "max_num_batched_tokens": "8192"}
    assert [config_id(c) for c in configs[:2]] == ["max_num_seqs-1_max_num_batched_tokens-2048",
                                                  "max_num_seqs-1_max_num_batched_tokens-4096"]
    assert grid([]) == [{}] and config_id({}) == "default"


def test_grid_rejects_a_repeated_name():
    with pytest.raises(VarcasError, match="max_num_seqs is given twice"):
        grid([("max_num_seqs", ("1",)), ("max_num_seqs", ("2",))])


def test_command_template_is_split_without_a_shell_and_filled_per_word():
    words = command_template("vllm serve 'my model' --max-num-seqs {max_num_seqs} --port {port}; rm -rf /",
                             ["max_num_seqs"])
    argv = fill(words, {"max_num_seqs": "8"}, 8123)
    assert argv == ["vllm", "serve", "my model", "--max-num-seqs", "8", "--port", "8123;", "rm", "-rf", "/"]


@pytest.mark.parametrize("cmd, names, message", [
    ("vllm serve m", [], r"\{port\}"),
    ("vllm serve m --port {port}", ["max_num_seqs"], r"\{max_num_seqs\}"),
    ("vllm serve m --port {port} --x {typo}", [], r"\{typo\} is not a --param"),
    ("vllm 'unclosed --port {port}", [], "closing quotation"),
    ("", [], "empty"),
])
def test_command_template_errors(cmd, names, message):
    with pytest.raises(VarcasError, match=message):
        command_template(cmd, names)
