"""Fixtures for tests against a real vLLM server (CPU build, tiny random-weight models).

Everything under tests/real is marked `real_vllm` and skipped when .ci/real-vllm.sh has not
set vLLM up (see vllm_server.vllm_paths) -- unless VARCAS_REQUIRE_VLLM=1, as in CI, where
it fails instead, so that a broken setup cannot pass as a skip. Select or deselect them
with `-m real_vllm` / `-m "not real_vllm"`.

Servers are session-scoped: one start costs ~15 s and ~2.2 GiB on 2 cores, so tests share
them and must not change their state (a test that kills a server starts its own).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from .vllm_server import DEFAULT_VENV, STAMP, VllmServer, vllm_paths

HERE = Path(__file__).resolve().parent


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "real_vllm: needs the real vLLM of .ci/real-vllm.sh (skipped without it "
        "unless VARCAS_REQUIRE_VLLM=1)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.real_vllm)


@pytest.fixture(scope="session", autouse=True)
def _require_vllm():   # session scope: it runs before the session's server fixtures
    if vllm_paths() is None:
        stamp = Path(os.environ.get("VARCAS_VLLM_VENV") or DEFAULT_VENV) / STAMP
        why = f"no real vLLM ({stamp} is missing): run `eval \"$(bash .ci/real-vllm.sh)\"`"
        if os.environ.get("VARCAS_REQUIRE_VLLM") == "1":
            pytest.fail(f"VARCAS_REQUIRE_VLLM=1 but {why}", pytrace=False)
        pytest.skip(why)


@pytest.fixture(scope="session")
def vllm_venv() -> Path:
    return vllm_paths()[0]


@pytest.fixture(scope="session")
def vllm_models() -> Path:
    return vllm_paths()[1]


def _serve(factory, venv: Path, models: Path, name: str, extra: list[str]):
    with VllmServer(venv, models / name, extra=extra,
                    log_path=factory.mktemp("vllm") / f"{name}.log") as server:
        yield server


@pytest.fixture(scope="session")
def vllm_4k(tmp_path_factory, vllm_venv, vllm_models):
    """vLLM serving tiny-4k (vocab 4096) as "tiny", max_model_len 512, max-num-seqs 16."""
    yield from _serve(tmp_path_factory, vllm_venv, vllm_models, "tiny-4k", ["--max-num-seqs", "16"])


@pytest.fixture(scope="session")
def vllm_32k(tmp_path_factory, vllm_venv, vllm_models):
    """vLLM serving tiny-32k (vocab 32000) as "tiny"; started only by tests that ask."""
    yield from _serve(tmp_path_factory, vllm_venv, vllm_models, "tiny-32k", ["--max-num-seqs", "16"])
