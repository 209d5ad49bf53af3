"""Type checks as tests: the C extension's stub (varcas/_timing.pyi) matches the compiled module
(mypy's stubtest), and mypy finds no error in the package (pyproject.toml's [tool.mypy]).

mypy is a test dependency, so neither is skipped. Each runs as a subprocess from the repository
root with its cache in a temporary directory: cold every time (mypy takes ~10 s on the package),
nothing written into the tree, nothing fetched.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 300  # a cold run takes ~10 s; this is for a loaded CI machine


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mypy_cache")


def _python_m(module: str, *args: str, cache_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MYPY_CACHE_DIR": str(cache_dir)}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=TIMEOUT_S)


def test_stub_matches_the_compiled_module(cache_dir):
    # stubtest reads no MYPY_CACHE_DIR (it would write ./.mypy_cache): a config file says where
    config = cache_dir / "stubtest.ini"
    config.write_text(f"[mypy]\ncache_dir = {cache_dir}\n")
    done = _python_m("mypy.stubtest", "varcas._timing", "--mypy-config-file", str(config), cache_dir=cache_dir)
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_finds_no_error_in_the_package(cache_dir):
    done = _python_m("mypy", cache_dir=cache_dir)  # files, options and overrides: pyproject.toml
    assert done.returncode == 0 and "Success" in done.stdout, done.stdout + done.stderr
