"""`vllm bench serve`'s flags on `varcas load`: each spelling fills the LoadConfig field that means
the same, the schedule follows vLLM's rate semantics, bad combinations are one line and exit 2,
and --save-result writes vLLM's result JSON beside the run directory."""
from __future__ import annotations

import json
import math

import numpy as np
import orjson
import pytest

from varcas.analyze.vllm_result import DETAILED
from varcas.clikit import run_command
from varcas.errors import VarcasError
from varcas.load.request import RequestBuilder, Target
from varcas.load.runner import LoadConfig, prepare, sampling
from varcas.schedule import build_schedule, load_workload
from varcas.targets.load_cli import build_parser, config_from_args

from .helpers import varcas_cli


def config(*argv: str) -> LoadConfig:
    return config_from_args(build_parser("varcas load").parse_args(list(argv)))


@pytest.mark.parametrize("argv, field, value", [
    (["--base-url", "http://10.0.0.2:9000"], "url", "http://10.0.0.2:9000"),
    (["--host", "10.0.0.3", "--port", "8001"], "url", "http://10.0.0.3:8001"),
    (["--port", "8123"], "url", "http://127.0.0.1:8123"),  # vLLM's default host
    (["--host", "gpu-box"], "url", "http://gpu-box:8000"),  # and port
    (["--host", "::1", "--port", "9"], "url", "http://[::1]:9"),
    (["--backend", "vllm"], "api", "completions"),
    (["--backend", "openai"], "api", "completions"),
    (["--backend", "openai-chat"], "api", "chat"),
    (["--endpoint", "/v1/completions"], "endpoint", "/v1/completions"),
    (["--model", "meta/llama"], "model", "meta/llama"),
    (["--tokenizer", "/models/tiny"], "tokenizer", "/models/tiny"),
    (["--num-prompts", "17"], "num_requests", 17),
    (["--request-rate", "2.5"], "rps", 2.5),
    (["--request-rate", "inf"], "rps", math.inf),
    (["--burstiness", "0.5"], "burstiness", 0.5),
    (["--random-input-len", "16"], "input_len", 16),
    (["--random-output-len", "8"], "output_len", 8),
    (["--max-concurrency", "4"], "max_concurrency", 4),
    (["--ignore-eos"], "ignore_eos", True),
    (["--no-ignore-eos"], "ignore_eos", False),
    (["--temperature", "0.7"], "temperature", 0.7),
    (["--top-p", "0.9"], "top_p", 0.9),
    (["--top-k", "20"], "top_k", 20),
    (["--seed", "5"], "seed", 5),
    (["--disable-tqdm"], "quiet", True),
    (["--ramp-up-strategy", "exponential"], "ramp_up_strategy", "exponential"),
    (["--ramp-up-start-rps", "1"], "ramp_up_start_rps", 1.0),
    (["--ramp-up-end-rps", "20"], "ramp_up_end_rps", 20.0),
])
def test_each_vllm_spelling_fills_the_field_that_means_the_same(argv, field, value):
    cfg = config(*argv)
    assert getattr(cfg, field) == value
    assert cfg.base_url is cfg.host is cfg.port is None  # folded into url


def test_the_defaults_stay_varcas_own():
    cfg = config()
    assert (cfg.url, cfg.rps, cfg.num_requests, cfg.arrival, cfg.temperature, cfg.ignore_eos, cfg.backend) == \
        (None, None, None, None, 0.0, True, None)


def test_burstiness_alone_chooses_vllms_gamma_arrivals():
    cfg = config("--burstiness", "0.5", "--rps", "10", "--num-requests", "50", "--input-len", "8")
    prep = prepare(cfg)
    assert cfg.arrival == "gamma"
    want = build_schedule(workload=load_workload("chat_medium"), rps=10.0, arrival="gamma", burstiness=0.5,
                          num_requests=50, input_len=8, seed=0)
    assert np.array_equal(prep.offsets_ns, want.offset_ns)
    plain = config("--rps", "10", "--num-requests", "5")
    prepare(plain)
    assert plain.arrival == "poisson"


def test_prepare_records_the_rate_offered():
    cfg = config("--workload", "chat_low", "--duration", "2")
    prepare(cfg)
    assert cfg.rps == load_workload("chat_low").rps and cfg.duration_s == 2.0


def test_an_infinite_rate_sends_all_at_once():
    prep = prepare(config("--request-rate", "inf", "--num-prompts", "12"))
    assert prep.offsets_ns.tolist() == [0] * 12


def test_a_ramp_up_is_the_schedules():
    cfg = config("--ramp-up-strategy", "linear", "--ramp-up-start-rps", "1", "--ramp-up-end-rps", "9",
                 "--num-prompts", "40", "--seed", "4")
    prep = prepare(cfg)
    want = build_schedule(workload=load_workload("chat_medium"), rps=None, num_requests=40, seed=4,
                          ramp=("linear", 1.0, 9.0))
    assert np.array_equal(prep.offsets_ns, want.offset_ns) and cfg.rps is None


