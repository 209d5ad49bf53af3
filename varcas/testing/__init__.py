"""Test doubles for varcas's own tests and benchmarks.

server: a streaming OpenAI-compatible server (`python -m varcas.testing.server`) that
records when it sent every token and injects faults per request (X-Fault header); start
it from Python with spawn(). Not the vLLM simulator (varcas.sim): a lean, deterministic stub.
"""
from .spawn import ServerProcess, spawn
from .streams import FAULTS

__all__ = ["FAULTS", "ServerProcess", "spawn"]
