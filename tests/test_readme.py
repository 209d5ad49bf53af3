"""The README and the commands' help say the same defaults: each claim below is read out of
README.md, then held against the parser's default and the flag's --help text."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from varcas import pipeline
from varcas.results.compare import DEFAULT_SLO_MS
from varcas.sim.config import SimConfig
from varcas.targets import load_cli

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _row(flag: str) -> str:
    """The README table row that documents flag first."""
    rows = [line for line in README.splitlines() if line.startswith(f"| `{flag}")]
    assert len(rows) == 1, f"README: {len(rows)} table rows start with {flag}"
    return rows[0]


def _action(parser, flag: str):
    (action,) = [a for a in parser._actions if flag in a.option_strings]
    return action


def _number(text: str) -> float:
    return float(text.replace(",", ""))


LOAD = load_cli.build_parser("varcas load")


@pytest.mark.parametrize("flag, pattern", [
    ("--request-timeout", r"per-request timeout \((\d+) s\)"),
    ("--drain-timeout", r"before they are cancelled \((\d+) s;"),
    ("--fail-fast", r"\(default (\d+);"),
    ("--metrics-interval", r"every S seconds \(default ([\d.]+)\)"),
])
def test_load_flag_defaults_in_the_readme_are_the_parsers(flag, pattern):
    row = _row("--request-timeout" if flag == "--drain-timeout" else flag)
    documented = _number(re.search(pattern, row).group(1))
    action = _action(LOAD, flag)
    assert documented == action.default, f"README says {flag} defaults to {documented:g}, the parser {action.default}"
    assert re.search(rf"\b{documented:g}\b", action.help), f"{flag}'s help does not say {documented:g}: {action.help}"


def test_the_duration_default_and_the_drain_in_the_first_run_agree():
    assert "(default 60 s)" in _row("--duration S") and "default 60" in _action(LOAD, "--duration").help
    drain = _action(LOAD, "--drain-timeout").default
    assert f"at most {drain:g} s later, `--drain-timeout`" in " ".join(README.split())


def test_the_default_target_is_named_alike_in_the_readme_the_help_and_the_simulator():
    c = SimConfig()
    documented = re.search(r"\(default ([\w.-]+), ([\w.-]+), ([\w.-]+), and vLLM", _row("--sim-model")).groups()
    assert documented == (c.model, c.gpu, c.quant)
    for flag, value in zip(("--sim-model", "--sim-gpu", "--sim-quant"), documented):
        assert f"(default {value})" in _action(LOAD, flag).help
    first_run = README[README.index("Run the main job"):README.index("python -m varcas.load --rps 50")]
    assert "Llama-3-8B in\nFP8 on an H100" in first_run and (c.model, c.gpu, c.quant) == ("llama-3-8b", "h100", "fp8")


def test_pipeline_defaults_in_the_readme_are_the_parsers():
    parser = pipeline.build_parser("varcas pipeline")
    batches = re.search(r"\(`--batch-sizes`, default\s+([\d,]+)\)", README).group(1)
    assert batches == _action(parser, "--batch-sizes").default == pipeline.DEFAULT_BATCHES
    slo = re.search(r"\(`--goodput`, default (ttft:\d+ tpot:\d+),", README).group(1)
    assert slo == " ".join(f"{k}:{v:g}" for k, v in DEFAULT_SLO_MS.items()) and slo in _action(parser, "--goodput").help
    attainment = re.search(r"for `--attainment` ([\d.]+) of requests", README.replace("\n", " ")).group(1)
    assert float(attainment) == _action(parser, "--attainment").default
    assert f"default {attainment}" in _action(parser, "--attainment").help