def test_the_sampling_parameters_are_in_each_body():
    def body(cfg):
        raw = RequestBuilder(Target.parse("http://h:1"), "m", sampling=sampling(cfg)).build(0, b"[1]", 4)
        return orjson.loads(raw.partition(b"\r\n\r\n")[2])

    default = body(config())
    assert default["temperature"] == 0.0 and "top_p" not in default and "top_k" not in default
    chosen = body(config("--temperature", "0.8", "--top-p", "0.95", "--top-k", "40"))
    assert (chosen["temperature"], chosen["top_p"], chosen["top_k"]) == (0.8, 0.95, 40)


@pytest.mark.parametrize("argv, needle", [
    (["--ramp-up-strategy", "linear", "--ramp-up-start-rps", "1", "--num-prompts", "5"],
     "missing --ramp-up-end-rps"),
    (["--ramp-up-start-rps", "1", "--ramp-up-end-rps", "5", "--num-prompts", "5"], "missing --ramp-up-strategy"),
    (["--ramp-up-strategy", "linear", "--ramp-up-start-rps", "1", "--ramp-up-end-rps", "5", "--request-rate", "inf",
      "--num-prompts", "5"], "a ramp-up sets the rate itself"),
    (["--ramp-up-strategy", "linear", "--ramp-up-start-rps", "1", "--ramp-up-end-rps", "5"],
     "a ramp-up climbs over a number of requests"),
    (["--ramp-up-strategy", "linear", "--ramp-up-start-rps", "5", "--ramp-up-end-rps", "1", "--num-prompts", "5"],
     "0 < start rps <= end rps"),
    (["--request-rate", "inf"], "give a number of requests"),
    (["--arrival", "poisson", "--burstiness", "0.5"], "burstiness applies only to the gamma"),
    (["--arrival", "constant", "--burstiness", "2"], "burstiness applies only to the gamma"),
    (["--url", "http://127.0.0.1:1", "--base-url", "http://127.0.0.1:2"], "--url, --base-url: each names the server"),
    (["--url", "http://127.0.0.1:1", "--host", "h"], "--url, --host: each names the server"),
    (["--base-url", "http://127.0.0.1:1", "--port", "2"], "--base-url, --port: each names the server"),
    (["--port", "70000"], "--port must be in [1, 65535]"),
    (["--api", "chat", "--backend", "vllm"], "--api chat and --backend vllm disagree"),
    (["--backend", "tgi"], "--backend"),
    (["--temperature", "-1"], "--temperature must be a number >= 0"),
    (["--top-p", "1.5"], "--top-p must be in (0, 1]"),
    (["--request-rate", "fast"], "--rps/--request-rate"),
    (["--save-detailed"], "--save-detailed: only with --save-result"),
    (["--result-dir", "x", "--metadata", "a=1"], "--result-dir, --metadata: only with --save-result"),
    (["--save-result", "--metadata", "novalue"], "--metadata: expected KEY=VALUE"),
    (["--save-result", "--percentile-metrics", "ttft,p99"], "--percentile-metrics: unknown 'p99'"),
    (["--metric-percentiles", "99,101"], "--metric-percentiles: each must be between 0 and 100"),
    (["--metric-percentiles", "p99"], "--metric-percentiles: expected numbers"),
    (["--goodput", "ttft:abc"], "--goodput: expected KEY:MS"),
    (["--goodput", "latency:5"], "unknown metric 'latency'"),
])
def test_bad_combinations_are_one_line_and_exit_2(argv, needle, tmp_path, capsys):
    try:
        code = run_command("varcas.targets.load_cli", "varcas load", [*argv, "--out", str(tmp_path / "r")])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and needle in err, err
    assert not (tmp_path / "r").exists()  # nothing started


def test_the_url_conflict_is_an_error_in_the_library_too():
    with pytest.raises(VarcasError, match="each names the server"):
        LoadConfig(url="http://a:1", base_url="http://b:2")


def test_save_result_writes_vllms_json_beside_the_run(tmp_path, server):
    out, results = tmp_path / "run", tmp_path / "results"
    res = varcas_cli("-m", "varcas.load", "--backend", "vllm", "--base-url", server.url, "--num-prompts", "6",
                     "--request-rate", "inf", "--max-concurrency", "3", "--random-input-len", "16",
                     "--random-output-len", "8", "--disable-tqdm", "--out", str(out), "--save-result",
                     "--save-detailed", "--result-dir", str(results), "--metadata", "tp=1", "--label", "mine",
                     "--metric-percentiles", "50,99", "--goodput", "ttft:10000")
    assert res.returncode == 0, res.stderr
    (path,) = results.iterdir()
    assert path.name.startswith("mine-infqps-concurrency3-test-model-") and path.name.endswith(".json")
    assert f"vLLM result: {path}" in res.stdout
    result = json.loads(path.read_text())
    assert (result["backend"], result["num_prompts"], result["request_rate"], result["max_concurrency"]) == \
        ("vllm", 6, "inf", 3)
    assert (result["completed"], result["tp"], result["label"], result["request_goodput"] > 0) == (6, "1", "mine", True)
    assert set(DETAILED) <= set(result) and result["output_lens"] == [8] * 6
    assert {"p50_ttft_ms", "p99_itl_ms", "median_e2el_ms"} <= set(result) and "p90_ttft_ms" not in result
    assert (out / "requests.parquet").is_file()  # the run directory is written as always
