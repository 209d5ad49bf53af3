"""The open-loop load generator: `python -m varcas.load` or run_load(LoadConfig(...)).

The names are imported on first use (PEP 562), so that `python -m varcas.load` reaches its
signal handling before the heavy imports (numpy, pyarrow, uvloop) run: a Ctrl-C in the first
moments is then a one-line exit 130, not a traceback from inside an import."""
from __future__ import annotations

__all__ = ["LoadConfig", "run_load"]


def __getattr__(name: str):
    if name in __all__:
        from . import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
