"""varcas: open-loop load generator and analyzer for LLM inference servers."""

__version__ = "0.1.0"
