"""The open-loop load generator: `python -m varcas.load` or run_load(LoadConfig(...))."""
from .runner import LoadConfig, run_load

__all__ = ["LoadConfig", "run_load"]
